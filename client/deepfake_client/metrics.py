"""Binary classification metrics in NumPy (label 1 = fake, the positive class).

Predictions follow the server's rule: fake when the score is above the threshold.
Undefined ratios (precision with nothing predicted fake, ...) are 0, as in
scikit-learn; ROC AUC and the equal error rate are NaN unless both classes are
present. ECE is the expected calibration error of the scores read as probabilities
(probability.py defines its binning).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .probability import expected_calibration_error
from .results import json_number


@dataclass(frozen=True)
class BinaryMetrics:
    count: int
    positives: int  # fake samples
    negatives: int  # real samples
    threshold: float
    tp: int
    fp: int
    tn: int
    fn: int
    accuracy: float
    precision: float
    recall: float
    f1: float
    roc_auc: float
    eer: float  # equal error rate: where the false positive and false negative rates meet
    ece: float  # expected calibration error of the scores

    def to_dict(self) -> dict[str, Any]:
        return {k: (json_number(v) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _as_arrays(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels).reshape(-1)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if y.shape != s.shape:
        raise ValueError(f"{y.size} labels for {s.size} scores")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (real) or 1 (fake)")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    return y.astype(bool), s


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def binary_metrics(labels: Any, scores: Any, threshold: float) -> BinaryMetrics:
    y, s = _as_arrays(labels, scores)
    predicted = s > threshold
    tp = int(np.sum(predicted & y))
    fp = int(np.sum(predicted & ~y))
    tn = int(np.sum(~predicted & ~y))
    fn = int(np.sum(~predicted & y))
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    return BinaryMetrics(
        count=int(y.size),
        positives=int(y.sum()),
        negatives=int((~y).sum()),
        threshold=float(threshold),
        tp=tp,
        fp=fp,
        tn=tn,
        fn=fn,
        accuracy=_ratio(tp + tn, y.size),
        precision=precision,
        recall=recall,
        f1=_ratio(2 * tp, 2 * tp + fp + fn),
        roc_auc=roc_auc(y, s),
        eer=equal_error_rate(y, s),
        ece=expected_calibration_error(y, s) if y.size else math.nan,
    )


def midranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1; tied values share the mean of their ranks."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], values.size]  # exclusive
    group_rank = (starts + 1 + ends) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat(group_rank, ends - starts)
    return ranks


def roc_auc(labels: Any, scores: Any) -> float:
    """Area under the ROC curve: the probability that a random fake outscores a random real
    (ties count one half), computed from ranks (Mann-Whitney U)."""
    y, s = _as_arrays(labels, scores)
    positives, negatives = int(y.sum()), int((~y).sum())
    if positives == 0 or negatives == 0:
        return math.nan
    rank_sum = midranks(s)[y].sum()
    return float((rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives))


def within_fold_auc(labels: Any, scores: Any, fold_of: Any) -> float:
    """The AUC inside each fold, averaged over the folds weighted by their sizes. Folds
    (of a bootstrap resample) holding one class only have no AUC and are left out."""
    labels, scores, fold_of = np.asarray(labels), np.asarray(scores), np.asarray(fold_of)
    aucs, sizes = [], []
    for fold in np.unique(fold_of):
        inside = fold_of == fold
        auc = roc_auc(labels[inside], scores[inside])
        if not math.isnan(auc):
            aucs.append(auc)
            sizes.append(int(inside.sum()))
    return float(np.average(aucs, weights=sizes)) if aucs else math.nan


def roc_curve(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false positive rates, true positive rates, thresholds), from (0, 0) to (1, 1).

    Point i counts scores >= thresholds[i] as fake; thresholds[0] is +inf.
    """
    y, s = _as_arrays(labels, scores)
    positives, negatives = int(y.sum()), int((~y).sum())
    if positives == 0 or negatives == 0:
        raise ValueError("a ROC curve needs both real and fake samples")
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last_of_value = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    tps = np.cumsum(y_sorted)[last_of_value]
    fps = np.cumsum(~y_sorted)[last_of_value]
    thresholds = np.r_[np.inf, s_sorted[last_of_value]]
    return np.r_[0.0, fps / negatives], np.r_[0.0, tps / positives], thresholds


def equal_error_rate(labels: Any, scores: Any) -> float:
    """The error rate where the ROC curve crosses FPR = FNR (1 - TPR), linear between its points."""
    y, s = _as_arrays(labels, scores)
    if y.all() or not y.any():
        return math.nan
    fpr, tpr, _ = roc_curve(y, s)
    gap = fpr - (1.0 - tpr)  # rises from -1 at (0, 0) to 1 at (1, 1)
    i = int(np.argmax(gap >= 0))
    if gap[i] == 0:
        return float(fpr[i])
    share = -gap[i - 1] / (gap[i] - gap[i - 1])
    return float(fpr[i - 1] + share * (fpr[i] - fpr[i - 1]))


def threshold_candidates(scores: np.ndarray) -> np.ndarray:
    """Thresholds that separate every pair of neighbouring distinct scores, within [0, 1]."""
    distinct = np.unique(scores)
    candidates = (distinct[1:] + distinct[:-1]) / 2.0
    below_all = distinct[0] / 2.0 if distinct[0] > 0 else None  # everything fake
    above_all = (distinct[-1] + 1.0) / 2.0 if distinct[-1] < 1 else None  # nothing fake
    extras = [t for t in (below_all, above_all) if t is not None]
    return np.sort(np.r_[candidates, extras])


def counts_at(labels: Any, scores: Any, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(true positives, false positives) when scores above each threshold count as fake."""
    y, s = _as_arrays(labels, scores)
    fake_scores = np.sort(s[y])
    real_scores = np.sort(s[~y])
    tp = fake_scores.size - np.searchsorted(fake_scores, thresholds, side="right")
    fp = real_scores.size - np.searchsorted(real_scores, thresholds, side="right")
    return tp, fp
