"""Ensemble weights, calibration and threshold from a labelled set, with honest estimates.

Every response carries each model's probability for each face, so candidate weights
are scored offline (ensemble.py restates the server's rule) without re-running
inference. Weights are searched on a grid over the simplex (multiples of `step`
summing to 1, at least two models enabled as the server requires).

Nothing is judged on the data that chose it:

1. k-fold cross-validation, grouped by source file (a video's frames stay in one fold):
   each fold is scored with the weights searched on the other folds. Each fold's weights
   put its scores on their own scale, so the search is compared with equal weights (which
   fit nothing) within each fold: the AUC inside every fold, averaged over the folds
   (weighted by their sizes), never the AUC of the pooled out-of-fold scores, which ranks
   one fold's scale against another's. A paired, grouped bootstrap gives the intervals; the
   searched weights are adopted only when the 95% interval of the mean per-fold AUC gain
   lies above 0. Otherwise equal weights are kept, and the result says why.
2. The calibration (probability.py) is fitted to the adopted score's out-of-fold values;
   its quality is measured by nested cross-validation (each fold calibrated by a map
   fitted on the other folds): ECE and AUC before and after, with intervals.
3. The threshold is chosen on the out-of-fold calibrated probability.

Below MIN_PER_CLASS independent samples (groups) per class the estimates are too wide to
act on: the result carries a warning and `sufficient` is False (the CLI then refuses to
write the settings unless forced).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import probability, stacking
from .aggregation import Aggregation, aggregate_columns
from .ensemble import MIN_ENABLED_MODELS, score_frames
from .errors import InvalidInputError
from .metrics import counts_at, roc_auc, threshold_candidates, within_fold_auc
from .resampling import Interval, bootstrap, bootstrap_resamples, grouped_folds, interval

OBJECTIVES = ("auc", "f1")
_TIE = 1e-12
# Independent samples (videos, or images) per class below which nothing is written unless
# forced: with 50 per class the standard error of an AUC near 0.8 is about 0.045 (Hanley and
# McNeil), so its 95% interval is about +-0.09, already as wide as most differences between
# weightings; with fewer, a "better" weighting is mostly noise.
MIN_PER_CLASS = 50
DEFAULT_FOLDS = 5
DEFAULT_BOOTSTRAP = 1000


@dataclass(frozen=True)
class Sample:
    """One labelled unit (an image, a video frame, or a whole video) and its faces' model scores."""

    name: str
    label: int  # 1 fake, 0 real
    frames: tuple[np.ndarray, ...]  # per frame with a face: (faces, models) fake probabilities
    group: str = ""  # the source file: samples of one group never sit on both sides of a split ("": its own)

    @property
    def group_key(self) -> str:
        return self.group or self.name


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



def compare_with_equal(labels: np.ndarray, fold_of: np.ndarray, equal_scores: np.ndarray,
                       searched_scores: np.ndarray, draws: Sequence[np.ndarray]) -> tuple[Interval, Interval, Interval]:
    """(equal, searched, gain): within-fold AUCs with their paired bootstrap intervals."""

    def auc(scores: np.ndarray) -> Callable[[np.ndarray], float]:
        return lambda i: within_fold_auc(labels[i], scores[i], fold_of[i])

    auc_equal = bootstrap(auc(equal_scores), draws, labels.size)
    auc_searched = bootstrap(auc(searched_scores), draws, labels.size)
    gain = bootstrap(lambda i: auc(searched_scores)(i) - auc(equal_scores)(i), draws, labels.size)
    return auc_equal, auc_searched, gain


def _objective_per_column(labels: np.ndarray, scores: np.ndarray, objective: str) -> np.ndarray:
    if objective == "auc":
        return np.array([roc_auc(labels, column) for column in scores.T])
    return np.array([best_threshold(labels, column, "f1", 0.5)[1] for column in scores.T])


def search_weights(labels: np.ndarray, grid_scores: np.ndarray, grid: np.ndarray, objective: str) -> int:
    """The grid row maximising `objective`; ties go to the row nearest equal weights (the data must earn a change)."""
    values = _objective_per_column(labels, grid_scores, objective)
    best = values >= np.nanmax(values) - _TIE
    equal = np.full(grid.shape[1], 1.0 / grid.shape[1])
    return int(np.flatnonzero(best)[np.argmin(np.abs(grid[best] - equal).sum(axis=1))])


@dataclass(frozen=True)
class CalibrationResult:
    objective: str
    model_names: tuple[str, ...]
    image_score: str
    labels: np.ndarray
    groups: tuple[str, ...]
    fold_of: np.ndarray  # each sample's fold
    equal_scores: np.ndarray  # equal weights (nothing fitted, so no fold needed)
    searched_scores: np.ndarray  # out of fold: each fold scored with the weights searched on the others
    fold_weights: np.ndarray  # (folds, models): the weights searched without each fold
    auc_equal: Interval  # cross-validated AUCs (within each fold, averaged) with their bootstrap 95% intervals
    auc_searched: Interval
    auc_gain: Interval  # searched - equal, paired over the same resamples
    adopted: bool  # the searched weights beat equal weights beyond the interval
    weights: dict[str, float]  # to serve: searched on all samples if adopted, else equal
    method: str | None  # calibration method, None for none
    calibration: dict[str, Any] | None  # to serve: fitted to the adopted score's out-of-fold values
    calibration_parameters: dict[str, Interval]  # Platt's a and b with bootstrap intervals
    calibrated_scores: np.ndarray  # nested out of fold: each fold calibrated by a map fitted on the others
    ece_before: Interval
    ece_after: Interval
    auc_after: Interval
    threshold: float  # on the calibrated probability (the adopted score when uncalibrated)
    threshold_interval: Interval
    sufficient: bool  # at least MIN_PER_CLASS groups per class
    stacking: stacking.StackingComparison | None = None  # measured, never served
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def adopted_scores(self) -> np.ndarray:
        return self.searched_scores if self.adopted else self.equal_scores

    @property
    def folds(self) -> int:
        return int(self.fold_of.max()) + 1

    def counts(self) -> dict[str, int]:
        fake_groups = {g for g, y in zip(self.groups, self.labels, strict=True) if y == 1}
        return {
            "samples": int(self.labels.size),
            "fake": int(self.labels.sum()),
            "real": int(self.labels.size - self.labels.sum()),
            "fake_groups": len(fake_groups),
            "real_groups": len(set(self.groups) - fake_groups),
            "min_per_class": MIN_PER_CLASS,
        }

    def weight_ranges(self) -> dict[str, dict[str, float]]:
        """The spread of each model's searched weight over the folds (how stable the search is)."""
        return {
            name: {"min": float(self.fold_weights[:, i].min()), "max": float(self.fold_weights[:, i].max())}
            for i, name in enumerate(self.model_names)
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "objective": self.objective,
            "image_score": self.image_score,
            "counts": self.counts(),
            "sufficient": self.sufficient,
            "folds": self.folds,
            "cross_validated_auc": {
                "equal_weights": self.auc_equal.to_dict(),
                "searched_weights": self.auc_searched.to_dict(),
                "gain": self.auc_gain.to_dict(),
            },
            "adopted": self.adopted,
            "weights": self.weights,
            "fold_weights": {name: self.fold_weights[:, i].tolist() for i, name in enumerate(self.model_names)},
            "weight_ranges": self.weight_ranges(),
            "calibration": self.calibration,
            "calibration_parameters": {k: v.to_dict() for k, v in self.calibration_parameters.items()},
            "ece_before": self.ece_before.to_dict(),
            "ece_after": self.ece_after.to_dict(),
            "auc_after_calibration": self.auc_after.to_dict(),
            "threshold": self.threshold,
            "threshold_interval": self.threshold_interval.to_dict(),
            "stacking": None if self.stacking is None else self.stacking.to_dict(),
            "warnings": list(self.warnings),
            "notes": list(self.notes),
        }


def _out_of_fold_calibration(method: str, labels: np.ndarray, scores: np.ndarray, fold_of: np.ndarray) -> np.ndarray:
    calibrated = np.empty_like(scores)
    for fold in range(int(fold_of.max()) + 1):
        test = fold_of == fold
        calibrated[test] = probability.apply(probability.fit(method, labels[~test], scores[~test]), scores[test])
    return calibrated


def calibrate(
    samples: Sequence[Sample],
    model_names: Sequence[str],
    *,
    image_score: str = "max",
    objective: str = "auc",
    method: str | None = probability.DEFAULT_METHOD,
    step: float = 0.1,
    folds: int = DEFAULT_FOLDS,
    resamples: int = DEFAULT_BOOTSTRAP,
    aggregation: Aggregation | str = Aggregation.MEAN,
    top_k: int = 5,
    seed: int = 0,
    compare_stacking: bool = True,
    progress: Callable[[str, int], None] | None = None,
) -> CalibrationResult:
    """Cross-validated weights, calibration and threshold (see the module doc).

    `progress(description, total)` is called after each of `total` steps (for a progress bar).
    """
    if objective not in OBJECTIVES:
        raise InvalidInputError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if method is not None and method not in probability.METHODS:
        raise InvalidInputError(f"calibration method must be one of {probability.METHODS} or none, got {method!r}")
    labels = np.array([sample.label for sample in samples], dtype=int)
    if labels.size == 0 or labels.min() == labels.max():
        raise InvalidInputError("calibration needs both real and fake samples with a face")
    groups = tuple(sample.group_key for sample in samples)
    fold_of = grouped_folds(labels, groups, folds, seed)
    k = int(fold_of.max()) + 1

    def tick(description: str) -> None:
        if progress is not None:
            progress(description, k + 4)  # the calls below

    grid = weight_grid(len(model_names), step)
    grid_scores = sample_scores(samples, grid, image_score, aggregation, top_k)
    equal_scores = sample_scores(samples, np.ones(len(model_names)), image_score, aggregation, top_k)[:, 0]
    tick("scored the weight grid")
    searched_scores = np.empty(labels.size)
    fold_rows = []
    for fold in range(k):
        test = fold_of == fold
        row = search_weights(labels[~test], grid_scores[~test], grid, objective)
        searched_scores[test] = grid_scores[test, row]
        fold_rows.append(row)
        tick(f"searched fold {fold + 1}/{k}")

    draws = bootstrap_resamples(labels, groups, resamples, seed)
    auc_equal, auc_searched, auc_gain = compare_with_equal(labels, fold_of, equal_scores, searched_scores, draws)
    tick("bootstrapped the AUCs")
    adopted = auc_gain.low > 0
    warnings, notes = [], []
    counts = {label: len({g for g, y in zip(groups, labels, strict=True) if y == label}) for label in (0, 1)}
    sufficient = min(counts.values()) >= MIN_PER_CLASS
    if not sufficient:
        warnings.append(
            f"only {counts[0]} real and {counts[1]} fake independent samples (a video counts once); "
            f"at least {MIN_PER_CLASS} per class are needed for estimates narrow enough to act on"
        )
    if adopted:
        notes.append(f"searched weights adopted: cross-validated AUC gain {auc_gain} over equal weights")
        weights_row = search_weights(labels, grid_scores, grid, objective)
        weights = {name: float(w) for name, w in zip(model_names, grid[weights_row], strict=True)}
    else:
        warnings.append(
            f"equal weights kept: the searched weights' cross-validated AUC {auc_searched} does not beat "
            f"equal weights' {auc_equal} beyond the 95% interval of the gain [{auc_gain.low:.3f}, {auc_gain.high:.3f}]"
        )
        weights = {name: 1.0 / len(model_names) for name in model_names}
    adopted_scores = searched_scores if adopted else equal_scores

    calibration, parameters, calibrated = None, {}, adopted_scores
    if method is not None:
        try:
            calibrated = _out_of_fold_calibration(method, labels, adopted_scores, fold_of)
            calibration = probability.fit(method, labels, adopted_scores)
        except probability.CalibrationFitError as exc:
            warnings.append(f"no calibration installed: {exc.message}")
            calibrated = adopted_scores
    if calibration is not None and calibration["method"] == "platt":
        fits = []
        for draw in draws:
            try:
                fits.append(probability.fit_platt(labels[draw], adopted_scores[draw]))
            except probability.CalibrationFitError:
                continue
        parameters = {key: interval(calibration[key], [f[key] for f in fits]) for key in ("a", "b")}
    tick("calibrated")
    ece_before = bootstrap(lambda i: probability.expected_calibration_error(labels[i], adopted_scores[i]), draws,
                           labels.size)
    ece_after = bootstrap(lambda i: probability.expected_calibration_error(labels[i], calibrated[i]), draws,
                          labels.size)
    auc_after = bootstrap(lambda i: roc_auc(labels[i], calibrated[i]), draws, labels.size)
    threshold = best_threshold(labels, calibrated, objective, 0.5)[0]
    threshold_interval = interval(threshold, [best_threshold(labels[i], calibrated[i], objective, 0.5)[0]
                                              for i in draws])
    tick("chose the threshold")
    stacked = None
    if compare_stacking:
        alone = sample_scores(samples, np.eye(len(model_names)), image_score, aggregation, top_k)
        stacked = stacking.compare(alone, labels, fold_of, adopted_scores, draws, tuple(model_names))
        verdict = "beats" if stacked.better else "does not beat"
        notes.append(f"stacking (measured, not served) {verdict} the weighted average: AUC gain {stacked.gain}")
    return CalibrationResult(
        objective=objective,
        model_names=tuple(model_names),
        image_score=image_score,
        labels=labels,
        groups=groups,
        fold_of=fold_of,
        equal_scores=equal_scores,
        searched_scores=searched_scores,
        fold_weights=grid[fold_rows],
        auc_equal=auc_equal,
        auc_searched=auc_searched,
        auc_gain=auc_gain,
        adopted=adopted,
        weights=weights,
        method=None if calibration is None else calibration["method"],
        calibration=calibration,
        calibration_parameters=parameters,
        calibrated_scores=calibrated,
        ece_before=ece_before,
        ece_after=ece_after,
        auc_after=auc_after,
        threshold=threshold,
        threshold_interval=threshold_interval,
        sufficient=sufficient,
        stacking=stacked,
        warnings=tuple(warnings),
        notes=tuple(notes),
    )

