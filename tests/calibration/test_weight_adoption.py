"""The adoption rule compares searched and equal weights within each fold: each fold's searched
weights put its scores on their own scale, so pooling the folds' scores would rank one fold's
scale against another's (issue 22: searched weights won 4 of 5 folds, yet lost pooled)."""

from __future__ import annotations

import numpy as np
from calibration_data import MODEL_NAMES, video_set

from deepfake_client.calibration import calibrate, compare_with_equal
from deepfake_client.metrics import roc_auc, within_fold_auc
from deepfake_client.resampling import bootstrap_resamples, grouped_folds


def scale_shifted_folds(seed: int = 0):
    """400 samples in 5 folds. Equal weights: moderately informative, one scale. Searched
    weights: better than equal weights in every fold, but each fold's scores are offset by
    its own constant, as each fold's weights would shift them."""
    rng = np.random.default_rng(seed)
    labels = np.arange(400) % 2
    groups = [f"g{i}" for i in range(labels.size)]
    fold_of = grouped_folds(labels, groups, 5, seed)
    signal = 2 * labels - 1
    equal = 1 / (1 + np.exp(-(0.5 * signal + rng.normal(0, 1.0, labels.size))))
    within = 2.0 * signal + rng.normal(0, 1.0, labels.size)
    searched = 1 / (1 + np.exp(-(within + 3.0 * (fold_of - 2))))  # fold f shifted by 3(f - 2) in logit
    return labels, groups, fold_of, equal, searched


def test_weights_that_win_in_every_fold_are_adopted_whatever_their_scale():
    labels, groups, fold_of, equal, searched = scale_shifted_folds()
    for fold in range(5):
        inside = fold_of == fold
        assert roc_auc(labels[inside], searched[inside]) > roc_auc(labels[inside], equal[inside]) + 0.1
    assert roc_auc(labels, searched) < roc_auc(labels, equal)  # pooled, the scales hide every win
    draws = bootstrap_resamples(labels, groups, 200, seed=0)
    auc_equal, auc_searched, gain = compare_with_equal(labels, fold_of, equal, searched, draws)
    assert gain.low > 0  # adopted
    assert auc_searched.estimate == within_fold_auc(labels, searched, fold_of) > auc_equal.estimate
    assert gain.estimate == auc_searched.estimate - auc_equal.estimate


def test_searched_weights_that_lose_in_every_fold_are_not_adopted():
    labels, groups, fold_of, equal, searched = scale_shifted_folds()
    draws = bootstrap_resamples(labels, groups, 200, seed=0)
    _, _, gain = compare_with_equal(labels, fold_of, searched, equal, draws)  # the roles swapped
    assert gain.high < 0


def test_within_fold_auc_weights_folds_by_size_and_skips_one_class_folds():
    labels = np.array([0, 1, 0, 1, 1, 0, 0, 1, 1, 1])
    scores = np.array([0.1, 0.9, 0.2, 0.8, 0.3, 0.7, 0.9, 0.1, 0.5, 0.5])
    fold_of = np.array([0, 0, 0, 0, 1, 1, 2, 2, 3, 3])  # fold 3 holds fakes only
    expected = (4 * 1.0 + 2 * 0.0 + 2 * 0.0) / 8
    assert within_fold_auc(labels, scores, fold_of) == expected


def test_equal_weights_stay_when_every_model_knows_the_same():
    """Equally informative models: no searched weighting earns a change, so equal weights are kept."""
    samples, _, _ = video_set(300, 2, strengths=[0.8, 0.8, 0.8, 0.8], seed=3)
    result = calibrate(samples, MODEL_NAMES, resamples=200, compare_stacking=False)
    assert not result.adopted
    assert result.weights == {name: 0.25 for name in MODEL_NAMES}
    assert result.auc_gain.low <= 0
