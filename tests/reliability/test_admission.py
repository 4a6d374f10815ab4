"""Admission on the real server (issue: serving under load): bulk and interactive work at once,
and bulk work that finishes during a flood instead of failing.

The session server serves the cpu flavour (2 in flight, 8 waiting per priority level). A flood
is raw HTTP requests at the bulk level that never retry (benchmarks.load.overload.open_loop); the
SDK's batches retry their refusals with backoff (the adaptive limit, a bounded budget).
"""

from __future__ import annotations

import threading

import pytest

from benchmarks.load import overload
from deepfake_client import DeepfakeClient, DetectionResult, Label
from deepfake_dev import samples

pytestmark = pytest.mark.integration


class Flood:
    """Open-loop bulk requests on a thread, at `rate` images/s for `duration_s`."""

    def __init__(self, url: str, image: bytes, rate: float, duration_s: float) -> None:
        self.outcomes: list[overload.Outcome] = []
        self._thread = threading.Thread(
            target=lambda: self.outcomes.extend(overload.open_loop(url, image, rate, duration_s, 0)))

    def __enter__(self) -> Flood:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._thread.join()


def _rate(server, image: bytes) -> float:
    """Three times the server's one-at-a-time rate, measured now (the machine may be busy)."""
    closed = overload.closed_loop(server.http_url, image, 1, 4.0)
    return 3 * max(closed["images_per_s"], 0.2)


def test_interactive_requests_go_ahead_of_a_bulk_flood(deepfake_server):
    image = samples.encode_image(samples.face_image())
    with Flood(deepfake_server.http_url, image, _rate(deepfake_server, image), 20.0) as flood, \
            DeepfakeClient(deepfake_server.grpc_url, timeout_s=300) as client:
        # Single images are interactive by default; the flood holds the bulk queue full.
        answers = [client.detect(image) for _ in range(4)]
    assert all(isinstance(a, DetectionResult) and a.label != Label.NO_FACE for a in answers)
    refused = [o for o in flood.outcomes if o.status == overload.OVERLOADED]
    assert refused, "the flood must overload the bulk level for this test to mean anything"
    assert {o.status for o in flood.outcomes} <= {200, overload.OVERLOADED}
    assert deepfake_server.problems() == []


def test_a_batch_of_12_finishes_during_a_flood(deepfake_server, sample_media):
    image = samples.encode_image(samples.face_image())
    batch = [(sample_media / name).read_bytes()
             for name in (samples.FACE_IMAGE, samples.NO_FACE_IMAGE, samples.TWO_FACES_IMAGE)] * 4
    with Flood(deepfake_server.http_url, image, _rate(deepfake_server, image), 30.0) as flood, \
            DeepfakeClient(deepfake_server.grpc_url, timeout_s=300) as client:
        outcomes = client.detect_many(batch, concurrency=4)  # bulk: refusals are retried
    failed = [o for o in outcomes if not isinstance(o, DetectionResult)]
    assert failed == [], [str(o) for o in failed]
    assert [len(o.faces) for o in outcomes] == [1, 0, 2] * 4
    assert any(o.status == overload.OVERLOADED for o in flood.outcomes)
    assert deepfake_server.problems() == []
