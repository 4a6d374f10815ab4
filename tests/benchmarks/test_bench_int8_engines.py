"""benchmarks/studies/int8_engines.py end to end on a tiny ONNX classifier with a LayerNorm + MLP
block (so NNCF's transformer preset and the no-SmoothQuant variant run too): every engine
is built (ONNX Runtime QDQ and OpenVINO + NNCF, both in requirements/dev.txt), gated on
held-out face crops and timed, and the report's figures agree with the logits it recorded.

The engines run in a child interpreter: once OpenVINO has run in a process, a SIGINT later
delivered to that process crashed it (seen in this suite: the CLI's Ctrl-C test, segfault),
and the benchmark is a command of its own in real use anyway."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.studies import int8_engines
from deepfake_contract import CLASSIFIER_INPUT, CLASSIFIER_OUTPUT
from export.parity import fake_probability
from export.quantize import calibration_and_holdout

SIZE = 32

# slow: three child interpreters import OpenVINO and NNCF and quantise (145 s on 2 busy cores, 2026-12-08:
# most of `make test-fast`'s time otherwise); `make test` runs them.
pytestmark = pytest.mark.slow


class Tiny(torch.nn.Module):
    """UINT8 NHWC crops -> 2 logits, like the exported classifiers: a convolution, then (with
    `transformer`) a LayerNorm + MLP over the patches, as ViT-L has, then a head."""

    def __init__(self, transformer: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 4, stride=4), torch.nn.ReLU())
        self.mlp = torch.nn.Sequential(torch.nn.LayerNorm(16), torch.nn.Linear(16, 32), torch.nn.GELU(),
                                       torch.nn.Linear(32, 16)) if transformer else None
        self.head = torch.nn.Linear(16, 2)

    def forward(self, faces):
        x = self.features(faces.permute(0, 3, 1, 2).float() / 255.0).flatten(2).transpose(1, 2)
        if self.mlp is not None:
            x = x + self.mlp(x)
        return self.head(x.mean(dim=1))


def tiny_onnx(path, transformer: bool):
    torch.onnx.export(Tiny(transformer).eval(), (torch.zeros(2, SIZE, SIZE, 3, dtype=torch.uint8),), str(path),
                      dynamo=False, opset_version=17, input_names=[CLASSIFIER_INPUT],
                      output_names=[CLASSIFIER_OUTPUT],
                      dynamic_axes={CLASSIFIER_INPUT: {0: "batch"}, CLASSIFIER_OUTPUT: {0: "batch"}})
    return path


CHILD = """
import json, sys
from pathlib import Path
from benchmarks.studies import int8_engines
from export.quantize import calibration_and_holdout
onnx_path, size, count, options = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
if options.pop("missing", False):
    int8_engines.openvino_missing = lambda: "not installed (openvino)"
crops = calibration_and_holdout(size, calibration=count, holdout=count)
report = int8_engines.measure_model(Path(onnx_path).stem, Path(onnx_path), 1, crops, Path(options.pop("models")),
                                    min_seconds=0.0, **options)
print(json.dumps({"report": report, "missing": int8_engines.openvino_missing()}, default=lambda a: a.tolist()))
"""


def measure_in_child(onnx_path: Path, count: int, **options) -> tuple[dict, str | None]:
    """int8_engines.measure_model on `count` calibration and held-out crops, in a child interpreter."""
    result = subprocess.run([sys.executable, "-c", CHILD, str(onnx_path), str(SIZE), str(count), json.dumps(options)],
                            capture_output=True, text=True, timeout=600, cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.splitlines()[-1])
    return answer["report"], answer["missing"]


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    folder = tmp_path_factory.mktemp("int8-engines")
    onnx_path = tiny_onnx(folder / "tiny.onnx", transformer=True)
    report, missing = measure_in_child(onnx_path, 8, models=str(folder / "models"), batches=[1, 4], rounds=2)
    return folder, calibration_and_holdout(SIZE, calibration=8, holdout=8), report, missing


@pytest.fixture(scope="module")
def run(measured):
    folder, crops, report, _ = measured
    return folder, crops, report


def test_the_openvino_engines_are_installed(measured):
    assert measured[3] is None  # requirements/dev.txt pins openvino and nncf


def test_every_engine_is_built_gated_and_timed(run):
    folder, (calibration, holdout), report = run
    assert list(report["engines"]) == list(int8_engines.ENGINES)
    assert report["calibration_crops"] == len(calibration) and report["holdout_crops"] == len(holdout)
    assert report["nncf_model_type"] == "transformer"  # it has a LayerNormalization
    for engine, result in report["engines"].items():
        assert result["status"] == "ok", (engine, result["status"])
        assert set(result["ms_per_call"]) == {"1", "4"}
        assert all(0 < ms < 10_000 for ms in result["ms_per_call"].values())
        assert result["build_seconds"] >= 0 and result["file_mb"] > 0 and result["peak_rss_gib"] > 0
    assert (folder / "models" / "tiny.int8.onnx").is_file()
    for ir in ("tiny.ov-int8", "tiny.ov-int8-nosq"):
        assert (folder / "models" / f"{ir}.xml").is_file() and (folder / "models" / f"{ir}.bin").is_file()


def test_a_cnn_gets_nncf_defaults_and_no_smooth_quant_variant(tmp_path):
    cnn = tiny_onnx(tmp_path / "cnn.onnx", transformer=False)
    assert not int8_engines.is_transformer(cnn)
    report, _ = measure_in_child(cnn, 4, models=str(tmp_path / "models"), engines=["ort-fp32", "ov-int8-nosq"],
                                 batches=[1], rounds=1)
    assert report["nncf_model_type"] == "default"
    assert report["engines"]["ov-int8-nosq"]["status"].startswith("n/a")
    assert int8_engines.fastest_passing(report, 1) is None


def test_the_gate_figures_are_those_of_the_recorded_logits(run):
    _, (_, holdout), report = run
    reference = fake_probability(np.array(report["logits"]["ort-fp32"]))
    assert report["engines"]["ort-fp32"]["gate"]["max_abs_fake_probability_diff"] == 0.0
    for engine, result in report["engines"].items():
        logits = np.array(report["logits"][engine])
        assert logits.shape == (len(holdout), 2) and np.isfinite(logits).all()
        diff = np.abs(fake_probability(logits) - reference)
        gate = result["gate"]
        assert math.isclose(gate["max_abs_fake_probability_diff"], diff.max(), abs_tol=1e-12)
        assert math.isclose(gate["mean_abs_fake_probability_diff"], diff.mean(), abs_tol=1e-12)
        assert gate["passed"] == (diff.max() <= gate["gate_max_abs"] and diff.mean() <= gate["gate_mean_abs"])
    # FP32 on another engine is the same function: far inside the gate; INT8 really changed something.
    assert report["engines"]["ov-fp32"]["gate"]["max_abs_fake_probability_diff"] < 1e-4
    for engine in ("ort-int8", "ov-int8", "ov-int8-nosq"):
        assert 0 < report["engines"][engine]["gate"]["max_abs_fake_probability_diff"]


def test_the_ort_logits_are_those_of_the_served_session(run):
    folder, (_, holdout), report = run
    from deepfake_serving.onnx_classifier import OnnxClassifier

    served = OnnxClassifier(folder / "tiny.onnx", intra_op_threads=1)(holdout)
    np.testing.assert_allclose(np.array(report["logits"]["ort-fp32"]), served, rtol=1e-5, atol=1e-6)


def test_the_report_files_and_the_verdict(run, tmp_path):
    _, _, report = run
    machine = {"cpu_cores": 2, "cpu": "test", "memory_gib": 1.0, "gpu": None, "load_average_1m_5m_15m": [0, 0, 0],
               "date_utc": "2026-11-30 00:00 UTC", "versions": {}}
    gate = int8_engines.Gate()
    text = int8_engines.write(tmp_path, [report], (1, 4), gate, machine, "python -m benchmarks.studies.int8_engines")
    for engine in int8_engines.ENGINES:
        assert f"| tiny | {engine} |" in text
    saved = json.loads((tmp_path / "int8_engines.json").read_text())
    assert saved["models"][0]["engines"].keys() == report["engines"].keys()
    assert (tmp_path / "int8_engines.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    winner = int8_engines.fastest_passing(report, 4)
    passing = {e for e, r in report["engines"].items() if "int8" in e and r["gate"]["passed"]}
    assert winner in passing if passing else winner is None
    if winner:
        assert all(report["engines"][winner]["ms_per_call"]["4"] <= report["engines"][e]["ms_per_call"]["4"]
                   for e in passing)


def test_a_missing_openvino_is_reported_not_skipped(run, tmp_path):
    folder, _, _ = run
    report, _ = measure_in_child(folder / "tiny.onnx", 8, models=str(tmp_path), batches=[1], rounds=1, missing=True)
    for engine in ("ov-fp32", "ov-int8", "ov-int8-nosq"):
        assert report["engines"][engine]["status"] == "not installed (openvino)"
    assert report["engines"]["ort-int8"]["status"] == "ok"
    text = int8_engines.markdown([report], (1,), int8_engines.Gate())
    assert "| tiny | ov-int8 | 1 | – | – | – | – | not installed (openvino) |" in text
