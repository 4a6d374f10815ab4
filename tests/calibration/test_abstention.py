"""Abstention arithmetic (deepfake_client.abstention): coverage, error rates, the risk-coverage
curve and the bands written by `deepfake calibrate`."""

from __future__ import annotations

import numpy as np
import pytest

from deepfake_client.abstention import band_for_coverage, band_from_interval, measure, risk_coverage
from deepfake_client.errors import InvalidInputError

LABELS = np.array([0, 0, 1, 1, 0, 1])
SCORES = np.array([0.05, 0.45, 0.95, 0.55, 0.60, 0.40])  # wrong: 0.60 (real) and 0.40 (fake)


def test_without_a_band_everything_is_decided():
    a = measure(LABELS, SCORES, 0.5, None)
    assert a.coverage == 1.0 and a.error_rate == pytest.approx(2 / 6) and a.covered_error_rate == pytest.approx(2 / 6)
    assert a.to_dict()["with_abstention"] is None


def test_a_band_abstains_on_the_scores_inside_it_ends_included():
    a = measure(LABELS, SCORES, 0.5, (0.40, 0.60))
    # 0.45, 0.55, 0.60, 0.40 abstain (the ends are inside); 0.05 and 0.95 are decided, both right.
    assert a.covered == 2 and a.coverage == pytest.approx(2 / 6) and a.covered_error_rate == 0.0
    assert a.error_rate == pytest.approx(2 / 6)
    assert a.to_dict()["with_abstention"] == {"coverage": pytest.approx(2 / 6), "error_rate": 0.0, "abstained": 4}


def test_the_risk_coverage_curve_keeps_the_farthest_from_the_threshold_first():
    coverage, error = risk_coverage(LABELS, SCORES, 0.5)
    # Order by distance: 0.05, 0.95 (right), 0.60, 0.40 (wrong), 0.45, 0.55 (right).
    np.testing.assert_allclose(coverage, np.arange(1, 7) / 6)
    np.testing.assert_allclose(error, [0, 0, 1 / 3, 2 / 4, 2 / 5, 2 / 6])


def test_the_interval_band_holds_the_threshold_and_a_point_interval_gives_none():
    assert band_from_interval(0.5, 0.42, 0.61, "i") == {"low": 0.42, "high": 0.61, "source": "i"}
    assert band_from_interval(0.5, 0.55, 0.61, "i")["low"] == 0.5  # widened to hold the threshold
    assert band_from_interval(0.5, 0.5, 0.5, "i") is None


def test_the_coverage_band_leaves_that_share_decided():
    scores = np.linspace(0.0, 1.0, 101)
    band = band_for_coverage(scores, 0.5, 0.8, "c")
    decided = ~((scores >= band["low"]) & (scores <= band["high"]))
    assert decided.mean() == pytest.approx(0.8, abs=0.02)
    assert band_for_coverage(scores, 0.5, 1.0, "c") is None
    with pytest.raises(InvalidInputError, match="coverage"):
        band_for_coverage(scores, 0.5, 0.0, "c")
