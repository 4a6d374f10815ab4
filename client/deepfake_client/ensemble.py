"""The server's `weighted_average` rule, restated client-side for calibration.

The client must not import server code, so what calibration needs of the
combiner is written here: its configuration parameters, and how it turns
per-model face probabilities into an image score (model_repository/README.md):
per face, the weighted mean of the models' fake probabilities (weights
renormalised over the enabled models); per image, the max (default) or mean over
faces; FAKE when that score is above the threshold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from deepfake_contract import COMBINER_NAME as COMBINER_MODEL
from deepfake_contract.parameters import ParameterError, decode
from deepfake_contract.settings import DEFAULT_IMAGE_SCORE, DEFAULT_THRESHOLD, IMAGE_SCORES

from .errors import ServerError

MIN_ENABLED_MODELS = 2  # the combiner refuses to load with fewer models of weight > 0


@dataclass(frozen=True)
class EnsembleSettings:
    """The weighted_average configuration: what decides a verdict."""

    weights: dict[str, float]
    threshold: float = DEFAULT_THRESHOLD
    image_score: str = DEFAULT_IMAGE_SCORE
    untrained_models: tuple[str, ...] = ()
    calibrated: bool = False  # the combiner maps scores to a calibrated probability (a `calibration` is served)
    # (low, high): scores in it come back UNCERTAIN (VERDICT); None when no band is served
    uncertain_band: tuple[float, float] | None = None

    @classmethod
    def from_parameters(cls, parameters: Mapping[str, str]) -> EnsembleSettings:
        """The combiner's config parameters, decoded as the server decodes them."""
        try:
            weights = decode(parameters, "weights", kind=dict)
            return cls(
                weights={str(name): float(w) for name, w in weights.items()},
                threshold=float(decode(parameters, "threshold", DEFAULT_THRESHOLD, kind=(int, float))),
                image_score=decode(parameters, "image_score", DEFAULT_IMAGE_SCORE, kind=str),
                untrained_models=tuple(decode(parameters, "untrained_models", [], kind=list)),
                calibrated=decode(parameters, "calibration", None, kind=(dict, type(None))) is not None,
                uncertain_band=_band(decode(parameters, "uncertain_band", None, kind=(dict, type(None)))),
            )
        except (ParameterError, ValueError, TypeError) as exc:
            raise ServerError(f"unexpected {COMBINER_MODEL} parameters {dict(parameters)}: {exc!r}") from exc

    def to_band_dict(self) -> dict[str, float] | None:
        return None if self.uncertain_band is None else {"low": self.uncertain_band[0], "high": self.uncertain_band[1]}

    def weight_vector(self, model_names: Sequence[str]) -> np.ndarray:
        return np.array([self.weights[name] for name in model_names], dtype=np.float64)


def score_frames(frames: Sequence[np.ndarray], weights: np.ndarray, image_score: str = "max") -> np.ndarray:
    """Image scores of frames under K candidate weight vectors at once.

    frames: one (faces, models) array of fake probabilities per frame, each with
    at least one face. weights: (K, models), rows with a positive sum.
    Returns (frames, K).
    """
    if image_score not in IMAGE_SCORES:
        raise ValueError(f"image_score must be one of {IMAGE_SCORES}, got {image_score!r}")
    if not frames or any(len(f) == 0 for f in frames):
        raise ValueError("every frame must have at least one face")
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    normalised = weights / weights.sum(axis=1, keepdims=True)
    faces = np.concatenate([np.asarray(f, dtype=np.float64) for f in frames], axis=0)
    face_scores = faces @ normalised.T  # (all faces, K)
    starts = np.cumsum([0] + [len(f) for f in frames[:-1]])
    if image_score == "max":
        return np.maximum.reduceat(face_scores, starts, axis=0)
    counts = np.array([len(f) for f in frames], dtype=np.float64)[:, None]
    return np.add.reduceat(face_scores, starts, axis=0) / counts


def _band(band: Mapping[str, object] | None) -> tuple[float, float] | None:
    return None if band is None else (float(band["low"]), float(band["high"]))
