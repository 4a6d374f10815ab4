"""benchmarks/studies/gateway_overhead.py's measurement: latencies, and the gateway's own time as
latency minus the SDK time the answer reports (no server; the real run is under `heavy`)."""

from __future__ import annotations

import threading
import time

from benchmarks.studies.gateway_overhead import _p, run


def test_run_measures_latency_and_the_gateways_own_time_at_the_asked_concurrency():
    in_flight, peak, lock = [0], [0], threading.Lock()

    def send() -> float:
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.02)
        with lock:
            in_flight[0] -= 1
        return 0.015  # the "SDK call" took 15 of the 20 ms

    latencies, own, elapsed = run(send, 12, 3)
    assert len(latencies) == len(own) == 12 and peak[0] == 3
    assert all(latency >= 0.02 for latency in latencies)
    assert all(abs(o - (latency - 0.015)) < 1e-9 for o, latency in zip(sorted(own), sorted(latencies)))
    assert elapsed < sum(latencies)  # three at a time


def test_direct_calls_have_no_own_time_and_percentiles_are_in_ms():
    latencies, own, _ = run(lambda: None, 3, 1)
    assert own == [] and len(latencies) == 3
    assert _p([0.001, 0.002, 0.003], 0.5) == 2.0 and _p([0.001, 0.002, 0.003], 0.95) == 3.0
