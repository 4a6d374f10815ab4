"""Metrics against small cases computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deepfake_client.metrics import binary_metrics, midranks, roc_auc, roc_curve, threshold_candidates

LABELS = [0, 0, 1, 1]
SCORES = [0.1, 0.4, 0.35, 0.8]


def test_counts_and_ratios_at_a_threshold():
    # Fake above 0.5: only 0.8 -> tp 1, fn 1 (0.35), tn 2, fp 0.
    m = binary_metrics(LABELS, SCORES, 0.5)
    assert (m.tp, m.fp, m.tn, m.fn) == (1, 0, 2, 1)
    assert (m.count, m.positives, m.negatives) == (4, 2, 2)
    assert m.accuracy == pytest.approx(0.75)
    assert m.precision == pytest.approx(1.0)
    assert m.recall == pytest.approx(0.5)
    assert m.f1 == pytest.approx(2 / 3)
    # Fake above 0.3: 0.35, 0.4, 0.8 -> tp 2, fp 1, tn 1, fn 0.
    m = binary_metrics(LABELS, SCORES, 0.3)
    assert (m.tp, m.fp, m.tn, m.fn) == (2, 1, 1, 0)
    assert m.precision == pytest.approx(2 / 3) and m.recall == 1.0 and m.f1 == pytest.approx(0.8)


def test_a_score_equal_to_the_threshold_is_real_as_on_the_server():
    m = binary_metrics([1], [0.5], 0.5)
    assert (m.tp, m.fn) == (0, 1)


def test_auc_of_the_textbook_example():
    # Pairs (fake, real): (0.35,0.1)=1 (0.35,0.4)=0 (0.8,0.1)=1 (0.8,0.4)=1 -> 3/4.
    assert roc_auc(LABELS, SCORES) == pytest.approx(0.75)


def test_ties_count_one_half():
    assert roc_auc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)
    # (0.6,0.2)=1 (0.6,0.6)=0.5 (0.9,0.2)=1 (0.9,0.6)=1 -> 3.5/4.
    assert roc_auc([0, 0, 1, 1], [0.2, 0.6, 0.6, 0.9]) == pytest.approx(0.875)


def test_perfect_and_reversed_rankings():
    assert roc_auc([0, 0, 1], [0.1, 0.2, 0.3]) == 1.0
    assert roc_auc([1, 1, 0], [0.1, 0.2, 0.3]) == 0.0


def test_undefined_values():
    m = binary_metrics([0, 0], [0.1, 0.2], 0.5)
    assert m.precision == 0.0 and m.recall == 0.0 and m.f1 == 0.0  # nothing fake to find
    assert math.isnan(m.roc_auc)  # one class only
    assert m.to_dict()["roc_auc"] is None


def test_midranks_share_tied_ranks():
    np.testing.assert_allclose(midranks(np.array([0.3, 0.1, 0.3, 0.2])), [3.5, 1, 3.5, 2])


def test_roc_curve_points_by_hand():
    fpr, tpr, thresholds = roc_curve(LABELS, SCORES)
    np.testing.assert_allclose(thresholds, [np.inf, 0.8, 0.4, 0.35, 0.1])
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])


def test_area_under_the_curve_equals_the_rank_auc_with_ties():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 200)
    scores = np.round(rng.random(200) * 0.5 + labels * 0.3, 1)  # coarse: many ties
    fpr, tpr, _ = roc_curve(labels, scores)
    trapezoids = np.sum((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2)
    assert roc_auc(labels, scores) == pytest.approx(trapezoids)


def test_threshold_candidates_separate_neighbours_within_0_and_1():
    np.testing.assert_allclose(threshold_candidates(np.array([0.2, 0.6, 0.2, 1.0])), [0.1, 0.4, 0.8])
    np.testing.assert_allclose(threshold_candidates(np.array([0.0, 0.5])), [0.25, 0.75])


@pytest.mark.parametrize("labels, scores", [([0, 2], [0.1, 0.2]), ([0, 1], [0.1]), ([0, 1], [0.1, math.nan])])
def test_bad_inputs_are_refused(labels, scores):
    with pytest.raises(ValueError):
        binary_metrics(labels, scores, 0.5)
