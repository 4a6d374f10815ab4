"""The `weighted_average` step: per-face ensemble score and the image verdict.

Pure NumPy so the combiner's python-backend instance needs no torch and no GPU.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

LABEL_FAKE = "FAKE"
LABEL_REAL = "REAL"
LABEL_NO_FACE = "NO_FACE"
IMAGE_SCORES = ("max", "mean")


class CombinerConfigError(ValueError):
    """The weighted_average configuration is unusable."""


class CombinerInputError(ValueError):
    """The tensors given to weighted_average are inconsistent; the message says how."""


@dataclass(frozen=True)
class CombinerSettings:
    model_names: tuple[str, ...]
    weights: Mapping[str, float]
    threshold: float = 0.5
    image_score: str = "max"  # "max": the most-fake face decides; "mean": average over faces
    untrained_models: frozenset[str] = field(default_factory=frozenset)

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

    @property
    def enabled_models(self) -> tuple[str, ...]:
        return tuple(m for m in self.model_names if self.weights[m] > 0)

    def normalised_weights(self) -> np.ndarray:
        """Weights in model_names order, summing to 1 over the enabled models."""
        w = np.array([self.weights[m] for m in self.model_names], dtype=np.float64)
        return w / w.sum()

    @classmethod
    def from_parameters(cls, params: Mapping[str, str]) -> CombinerSettings:
        """Build from Triton config `parameters` (string values)."""
        model_names = _json_parameter(params, "model_names", list)
        weights = _json_parameter(params, "weights", dict)
        untrained = json.loads(params.get("untrained_models", "[]"))
        return cls(
            model_names=tuple(model_names),
            weights={str(k): float(v) for k, v in weights.items()},
            threshold=float(params.get("threshold", "0.5")),
            image_score=params.get("image_score", "max"),
            untrained_models=frozenset(untrained),
        )

    def to_parameters(self) -> dict[str, str]:
        return {
            "model_names": json.dumps(list(self.model_names)),
            "weights": json.dumps({m: self.weights[m] for m in self.model_names}),
            "threshold": repr(float(self.threshold)),
            "image_score": self.image_score,
            "untrained_models": json.dumps(sorted(self.untrained_models)),
        }


def _json_parameter(params: Mapping[str, str], key: str, kind: type):
    try:
        value = json.loads(params[key])
    except KeyError:
        raise CombinerConfigError(f"parameter {key!r} is missing") from None
    except json.JSONDecodeError as exc:
        raise CombinerConfigError(f"parameter {key!r} is not valid JSON: {exc}") from None
    if not isinstance(value, kind):
        raise CombinerConfigError(f"parameter {key!r} must be a JSON {kind.__name__}, got {value!r}")
    return value


@dataclass(frozen=True)
class Verdict:
    label: str
    fake_probability: float  # NaN when no face
    face_fake_probability: np.ndarray  # (N,) float32
    model_fake_probability: np.ndarray  # (N, M) float32, columns in model_names order


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
        label = LABEL_FAKE if image_score > settings.threshold else LABEL_REAL
    return Verdict(
        label=label,
        fake_probability=image_score,
        face_fake_probability=per_face.astype(np.float32),
        model_fake_probability=per_model.astype(np.float32).reshape(num_faces, len(logits)),
    )
