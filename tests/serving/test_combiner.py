import math

import numpy as np
import pytest

from deepfake_serving.combiner import (
    LABEL_UNCERTAIN,
    CombinerConfigError,
    CombinerInputError,
    CombinerSettings,
    combine,
    face_count,
    fake_probability,
)

NAMES = ("a", "b", "c", "d")


def settings(**overrides):
    values = dict(model_names=NAMES, weights={"a": 1.0, "b": 1.0, "c": 2.0, "d": 0.0})
    values.update(overrides)
    return CombinerSettings(**values)


def logits_for(probabilities):
    """Logits (N, 2) whose softmax[:, 1] equals the given probabilities."""
    p = np.asarray(probabilities, dtype=np.float64)
    return np.stack([np.zeros_like(p), np.log(p / (1 - p))], axis=1).astype(np.float32)


def test_fake_probability_is_softmax_index_1():
    logits = np.array([[2.0, -1.0], [0.0, 0.0], [-30.0, 50.0], [800.0, -800.0]], np.float32)
    e = np.exp(logits[:3].astype(np.float64))
    expected = e[:, 1] / e.sum(axis=1)
    got = fake_probability(logits)
    np.testing.assert_allclose(got[:3], expected, rtol=1e-12)
    assert got[3] == 0.0  # stable for huge logits (naive exp overflows)


def test_weighted_average_renormalises_over_enabled_models():
    probs = [[0.9, 0.2], [0.5, 0.4], [0.1, 0.3], [0.99, 0.99]]  # per model, per face
    verdict = combine(2, [logits_for(p) for p in probs], settings())
    expected = (np.array(probs[0]) + np.array(probs[1]) + 2 * np.array(probs[2])) / 4
    np.testing.assert_allclose(verdict.face_fake_probability, expected, atol=1e-6)
    np.testing.assert_allclose(verdict.model_fake_probability, np.array(probs).T, atol=1e-6)
    assert verdict.fake_probability == pytest.approx(expected.max(), abs=1e-6)
    assert verdict.label == "REAL"  # most-fake face: (0.9 + 0.5 + 2 * 0.1) / 4 = 0.4


def test_label_follows_threshold_and_image_score():
    probs = [[0.8, 0.2]] * 4
    logits = [logits_for(p) for p in probs]
    weights = {n: 1.0 for n in NAMES}
    by_max = combine(2, logits, settings(weights=weights, threshold=0.5))
    assert (by_max.label, by_max.fake_probability) == ("FAKE", pytest.approx(0.8, abs=1e-6))
    by_mean = combine(2, logits, settings(weights=weights, threshold=0.5, image_score="mean"))
    assert by_mean.fake_probability == pytest.approx(0.5, abs=1e-6)
    assert by_mean.label == "REAL"  # FAKE only strictly above the threshold
    strict = combine(2, logits, settings(weights=weights, threshold=0.85))
    assert strict.label == "REAL"


def test_placeholder_rows_are_masked_when_no_face():
    placeholder = [np.array([[5.0, -5.0]], np.float32)] * 4  # one row that must be ignored
    verdict = combine(0, placeholder, settings())
    assert verdict.label == "NO_FACE"
    assert math.isnan(verdict.fake_probability)
    assert verdict.face_fake_probability.shape == (0,)
    assert verdict.model_fake_probability.shape == (0, 4)


def test_the_no_face_placeholder_row_is_ignored():
    rows = [logits_for([0.99]) for _ in NAMES]
    verdict = combine(0, rows, settings())
    assert verdict.face_fake_probability.shape == (0,) and verdict.label == "NO_FACE"


def test_rows_beyond_num_faces_are_refused():
    # face_detector sends exactly max(NUM_FACES, 1) rows: more is an inconsistent request.
    rows = [logits_for([0.1, 0.99]) for _ in NAMES]
    with pytest.raises(CombinerInputError, match="2 logit rows for NUM_FACES=1"):
        combine(1, rows, settings())


@pytest.mark.parametrize(
    "weights, message",
    [
        ({"a": 1.0, "b": 0.0, "c": 0.0, "d": 0.0}, "at least 2 models"),
        ({"a": 1.0, "b": 1.0, "c": 1.0}, "no weight given"),
        ({"a": 1.0, "b": 1.0, "c": 1.0, "d": 1.0, "e": 1.0}, "unknown models"),
        ({"a": -1.0, "b": 1.0, "c": 1.0, "d": 1.0}, ">= 0"),
        ({"a": float("nan"), "b": 1.0, "c": 1.0, "d": 1.0}, "finite"),
    ],
)
def test_bad_weights_are_refused(weights, message):
    with pytest.raises(CombinerConfigError, match=message):
        settings(weights=weights)


def test_bad_threshold_and_image_score_are_refused():
    with pytest.raises(CombinerConfigError, match="threshold"):
        settings(threshold=1.5)
    with pytest.raises(CombinerConfigError, match="image_score"):
        settings(image_score="median")


def test_parameters_round_trip():
    original = settings(threshold=0.7, image_score="mean", untrained_models=frozenset({"a"}))
    restored = CombinerSettings.from_parameters(original.to_parameters())
    assert restored == original


def test_malformed_weight_parameter_is_a_clear_error():
    with pytest.raises(CombinerConfigError, match="not valid JSON"):
        CombinerSettings.from_parameters({"model_names": '["a", "b"]', "weights": "{a: 1"})
    with pytest.raises(CombinerConfigError, match="'weights' is missing"):
        CombinerSettings.from_parameters({"model_names": '["a", "b"]'})
    with pytest.raises(CombinerConfigError, match="must be a JSON list"):
        CombinerSettings.from_parameters({"model_names": '{"a": 1}', "weights": "{}"})


@pytest.mark.parametrize(
    "num_faces, rows, message",
    [
        (-1, [logits_for([0.5])] * 4, "NUM_FACES must be >= 0"),
        (1, [np.array([[np.nan, 0.0]], np.float32)] + [logits_for([0.5])] * 3, "finite"),
        (1, [np.array([[np.inf, 0.0]], np.float32)] + [logits_for([0.5])] * 3, "finite"),
        (2, [logits_for([0.5, 0.5])] * 3 + [logits_for([0.5])], "1 logit rows for NUM_FACES=2"),
        (1, [logits_for([0.5])] * 3 + [logits_for([])], "0 logit rows for NUM_FACES=1"),
        (0, [logits_for([0.5])] * 3 + [logits_for([])], "different numbers of rows"),
        (1, [logits_for([0.5])] * 3, "expected logits of 4 models"),
        (1, [np.zeros((1, 3), np.float32)] * 4, r"shape \(faces, 2\)"),
        (1, [np.zeros((2,), np.float32)] * 4, r"shape \(faces, 2\)"),
    ],
)
def test_inconsistent_inputs_are_refused_with_a_message(num_faces, rows, message):
    with pytest.raises(CombinerInputError, match=message):
        combine(num_faces, rows, settings())


def test_nan_in_a_placeholder_row_is_not_scored():
    rows = [np.array([[np.nan, np.nan]], np.float32)] * 4
    assert combine(0, rows, settings()).label == "NO_FACE"


@pytest.mark.parametrize("tensor", [np.array([], np.int32), np.array([1, 2], np.int32),
                                    np.array([[1]], np.int32), np.array([1.0], np.float32),
                                    np.array([-3], np.int32)])
def test_face_count_refuses_anything_but_one_non_negative_integer(tensor):
    with pytest.raises(CombinerInputError, match="NUM_FACES"):
        face_count(tensor)
    assert face_count(np.array([3], np.int32)) == 3


BAND = {"low": 0.4, "high": 0.6, "source": "test"}


def test_scores_inside_the_band_are_uncertain_and_the_label_keeps_its_side():
    # Equal weights over a, b, c (d off): each face's score is its row's value.
    rows = [0.39, 0.41, 0.55, 0.59, 0.61]  # away from the ends: scores travel as float32
    logits = [logits_for(rows) for _ in NAMES]
    verdict = combine(5, logits, settings(weights={"a": 1.0, "b": 1.0, "c": 1.0, "d": 0.0}, uncertain_band=BAND))
    assert verdict.face_verdicts == ("REAL", LABEL_UNCERTAIN, LABEL_UNCERTAIN, LABEL_UNCERTAIN, "FAKE")
    assert verdict.label == "FAKE" and verdict.verdict == "FAKE"  # the image score is the max, 0.61
    inside = combine(2, [logits_for([0.45, 0.55]) for _ in NAMES], settings(uncertain_band=BAND))
    assert inside.label == "FAKE" and inside.verdict == LABEL_UNCERTAIN


def test_without_a_band_the_verdict_is_the_label():
    verdict = combine(2, [logits_for([0.45, 0.55]) for _ in NAMES], settings())
    assert verdict.verdict == verdict.label == "FAKE"
    assert verdict.face_verdicts == ("REAL", "FAKE")
    no_face = combine(0, [np.zeros((1, 2), np.float32) for _ in NAMES], settings(uncertain_band=BAND))
    assert no_face.verdict == "NO_FACE" and no_face.face_verdicts == ()


def test_the_band_applies_to_the_calibrated_probability():
    calibration = {"method": "platt", "a": 1.0, "b": 2.0}  # lifts 0.3 to about 0.76
    raw = combine(1, [logits_for([0.3]) for _ in NAMES], settings(uncertain_band=BAND))
    calibrated = combine(1, [logits_for([0.3]) for _ in NAMES], settings(uncertain_band=BAND, calibration=calibration))
    assert raw.verdict == "REAL" and calibrated.verdict == "FAKE"


@pytest.mark.parametrize("band", [{"low": 0.6, "high": 0.7}, {"low": 0.5, "high": 0.5}, {"low": "0.4", "high": 0.6}])
def test_a_band_that_does_not_hold_the_threshold_is_refused(band):
    with pytest.raises(CombinerConfigError, match="uncertain_band"):
        settings(uncertain_band=band)


def test_the_band_round_trips_through_the_parameters():
    configured = settings(uncertain_band=BAND)
    assert CombinerSettings.from_parameters(configured.to_parameters()) == configured
    assert CombinerSettings.from_parameters(settings().to_parameters()).uncertain_band is None
