"""INT8 classifiers for CPU hosts: ONNX Runtime static QDQ quantisation, behind an accuracy gate.

    deepfake-export quantize --artifacts build [--model NAME] [--max-diff 0.02] [--mean-diff 0.005]

The FP32 ONNX file of each classifier is quantised (weights INT8 per channel,
activations UINT8, MinMax ranges) on aligned face crops: the project's sample
faces, detected and aligned as the server does, with jittered landmarks and
photometric augmentation. The gate then compares INT8 with FP32 on crops never
used for calibration (another face, other augmentations): when the fake
probability moves by more than `max_abs` anywhere or `mean_abs` on average, the
INT8 file is deleted and the model keeps FP32 (the cpu flavour serves whichever
file exists, see repository.py). Why ONNX Runtime and not OpenVINO: export/README.md.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data

from deepfake_contract import CLASSIFIER_INPUT, CLASSIFIER_OUTPUT
from deepfake_models import spec_by_name
from export.artifacts import BuildArtifacts
from export.errors import ExportError
from export.parity import fake_probability
from export.provenance import atomic_output, code_fingerprint, read_json, sha256_file, tool_versions, write_json

log = logging.getLogger("export")

# Matrix products carry ~all FLOPs; normalisation, softmax and F3Net's DCT stay FP32.
QUANTISED_OPS = ("Conv", "MatMul", "Gemm")
CALIBRATION_CROPS = 32
HOLDOUT_CROPS = 32


@dataclass(frozen=True)
class Gate:
    """Largest |INT8 - FP32| fake-probability change allowed on held-out face crops."""

    max_abs: float = 0.02
    mean_abs: float = 0.005

    def __post_init__(self) -> None:
        if not (0 < self.mean_abs <= self.max_abs <= 1):
            raise ValueError(f"need 0 < mean_abs <= max_abs <= 1, got {self.mean_abs}, {self.max_abs}")


class QuantizationRefused(ExportError):
    """INT8 moved the scores beyond the gate; the model stays FP32."""


def _sample_faces() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (image, alignment points) of the sample faces, found as the server finds them."""
    from deepfake_dev import samples
    from deepfake_serving.faces import FaceDetector

    image = samples.two_face_image()
    (faces,) = FaceDetector().detect([image])
    by_side = sorted(faces, key=lambda f: f.box[0])  # cameraman left, astronaut right
    if len(by_side) != 2:
        raise ExportError(f"expected the two sample faces, the detector found {len(by_side)}")
    return {"cameraman": (image, by_side[0].crop_points), "astronaut": (image, by_side[1].crop_points)}


def augmented_crops(image: np.ndarray, points: np.ndarray, size: int, count: int, seed: int) -> np.ndarray:
    """`count` aligned (size, size, 3) uint8 crops of one face: landmarks jittered (pose and
    framing like a detector's errors), then brightness, contrast, blur, flip and JPEG."""
    from deepfake_serving.alignment import align_face, resize_crop

    rng = np.random.default_rng(seed)
    centre = points.mean(axis=0)
    crops = []
    for _ in range(count):
        angle = np.deg2rad(rng.uniform(-10, 10))
        scale = rng.uniform(0.9, 1.1)
        rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        moved = (points - centre) @ rotation.T + centre + rng.normal(0, 2.0, size=points.shape)
        crop = align_face(image, moved.astype(np.float32)).astype(np.float32)
        crop = crop * rng.uniform(0.7, 1.3) + rng.uniform(-30, 30)
        if rng.random() < 0.3:
            crop = cv2.GaussianBlur(crop, (0, 0), rng.uniform(0.5, 1.5))
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        crop = np.clip(crop, 0, 255).astype(np.uint8)
        ok, jpeg = cv2.imencode(".jpg", np.ascontiguousarray(crop), [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(60, 96))])
        crops.append(resize_crop(cv2.imdecode(jpeg, cv2.IMREAD_UNCHANGED), size))
    return np.stack(crops)


def calibration_and_holdout(size: int, calibration: int = CALIBRATION_CROPS,
                            holdout: int = HOLDOUT_CROPS) -> tuple[np.ndarray, np.ndarray]:
    """Calibration crops of the astronaut; held-out crops of the cameraman (a face never
    calibrated on) and of the astronaut under other augmentations."""
    faces = _sample_faces()
    astronaut, cameraman = faces["astronaut"], faces["cameraman"]
    calibration_crops = augmented_crops(*astronaut, size, calibration, seed=1)
    unseen = holdout // 2
    holdout_crops = np.concatenate([augmented_crops(*cameraman, size, unseen, seed=2),
                                    augmented_crops(*astronaut, size, holdout - unseen, seed=3)])
    return calibration_crops, holdout_crops


class _Crops(CalibrationDataReader):
    def __init__(self, crops: np.ndarray) -> None:
        self._rows: Iterator[np.ndarray] = iter(crops)

    def get_next(self) -> dict[str, np.ndarray] | None:
        row = next(self._rows, None)
        return None if row is None else {CLASSIFIER_INPUT: row[None]}


def calibrate(fp32: Path, calibration: np.ndarray, ranges: Path) -> None:
    """Each quantised tensor's min/max over the calibration crops, written to `ranges`.

    Its own step, freed before quantisation starts: inside quantize_static the calibrator's
    copy of the model and its session lived beside the quantiser's copies (ViT-L: 8.6 GB peak).
    The weights go to an external data file first, so the calibration model the session loads
    is written without a second in-memory copy of them, and the calibrator's ModelProto is
    dropped once its session exists. The calibration graph reduces each tensor to its min/max
    per crop, merged as they come, so the ranges are the ones quantize_static found."""
    with tempfile.TemporaryDirectory(prefix="calibrate.") as scratch:
        external = Path(scratch) / "model.onnx"
        model = onnx.load(str(fp32))
        onnx.save(model, str(external), save_as_external_data=True, location="model.weights")
        del model
        gc.collect()
        calibrator = create_calibrator(external, list(QUANTISED_OPS), augmented_model_path=Path(scratch) / "augmented.onnx",
                                       calibrate_method=CalibrationMethod.MinMax, use_external_data_format=True,
                                       providers=["CPUExecutionProvider"])
        calibrator.model = None  # only the session runs from here on
        gc.collect()
        calibrator.collect_data(_Crops(calibration))
        tensor_ranges = calibrator.compute_data()
        del calibrator
        gc.collect()
    save_tensors_data(tensor_ranges, ranges)


def quantize_onnx(fp32: Path, int8: Path, calibration: np.ndarray) -> None:
    """Static QDQ quantisation of `fp32` into `int8`, ranges from the calibration crops."""
    with atomic_output(int8) as partial, tempfile.TemporaryDirectory(prefix="ranges.") as scratch:
        ranges = Path(scratch) / "ranges.json"
        calibrate(fp32, calibration, ranges)
        quantize_static(
            str(fp32), str(partial), None,  # the ranges come from the calibration step
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,  # U8S8: the operand types of the VNNI instructions
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=list(QUANTISED_OPS),
            calibrate_method=CalibrationMethod.MinMax,
            calibration_cache_path=str(ranges),
        )


def batched_logits(run: Callable[[np.ndarray], np.ndarray], crops: np.ndarray, batch: int = 8) -> np.ndarray:
    """run(crops) in batches of `batch`, the logits concatenated."""
    return np.concatenate([run(crops[i:i + batch]) for i in range(0, len(crops), batch)])


def _logits(path: Path, crops: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return batched_logits(lambda faces: session.run([CLASSIFIER_OUTPUT], {CLASSIFIER_INPUT: faces})[0], crops)


def gate_check(fp32_logits: np.ndarray, int8_logits: np.ndarray, gate: Gate) -> dict[str, Any]:
    """The gate's verdict on the held-out crops' logits of both models."""
    diff = np.abs(fake_probability(fp32_logits) - fake_probability(int8_logits))
    return {
        "max_abs_fake_probability_diff": float(diff.max()),
        "mean_abs_fake_probability_diff": float(diff.mean()),
        "gate_max_abs": gate.max_abs,
        "gate_mean_abs": gate.mean_abs,
        "passed": bool(diff.max() <= gate.max_abs and diff.mean() <= gate.mean_abs),
    }


def quantize_file(fp32: Path, int8: Path, size: int, gate: Gate = Gate(),
                  crops: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, Any]:
    """Quantise one ONNX file and gate it; a refused INT8 file is removed.

    Returns the report (passed False on refusal); raises nothing for a refusal."""
    calibration, holdout = crops if crops is not None else calibration_and_holdout(size)
    quantize_onnx(fp32, int8, calibration)
    gc.collect()
    verdict = gate_check(_logits(fp32, holdout), _logits(int8, holdout), gate)
    if not verdict["passed"]:
        int8.unlink()
    return {"calibration_crops": len(calibration), "holdout_crops": len(holdout), **verdict}


def code_key() -> str:
    """The export code's fingerprint and this file's: a change to either redoes INT8."""
    return hashlib.sha256((code_fingerprint() + Path(__file__).read_text()).encode()).hexdigest()


def quantize_classifier(name: str, artifacts: BuildArtifacts, gate: Gate = Gate()) -> dict[str, Any]:
    """INT8 variant of `name`'s ONNX file and its gate report (skipped when up to date)."""
    spec = spec_by_name(name)
    fp32, int8, report_path = artifacts.existing_onnx(name), artifacts.int8_onnx(name), artifacts.int8_report(name)
    fp32_sha256 = sha256_file(fp32)
    cached = read_json(report_path)
    if (cached is not None and cached["onnx_sha256"] == fp32_sha256 and cached["code_fingerprint"] == code_key()
            and cached["gate_max_abs"] == gate.max_abs and cached["gate_mean_abs"] == gate.mean_abs
            and (int8.is_file() or not cached["passed"])):
        log.info("%s: INT8 up to date (%s)", name, "passed" if cached["passed"] else "refused, FP32 kept")
        return cached
    log.info("%s: quantising to INT8 (ONNX Runtime static QDQ) -> %s", name, int8)
    gated = quantize_file(fp32, int8, spec.input_size, gate)
    report = {
        "model": name,
        "untrained": artifacts.is_untrained(name),
        "licence": artifacts.licence(name),
        "onnx_sha256": fp32_sha256,
        "int8": int8.name if gated["passed"] else None,  # a refused file was deleted
        "method": "onnxruntime static QDQ, U8 activations / S8 per-channel weights, MinMax",
        "quantised_ops": list(QUANTISED_OPS),
        **gated,
        "tool_versions": tool_versions(),
        "code_fingerprint": code_key(),
    }
    write_json(report_path, report)
    if report["passed"]:
        log.info("%s: INT8 passed the gate (max |Δp| %.4f, mean %.4f)", name,
                 report["max_abs_fake_probability_diff"], report["mean_abs_fake_probability_diff"])
    else:
        log.warning("%s: INT8 REFUSED: max |Δ fake probability| %.4f (gate %.3f), mean %.4f (gate %.4f) on %d "
                    "held-out face crops; the cpu flavour keeps serving FP32 %s", name,
                    report["max_abs_fake_probability_diff"], gate.max_abs,
                    report["mean_abs_fake_probability_diff"], gate.mean_abs, report["holdout_crops"], fp32.name)
    return report


def served_cpu_onnx(name: str, artifacts: BuildArtifacts) -> tuple[Path, str]:
    """The ONNX file the cpu flavour serves for `name` and its precision: the INT8 file
    when it passed the gate for the current FP32 file, else FP32."""
    fp32 = artifacts.onnx(name)
    report = read_json(artifacts.int8_report(name))
    if (report is not None and report["passed"] and artifacts.int8_onnx(name).is_file()
            and fp32.is_file() and report["onnx_sha256"] == sha256_file(fp32)):
        return artifacts.int8_onnx(name), "int8"
    return fp32, "fp32"
