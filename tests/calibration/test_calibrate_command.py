"""`deepfake calibrate` end to end on saved scores (no server): settings file, report folder, refusals."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from calibration_data import MODEL_NAMES, sigmoid

from deepfake_client.cli import ExitCode, main
from deepfake_client.evaluation import LabelledFile, ScoredFile, ScoredFrame, ScoringRun
from deepfake_contract import settings as ensemble_settings


def write_scores(folder: Path, labels, frames_per_file, seed=0, strengths=(1.5, 0.5, 0.0, 1.0)) -> Path:
    """A `deepfake evaluate` report.json over real files (so their sha256 can be listed)."""
    rng = np.random.default_rng(seed)
    files = []
    for i, label in enumerate(labels):
        path = folder / ("fake" if label else "real") / f"file{i}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.bytes(16))
        frames = []
        for index in range(frames_per_file):
            logits = np.asarray(strengths) * (2 * label - 1) + rng.normal(0, 1, len(strengths))
            frames.append(ScoredFrame(index, 0.5, sigmoid(logits)[None, :]))
        files.append(ScoredFile(LabelledFile(path, int(label), frames_per_file > 1), tuple(frames)))
    report = folder / "report.json"
    report.write_text(json.dumps({"scores": ScoringRun(MODEL_NAMES, tuple(files)).to_dict()}))
    return report


def run(argv, capsys):
    code = main([str(a) for a in argv] + ["--no-progress"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_eight_images_warn_keep_equal_weights_and_show_the_interval(tmp_path, capsys):
    report = write_scores(tmp_path, [0, 1] * 4, 1, strengths=(0.5, 0.3, 0.0, 0.4))  # the case: 4 real, 4 fake
    settings, out = tmp_path / "settings.json", tmp_path / "calibration"
    code, stdout, err = run(["calibrate", report, "--settings", settings, "--out", out], capsys)
    assert code == ExitCode.INVALID_INPUT
    assert "only 4 real and 4 fake" in err and "--force" in stdout
    assert not settings.exists()
    markdown = (out / "calibration.md").read_text()
    data = json.loads((out / "calibration.json").read_text())
    searched = data["result"]["cross_validated_auc"]["searched_weights"]
    assert f"[{searched['low']:.3f}, {searched['high']:.3f}]" in markdown  # the interval is shown
    assert searched["high"] - searched["low"] > 0.2  # and it is wide
    assert "Not written" in markdown and not data["settings"]["written"]
    assert data["result"]["counts"] == {"samples": 8, "fake": 4, "real": 4, "fake_groups": 4, "real_groups": 4,
                                        "min_per_class": 50}
    listed = {entry["path"]: entry["sha256"] for entry in data["data"]["files"]}
    assert listed[str(report)] == hashlib.sha256(report.read_bytes()).hexdigest()
    for path in (tmp_path / "fake").iterdir():
        assert listed[str(path)] == hashlib.sha256(path.read_bytes()).hexdigest()
    for png in ("roc.png", "reliability.png"):
        assert (out / png).read_bytes().startswith(b"\x89PNG")

    code, stdout, _ = run(["calibrate", report, "--settings", settings, "--out", out, "--force", "--json"], capsys)
    assert code == ExitCode.REAL
    written = ensemble_settings.load(settings)
    assert written.weights == {name: 0.25 for name in MODEL_NAMES}  # forced to write, not to adopt
    assert written.calibration == json.loads(stdout)["calibration"]


def test_enough_videos_adopt_searched_weights_and_write_a_calibrated_settings_file(tmp_path, capsys):
    report = write_scores(tmp_path, [0, 1] * 80, 4, seed=1)
    settings, out = tmp_path / "settings.json", tmp_path / "calibration"
    code, stdout, err = run(["calibrate", report, "--settings", settings, "--out", out, "--bootstrap", "200"], capsys)
    assert code == ExitCode.REAL, err
    written = ensemble_settings.load(settings)
    data = json.loads((out / "calibration.json").read_text())
    result = data["result"]
    assert result["counts"]["samples"] == 640 and result["counts"]["fake_groups"] == 80
    assert result["adopted"] and written.weights == result["weights"] and written.weights["f3net"] == 0.0
    assert written.calibration["method"] == "platt" and written.calibration == result["calibration"]
    assert written.threshold == result["threshold"]
    assert result["ece_after"]["estimate"] < result["ece_before"]["estimate"]
    assert written.provenance["report"] == str(out / "calibration.json")
    assert data["settings"]["content"] == written.to_dict()


def test_isotonic_and_none(tmp_path, capsys):
    report = write_scores(tmp_path, [0, 1] * 60, 3, seed=2)
    for method in ("isotonic", "none"):
        settings = tmp_path / f"{method}.json"
        code, _, err = run(["calibrate", report, "--settings", settings, "--out", tmp_path / method,
                            "--calibration", method, "--bootstrap", "50"], capsys)
        assert code == ExitCode.REAL, err
        calibration = ensemble_settings.load(settings).calibration
        assert (calibration is None) if method == "none" else calibration["method"] == "isotonic"


@pytest.mark.parametrize("extra", [["--level", "video"], ["--calibration", "beta"]])
def test_usage_errors(tmp_path, capsys, extra):
    report = write_scores(tmp_path, [0, 1] * 4, 2)
    try:
        code = main(["calibrate", str(report), "--out", str(tmp_path / "o"), *extra])
    except SystemExit as exit_info:
        code = exit_info.code
    assert code == ExitCode.USAGE


def test_the_uncertain_band_comes_from_the_threshold_interval_or_a_coverage(tmp_path, capsys):
    report = write_scores(tmp_path, [0, 1] * 60, 1, seed=3, strengths=(0.6, 0.4, 0.0, 0.5))
    out = tmp_path / "calibration"
    by_interval, by_coverage, none = (tmp_path / f"{n}.json" for n in ("interval", "coverage", "none"))
    common = ["--out", out, "--bootstrap", "100"]
    assert run(["calibrate", report, "--settings", by_interval, *common], capsys)[0] == ExitCode.REAL
    data = json.loads((out / "calibration.json").read_text())
    interval = data["result"]["threshold_interval"]
    band = ensemble_settings.load(by_interval).uncertain_band
    assert band["low"] == pytest.approx(min(interval["low"], data["result"]["threshold"]))
    assert band["high"] == pytest.approx(max(interval["high"], data["result"]["threshold"]))
    assert "Uncertain band: [" in (out / "calibration.md").read_text()

    argv = ["calibrate", report, "--settings", by_coverage, "--uncertain", "coverage", "--coverage", "0.8", *common]
    assert run(argv, capsys)[0] == ExitCode.REAL
    written = ensemble_settings.load(by_coverage)
    low, high = written.uncertain_band["low"], written.uncertain_band["high"]
    assert low < written.threshold < high and high - low == pytest.approx(2 * (written.threshold - low))

    assert run(["calibrate", report, "--settings", none, "--uncertain", "none", *common], capsys)[0] == ExitCode.REAL
    assert ensemble_settings.load(none).uncertain_band is None
