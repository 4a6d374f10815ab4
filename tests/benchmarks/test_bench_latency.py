"""Percentiles, error rate and throughput of timed requests."""

from __future__ import annotations

import math

import pytest

from benchmarks.common.latency import Timing, summarize, summarize_by_name


def test_percentiles_are_nearest_rank_over_successful_requests():
    timings = [Timing("a", start_s=i * 0.01, latency_s=(i + 1) / 1000) for i in range(100)]  # 1..100 ms
    timings.append(Timing("a", start_s=0.5, latency_s=10.0, error="ServerError: boom"))
    s = summarize(timings)
    assert (s.p50_ms, s.p95_ms, s.p99_ms) == pytest.approx((50.0, 95.0, 99.0))
    assert s.mean_ms == pytest.approx(50.5)
    assert (s.requests, s.failures) == (101, 1)
    assert s.error_rate == pytest.approx(1 / 101)
    # wall: first start (0) to the last end (0.5 + 10 s)
    assert s.wall_s == pytest.approx(10.5)
    assert s.throughput_rps == pytest.approx(100 / 10.5)


def test_only_failures_give_nan_latency_and_zero_throughput():
    s = summarize([Timing("a", 0.0, 1.0, error="x"), Timing("a", 0.5, 1.0, error="y")])
    assert math.isnan(s.p50_ms) and s.throughput_rps == 0 and s.error_rate == 1


def test_no_requests_is_an_error():
    with pytest.raises(ValueError):
        summarize([])


def test_per_name_throughput_shares_the_run_wall_time():
    timings = [Timing("image/face", 0.0, 1.0), Timing("image/face", 1.0, 1.0), Timing("video/4_frames", 0.0, 4.0)]
    by_name = summarize_by_name(timings)
    assert set(by_name) == {"image/face", "video/4_frames", "total"}
    assert by_name["total"].throughput_rps == pytest.approx(3 / 4.0)
    assert by_name["image/face"].throughput_rps == pytest.approx(2 / 4.0)
    assert by_name["video/4_frames"].p50_ms == pytest.approx(4000.0)
    assert by_name["total"].to_dict()["error_rate"] == 0
