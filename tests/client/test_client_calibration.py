"""The server's scoring rule restated client-side, the weight grid and the threshold choice.

The cross-validated search itself is tested in tests/calibration."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest
from client_fakes import MODEL_NAMES

from deepfake_client import InvalidInputError
from deepfake_client.calibration import Sample, best_threshold, calibrate, sample_scores, weight_grid
from deepfake_client.ensemble import score_frames


def test_frame_scores_follow_the_combiner_rule():
    frame = np.array([[0.2, 0.4, 0.6, 0.8], [0.9, 0.1, 0.1, 0.1]])
    weights = np.array([[1, 1, 0, 0], [0, 0, 2, 2]])  # renormalised: (0.5, 0.5, 0, 0) and (0, 0, 0.5, 0.5)
    # Face scores: first weights 0.3 and 0.5; second weights 0.7 and 0.1.
    np.testing.assert_allclose(score_frames([frame], weights, "max"), [[0.5, 0.7]])
    np.testing.assert_allclose(score_frames([frame], weights, "mean"), [[0.4, 0.4]])
    two_frames = score_frames([frame, frame[:1]], weights, "max")
    np.testing.assert_allclose(two_frames, [[0.5, 0.7], [0.3, 0.7]])


def test_frames_must_have_faces():
    with pytest.raises(ValueError, match="at least one face"):
        score_frames([np.zeros((0, 4))], np.ones((1, 4)))


def test_weight_grid_covers_the_simplex_with_at_least_two_models():
    grid = weight_grid(4, 0.1)
    assert len(grid) == comb(13, 3) - 4  # multiples of 0.1 summing to 1, minus the 4 single-model corners
    np.testing.assert_allclose(grid.sum(axis=1), 1.0)
    assert ((grid > 0).sum(axis=1) >= 2).all()
    assert len({tuple(row) for row in grid}) == len(grid)
    np.testing.assert_allclose(weight_grid(3, 0.5), [[0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])


def test_weight_grid_step_must_divide_one():
    with pytest.raises(InvalidInputError, match="step"):
        weight_grid(4, 0.3)


def test_best_f1_threshold_by_hand():
    labels = np.array([0, 0, 1, 1])
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    # Cut between 0.1 and 0.35 calls 0.35, 0.4, 0.8 fake: tp 2, fp 1 -> F1 0.8, the best cut.
    assert best_threshold(labels, scores, "f1", prior=0.5) == pytest.approx((0.225, 0.8))
    # Youden J = TPR - FPR: the same cut gives 1 - 0.5; above 0.4 gives 0.5 - 0: a tie, the nearer to 0.5 wins.
    assert best_threshold(labels, scores, "auc", prior=0.5) == pytest.approx((0.6, 0.5))
    assert best_threshold(labels, scores, "auc", prior=0.2) == pytest.approx((0.225, 0.5))


def test_video_level_samples_aggregate_their_frames():
    frames = (np.array([[0.9, 0.1, 0.1, 0.1]]), np.array([[0.1, 0.1, 0.1, 0.1], [0.5, 0.5, 0.5, 0.5]]))
    sample = Sample("video", 1, frames)
    weights = np.array([[1.0, 0, 0, 0], [0.25, 0.25, 0.25, 0.25]])
    # Frame scores: (0.9, 0.3) and (max(0.1, 0.5), max(0.1, 0.5)) = (0.5, 0.5).
    np.testing.assert_allclose(sample_scores([sample], weights, "max", "mean"), [[0.7, 0.4]])
    np.testing.assert_allclose(sample_scores([sample], weights, "max", "max"), [[0.9, 0.5]])


def test_calibration_needs_both_classes_and_known_choices():
    def samples(labels):
        return [Sample(f"s{i}", y, (np.full((1, 4), 0.5),)) for i, y in enumerate(labels)]

    with pytest.raises(InvalidInputError, match="both real and fake"):
        calibrate(samples([1, 1, 1]), MODEL_NAMES)
    with pytest.raises(InvalidInputError, match="objective"):
        calibrate(samples([0, 1, 0, 1]), MODEL_NAMES, objective="accuracy")
    with pytest.raises(InvalidInputError, match="calibration method"):
        calibrate(samples([0, 1, 0, 1]), MODEL_NAMES, method="beta")
    with pytest.raises(InvalidInputError, match="at least 2 real and 2 fake"):
        calibrate(samples([0, 1, 1]), MODEL_NAMES)
