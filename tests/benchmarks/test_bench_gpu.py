"""The GPU benchmark's parts that need no GPU: its refusal without CUDA, timing, arithmetic, report."""

from __future__ import annotations

import pytest
import torch

from benchmarks.common import plots
from benchmarks.studies import gpu

FLOPS = {"xception": 12e9, "efficientnet_b4": 4e9, "f3net": 13e9, "effort_clip": 162e9}


def test_without_cuda_the_benchmark_says_so_and_measures_nothing(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(gpu.NoGpuError, match="CUDA is not available"):
        gpu.require_cuda()
    assert gpu.main(["--out", str(tmp_path / "gpu")]) == gpu.EXIT_NO_GPU
    error = capsys.readouterr().err
    assert "CUDA is not available" in error and "nothing was measured" in error and "--flops-only" in error
    assert not (tmp_path / "gpu").exists()


def test_time_call_warms_up_then_averages_over_enough_calls():
    calls, syncs = [], []
    seconds = gpu.time_call(lambda: calls.append(1), lambda: syncs.append(1), min_seconds=0.0, min_iterations=10,
                            warmup=3)
    assert len(calls) == 13 and len(syncs) >= 2 and seconds >= 0


def test_a_result_row_relates_throughput_to_the_ceiling():
    row = gpu.result_row("effort_clip", "pytorch", batch=64, seconds=0.1, flops=162e9, peak_tflops=648.0)
    assert row["faces_per_s"] == pytest.approx(640.0)
    assert row["ms_per_batch"] == pytest.approx(100.0)
    assert row["ceiling_faces_per_s"] == pytest.approx(4000.0)
    assert row["share_of_ceiling"] == pytest.approx(0.16)
    assert row["achieved_tflops"] == pytest.approx(640 * 162e9 / 1e12)


def rows(runtime: str, best: dict[str, float]) -> list[dict]:
    out = []
    for model, faces_per_s in best.items():
        for batch, share in ((1, 0.1), (64, 1.0)):
            out.append({"model": model, "runtime": runtime, "batch": batch, "faces_per_s": faces_per_s * share,
                        "ms_per_batch": 1.0, "achieved_tflops": 1.0, "share_of_ceiling": 0.5})
    return out


def test_four_models_share_one_gpu_so_their_times_add_up():
    best = {"xception": 1000.0, "efficientnet_b4": 1000.0, "f3net": 1000.0, "effort_clip": 250.0}
    partial = rows("tensorrt", {"xception": 5000.0})  # a runtime without every model gets no estimate
    estimate = gpu.four_model_estimate(rows("pytorch", best) + partial, FLOPS, peak_tflops=400.0)
    assert set(estimate) == {"pytorch"}
    assert estimate["pytorch"]["best_faces_per_s"] == best
    assert estimate["pytorch"]["four_models_faces_per_s"] == pytest.approx(1 / (3 / 1000 + 1 / 250))
    assert estimate["pytorch"]["ceiling_faces_per_s"] == pytest.approx(400e12 / 191e9)


def test_the_report_lists_flops_rows_and_the_estimate(tmp_path):
    table = rows("pytorch", {name: 1000.0 for name in FLOPS})
    data = {"machine_description": "test machine", "peak_tflops": 400.0, "flops": FLOPS, "rows": table,
            "four_models": gpu.four_model_estimate(table, FLOPS, 400.0)}
    markdown = gpu.gpu_markdown(data)
    assert "| effort_clip | 162.00 | 2,469 |" in markdown  # 400 TFLOP/s / 162 GFLOP
    assert "| **all four** | 191.00 | 2,094 |" in markdown
    assert markdown.count("| pytorch |") == len(table)
    assert "- pytorch: 250 faces/s" in markdown  # 1 / (4 / 1000)
    png = plots.batch_throughput_chart(tmp_path / "b.png", table, {k: 400e12 / v for k, v in FLOPS.items()})
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_flops_table_without_a_peak_has_no_ceiling_column():
    markdown = gpu.flops_markdown({"xception": 11_901_479_744}, None)
    assert markdown.splitlines()[0] == "| model | GFLOP per face |"
    assert "| xception | 11.90 |" in markdown
