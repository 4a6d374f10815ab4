"""The `weighted_average` step: per-face ensemble score and the image verdict.

Pure NumPy so the combiner's python-backend instance needs no torch and no GPU.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deepfake_contract.parameters import ParameterError, decode, encode
from deepfake_contract.settings import (
    DEFAULT_IMAGE_SCORE,
    DEFAULT_THRESHOLD,
    IMAGE_SCORES,
    EnsembleSettings,
    SettingsError,
    check_band,
    check_calibration,
)
from deepfake_serving.calibration import calibrated_probability

LABEL_FAKE = "FAKE"
LABEL_REAL = "REAL"
LABEL_NO_FACE = "NO_FACE"
# VERDICT/FACE_VERDICT only (LABEL stays FAKE/REAL/NO_FACE): the score lies in the uncertain band.
LABEL_UNCERTAIN = "UNCERTAIN"
# The most faces one image may carry: the detector's max_faces is at most the classifiers'
# max batch size, 64 in every flavour (export.repository checks it), so no served request has
# more; a direct caller claiming more is refused before any row is read.
MAX_FACES = 64


class CombinerConfigError(ValueError):
    """The weighted_average configuration is unusable."""


class CombinerInputError(ValueError):
    """The tensors given to weighted_average are inconsistent; the message says how."""


@dataclass(frozen=True)
class CombinerSettings:
    model_names: tuple[str, ...]
    weights: Mapping[str, float]
    threshold: float = DEFAULT_THRESHOLD
    image_score: str = DEFAULT_IMAGE_SCORE  # see deepfake_contract.settings.IMAGE_SCORES
    untrained_models: frozenset[str] = field(default_factory=frozenset)
    # None, or a monotone map of the score to a calibrated probability (deepfake_contract.settings)
    calibration: Mapping[str, Any] | None = None
    # None (off), or {"low", "high", "source"} around the threshold (deepfake_contract.settings)
    uncertain_band: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        unknown = set(self.weights) - set(self.model_names)
        if unknown:
            raise CombinerConfigError(f"weights given for unknown models: {sorted(unknown)}")
        missing = set(self.model_names) - set(self.weights)
        if missing:
            raise CombinerConfigError(f"no weight given for models: {sorted(missing)}")
        bad = {m: w for m, w in self.weights.items() if not (math.isfinite(w) and w >= 0)}
        if bad:
            raise CombinerConfigError(f"weights must be finite and >= 0, got {bad}")
        if len(self.enabled_models) < 2:
            raise CombinerConfigError(
                "at least 2 models must have a weight > 0 (an ensemble of one is not an ensemble); "
                f"got weights {dict(self.weights)}"
            )
        if not 0.0 <= self.threshold <= 1.0:
            raise CombinerConfigError(f"threshold must be in [0, 1], got {self.threshold}")
        if self.image_score not in IMAGE_SCORES:
            raise CombinerConfigError(
                f"image_score must be one of {IMAGE_SCORES}, got {self.image_score!r}"
            )
        if self.calibration is not None:
            try:
                check_calibration(self.calibration)
            except SettingsError as exc:
                raise CombinerConfigError(str(exc)) from None
        if self.uncertain_band is not None:
            try:
                check_band(self.uncertain_band, self.threshold)
            except SettingsError as exc:
                raise CombinerConfigError(str(exc)) from None

    @property
    def enabled_models(self) -> tuple[str, ...]:
        return tuple(m for m in self.model_names if self.weights[m] > 0)

    def normalised_weights(self) -> np.ndarray:
        """Weights in model_names order, summing to 1 over the enabled models."""
        w = np.array([self.weights[m] for m in self.model_names], dtype=np.float64)
        return w / w.sum()

    @classmethod
    def from_settings(cls, settings: EnsembleSettings, model_names: Sequence[str],
                      untrained_models: frozenset[str] = frozenset()) -> CombinerSettings:
        """The combiner of `model_names` configured by a settings file (deepfake_contract.settings)."""
        return cls(model_names=tuple(model_names), weights=dict(settings.weights), threshold=settings.threshold,
                   image_score=settings.image_score, untrained_models=frozenset(untrained_models),
                   calibration=settings.calibration, uncertain_band=settings.uncertain_band)

    @classmethod
    def from_parameters(cls, params: Mapping[str, str]) -> CombinerSettings:
        """Build from Triton config `parameters` (deepfake_contract.parameters encoding)."""
        try:
            weights = decode(params, "weights", kind=dict)
            return cls(
                model_names=tuple(decode(params, "model_names", kind=list)),
                weights={str(k): float(v) for k, v in weights.items()},
                threshold=float(decode(params, "threshold", DEFAULT_THRESHOLD, kind=(int, float))),
                image_score=decode(params, "image_score", DEFAULT_IMAGE_SCORE, kind=str),
                untrained_models=frozenset(decode(params, "untrained_models", [], kind=list)),
                calibration=decode(params, "calibration", None, kind=(dict, type(None))),
                uncertain_band=decode(params, "uncertain_band", None, kind=(dict, type(None))),
            )
        except ParameterError as exc:
            raise CombinerConfigError(str(exc)) from None

    def to_parameters(self) -> dict[str, str]:
        return {
            "model_names": encode(self.model_names),
            "weights": encode({m: self.weights[m] for m in self.model_names}),
            "threshold": encode(float(self.threshold)),
            "image_score": encode(self.image_score),
            "untrained_models": encode(self.untrained_models),
            "calibration": encode(None if self.calibration is None else dict(self.calibration)),
            "uncertain_band": encode(None if self.uncertain_band is None else dict(self.uncertain_band)),
        }


@dataclass(frozen=True)
class Verdict:
    label: str
    fake_probability: float  # NaN when no face
    face_fake_probability: np.ndarray  # (N,) float32
    model_fake_probability: np.ndarray  # (N, M) float32, columns in model_names order
    verdict: str = ""  # LABEL, or UNCERTAIN where the image score lies in the uncertain band
    face_verdicts: tuple[str, ...] = ()  # per face: FAKE, REAL or UNCERTAIN


def in_band(score: float, settings: CombinerSettings) -> bool:
    """The score lies in the served uncertain band (both ends included); never when none is
    served. The band sits on the scale of the threshold (the calibrated probability)."""
    band = settings.uncertain_band
    return band is not None and band["low"] <= score <= band["high"]


def decide(score: float, settings: CombinerSettings) -> str:
    """UNCERTAIN inside the band, else FAKE above the threshold, else REAL."""
    if in_band(score, settings):
        return LABEL_UNCERTAIN
    return LABEL_FAKE if score > settings.threshold else LABEL_REAL


def fake_probability(logits: np.ndarray) -> np.ndarray:
    """Softmax probability of class 1 (fake) for logits (N, 2), computed stably."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[1] != 2:
        raise ValueError(f"expected logits of shape (N, 2), got {logits.shape}")
    # softmax([a, b])[1] == sigmoid(b - a)
    diff = logits[:, 1] - logits[:, 0]
    return 0.5 * (1.0 + np.tanh(0.5 * diff))


def face_count(num_faces: np.ndarray) -> int:
    """NUM_FACES as sent by face_detector: one non-negative integer."""
    num_faces = np.asarray(num_faces)
    if num_faces.shape != (1,) or num_faces.dtype.kind not in "iu":
        raise CombinerInputError(
            f"NUM_FACES must be one integer, got {num_faces.dtype} of shape {list(num_faces.shape)}")
    count = int(num_faces[0])
    if count < 0:
        raise CombinerInputError(f"NUM_FACES must be >= 0, got {count}")
    if count > MAX_FACES:
        raise CombinerInputError(f"NUM_FACES must be at most {MAX_FACES} (the detector's max_faces bound), got {count}")
    return count


def check_logits(num_faces: int, logits: Sequence[np.ndarray], model_names: Sequence[str]) -> None:
    """Every model gave the same rows, (N, 2), for N faces (one placeholder row, or none, when
    there is no face); the rows that are scored are finite."""
    if num_faces < 0:
        raise CombinerInputError(f"NUM_FACES must be >= 0, got {num_faces}")
    if len(logits) != len(model_names):
        raise CombinerInputError(f"expected logits of {len(model_names)} models, got {len(logits)}")
    for name, rows in zip(model_names, logits):
        if rows.ndim != 2 or rows.shape[1] != 2:
            raise CombinerInputError(f"{name}: logits must have shape (faces, 2), got {list(rows.shape)}")
        if not num_faces <= rows.shape[0] <= max(num_faces, 1):
            raise CombinerInputError(f"{name}: {rows.shape[0]} logit rows for NUM_FACES={num_faces}")
        if not np.isfinite(rows[:num_faces]).all():
            raise CombinerInputError(f"{name}: logits must be finite numbers (got NaN or infinity)")
    counts = {rows.shape[0] for rows in logits}
    if len(counts) > 1:
        shapes = {name: rows.shape[0] for name, rows in zip(model_names, logits)}
        raise CombinerInputError(f"the models gave different numbers of rows: {shapes}")


def combine(num_faces: int, logits: Sequence[np.ndarray], settings: CombinerSettings) -> Verdict:
    """Score the first `num_faces` rows of each model's logits; other rows are placeholders."""
    check_logits(num_faces, logits, settings.model_names)
    per_model = np.stack([fake_probability(rows[:num_faces]) for rows in logits], axis=1)
    per_face = per_model @ settings.normalised_weights()
    if num_faces == 0:
        label, image_score = LABEL_NO_FACE, math.nan
    else:
        image_score = float(per_face.max() if settings.image_score == "max" else per_face.mean())
        if settings.calibration is not None:  # fitted to these scores; the threshold applies to its output
            per_face = calibrated_probability(settings.calibration, per_face)
            image_score = float(calibrated_probability(settings.calibration, np.array(image_score)))
        label = LABEL_FAKE if image_score > settings.threshold else LABEL_REAL
    # Decided on the float32 values that are sent, so a client re-checking a score against the
    # band reads the same verdict.
    per_face = per_face.astype(np.float32)
    image_score32 = float(np.float32(image_score))
    return Verdict(
        label=label,
        fake_probability=image_score,
        face_fake_probability=per_face,
        model_fake_probability=per_model.astype(np.float32).reshape(num_faces, len(logits)),
        verdict=LABEL_UNCERTAIN if num_faces and in_band(image_score32, settings) else label,
        face_verdicts=tuple(decide(float(p), settings) for p in per_face),
    )
