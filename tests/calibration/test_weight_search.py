"""Cross-validated weight search and calibration, with known answers and scikit-learn as the referee."""

from __future__ import annotations

import numpy as np
import pytest
from calibration_data import MODEL_NAMES, image_set, video_set
from sklearn.calibration import calibration_curve
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from deepfake_client.calibration import MIN_PER_CLASS, calibrate, sample_scores, search_weights, weight_grid
from deepfake_client.probability import logit


@pytest.fixture(scope="module")
def thousands():
    """600 videos x 5 frames; f3net is pure noise, the others know something."""
    return video_set(600, 5, strengths=[1.2, 0.6, 0.0, 0.9], seed=7)


@pytest.fixture(scope="module")
def result(thousands):
    samples, _, _ = thousands
    return calibrate(samples, MODEL_NAMES, resamples=200)


def test_a_pure_noise_model_gets_weight_zero(result):
    assert result.adopted and result.sufficient and not result.warnings
    assert result.weights["f3net"] == 0.0
    assert result.fold_weights[:, MODEL_NAMES.index("f3net")].max() <= 0.1
    assert result.weights["xception"] == max(result.weights.values())
    assert result.auc_gain.low > 0


def test_folds_follow_the_videos(result, thousands):
    samples, _, _ = thousands
    groups = np.array([s.group for s in samples])
    for group in np.unique(groups):
        assert np.unique(result.fold_of[groups == group]).size == 1


def sklearn_ece(labels, probabilities, bins=10):
    true, predicted = calibration_curve(labels, probabilities, n_bins=bins, strategy="uniform")
    counts, _ = np.histogram(probabilities, bins=np.linspace(0, 1, bins + 1))
    counts = counts[counts > 0]
    return float(np.sum(counts / counts.sum() * np.abs(true - predicted)))


def sklearn_platt_predict(train_labels, train_scores, test_scores):
    z = logit(train_scores)[:, None]
    positives, negatives = train_labels.sum(), train_labels.size - train_labels.sum()
    targets = np.where(train_labels == 1, (positives + 1) / (positives + 2), 1 / (negatives + 2))
    model = LogisticRegression(C=1e12, solver="newton-cg", tol=1e-12, max_iter=1000)
    model.fit(np.r_[z, z], np.r_[np.ones(z.shape[0]), np.zeros(z.shape[0])], sample_weight=np.r_[targets, 1 - targets])
    return model.predict_proba(logit(test_scores)[:, None])[:, 1]


def test_reported_cross_validated_auc_and_ece_match_scikit_learn(result, thousands):
    """Recompute the report's numbers from its folds and per-fold weights with scikit-learn."""
    _, labels, scores = thousands
    out_of_fold = np.empty(labels.size)
    for fold, weights in enumerate(result.fold_weights):
        test = result.fold_of == fold
        out_of_fold[test] = scores[test] @ (weights / weights.sum())  # one face per frame
    equal = scores.mean(axis=1)

    def within_folds(values):  # each fold's AUC, weighted by its size
        folds = [result.fold_of == fold for fold in range(result.folds)]
        return np.average([roc_auc_score(labels[f], values[f]) for f in folds], weights=[f.sum() for f in folds])

    assert result.auc_searched.estimate == pytest.approx(within_folds(out_of_fold), abs=1e-3)
    assert result.auc_equal.estimate == pytest.approx(within_folds(equal), abs=1e-3)
    assert result.ece_before.estimate == pytest.approx(sklearn_ece(labels, out_of_fold), abs=1e-3)

    calibrated = np.empty(labels.size)
    for fold in range(result.folds):
        test = result.fold_of == fold
        calibrated[test] = sklearn_platt_predict(labels[~test], out_of_fold[~test], out_of_fold[test])
    assert result.ece_after.estimate == pytest.approx(sklearn_ece(labels, calibrated), abs=1e-3)
    assert result.auc_after.estimate == pytest.approx(roc_auc_score(labels, calibrated), abs=1e-3)
    assert result.ece_after.estimate < result.ece_before.estimate / 3  # calibration helped, out of fold
    # The interval is a real interval around the estimate.
    assert result.auc_searched.low < result.auc_searched.estimate < result.auc_searched.high


def test_overfitting_a_tiny_set_is_caught():
    rng = np.random.default_rng(11)
    labels = np.array([0, 1] * 6)
    scores = rng.random((12, 4))  # every model is noise
    samples = image_set(labels, scores)
    grid = weight_grid(4)
    in_sample = sample_scores(samples, grid, "max")
    best = search_weights(labels, in_sample, grid, "auc")
    in_sample_auc = roc_auc_score(labels, in_sample[:, best])  # what the old, in-sample search reported

    result = calibrate(samples, MODEL_NAMES, resamples=200)
    assert not result.sufficient and not result.adopted
    assert result.weights == {name: 0.25 for name in MODEL_NAMES}
    assert any("equal weights kept" in w for w in result.warnings)
    assert any(f"at least {MIN_PER_CLASS} per class" in w for w in result.warnings)
    assert result.auc_searched.estimate < in_sample_auc  # out of fold, the optimism is gone
    assert result.auc_searched.high - result.auc_searched.low > 0.5  # and the interval says how little 12 samples know
