"""Fixtures of the security tests (helpers in loopback.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from loopback import RecordingServer


@pytest.fixture
def recording_server() -> Iterator[RecordingServer]:
    with RecordingServer() as server:
        yield server
