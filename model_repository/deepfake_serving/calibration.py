"""The installed calibration map: ensemble score -> calibrated fake probability.

Pure NumPy. The map is one of the two monotone forms of the settings file
(deepfake_contract.settings): Platt, p = sigmoid(a * logit(score) + b), or isotonic,
piecewise linear through (x, y) points and constant beyond them. The client restates
this map (deepfake_client.probability) because it must not import server code; a test
checks that the two agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

# Scores are clipped to [EPS, 1 - EPS] before the logit, so 0 and 1 map to finite values.
EPS = 1e-9


def logit(scores: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(scores, dtype=np.float64), EPS, 1.0 - EPS)
    return np.log(p) - np.log1p(-p)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))


def calibrated_probability(calibration: Mapping[str, Any], scores: np.ndarray) -> np.ndarray:
    """Apply a (validated) calibration to scores in [0, 1]; same shape, float64."""
    scores = np.asarray(scores, dtype=np.float64)
    if calibration["method"] == "platt":
        return sigmoid(calibration["a"] * logit(scores) + calibration["b"])
    if calibration["method"] == "isotonic":
        return np.interp(scores, calibration["x"], calibration["y"])
    raise ValueError(f"unknown calibration method {calibration['method']!r}")
