"""Search the ensemble weights and threshold that best separate a labelled set.

Every response carries each model's probability for each face, so the search
re-scores the set under candidate weights offline (ensemble.py restates the
server's rule) instead of re-running inference. Weights are searched on a grid
over the simplex (each a multiple of `step`, summing to 1, at least two models
enabled as the server requires); the threshold is then chosen for those weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .aggregation import Aggregation, aggregate_columns
from .ensemble import MIN_ENABLED_MODELS, EnsembleSettings, score_frames
from .errors import InvalidInputError
from .metrics import BinaryMetrics, binary_metrics, counts_at, roc_auc, threshold_candidates

OBJECTIVES = ("auc", "f1")
_TIE = 1e-12


@dataclass(frozen=True)
class Sample:
    """One labelled unit (an image, a video frame, or a whole video) and its faces' model scores."""

    name: str
    label: int  # 1 fake, 0 real
    frames: tuple[np.ndarray, ...]  # per frame with a face: (faces, models) fake probabilities


@dataclass(frozen=True)
class Calibration:
    objective: str
    model_names: tuple[str, ...]
    weights: dict[str, float]
    threshold: float
    score: float  # the objective with the new weights (AUC, or F1 at the new threshold)
    baseline_score: float  # the same with the current weights and threshold
    metrics: BinaryMetrics  # with the new weights and threshold
    baseline_metrics: BinaryMetrics
    candidates: int  # weight vectors tried

    def to_dict(self) -> dict[str, Any]:
        return {
            "objective": self.objective,
            "weights": self.weights,
            "threshold": self.threshold,
            "score": self.score,
            "baseline_score": self.baseline_score,
            "metrics": self.metrics.to_dict(),
            "baseline_metrics": self.baseline_metrics.to_dict(),
            "candidates": self.candidates,
        }


def weight_grid(num_models: int, step: float = 0.1, min_enabled: int = MIN_ENABLED_MODELS) -> np.ndarray:
    """All weight vectors of multiples of `step` summing to 1 with >= min_enabled non-zero; (K, models)."""
    units = round(1.0 / step)
    if units < 1 or abs(units * step - 1.0) > 1e-9:
        raise InvalidInputError(f"step must divide 1 evenly (0.1, 0.05, 0.25...), got {step}")
    rows: list[tuple[int, ...]] = []

    def fill(prefix: tuple[int, ...], remaining: int) -> None:
        if len(prefix) == num_models - 1:
            rows.append(prefix + (remaining,))
            return
        for units_here in range(remaining + 1):
            fill(prefix + (units_here,), remaining - units_here)

    fill((), units)
    grid = np.array(rows, dtype=np.float64) / units
    return grid[(grid > 0).sum(axis=1) >= min_enabled]


def sample_scores(
    samples: Sequence[Sample],
    weights: np.ndarray,
    image_score: str,
    aggregation: Aggregation | str = Aggregation.MEAN,
    top_k: int = 5,
) -> np.ndarray:
    """(samples, K) scores under K weight vectors: frames scored as the server does, then aggregated."""
    frames = [frame for sample in samples for frame in sample.frames]
    frame_scores = score_frames(frames, weights, image_score)
    bounds = np.cumsum([0] + [len(sample.frames) for sample in samples])
    return np.stack(
        [
            aggregate_columns(frame_scores[start:end], aggregation, top_k=top_k)
            for start, end in zip(bounds[:-1], bounds[1:], strict=True)
        ]
    )


def best_threshold(labels: np.ndarray, scores: np.ndarray, objective: str, prior: float) -> tuple[float, float]:
    """(threshold, value) maximising F1 (objective "f1") or Youden's J = TPR - FPR ("auc").

    Among equally good thresholds, the one closest to `prior` wins.
    """
    thresholds = threshold_candidates(scores)
    tp, fp = counts_at(labels, scores, thresholds)
    positives = int(np.sum(labels))
    negatives = labels.size - positives
    if objective == "f1":
        fn = positives - tp
        values = np.divide(2 * tp, 2 * tp + fp + fn, out=np.zeros(thresholds.shape), where=(2 * tp + fp + fn) > 0)
    else:
        values = tp / positives - fp / negatives
    best = values >= values.max() - _TIE
    choice = np.flatnonzero(best)[np.argmin(np.abs(thresholds[best] - prior))]
    return float(thresholds[choice]), float(values[choice])


def _objective_per_column(labels: np.ndarray, scores: np.ndarray, objective: str) -> np.ndarray:
    if objective == "auc":
        return np.array([roc_auc(labels, column) for column in scores.T])
    return np.array([best_threshold(labels, column, "f1", 0.5)[1] for column in scores.T])


def calibrate(
    samples: Sequence[Sample],
    model_names: Sequence[str],
    current: EnsembleSettings,
    *,
    objective: str = "auc",
    step: float = 0.1,
    aggregation: Aggregation | str = Aggregation.MEAN,
    top_k: int = 5,
) -> Calibration:
    """The weights (then threshold) that maximise `objective` on `samples`.

    Ties go to the weights closest to the current ones: the data must earn every change.
    """
    if objective not in OBJECTIVES:
        raise InvalidInputError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    labels = np.array([sample.label for sample in samples])
    if labels.size == 0 or labels.min() == labels.max():
        raise InvalidInputError("calibration needs both real and fake samples with a face")
    missing = set(model_names) - set(current.weights)
    if missing:
        raise InvalidInputError(f"the current configuration has no weight for {sorted(missing)}")

    current_weights = current.weight_vector(model_names)
    current_weights = current_weights / current_weights.sum()
    grid = weight_grid(len(model_names), step)
    scores = sample_scores(samples, grid, current.image_score, aggregation, top_k)
    values = _objective_per_column(labels, scores, objective)
    best = values >= values.max() - _TIE
    distance = np.abs(grid[best] - current_weights).sum(axis=1)
    choice = np.flatnonzero(best)[np.argmin(distance)]

    threshold, threshold_value = best_threshold(labels, scores[:, choice], objective, current.threshold)
    baseline = sample_scores(samples, current_weights, current.image_score, aggregation, top_k)[:, 0]
    baseline_metrics = binary_metrics(labels, baseline, current.threshold)
    new_metrics = binary_metrics(labels, scores[:, choice], threshold)
    return Calibration(
        objective=objective,
        model_names=tuple(model_names),
        weights={name: float(w) for name, w in zip(model_names, grid[choice], strict=True)},
        threshold=threshold,
        score=float(values[choice]) if objective == "auc" else threshold_value,
        baseline_score=baseline_metrics.roc_auc if objective == "auc" else baseline_metrics.f1,
        metrics=new_metrics,
        baseline_metrics=baseline_metrics,
        candidates=len(grid),
    )
