"""Numerical agreement between two runtimes of the same classifier, measured on
the fake probability (softmax index 1) that users actually see: on seeded noise crops
(every frequency, F3Net's bands) and, for the ONNX export, on aligned sample faces."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from deepfake_contract import CLASSIFIER_INPUT, CLASSIFIER_OUTPUT
from export.errors import ParityError

PARITY_BATCHES = (1, 8)
Runner = Callable[[np.ndarray], np.ndarray]  # UINT8 faces -> FP32 logits


def parity_faces(input_size: int, batch: int, seed: int = 0) -> np.ndarray:
    """Seeded UINT8 [batch, S, S, 3] crops: a smooth gradient plus noise, so both
    low and high frequencies (F3Net's bands) are exercised."""
    rng = np.random.default_rng(seed + batch)
    ramp = np.linspace(0, 255, input_size, dtype=np.float32)
    base = (ramp[None, :, None] + ramp[:, None, None]) / 2
    noise = rng.normal(0, 40, size=(batch, input_size, input_size, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def fake_probability(logits: np.ndarray) -> np.ndarray:
    logits = logits.astype(np.float64)
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted[:, 1] / shifted.sum(axis=1)


def compare(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    if reference.shape != candidate.shape:
        raise ValueError(f"logits shapes differ: {reference.shape} vs {candidate.shape}")
    return {
        "max_abs_fake_probability_diff": float(np.abs(fake_probability(reference) - fake_probability(candidate)).max()),
        "max_abs_logit_diff": float(np.abs(reference.astype(np.float64) - candidate).max()),
        "reference_fake_probability_mean": float(fake_probability(reference).mean()),
    }


@functools.cache
def sample_face_crops(input_size: int) -> np.ndarray:
    """The demo sample faces (deepfake_dev.samples: the face and two-face images), detected and
    aligned as the face_detector does, at this crop size: UINT8 [3, S, S, 3]. Real faces, so a
    model is also checked where it is used, not only on noise. (Dev-time only: the serving
    image, which builds TensorRT plans, has no deepfake_dev.)"""
    from deepfake_dev import samples
    from deepfake_serving.detection import detect_faces
    from deepfake_serving.faces import FaceDetector

    images = [samples.encode_image(samples.face_image()), samples.encode_image(samples.two_face_image())]
    results = detect_faces(images, FaceDetector(), crop_sizes=(input_size,))
    return np.concatenate([result.crops[input_size][: int(result.num_faces[0])] for result in results])


def measure(reference: Runner, candidate: Runner, input_size: int, batches=PARITY_BATCHES,
            samples: Mapping[str, np.ndarray] = {}) -> dict[str, dict[str, float]]:
    """compare() per batch size on the same seeded inputs, and on each named sample batch."""
    results = {}
    for batch in batches:
        faces = parity_faces(input_size, batch)
        results[str(batch)] = compare(reference(faces), candidate(faces))
    for name, faces in samples.items():
        results[name] = compare(reference(faces), candidate(faces))
    return results


def worst(results: dict[str, dict[str, float]]) -> float:
    return max(result["max_abs_fake_probability_diff"] for result in results.values())


def require_agreement(results: dict[str, dict[str, float]], tolerance: float, what: str, details: str) -> None:
    """Raise ParityError when the worst batch exceeds `tolerance`."""
    if worst(results) > tolerance:
        raise ParityError(
            f"{what}: max |Δ fake probability| {worst(results):.2e} > {tolerance:.0e} ({details})"
        )


def recorded(runner: Runner, inputs: list[np.ndarray]) -> Runner:
    """`runner`'s answers to `inputs`, computed now and replayed later, so that its model
    can be freed before the candidate runtime loads (export memory)."""
    answers = {faces.tobytes(): runner(faces) for faces in inputs}
    return lambda faces: answers[faces.tobytes()]


def torch_runner(model: torch.nn.Module) -> Runner:
    def run(faces: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(faces)).numpy()

    return run


def onnxruntime_runner(onnx_path: Path) -> Runner:
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.log_severity_level = 3  # FP16 nodes without a CPU kernel warn at every session start
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])

    def run(faces: np.ndarray) -> np.ndarray:
        return session.run([CLASSIFIER_OUTPUT], {CLASSIFIER_INPUT: faces})[0]

    return run
