"""Grouped k-fold splits and grouped bootstrap intervals (NumPy only).

A group is the unit that must never be split: the frames of one video. Folds and
bootstrap resamples move whole groups, stratified by class, so that no video has
frames on both sides of a split and every resample holds both classes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InvalidInputError

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap 95% percentile interval."""

    estimate: float
    low: float
    high: float

    def excludes(self, value: float) -> bool:
        return not self.low <= value <= self.high

    def to_dict(self) -> dict[str, float]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high}

    def __str__(self) -> str:
        return f"{self.estimate:.3f} [{self.low:.3f}, {self.high:.3f}]"


@dataclass(frozen=True)
class Groups:
    """Samples indexed by group: each group's members and class (a group's label is its samples')."""

    members: tuple[np.ndarray, ...]
    label: np.ndarray  # per group

    @classmethod
    def of(cls, labels: Sequence[int], groups: Sequence[Any]) -> Groups:
        labels = np.asarray(labels, dtype=int)
        _, first, inverse = np.unique(np.asarray(groups, dtype=object).astype(str), return_index=True,
                                      return_inverse=True)
        members = tuple(np.flatnonzero(inverse == g) for g in range(first.size))
        mixed = [g for g, m in enumerate(members) if np.unique(labels[m]).size > 1]
        if mixed:
            raise InvalidInputError(f"{len(mixed)} groups (videos) hold both real and fake samples")
        return cls(members, np.array([labels[m[0]] for m in members]))

    def count(self, label: int) -> int:
        return int(np.sum(self.label == label))


def grouped_folds(labels: Sequence[int], groups: Sequence[Any], k: int, seed: int = 0) -> np.ndarray:
    """The fold (0..k'-1) of each sample, k' = min(k, groups in the smaller class).

    Within each class, groups (largest first, shuffled among equals) go to the fold that
    holds the fewest samples of that class so far, so folds are balanced in samples and classes.
    """
    index = Groups.of(labels, groups)
    k = min(k, index.count(0), index.count(1))
    if k < 2:
        raise InvalidInputError("cross-validation needs at least 2 real and 2 fake groups (videos or images)")
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(labels), dtype=int)
    for label in (0, 1):
        chosen = np.flatnonzero(index.label == label)
        chosen = chosen[rng.permutation(chosen.size)]
        chosen = chosen[np.argsort([-index.members[g].size for g in chosen], kind="stable")]
        filled = np.zeros(k)
        for g in chosen:
            fold = int(np.argmin(filled))
            fold_of[index.members[g]] = fold
            filled[fold] += index.members[g].size
    return fold_of


def bootstrap_resamples(labels: Sequence[int], groups: Sequence[Any], count: int, seed: int = 0) -> list[np.ndarray]:
    """`count` resamples (sample indices), each drawing as many groups of each class as there are, with replacement."""
    index = Groups.of(labels, groups)
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(index.label == label) for label in (0, 1)]
    resamples = []
    for _ in range(count):
        drawn = np.concatenate([pool[rng.integers(0, pool.size, pool.size)] for pool in by_class])
        resamples.append(np.concatenate([index.members[g] for g in drawn]))
    return resamples


def interval(estimate: float, replicates: Sequence[float]) -> Interval:
    values = np.asarray(replicates, dtype=np.float64)
    values = values[np.isfinite(values)]
    tail = (1.0 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail]) if values.size else (np.nan, np.nan)
    return Interval(float(estimate), float(low), float(high))


def bootstrap(statistic: Callable[[np.ndarray], float], resamples: Sequence[np.ndarray], size: int) -> Interval:
    """The statistic on all `size` samples, with its interval over the resamples."""
    return interval(statistic(np.arange(size)), [statistic(r) for r in resamples])
