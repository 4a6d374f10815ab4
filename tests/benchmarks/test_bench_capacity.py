"""Sweep analysis and the GPU sizing arithmetic of benchmarks/load/capacity.py, by hand-computed cases."""

from __future__ import annotations

import math

import pytest

from benchmarks.common.latency import Summary
from benchmarks.common.triton_metrics import ModelActivity
from benchmarks.load.capacity import Level, best_under_slo, capacity_at, size
from deepfake_models import CLASSIFIER_NAMES


def summary(throughput: float, p95: float, failures: int = 0) -> Summary:
    return Summary(requests=100, failures=failures, wall_s=10.0, throughput_rps=throughput, p50_ms=p95 / 2,
                   p95_ms=p95, p99_ms=p95 * 1.2, mean_ms=p95 / 2)


def model(requests: float, inferences: float, busy_ms_per_inference: float) -> ModelActivity:
    return ModelActivity(requests=requests, failures=0, inferences=inferences, executions=requests,
                         requests_per_s=requests / 10, average_batch=inferences / requests, queue_ms=1.0,
                         compute_ms=busy_ms_per_inference, busy_fraction=0.5,
                         busy_ms_per_inference=busy_ms_per_inference)


def level(concurrency: int, throughput: float, p95: float, failures: int = 0, images: float = 100,
          rows: float = 100, detector_ms: float = 10.0, row_ms: float = 10.0) -> Level:
    models = {"deepfake_detector": model(images, images, math.nan), "face_detector": model(images, images, detector_ms)}
    models.update({name: model(images, rows, row_ms) for name in CLASSIFIER_NAMES})
    return Level(concurrency, summary(throughput, p95, failures), models)


def test_a_level_knows_its_rows_per_image_and_device_time():
    lvl = level(4, 100.0, 40.0, images=100, rows=150, detector_ms=10.0, row_ms=5.0)
    assert lvl.rows_per_image == pytest.approx(1.5)
    assert lvl.detector_ms_per_image == pytest.approx(10.0)
    assert lvl.classifiers_ms_per_row == pytest.approx(20.0)  # four classifiers at 5 ms


def test_best_level_is_the_fastest_within_the_slo_and_without_errors():
    levels = [level(1, 50, 20), level(4, 150, 45), level(8, 190, 49, failures=1), level(16, 210, 80)]
    assert best_under_slo(levels, slo_p95_ms=50).concurrency == 4
    assert best_under_slo(levels, slo_p95_ms=50, max_error_rate=0.05).concurrency == 8
    assert best_under_slo(levels, slo_p95_ms=100).concurrency == 16
    assert best_under_slo(levels, slo_p95_ms=10) is None


def test_capacity_scales_with_the_device_time_per_image():
    # measured: 100 images/s at 1 row per image; detector 10 ms, four classifiers 40 ms per row
    lvl = level(8, 100.0, 40.0, rows=100, detector_ms=10.0, row_ms=10.0)
    assert capacity_at(lvl, 1.0) == pytest.approx(100.0)
    assert capacity_at(lvl, 2.0) == pytest.approx(100.0 * 50 / 90)
    assert capacity_at(lvl, 8.0) == pytest.approx(100.0 * 50 / 330)
    with pytest.raises(ValueError, match="at least|>= 1"):
        capacity_at(lvl, 0.5)


def test_gpus_needed_for_a_target_rate_with_headroom():
    lvl = level(8, 100.0, 40.0, rows=100, detector_ms=10.0, row_ms=10.0)
    sizing = size(lvl, target_rps=1000, rows_per_image=2.0, utilisation=0.7)
    per_gpu = 100.0 * 50 / 90
    assert sizing.capacity_rps == pytest.approx(per_gpu)
    assert sizing.planned_rps_per_gpu == pytest.approx(0.7 * per_gpu)
    assert sizing.gpus == math.ceil(1000 / (0.7 * per_gpu)) == 26
    assert size(lvl, target_rps=70, rows_per_image=1.0, utilisation=0.7).gpus == 1
    assert size(lvl, target_rps=71, rows_per_image=1.0, utilisation=0.7).gpus == 2


def test_sizing_refuses_meaningless_inputs():
    lvl = level(8, 100.0, 40.0)
    with pytest.raises(ValueError, match="target"):
        size(lvl, target_rps=0, rows_per_image=1.0)
    with pytest.raises(ValueError, match="utilisation"):
        size(lvl, target_rps=10, rows_per_image=1.0, utilisation=1.5)
