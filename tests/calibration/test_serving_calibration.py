"""The calibration map the combiner applies, and the combiner's hook."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from deepfake_serving.calibration import calibrated_probability
from deepfake_serving.combiner import CombinerConfigError, CombinerSettings, combine

NAMES = ("a", "b", "c")
PLATT = {"method": "platt", "a": 2.0, "b": -1.0}
ISOTONIC = {"method": "isotonic", "x": [0.2, 0.5, 0.8], "y": [0.0, 0.3, 0.9]}


def logits_for(probabilities: np.ndarray) -> list[np.ndarray]:
    """Per model, (faces, 2) logits whose softmax fake probability is the given column."""
    z = np.log(probabilities) - np.log1p(-probabilities)
    return [np.stack([np.zeros_like(col), col], axis=1) for col in z.T]


def test_platt_is_the_sigmoid_of_the_scaled_logit():
    p = np.array([0.1, 0.5, 0.9])
    expected = 1 / (1 + np.exp(-(2.0 * np.log(p / (1 - p)) - 1.0)))
    np.testing.assert_allclose(calibrated_probability(PLATT, p), expected, rtol=1e-12)
    assert np.isfinite(calibrated_probability(PLATT, np.array([0.0, 1.0]))).all()


def test_isotonic_interpolates_and_clamps():
    got = calibrated_probability(ISOTONIC, np.array([0.0, 0.2, 0.35, 0.65, 1.0]))
    np.testing.assert_allclose(got, [0.0, 0.0, 0.15, 0.6, 0.9])


@pytest.mark.parametrize("image_score", ["max", "mean"])
def test_combiner_serves_the_calibrated_map_of_the_uncalibrated_score(image_score):
    faces = np.array([[0.2, 0.6, 0.9], [0.7, 0.4, 0.3]])
    plain = CombinerSettings(NAMES, {n: 1.0 for n in NAMES}, threshold=0.5, image_score=image_score)
    calibrated = CombinerSettings(NAMES, {n: 1.0 for n in NAMES}, threshold=0.5, image_score=image_score,
                                  calibration=PLATT)
    before = combine(2, logits_for(faces), plain)
    after = combine(2, logits_for(faces), calibrated)
    assert after.fake_probability == pytest.approx(float(calibrated_probability(PLATT, before.fake_probability)))
    np.testing.assert_allclose(after.face_fake_probability,
                               calibrated_probability(PLATT, before.face_fake_probability), rtol=1e-6)
    np.testing.assert_array_equal(after.model_fake_probability, before.model_fake_probability)
    assert after.label == ("FAKE" if after.fake_probability > 0.5 else "REAL")


def test_threshold_is_compared_with_the_calibrated_probability():
    faces = np.array([[0.6, 0.6, 0.6]])  # raw score 0.6; Platt(2, -1): sigmoid(2*0.405 - 1) = 0.45287
    settings = CombinerSettings(NAMES, {n: 1.0 for n in NAMES}, threshold=0.5, calibration=PLATT)
    verdict = combine(1, logits_for(faces), settings)
    assert verdict.fake_probability == pytest.approx(0.45287, abs=1e-5)
    assert verdict.label == "REAL"  # the raw 0.6 would have been FAKE
    no_face = combine(0, [np.zeros((1, 2))] * 3, settings)
    assert no_face.label == "NO_FACE" and math.isnan(no_face.fake_probability)


def test_calibration_travels_through_the_config_parameters():
    settings = CombinerSettings(NAMES, {n: 1.0 for n in NAMES}, calibration=ISOTONIC)
    parameters = settings.to_parameters()
    assert json.loads(parameters["calibration"]) == ISOTONIC
    assert CombinerSettings.from_parameters(parameters).calibration == ISOTONIC
    plain = CombinerSettings(NAMES, {n: 1.0 for n in NAMES})
    assert CombinerSettings.from_parameters(plain.to_parameters()).calibration is None
    del parameters["calibration"]  # configs written before calibration existed
    assert CombinerSettings.from_parameters(parameters).calibration is None


def test_a_bad_calibration_is_refused_at_load():
    with pytest.raises(CombinerConfigError, match="increasing"):
        CombinerSettings(NAMES, {n: 1.0 for n in NAMES}, calibration={"method": "platt", "a": -1.0, "b": 0.0})
