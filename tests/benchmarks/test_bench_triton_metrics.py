"""Triton's counters: Prometheus parsing, per-model sums, batch statistics, the deltas between snapshots."""

from __future__ import annotations

import math

import pytest

from benchmarks.common.triton_metrics import (
    MetricsError,
    ModelCounters,
    activity,
    busy_time_us,
    model_counters,
    parse_prometheus,
)

SCRAPE = """\
# HELP nv_inference_request_success Number of successful inference requests, all batch sizes
# TYPE nv_inference_request_success counter
nv_inference_request_success{model="xception",version="1"} 10
nv_inference_request_success{model="xception",version="2"} 2
nv_inference_request_failure{model="xception",reason="REJECTED",version="1"} 1
nv_inference_request_failure{model="xception",reason="BACKEND",version="1"} 2
nv_inference_count{model="xception",version="1"} 30
nv_inference_exec_count{model="xception",version="1"} 6
nv_inference_queue_duration_us{model="xception",version="1"} 1200
nv_inference_compute_infer_duration_us{model="xception",version="1"} 1.2e+06
nv_cpu_utilization 0.5
deepfake_images_total{outcome="no_face"} 3
nv_gpu_utilization{gpu_uuid="GPU-1"} 0.25
"""


def test_samples_are_keyed_by_name_and_labels():
    samples = parse_prometheus(SCRAPE)
    assert samples[("nv_inference_count", frozenset({("model", "xception"), ("version", "1")}))] == 30
    assert samples[("nv_cpu_utilization", frozenset())] == 0.5
    assert samples[("nv_inference_compute_infer_duration_us",
                    frozenset({("model", "xception"), ("version", "1")}))] == 1.2e6


def test_label_values_may_hold_commas_braces_and_escaped_quotes():
    samples = parse_prometheus('m{a="x,y}",b="say \\"hi\\""} 1 1700000000000\n')
    assert samples == {("m", frozenset({("a", "x,y}"), ("b", 'say \\"hi\\"')})): 1.0}


def test_a_malformed_line_is_an_error_with_its_number():
    with pytest.raises(MetricsError, match="line 2"):
        parse_prometheus("ok 1\nthis is not a sample\n")


def test_counters_are_summed_over_versions_and_failure_reasons_per_model():
    counters = model_counters(parse_prometheus(SCRAPE))
    assert set(counters) == {"xception"}  # metrics without a model label are not per-model counters
    assert counters["xception"] == ModelCounters(success=12, failure=3, inferences=30, executions=6, queue_us=1200,
                                                 compute_infer_us=1.2e6)


def test_activity_between_two_snapshots():
    before = {"xception": ModelCounters(success=5, inferences=10, executions=5, queue_us=500, compute_infer_us=1e5,
                                        busy_us=1e5)}
    # 20 more requests in 5 executions (4 requests, 8 rows per batch): each request is charged its
    # batch's 50 ms by the metrics; the statistics extension counts the 5 batches once (250 ms)
    after = {"xception": ModelCounters(success=25, inferences=50, executions=10, queue_us=20500,
                                       compute_input_us=20 * 1000, compute_infer_us=1e5 + 20 * 48_000,
                                       compute_output_us=20 * 1000, busy_us=1e5 + 250_000)}
    (model, a), = activity(before, after, seconds=2.0).items()
    assert model == "xception"
    assert (a.requests, a.inferences, a.executions) == (20, 40, 5)
    assert a.requests_per_s == 10
    assert a.average_batch == 8
    assert a.queue_ms == pytest.approx(1.0)
    assert a.compute_ms == pytest.approx(50.0)
    assert a.busy_fraction == pytest.approx(0.125)  # 250 ms in 2 s
    assert a.busy_ms_per_inference == pytest.approx(6.25)  # 250 ms over 40 rows


def test_busy_time_counts_every_execution_once_over_batch_sizes_and_phases():
    statistics = {"model_stats": [
        {"name": "effort_clip", "version": "1", "batch_stats": [
            {"batch_size": "1", "compute_input": {"count": "2", "ns": "1000"},
             "compute_infer": {"count": "2", "ns": "2000000"}, "compute_output": {"count": "2", "ns": "3000"}},
            {"batch_size": "3", "compute_infer": {"count": "1", "ns": "5000000"}}]},  # JSON omits zero phases
        {"name": "weighted_average", "version": "1", "batch_stats": [
            {"batch_size": 1, "compute_infer": {"count": 4, "ns": 8000}}]},  # HTTP gives numbers
        {"name": "idle", "version": "1"},
    ]}
    assert busy_time_us(statistics) == {"effort_clip": pytest.approx(7004.0), "weighted_average": 8.0, "idle": 0.0}


def test_a_model_first_seen_in_the_second_scrape_counts_from_zero():
    after = {"f3net": ModelCounters(success=2, inferences=2, executions=2, compute_infer_us=4000, busy_us=4000)}
    a = activity({}, after, 1.0)["f3net"]
    assert a.compute_ms == pytest.approx(2.0) and a.busy_fraction == pytest.approx(0.004)


def test_an_idle_model_has_no_per_request_figures():
    idle = {"effort_clip": ModelCounters(success=3, inferences=3, executions=3)}
    a = activity(idle, idle, 1.0)["effort_clip"]
    assert a.requests == 0 and a.busy_fraction == 0
    assert math.isnan(a.queue_ms) and math.isnan(a.average_batch) and math.isnan(a.busy_ms_per_inference)


def test_counters_going_backwards_mean_a_restart():
    with pytest.raises(MetricsError, match="restart"):
        activity({"xception": ModelCounters(success=10)}, {"xception": ModelCounters(success=3)}, 1.0)
    with pytest.raises(ValueError, match="positive"):
        activity({}, {}, 0.0)
