"""The closed-loop driver keeps exactly N requests in flight and records every outcome."""

from __future__ import annotations

import threading
import time

import pytest

from benchmarks.load.closed_loop import parse_levels, repeat, run_closed_loop
from benchmarks.load.workload import Request


def request(name: str = "image/face") -> Request:
    return Request("face", name, (b"x",), expected_faces=1)


class SlowServer:
    def __init__(self, seconds: float = 0.02) -> None:
        self.seconds = seconds
        self.in_flight = 0
        self.most_in_flight = 0
        self.lock = threading.Lock()

    def __call__(self, _request: Request) -> None:
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        time.sleep(self.seconds)
        with self.lock:
            self.in_flight -= 1


def test_every_request_is_sent_once_with_the_concurrency_asked():
    server = SlowServer()
    timings = run_closed_loop(server, [request() for _ in range(24)], concurrency=4)
    assert len(timings) == 24
    assert server.most_in_flight == 4
    assert all(t.error is None and t.latency_s >= 0.02 for t in timings)
    assert [t.start_s for t in timings] == sorted(t.start_s for t in timings)


def test_a_failing_request_is_recorded_and_the_run_goes_on():
    def send(r: Request) -> None:
        if r.name == "bad":
            raise RuntimeError("refused")

    timings = run_closed_loop(send, [request(), request("bad"), request()], concurrency=1)
    assert [t.error for t in timings] == [None, "RuntimeError: refused", None]


def test_a_duration_stops_new_requests_but_lets_those_in_flight_finish():
    server = SlowServer(0.05)
    started = time.monotonic()
    timings = run_closed_loop(server, repeat([request()]), concurrency=2, duration_s=0.2)
    elapsed = time.monotonic() - started
    assert 4 <= len(timings) <= 12
    assert elapsed < 0.2 + 0.05 + 0.1
    assert all(t.error is None for t in timings)


def test_bad_arguments():
    with pytest.raises(ValueError, match="concurrency"):
        run_closed_loop(lambda r: None, [], concurrency=0)
    with pytest.raises(ValueError, match="duration"):
        run_closed_loop(lambda r: None, [], concurrency=1, duration_s=0)


def test_concurrency_levels():
    assert parse_levels("1,2,16") == [1, 2, 16]
    for bad in ("", "1,x", "0,4", "-1"):
        with pytest.raises(ValueError, match="concurrency levels"):
            parse_levels(bad)
