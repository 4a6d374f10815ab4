"""The ensemble settings file: what `deepfake calibrate` writes and the repository assembly reads.

One small JSON document, so a calibration survives every rebuild of the repository
(generated configs are never edited in place):

    {
      "format": "deepfake-ensemble-settings/1",
      "weights": {"xception": 1.0, "efficientnet_b4": 1.0, "f3net": 1.0, "effort_clip": 1.0},
      "threshold": 0.5,
      "image_score": "max",
      "calibration": null,
      "uncertain_band": null,
      "provenance": {"data": "...", "objective": "...", "created": "2026-11-30T04:30:00+00:00"}
    }

`calibration` is null (the served score is the weighted mean of the models' softmax
probabilities) or a monotone map from that score to a calibrated probability:
{"method": "platt", "a": float, "b": float} (p = sigmoid(a * logit(score) + b)) or
{"method": "isotonic", "x": [...], "y": [...]} (piecewise linear through the points,
x strictly increasing in [0, 1], y non-decreasing in [0, 1]).

`uncertain_band` is null (off: every face is FAKE or REAL) or {"low": float, "high": float,
"source": str} with low <= threshold <= high and low < high, on the same scale as the threshold
(the calibrated probability when a calibration is served): a score in [low, high] is UNCERTAIN.
`deepfake calibrate` writes it from the threshold's bootstrap interval or a chosen coverage;
`source` says which. A file without the key has no band.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = "deepfake-ensemble-settings/1"
# Where `deepfake calibrate` writes and `make repository` looks (relative to the working directory).
DEFAULT_PATH = "ensemble-settings.json"
DEFAULT_THRESHOLD = 0.5
IMAGE_SCORES = ("max", "mean")  # "max": the most-fake face decides; "mean": average over faces
DEFAULT_IMAGE_SCORE = "max"
CALIBRATION_METHODS = ("platt", "isotonic")


class SettingsError(ValueError):
    """The settings file is unreadable or holds an unusable value (the message says which)."""


def _is_number(value: Any) -> bool:
    """A JSON number: int or float, not a bool (`True` is an int in Python, not a weight)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class EnsembleSettings:
    weights: Mapping[str, float]
    threshold: float = DEFAULT_THRESHOLD
    image_score: str = DEFAULT_IMAGE_SCORE
    calibration: Mapping[str, Any] | None = None
    uncertain_band: Mapping[str, Any] | None = None
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        bad = {m: w for m, w in self.weights.items() if not (_is_number(w) and math.isfinite(w) and w >= 0)}
        if bad:
            raise SettingsError(f"weights must be finite numbers >= 0, got {bad}")
        if not (_is_number(self.threshold) and 0.0 <= self.threshold <= 1.0):
            raise SettingsError(f"threshold must be in [0, 1], got {self.threshold!r}")
        if self.image_score not in IMAGE_SCORES:
            raise SettingsError(f"image_score must be one of {IMAGE_SCORES}, got {self.image_score!r}")
        if self.calibration is not None:
            check_calibration(self.calibration)
        if self.uncertain_band is not None:
            check_band(self.uncertain_band, self.threshold)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "weights": {m: float(w) for m, w in self.weights.items()},
            "threshold": float(self.threshold),
            "image_score": self.image_score,
            "calibration": None if self.calibration is None else dict(self.calibration),
            "uncertain_band": None if self.uncertain_band is None else dict(self.uncertain_band),
            "provenance": dict(self.provenance),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EnsembleSettings:
        if not isinstance(data, Mapping):
            raise SettingsError(f"expected a JSON object, got {type(data).__name__}")
        if data.get("format") != FORMAT:
            raise SettingsError(f"unknown settings format {data.get('format')!r}; expected {FORMAT!r}")
        unknown = set(data) - {"format", "weights", "threshold", "image_score", "calibration", "uncertain_band", "provenance"}
        if unknown:
            raise SettingsError(f"unknown settings keys {sorted(unknown)}")
        weights = data.get("weights")
        if not isinstance(weights, Mapping) or not weights:
            raise SettingsError("'weights' must be a non-empty object of model name -> weight")
        return cls(
            weights={str(k): v for k, v in weights.items()},
            threshold=data.get("threshold", DEFAULT_THRESHOLD),
            image_score=data.get("image_score", DEFAULT_IMAGE_SCORE),
            calibration=data.get("calibration"),
            uncertain_band=data.get("uncertain_band"),
            provenance=data.get("provenance") or {},
        )


def check_calibration(calibration: Mapping[str, Any]) -> None:
    """Raise SettingsError unless `calibration` is a valid monotone map (see the module doc)."""
    method = calibration.get("method") if isinstance(calibration, Mapping) else None
    if method not in CALIBRATION_METHODS:
        raise SettingsError(f"calibration.method must be one of {CALIBRATION_METHODS}, got {method!r}")
    if method == "platt":
        a, b = calibration.get("a"), calibration.get("b")
        if not all(_is_number(v) and math.isfinite(v) for v in (a, b)):
            raise SettingsError(f"platt calibration needs finite numbers a and b, got a={a!r}, b={b!r}")
        if a <= 0:
            raise SettingsError(f"platt calibration must be increasing (a > 0), got a={a}")
        return
    x, y = calibration.get("x"), calibration.get("y")
    if not (isinstance(x, list) and isinstance(y, list) and len(x) == len(y) >= 2):
        raise SettingsError("isotonic calibration needs lists x and y of the same length >= 2")
    if not all(_is_number(v) and math.isfinite(v) and 0.0 <= v <= 1.0 for v in x + y):
        raise SettingsError("isotonic calibration points must be finite numbers in [0, 1]")
    if any(b <= a for a, b in zip(x, x[1:])):
        raise SettingsError("isotonic calibration x must be strictly increasing")
    if any(b < a for a, b in zip(y, y[1:])):
        raise SettingsError("isotonic calibration y must be non-decreasing")


def check_band(band: Mapping[str, Any], threshold: float) -> None:
    """Raise SettingsError unless `band` is an uncertain band around `threshold` (see the module doc)."""
    if not isinstance(band, Mapping):
        raise SettingsError(f"uncertain_band must be null or an object, got {type(band).__name__}")
    unknown = set(band) - {"low", "high", "source"}
    if unknown:
        raise SettingsError(f"unknown uncertain_band keys {sorted(unknown)}")
    low, high = band.get("low"), band.get("high")
    if not all(_is_number(v) and math.isfinite(v) for v in (low, high)):
        raise SettingsError(f"uncertain_band needs finite numbers low and high, got low={low!r}, high={high!r}")
    if not 0.0 <= low <= threshold <= high <= 1.0 or low >= high:
        raise SettingsError(
            f"uncertain_band must satisfy 0 <= low <= threshold <= high <= 1 and low < high, "
            f"got low={low}, threshold={threshold}, high={high}")
    if not isinstance(band.get("source", ""), str):
        raise SettingsError("uncertain_band.source must be text")


def load(path: str | Path) -> EnsembleSettings:
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise SettingsError(f"cannot read settings file {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise SettingsError(f"settings file {path} is not valid JSON: {exc}") from None
    try:
        return EnsembleSettings.from_dict(data)
    except SettingsError as exc:
        raise SettingsError(f"settings file {path}: {exc}") from None


def dump(settings: EnsembleSettings, path: str | Path) -> Path:
    """Write atomically (a half-written settings file must never be served)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(settings.to_dict(), indent=2) + "\n")
    partial.replace(path)
    return path
