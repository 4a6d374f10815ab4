"""The server's scoring rule restated client-side, and the weight/threshold search."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest
from client_fakes import MODEL_NAMES

from deepfake_client import EnsembleSettings, InvalidInputError
from deepfake_client.calibration import Sample, best_threshold, calibrate, sample_scores, weight_grid
from deepfake_client.ensemble import score_frames

CURRENT = EnsembleSettings(weights={name: 1.0 for name in MODEL_NAMES}, threshold=0.5)


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


def one_face_samples(per_model: np.ndarray, labels: np.ndarray) -> list:
    return [Sample(f"s{i}", int(y), (row[None, :],)) for i, (row, y) in enumerate(zip(per_model, labels, strict=True))]


def test_search_favours_the_model_that_separates_the_classes():
    rng = np.random.default_rng(0)
    labels = np.array([0, 1] * 30)
    per_model = rng.random((60, 4))
    per_model[:, 2] = 0.2 + 0.6 * labels + rng.random(60) * 0.05  # f3net separates the classes
    result = calibrate(one_face_samples(per_model, labels), MODEL_NAMES, CURRENT, objective="auc")

    assert result.score == pytest.approx(1.0)
    assert result.baseline_score < 0.9
    # Several weightings separate perfectly; the search keeps the one nearest the current (uniform) weights.
    assert max(result.weights, key=result.weights.get) == "f3net"
    assert result.weights["f3net"] > 0.25
    assert sum(result.weights.values()) == pytest.approx(1.0)
    assert sum(w > 0 for w in result.weights.values()) >= 2  # the server refuses fewer
    assert result.metrics.accuracy == 1.0  # the chosen threshold separates the classes too
    assert result.metrics.roc_auc == pytest.approx(1.0)
    assert result.candidates == len(weight_grid(4, 0.1))


def test_f1_objective_reaches_a_perfect_split_when_one_exists():
    rng = np.random.default_rng(1)
    labels = np.array([0] * 10 + [1] * 30)
    per_model = rng.random((40, 4)) * 0.3
    per_model[:, 0] += 0.6 * labels  # xception: fakes >= 0.6, reals < 0.3
    result = calibrate(one_face_samples(per_model, labels), MODEL_NAMES, CURRENT, objective="f1")
    assert result.score == pytest.approx(1.0) and result.metrics.f1 == pytest.approx(1.0)
    assert max(result.weights, key=result.weights.get) == "xception"


def test_ties_keep_the_current_weights_and_threshold():
    rng = np.random.default_rng(2)
    labels = np.array([0, 1] * 10)
    same = 0.3 + 0.4 * labels + 0.1 * rng.random(20)
    per_model = np.repeat(same[:, None], 4, axis=1)  # every model agrees: all weights score alike
    current = EnsembleSettings(weights=dict(zip(MODEL_NAMES, [4.0, 2.0, 2.0, 2.0], strict=True)), threshold=0.5)
    result = calibrate(one_face_samples(per_model, labels), MODEL_NAMES, current)
    assert result.weights == pytest.approx({"xception": 0.4, "efficientnet_b4": 0.2, "f3net": 0.2, "effort_clip": 0.2})
    assert 0.4 < result.threshold < 0.7 and result.threshold == pytest.approx(0.5, abs=0.11)


def test_video_level_samples_aggregate_their_frames():
    frames = (np.array([[0.9, 0.1, 0.1, 0.1]]), np.array([[0.1, 0.1, 0.1, 0.1], [0.5, 0.5, 0.5, 0.5]]))
    sample = Sample("video", 1, frames)
    weights = np.array([[1.0, 0, 0, 0], [0.25, 0.25, 0.25, 0.25]])
    # Frame scores: (0.9, 0.3) and (max(0.1, 0.5), max(0.1, 0.5)) = (0.5, 0.5).
    np.testing.assert_allclose(sample_scores([sample], weights, "max", "mean"), [[0.7, 0.4]])
    np.testing.assert_allclose(sample_scores([sample], weights, "max", "max"), [[0.9, 0.5]])


def test_calibration_needs_both_classes_and_known_models():
    samples = one_face_samples(np.full((3, 4), 0.5), np.array([1, 1, 1]))
    with pytest.raises(InvalidInputError, match="both real and fake"):
        calibrate(samples, MODEL_NAMES, CURRENT)
    samples = one_face_samples(np.full((2, 4), 0.5), np.array([0, 1]))
    partial = EnsembleSettings(weights={"xception": 1.0})
    with pytest.raises(InvalidInputError, match="no weight"):
        calibrate(samples, MODEL_NAMES, partial)
    with pytest.raises(InvalidInputError, match="objective"):
        calibrate(samples, MODEL_NAMES, CURRENT, objective="accuracy")
