"""Report folders: JSON without NaN, Markdown tables, PNG figures of the comparison and the sweep."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from benchmarks.common import plots
from benchmarks.common.latency import Summary
from benchmarks.common.report import markdown_table, write_report
from benchmarks.common.triton_metrics import ModelActivity
from benchmarks.comparison.compare import comparison_markdown, largest_difference, ratios
from benchmarks.load.capacity import Level, size
from benchmarks.load.sweep import MODELS_SHOWN, sweep_markdown, write_sweep_report

PNG = b"\x89PNG\r\n\x1a\n"


def summary(throughput: float, p50: float, p95: float) -> Summary:
    return Summary(requests=24, failures=0, wall_s=24 / throughput, throughput_rps=throughput, p50_ms=p50,
                   p95_ms=p95, p99_ms=p95, mean_ms=p50)


def test_write_report_writes_json_with_null_for_nan_and_the_markdown(tmp_path):
    json_path, markdown_path = write_report(tmp_path / "r", "x", {"a": math.nan, "b": [1.5, math.inf]}, "# hi\n")
    assert json.loads(json_path.read_text()) == {"a": None, "b": [1.5, None]}
    assert markdown_path.read_text() == "# hi\n"


def test_markdown_table_formats_numbers():
    table = markdown_table(["a", "b"], [[1234.5, math.nan], [0.123456, "x"]])
    assert table.splitlines() == ["| a | b |", "| --- | --- |", "| 1,234 | – |", "| 0.123 | x |"]


def test_ratios_say_how_much_better_the_served_pipeline_is():
    r = ratios(summary(0.5, 1500.0, 1800.0), summary(0.8, 3000.0, 3600.0))
    assert r == pytest.approx({"throughput": 1.6, "p50_latency": 0.5, "p95_latency": 0.5})


def test_largest_probability_difference_between_runs():
    a = {"image/face": np.array([[0.1, 0.2, 0.3, 0.4]]), "image/no_face": np.zeros((0, 4))}
    b = {"image/face": np.array([[0.1, 0.25, 0.3, 0.4]]), "image/no_face": np.zeros((0, 4))}
    assert largest_difference(a, b) == pytest.approx(0.05)
    assert math.isnan(largest_difference(a, {"image/face": np.zeros((2, 4))}))


def test_the_comparison_report_has_both_pipelines_the_ratios_and_the_verdict(tmp_path):
    baseline = summary(0.5, 1500.0, 1800.0)
    served = {1: summary(0.6, 1200.0, 1300.0), 8: summary(0.8, 9000.0, 9500.0)}
    data = {"machine_description": "2 cores", "load_after_baseline": [1, 1, 1], "load_after_served": [2, 2, 2],
            "flavour": "cpu", "mix": "face=1", "requests": 24, "largest_probability_difference": 1e-5,
            "baseline": {"total": baseline.to_dict()},
            "served": {str(k): {"summary": {"total": s.to_dict()}, "ratios": ratios(baseline, s)}
                       for k, s in served.items()},
            "verdict": {"min_ratio": 1.5, "best_concurrency": 8, "best_ratio": 1.6, "met": True}}
    markdown = comparison_markdown(data)
    assert "| baseline (seed design) | 1 | 24 | 0 | 0.5 | 1,500 | 1,800 |" in markdown
    assert "| served (cpu) | 8 | 24 | 0 | 0.8 | 9,000 | 9,500 | 1.60 | 0.17 | 0.19 |" in markdown
    assert "met (best 1.60× at 8 in flight)" in markdown
    png = plots.comparison_chart(tmp_path / "c.png", baseline, served, "cpu")
    assert png.read_bytes()[:8] == PNG


def activity(queue_ms: float, compute_ms: float) -> ModelActivity:
    return ModelActivity(requests=10, failures=0, inferences=10, executions=5, requests_per_s=1.0, average_batch=2.0,
                         queue_ms=queue_ms, compute_ms=compute_ms, busy_fraction=0.5, busy_ms_per_inference=compute_ms / 2)


def test_the_sweep_report_tables_best_level_sizing_and_figures(tmp_path):
    levels = [Level(c, summary(t, p, p * 1.5), {name: activity(c * 1.0, 100.0) for name in
                                                 ("deepfake_detector",) + MODELS_SHOWN})
              for c, t, p in ((1, 1.0, 900.0), (4, 2.0, 1900.0), (8, 2.2, 4000.0))]
    best = levels[1]
    sizing = size(best, target_rps=10, rows_per_image=1.0)
    data = {"machine_description": "2 cores", "url": "grpc://x:1", "mix": "face=1", "duration_s": 30.0,
            "warmup_s": 5.0, "slo_p95_ms": 3000.0}
    write_sweep_report(tmp_path, "Sweep", data, levels, best, sizing)
    markdown = (tmp_path / "capacity.md").read_text()
    assert "| 8 | 24 | 0 | 2.2 | 4,000 | 6,000 |" in markdown
    assert "| 4 | effort_clip | 4 | 100 | 2 | 50% | 50 |" in markdown
    assert "**Best under the p95 SLO of 3000 ms:** 2 images/s at 4 in flight" in markdown
    assert f"**{sizing.gpus} device(s)**" in markdown
    record = json.loads((tmp_path / "capacity.json").read_text())
    assert record["best_under_slo"] == 4 and len(record["levels"]) == 3
    assert record["sizing"]["gpus"] == sizing.gpus
    for name in ("throughput_latency.png", "time_per_model.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG
    assert "No level met" in sweep_markdown("Sweep", data, levels, None, None)
