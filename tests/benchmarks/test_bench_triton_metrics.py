"""Triton's Prometheus counters: parsing, per-model sums, and the deltas between two scrapes."""

from __future__ import annotations

import math

import pytest

from benchmarks.triton_metrics import MetricsError, ModelCounters, activity, model_counters, parse_prometheus

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


def test_activity_between_two_scrapes():
    before = {"xception": ModelCounters(success=5, inferences=10, executions=5, queue_us=500, compute_infer_us=1e5)}
    # 20 more requests in 5 executions (4 per batch, 8 rows per batch), each request charged its batch's 50 ms
    after = {"xception": ModelCounters(success=25, inferences=50, executions=10, queue_us=20500,
                                       compute_input_us=20 * 1000, compute_infer_us=1e5 + 20 * 48_000,
                                       compute_output_us=20 * 1000)}
    (model, a), = activity(before, after, seconds=2.0).items()
    assert model == "xception"
    assert (a.requests, a.inferences, a.executions) == (20, 40, 5)
    assert a.requests_per_s == 10
    assert a.average_batch == 8
    assert a.queue_ms == pytest.approx(1.0)
    assert a.compute_ms == pytest.approx(50.0)
    # 5 batches of 50 ms = 250 ms busy in 2 s; 250 ms over 40 rows
    assert a.busy_fraction == pytest.approx(0.125)
    assert a.busy_ms_per_inference == pytest.approx(6.25)


def test_a_model_first_seen_in_the_second_scrape_counts_from_zero():
    after = {"f3net": ModelCounters(success=2, inferences=2, executions=2, compute_infer_us=4000)}
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
