"""The GPU measurement kit's CPU smoke test (--tiny): every section runs and is reported."""

from __future__ import annotations

import json

import pytest

from benchmarks.studies import gpu_kit


@pytest.mark.slow  # needs the exported demo models (export_artifacts)
def test_the_kit_runs_tiny_on_the_cpu_and_reports_every_section(export_artifacts, tmp_path):
    out = tmp_path / "kit"
    assert gpu_kit.main(["--artifacts", str(export_artifacts), "--out", str(out), "--tiny",
                         "--model", "xception", "--model", "efficientnet_b4"]) == 0
    data = json.loads((out / "gpu_kit.json").read_text())
    assert data["tiny"] and data["device"] == "cpu" and data["dtype"] == "float32"
    assert {(r["model"], r["batch"]) for r in data["classifiers"]} == {
        (m, b) for m in ("xception", "efficientnet_b4") for b in gpu_kit.TINY.batches}
    assert all(r["faces_per_s"] > 0 and r["ceiling_faces_per_s"] > 0 for r in data["classifiers"])
    assert data["flops"]["xception"] > 1e9  # counted, not guessed
    assert {(r["side"], r["batch"]) for r in data["detector"]} == {
        (s, b) for s in gpu_kit.TINY.sides for b in (1, gpu_kit.TINY.detector_batch)}
    assert [r["side"] for r in data["decode"]] == list(gpu_kit.TINY.sides)
    assert all(r["images_per_s"] > 0 for r in data["detector"] + data["decode"] + data["pipeline"])
    markdown = (out / "gpu_kit.md").read_text()
    for section in ("compute floor", "Detector stage", "JPEG decode", "Whole pipeline"):
        assert section in markdown


def test_without_a_gpu_the_full_kit_measures_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gpu_kit.torch.cuda, "is_available", lambda: False)
    assert gpu_kit.main(["--out", str(tmp_path / "none")]) == 3
    assert "no CUDA GPU" in capsys.readouterr().out and not (tmp_path / "none").exists()
