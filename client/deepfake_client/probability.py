"""Calibrated probabilities: fit a monotone map of a score, apply it, measure calibration (NumPy only).

Two maps, both of the forms the settings file stores (deepfake_contract.settings):

- Platt (the default): p = sigmoid(a * logit(score) + b), fitted by maximum likelihood
  with Platt's smoothed targets ((N+ + 1) / (N+ + 2) for fakes, 1 / (N- + 2) for reals), so
  a perfectly separated set still gives finite a and b. Two parameters: stable on the small
  labelled sets users have (tens to hundreds of videos), strictly increasing, so the ranking
  (AUC) is exactly unchanged.
- Isotonic: the non-decreasing step function of least squares (pool adjacent violators),
  stored as points and served piecewise linear between them. It can fit any monotone
  distortion but needs much more data (a few thousand samples), and it ties scores within a
  step, which can lower the AUC.

The map restates deepfake_serving.calibration (the server's); a test checks they agree.

Expected calibration error (ECE), the definition used everywhere in this package:
B equal-width bins on [0, 1] (default 10); bin b holds the probabilities p with
b/B < p <= (b+1)/B, the first bin also holding 0 (scikit-learn's calibration_curve,
strategy "uniform", bins the same way); ECE = sum over non-empty bins of
(n_b / N) * |mean label in b - mean p in b|.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InvalidInputError

METHODS = ("platt", "isotonic")
DEFAULT_METHOD = "platt"
ECE_BINS = 10
EPS = 1e-9  # as the server: scores are clipped to [EPS, 1 - EPS] before the logit


def logit(scores: Any) -> np.ndarray:
    p = np.clip(np.asarray(scores, dtype=np.float64), EPS, 1.0 - EPS)
    return np.log(p) - np.log1p(-p)


def sigmoid(z: Any) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))


def apply(calibration: Mapping[str, Any] | None, scores: Any) -> np.ndarray:
    """The calibrated probability of each score (the scores themselves when `calibration` is None)."""
    scores = np.asarray(scores, dtype=np.float64)
    if calibration is None:
        return scores
    if calibration["method"] == "platt":
        return sigmoid(calibration["a"] * logit(scores) + calibration["b"])
    return np.interp(scores, calibration["x"], calibration["y"])


class CalibrationFitError(InvalidInputError):
    """No increasing map fits: the score ranks fakes below reals."""


def fit_platt(labels: Any, scores: Any) -> dict[str, Any]:
    """Platt's a, b by Newton's method on the smoothed-target log loss."""
    y = np.asarray(labels, dtype=np.float64)
    z = logit(scores)
    positives, negatives = y.sum(), y.size - y.sum()
    targets = np.where(y == 1, (positives + 1) / (positives + 2), 1 / (negatives + 2))
    features = np.stack([z, np.ones_like(z)], axis=1)
    theta = np.array([0.0, np.log((positives + 1) / (negatives + 1))])

    def loss(t: np.ndarray) -> float:
        m = features @ t
        return float(np.sum(np.logaddexp(0, m) - targets * m))

    for _ in range(100):
        p = sigmoid(features @ theta)
        gradient = features.T @ (p - targets)
        hessian = (features * (p * (1 - p))[:, None]).T @ features + 1e-12 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        current, scale = loss(theta), 1.0
        while scale > 1e-10 and loss(theta - scale * step) > current:
            scale /= 2  # backtracking keeps every step a descent
        theta = theta - scale * step
        if np.max(np.abs(scale * step)) < 1e-10:
            break
    a, b = float(theta[0]), float(theta[1])
    if not a > 0:
        raise CalibrationFitError(
            f"no increasing calibration fits (Platt slope {a:.3g} <= 0): the score does not rank fakes above reals"
        )
    return {"method": "platt", "a": a, "b": b}


def fit_isotonic(labels: Any, scores: Any) -> dict[str, Any]:
    """Pool adjacent violators over the distinct scores; points at each step's ends."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    distinct, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    if distinct.size < 2:
        raise CalibrationFitError("isotonic calibration needs at least two distinct scores")
    sums = np.bincount(inverse, weights=y)
    blocks: list[list[float]] = []  # [label sum, count, first index, last index]
    for i in range(distinct.size):
        blocks.append([sums[i], counts[i], i, i])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
            last = blocks.pop()
            blocks[-1] = [blocks[-1][0] + last[0], blocks[-1][1] + last[1], blocks[-1][2], last[3]]
    x: list[float] = []
    values: list[float] = []
    for total, count, first, last in blocks:
        for index in sorted({int(first), int(last)}):
            x.append(float(distinct[index]))
            values.append(float(total / count))
    if len(blocks) < 2:
        raise CalibrationFitError("no increasing calibration fits: one constant step (the score does not rank fakes above reals)")
    return {"method": "isotonic", "x": x, "y": values}


def fit(method: str, labels: Any, scores: Any) -> dict[str, Any]:
    if method not in METHODS:
        raise InvalidInputError(f"calibration method must be one of {METHODS}, got {method!r}")
    return fit_platt(labels, scores) if method == "platt" else fit_isotonic(labels, scores)


@dataclass(frozen=True)
class Reliability:
    """Per non-empty bin: count, mean predicted probability, fraction of fakes."""

    counts: np.ndarray
    mean_predicted: np.ndarray
    fraction_fake: np.ndarray

    @property
    def ece(self) -> float:
        total = self.counts.sum()
        return float(np.sum(self.counts / total * np.abs(self.fraction_fake - self.mean_predicted)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "counts": self.counts.astype(int).tolist(),
            "mean_predicted": self.mean_predicted.tolist(),
            "fraction_fake": self.fraction_fake.tolist(),
            "ece": self.ece,
        }


def reliability(labels: Any, probabilities: Any, bins: int = ECE_BINS) -> Reliability:
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if y.size == 0 or y.size != p.size:
        raise ValueError(f"{y.size} labels for {p.size} probabilities")
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.searchsorted(edges[1:-1], p)  # (lo, hi], the first bin also holds 0
    counts = np.bincount(index, minlength=bins).astype(np.float64)
    predicted = np.bincount(index, weights=p, minlength=bins)
    fakes = np.bincount(index, weights=y, minlength=bins)
    used = counts > 0
    return Reliability(counts[used], predicted[used] / counts[used], fakes[used] / counts[used])


def expected_calibration_error(labels: Any, probabilities: Any, bins: int = ECE_BINS) -> float:
    return reliability(labels, probabilities, bins).ece
