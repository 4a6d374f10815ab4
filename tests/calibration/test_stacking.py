"""The stacking meta-learner (measured, never served) against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from calibration_data import MODEL_NAMES, video_set
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from deepfake_client import stacking
from deepfake_client.calibration import calibrate
from deepfake_client.probability import logit


def test_meta_learner_matches_scikit_learns_penalised_logistic_regression():
    _, labels, scores = video_set(300, 2, strengths=[1.0, 0.5, 0.0, 0.8], seed=3)
    features = logit(scores)
    theta = stacking.fit_logistic(features, labels)
    # sklearn minimises 0.5 |w|^2 + C * sum(loss); ours sum(loss) + RIDGE / 2 |w|^2: C = 1 / RIDGE.
    reference = LogisticRegression(C=1 / stacking.RIDGE, solver="newton-cg", tol=1e-12, max_iter=1000)
    reference.fit(features, labels)
    np.testing.assert_allclose(theta[:-1], reference.coef_[0], atol=1e-5)
    assert theta[-1] == pytest.approx(reference.intercept_[0], abs=1e-5)


def test_stacking_is_compared_on_the_same_folds():
    samples, labels, scores = video_set(200, 3, strengths=[1.0, 0.5, 0.0, 0.8], seed=4)
    result = calibrate(samples, MODEL_NAMES, resamples=100)
    stacked = np.empty(labels.size)
    features = logit(scores)
    for fold in range(result.folds):
        test = result.fold_of == fold
        model = LogisticRegression(C=1 / stacking.RIDGE, solver="newton-cg", tol=1e-12).fit(features[~test],
                                                                                             labels[~test])
        stacked[test] = model.predict_proba(features[test])[:, 1]
    folds = [result.fold_of == fold for fold in range(result.folds)]

    def within_folds(values):  # each fold's fit has its own scale: AUC per fold, weighted by size
        return np.average([roc_auc_score(labels[f], values[f]) for f in folds], weights=[f.sum() for f in folds])

    assert result.stacking.auc.estimate == pytest.approx(within_folds(stacked), abs=1e-3)
    gain = within_folds(stacked) - within_folds(result.adopted_scores)
    assert result.stacking.gain.estimate == pytest.approx(gain, abs=1e-3)
    assert result.to_dict()["stacking"]["served"] is False
