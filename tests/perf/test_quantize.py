"""The INT8 accuracy gate (issue 13.3): a robust model passes, a fragile one is refused
and keeps FP32; the cpu flavour serves INT8 only where the gate passed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from deepfake_contract import CLASSIFIER_INPUT, CLASSIFIER_OUTPUT
from export.cli import main
from export.onnx_export import OPSET
from export.quantize import Gate, augmented_crops, calibration_and_holdout, gate_check, quantize_file

SIZE = 32


class TinyClassifier(torch.nn.Module):
    """UINT8 NHWC crops -> 2 logits, like the exported classifiers.

    `outlier` scales one pooled feature the head ignores. Large, it is the activation
    outlier that breaks per-tensor INT8: its range sets the quantisation step, and the
    small features the score depends on round away."""

    def __init__(self, outlier: float) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 3, stride=2)
        self.head = torch.nn.Linear(8, 2)
        with torch.no_grad():
            self.conv.weight[0] = self.conv.weight[0].abs() * outlier
            self.conv.bias[0] = abs(float(self.conv.bias[0])) * outlier
            self.head.weight[:, 0] = 0.0
            # A gain of 3 keeps the robust model within the gate on every CPU measured (its mean
            # |dp| 0.0029 on an AMD EPYC, where a gain of 10 gave 0.0078 > 0.005: ORT's INT8
            # kernels differ by CPU), while the fragile one still fails it by 3.5x (max 0.071).
            self.head.weight[:, 1:] *= 3.0

    def forward(self, faces):
        x = faces.permute(0, 3, 1, 2).float() / 255.0
        return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def tiny_onnx(path: Path, outlier: float) -> Path:
    with torch.no_grad():
        program = torch.onnx.export(TinyClassifier(outlier).eval(), (torch.zeros(2, SIZE, SIZE, 3, dtype=torch.uint8),),
                                    dynamo=True, opset_version=OPSET, input_names=[CLASSIFIER_INPUT],
                                    output_names=[CLASSIFIER_OUTPUT], dynamic_shapes=({0: torch.export.Dim("batch")},),
                                    verbose=False)
    program.save(str(path))
    return path


@pytest.fixture(scope="module")
def crops():
    return calibration_and_holdout(SIZE, calibration=16, holdout=16)


def test_calibration_and_holdout_are_aligned_faces_not_noise(crops):
    calibration, holdout = crops
    assert calibration.shape == (16, SIZE, SIZE, 3) and holdout.shape == (16, SIZE, SIZE, 3)
    assert calibration.dtype == np.uint8
    # Real crops: neighbouring pixels agree far more than in uniform noise (mean step ~85).
    rough = np.abs(np.diff(calibration.astype(float), axis=2)).mean()
    assert rough < 40
    # No held-out crop is a calibration crop.
    assert not any((h == c).all() for h in holdout for c in calibration)


def test_augmentation_is_seeded(crops):
    from export.quantize import _sample_faces

    image, points = _sample_faces()["astronaut"]
    np.testing.assert_array_equal(augmented_crops(image, points, SIZE, 2, seed=5),
                                  augmented_crops(image, points, SIZE, 2, seed=5))


def test_a_robust_model_passes_and_keeps_its_int8_file(tmp_path, crops):
    report = quantize_file(tiny_onnx(tmp_path / "robust.onnx", outlier=1.0), tmp_path / "robust.int8.onnx", SIZE,
                           Gate(), crops)
    assert report["passed"], report
    assert (tmp_path / "robust.int8.onnx").is_file()
    assert report["max_abs_fake_probability_diff"] <= 0.02


def test_a_fragile_model_is_refused_and_its_int8_file_removed(tmp_path, crops):
    report = quantize_file(tiny_onnx(tmp_path / "fragile.onnx", outlier=1000.0), tmp_path / "fragile.int8.onnx", SIZE,
                           Gate(), crops)
    assert not report["passed"]
    assert report["max_abs_fake_probability_diff"] > 0.02
    assert not (tmp_path / "fragile.int8.onnx").exists()


def test_the_cli_records_no_int8_file_for_a_refused_model_and_sums_up_the_refusals(tmp_path, monkeypatch, capsys,
                                                                                   crops):
    from types import SimpleNamespace

    from export import quantize
    from export.artifacts import BuildArtifacts

    artifacts = BuildArtifacts(tmp_path)
    for name, outlier in (("xception", 1.0), ("f3net", 1000.0)):  # robust, fragile (stand-ins under real names)
        artifacts.onnx(name).parent.mkdir(exist_ok=True)
        tiny_onnx(artifacts.onnx(name), outlier)
        artifacts.manifest_path(name).parent.mkdir(exist_ok=True)
        artifacts.manifest_path(name).write_text(json.dumps({"untrained": True, "licence": "none (demo)"}))
    monkeypatch.setattr(quantize, "spec_by_name", lambda name: SimpleNamespace(input_size=SIZE))
    monkeypatch.setattr(quantize, "calibration_and_holdout", lambda size: crops)  # the crops the tests above gate on
    # A gate the robust stand-in passes with room on any CPU (it is near the default gate).
    assert main(["quantize", "--artifacts", str(tmp_path), "--model", "xception", "--model", "f3net",
                 "--max-diff", "0.05", "--mean-diff", "0.02"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == "INT8: 1 of 2 passed the gate; refused, served in FP32: f3net"
    assert json.loads(artifacts.int8_report("xception").read_text())["int8"] == "xception.int8.onnx"
    assert json.loads(artifacts.int8_report("f3net").read_text())["int8"] is None
    assert artifacts.int8_onnx("xception").is_file() and not artifacts.int8_onnx("f3net").exists()


def test_the_gate_checks_both_the_worst_and_the_mean_change():
    fp32 = np.zeros((4, 2), np.float32)
    one_outlier = fp32.copy()
    one_outlier[0, 1] = 0.2  # p moves by ~0.05 on one crop
    assert not gate_check(fp32, one_outlier, Gate())["passed"]
    everywhere = fp32.copy()
    everywhere[:, 1] = 0.04  # ~0.01 on every crop: under the max, over the mean
    verdict = gate_check(fp32, everywhere, Gate())
    assert verdict["max_abs_fake_probability_diff"] < 0.02 and not verdict["passed"]
    assert gate_check(fp32, fp32, Gate())["passed"]


def test_bad_gates_are_rejected():
    with pytest.raises(ValueError):
        Gate(max_abs=0.01, mean_abs=0.02)


def test_the_cli_refuses_an_inconsistent_gate(capsys):
    assert main(["quantize", "--artifacts", "nowhere", "--max-diff", "0.001", "--mean-diff", "0.5"]) == 1
    assert "mean_abs <= max_abs" in capsys.readouterr().err


def test_the_cpu_flavour_serves_int8_only_where_the_gate_passed(tmp_path):
    from export.artifacts import BuildArtifacts
    from export.provenance import sha256_file
    from export.quantize import served_cpu_onnx

    artifacts = BuildArtifacts(tmp_path)
    name = "xception"
    fp32 = artifacts.onnx(name)
    fp32.parent.mkdir(parents=True)
    fp32.write_bytes(b"fp32")
    assert served_cpu_onnx(name, artifacts) == (fp32, "fp32")  # never quantised
    artifacts.int8_onnx(name).write_bytes(b"int8")
    report = {"passed": True, "onnx_sha256": sha256_file(fp32)}
    artifacts.int8_report(name).write_text(json.dumps(report))
    assert served_cpu_onnx(name, artifacts) == (artifacts.int8_onnx(name), "int8")
    fp32.write_bytes(b"a new export")  # the INT8 file is now stale
    assert served_cpu_onnx(name, artifacts) == (fp32, "fp32")
    artifacts.int8_report(name).write_text(json.dumps({**report, "onnx_sha256": sha256_file(fp32),
                                                        "passed": False}))
    assert served_cpu_onnx(name, artifacts) == (fp32, "fp32")


@pytest.mark.slow  # the export of the four demo models (session fixture; cached in build/test-artifacts)
def test_assembly_puts_the_int8_file_in_the_cpu_repository(export_artifacts, tmp_path):
    """A real assembly from the test artifacts with one (copied) file marked INT8."""
    from export.artifacts import BuildArtifacts
    from export.provenance import sha256_file
    from export.repository import RepositoryOptions, assemble

    source = export_artifacts
    artifacts_dir = tmp_path / "artifacts"
    shutil.copytree(source / "fixed", artifacts_dir / "fixed")
    (artifacts_dir / "onnx").mkdir()
    for onnx in (source / "onnx").glob("*.onnx"):
        if onnx.name.count(".") == 1:
            (artifacts_dir / "onnx" / onnx.name).symlink_to(onnx)
    artifacts = BuildArtifacts(artifacts_dir)
    int8 = tiny_onnx(artifacts.int8_onnx("xception"), outlier=1.0)
    artifacts.int8_report("xception").write_text(
        json.dumps({"passed": True, "onnx_sha256": sha256_file(artifacts.onnx("xception"))}))
    out = assemble(artifacts_dir, tmp_path / "cpu")
    summary = json.loads((out / "repository.json").read_text())
    assert summary["precision"] == {"xception": "int8", "efficientnet_b4": "fp32", "f3net": "fp32",
                                    "effort_clip": "fp32"}
    assert (out / "xception" / "1" / "model.onnx").read_bytes() == int8.read_bytes()
    fp32_repo = assemble(artifacts_dir, tmp_path / "cpu-fp32", RepositoryOptions(int8=False))
    assert (fp32_repo / "xception" / "1" / "model.onnx").stat().st_size == artifacts.onnx("xception").stat().st_size


def test_calibrating_apart_gives_the_file_that_quantize_static_calibrating_itself_gave(tmp_path, crops):
    """The calibration runs as its own step (export memory): the INT8 file equals the one
    onnxruntime writes when it calibrates inside quantize_static, so the gate's figures stand."""
    import onnx
    from onnx import numpy_helper
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from export.quantize import QUANTISED_OPS, _Crops, quantize_onnx

    calibration, _ = crops
    fp32 = tiny_onnx(tmp_path / "tiny.onnx", outlier=1.0)
    quantize_static(str(fp32), str(tmp_path / "inside.int8.onnx"), _Crops(calibration), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                    op_types_to_quantize=list(QUANTISED_OPS), calibrate_method=CalibrationMethod.MinMax)
    quantize_onnx(fp32, tmp_path / "apart.int8.onnx", calibration)

    inside, apart = onnx.load(str(tmp_path / "inside.int8.onnx")), onnx.load(str(tmp_path / "apart.int8.onnx"))

    def initializers(model):
        return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}

    expected, got = initializers(inside), initializers(apart)
    assert sum("scale" in name for name in expected) >= 6 and expected.keys() == got.keys()
    for name, value in expected.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)
    assert [n.op_type for n in apart.graph.node] == [n.op_type for n in inside.graph.node]
    assert [n.op_type for n in inside.graph.node].count("QuantizeLinear") >= 3
