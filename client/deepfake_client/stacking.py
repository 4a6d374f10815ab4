"""Stacking, measured only: a logistic-regression meta-learner over the models' logits.

Each sample's features are the logits of each model's own score (its most-fake face per
frame, aggregated as the ensemble is). The meta-learner is fitted per fold on the other
folds, exactly as the weight search, and its AUC within each fold (averaged over the folds:
each fold's fit has its own scale) is compared with the adopted weighted average's by the
same paired, grouped bootstrap. It is reported, not
served: the settings file and the combiner know weighted averages only, and the report
says whether stacking would have earned a place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .metrics import within_fold_auc
from .probability import logit, sigmoid
from .resampling import Interval, bootstrap

RIDGE = 1e-2  # a light L2 penalty on the coefficients (not the intercept): separable folds stay finite


def fit_logistic(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Coefficients then intercept, by Newton's method on the penalised log loss."""
    x = np.c_[features, np.ones(len(features))]
    penalty = np.diag([RIDGE] * features.shape[1] + [0.0])
    theta = np.zeros(x.shape[1])
    for _ in range(100):
        p = sigmoid(x @ theta)
        gradient = x.T @ (p - labels) + penalty @ theta
        hessian = (x * (p * (1 - p))[:, None]).T @ x + penalty + 1e-9 * np.eye(x.shape[1])
        step = np.linalg.solve(hessian, gradient)
        theta -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    return theta


def predict(theta: np.ndarray, features: np.ndarray) -> np.ndarray:
    return sigmoid(np.c_[features, np.ones(len(features))] @ theta)


@dataclass(frozen=True)
class StackingComparison:
    auc: Interval  # cross-validated, of the meta-learner
    gain: Interval  # over the adopted weighted average, paired
    coefficients: dict[str, float]  # fitted on all samples, for the record

    @property
    def better(self) -> bool:
        return self.gain.low > 0

    def to_dict(self) -> dict[str, Any]:
        return {"auc": self.auc.to_dict(), "gain_over_weighted_average": self.gain.to_dict(),
                "better_beyond_the_interval": self.better, "coefficients": self.coefficients, "served": False}


def compare(model_scores: np.ndarray, labels: np.ndarray, fold_of: np.ndarray, weighted: np.ndarray,
            resamples: list[np.ndarray], model_names: tuple[str, ...]) -> StackingComparison:
    """model_scores: (samples, models), each model alone; weighted: the adopted out-of-fold scores."""
    features = logit(model_scores)
    stacked = np.empty(labels.size)
    for fold in range(int(fold_of.max()) + 1):
        test = fold_of == fold
        stacked[test] = predict(fit_logistic(features[~test], labels[~test]), features[test])
    def auc(scores: np.ndarray, i: np.ndarray) -> float:
        return within_fold_auc(labels[i], scores[i], fold_of[i])

    auc_stacked = bootstrap(lambda i: auc(stacked, i), resamples, labels.size)
    gain = bootstrap(lambda i: auc(stacked, i) - auc(weighted, i), resamples, labels.size)
    theta = fit_logistic(features, labels)
    coefficients = {name: float(c) for name, c in zip(model_names, theta[:-1], strict=True)}
    return StackingComparison(auc_stacked, gain, coefficients | {"intercept": float(theta[-1])})
