"""Abstention: the uncertain band's coverage and error rate, and where a band comes from.

A band [low, high] around the threshold answers UNCERTAIN for scores inside it (both ends
included), as the combiner does (model_repository/README.md). Coverage is the share of samples
still decided; the error rate is over those. The risk-coverage curve orders samples from the
farthest from the threshold to the nearest: each point is the coverage and error rate of the
band that abstains on all the nearer ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InvalidInputError


@dataclass(frozen=True)
class Abstention:
    threshold: float
    band: tuple[float, float] | None  # None: no band (nothing abstained)
    samples: int
    error_rate: float  # every sample decided (no abstention); NaN without samples
    covered: int  # samples outside the band
    covered_error_rate: float  # over the covered samples; NaN when none is covered
    curve_coverage: np.ndarray  # risk-coverage curve, coverage ascending to 1
    curve_error_rate: np.ndarray

    @property
    def coverage(self) -> float:
        return self.covered / self.samples if self.samples else float("nan")

    def to_dict(self) -> dict[str, Any]:
        def number(value: float) -> float | None:
            return None if np.isnan(value) else float(value)

        return {
            "threshold": self.threshold,
            "uncertain_band": None if self.band is None else {"low": self.band[0], "high": self.band[1]},
            "without_abstention": {"coverage": 1.0 if self.samples else None, "error_rate": number(self.error_rate)},
            "with_abstention": None if self.band is None else {
                "coverage": number(self.coverage), "error_rate": number(self.covered_error_rate),
                "abstained": self.samples - self.covered},
            "risk_coverage": {"coverage": self.curve_coverage.tolist(), "error_rate": self.curve_error_rate.tolist()},
        }


def inside(scores: np.ndarray, band: tuple[float, float]) -> np.ndarray:
    return (scores >= band[0]) & (scores <= band[1])


def risk_coverage(labels: np.ndarray, scores: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(coverage, error rate) for k = 1..n samples kept, the farthest from the threshold first."""
    labels, scores = np.asarray(labels, dtype=int), np.asarray(scores, dtype=np.float64)
    if labels.size == 0:
        return np.zeros(0), np.zeros(0)
    wrong = (scores > threshold).astype(int) != labels
    order = np.argsort(-np.abs(scores - threshold), kind="stable")
    kept = np.arange(1, labels.size + 1)
    return kept / labels.size, np.cumsum(wrong[order]) / kept


def measure(labels: np.ndarray, scores: np.ndarray, threshold: float,
            band: tuple[float, float] | None) -> Abstention:
    labels, scores = np.asarray(labels, dtype=int), np.asarray(scores, dtype=np.float64)
    wrong = (scores > threshold).astype(int) != labels
    keep = np.ones(labels.size, bool) if band is None else ~inside(scores, band)
    coverage, error = risk_coverage(labels, scores, threshold)
    return Abstention(
        threshold=threshold,
        band=band,
        samples=int(labels.size),
        error_rate=float(wrong.mean()) if labels.size else float("nan"),
        covered=int(keep.sum()),
        covered_error_rate=float(wrong[keep].mean()) if keep.any() else float("nan"),
        curve_coverage=coverage,
        curve_error_rate=error,
    )


def band_from_interval(threshold: float, low: float, high: float, source: str) -> dict[str, Any] | None:
    """The band of the threshold's interval (widened to hold the threshold); None when it is a point."""
    low, high = min(low, threshold), max(high, threshold)
    return None if high <= low else {"low": float(low), "high": float(high), "source": source}


def band_for_coverage(scores: np.ndarray, threshold: float, coverage: float, source: str) -> dict[str, Any] | None:
    """The band centred on the threshold that leaves `coverage` of these scores decided (the
    nearest 1 - coverage abstain); None when that band is empty."""
    if not 0.0 < coverage <= 1.0:
        raise InvalidInputError(f"coverage must be in (0, 1], got {coverage}")
    distance = np.sort(np.abs(np.asarray(scores, dtype=np.float64) - threshold))
    abstain = int(np.floor((1.0 - coverage) * distance.size))
    if abstain == 0:
        return None
    # Halfway between the last abstained and the first decided score, so neither sits on an end.
    width = distance[abstain - 1] if abstain == distance.size else (distance[abstain - 1] + distance[abstain]) / 2
    low, high = max(0.0, threshold - width), min(1.0, threshold + width)
    return None if high <= low else {"low": float(low), "high": float(high), "source": source}

