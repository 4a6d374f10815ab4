"""Calibration maps and ECE against scikit-learn (the independent reference; tests only)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from deepfake_client import probability
from deepfake_client.metrics import equal_error_rate, roc_auc
from deepfake_serving.calibration import calibrated_probability


def sklearn_platt(labels, scores):
    """Platt's smoothed targets as two weighted copies of each sample, fitted by scikit-learn."""
    z = probability.logit(scores)[:, None]
    positives, negatives = labels.sum(), labels.size - labels.sum()
    targets = np.where(labels == 1, (positives + 1) / (positives + 2), 1 / (negatives + 2))
    model = LogisticRegression(C=1e12, solver="newton-cg", tol=1e-12, max_iter=1000)
    model.fit(np.r_[z, z], np.r_[np.ones(labels.size), np.zeros(labels.size)], sample_weight=np.r_[targets, 1 - targets])
    return float(model.coef_[0, 0]), float(model.intercept_[0])


def sklearn_ece(labels, probabilities, bins=10):
    true, predicted = calibration_curve(labels, probabilities, n_bins=bins, strategy="uniform")
    counts, _ = np.histogram(probabilities, bins=np.linspace(0, 1, bins + 1))
    counts = counts[counts > 0]
    return float(np.sum(counts / counts.sum() * np.abs(true - predicted)))


@pytest.fixture
def noisy():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 3000)
    scores = 1 / (1 + np.exp(-(0.6 * (2 * labels - 1) + rng.normal(0, 1, labels.size)) * 0.4 - 0.7))
    return labels, scores


def test_platt_matches_scikit_learn(noisy):
    labels, scores = noisy
    fitted = probability.fit_platt(labels, scores)
    a, b = sklearn_platt(labels, scores)
    assert fitted["a"] == pytest.approx(a, abs=1e-4) and fitted["b"] == pytest.approx(b, abs=1e-4)


def test_isotonic_matches_scikit_learn(noisy):
    labels, scores = noisy
    scores = np.round(scores, 3)  # ties too
    fitted = probability.fit_isotonic(labels, scores)
    reference = IsotonicRegression(out_of_bounds="clip").fit(scores, labels)
    grid = np.linspace(0, 1, 2001)
    np.testing.assert_allclose(probability.apply(fitted, grid), reference.predict(grid), atol=1e-9)


def test_ece_matches_scikit_learns_binning(noisy):
    labels, scores = noisy
    assert probability.expected_calibration_error(labels, scores) == pytest.approx(sklearn_ece(labels, scores), abs=1e-12)
    assert probability.expected_calibration_error(labels, scores) > 0.05  # this score is miscalibrated


def test_ece_by_hand():
    # bins (0, 0.1] ... : 0.05 and 0.1 share the first bin, 0.95 the last.
    labels = np.array([0, 1, 1])
    got = probability.reliability(labels, np.array([0.05, 0.1, 0.95]))
    np.testing.assert_array_equal(got.counts, [2, 1])
    assert got.ece == pytest.approx(2 / 3 * abs(0.5 - 0.075) + 1 / 3 * 0.05)


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_a_perfectly_ranked_miscalibrated_score_is_calibrated_with_auc_unchanged(method):
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, 2000)
    scores = np.where(labels == 1, 0.52 + 0.05 * rng.random(labels.size), 0.43 + 0.05 * rng.random(labels.size))
    assert probability.expected_calibration_error(labels, scores) > 0.4
    calibrated = probability.apply(probability.fit(method, labels, scores), scores)
    assert probability.expected_calibration_error(labels, calibrated) < 0.01
    assert roc_auc(labels, calibrated) == roc_auc(labels, scores) == 1.0


def test_client_and_server_maps_agree(noisy):
    labels, scores = noisy
    scores = np.r_[scores, 0.0, 1.0]
    for calibration in (probability.fit_platt(labels, scores[:-2]), probability.fit_isotonic(labels, scores[:-2])):
        np.testing.assert_allclose(probability.apply(calibration, scores), calibrated_probability(calibration, scores),
                                   rtol=0, atol=1e-15)


def test_a_score_that_ranks_backwards_gets_no_calibration():
    labels = np.array([0, 0, 1, 1] * 10)
    scores = np.array([0.8, 0.7, 0.3, 0.2] * 10)
    with pytest.raises(probability.CalibrationFitError, match="rank"):
        probability.fit_platt(labels, scores)
    with pytest.raises(probability.CalibrationFitError):
        probability.fit_isotonic(labels, scores)


def test_equal_error_rate():
    assert equal_error_rate([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 0.0
    assert equal_error_rate([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 1.0
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 2, 4000)
    scores = rng.normal(labels * 1.0, 1.0)
    # Two unit normals one apart: FPR = FNR at the midpoint, 1 - Phi(0.5) = 0.3085.
    assert equal_error_rate(labels, scores) == pytest.approx(0.3085, abs=0.02)
    assert roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
