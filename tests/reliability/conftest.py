"""Fixtures of the reliability suite: a disposable server for the tests that break one.

The session server (tests/conftest.py: deepfake_server) serves every test that leaves it
intact; a test that kills a stub or crashes Triton gets its own server, started here.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def disposable_server(cpu_repository, tmp_path):
    """A Triton server of its own on the cpu repository, stopped (and cleaned up) afterwards."""
    from deepfake_dev.local_server import LocalTritonServer, Ports

    server = LocalTritonServer(cpu_repository, Ports.free(), log_path=tmp_path / "tritonserver.log")
    server.start(timeout_s=900)
    yield server
    server.stop()


def orphans(server) -> tuple[list, list]:
    """Stub processes still alive and /dev/shm files still present, of a stopped server."""
    from deepfake_dev.local_server import SHM_DIR, _proc_state

    alive = [stub for stub in server.stubs if _proc_state(stub.pid) is not None]
    files = [stub.shm_region for stub in server.stubs if (SHM_DIR / stub.shm_region).exists()]
    return alive, files
