"""The ensemble settings file: round trip, atomic write, and a clear error for each bad value."""

from __future__ import annotations

import json

import pytest

from deepfake_contract import settings
from deepfake_contract.settings import EnsembleSettings, SettingsError

WEIGHTS = {"xception": 1.0, "efficientnet_b4": 0.5, "f3net": 0.0, "effort_clip": 2.0}


def test_round_trip_keeps_every_field(tmp_path):
    original = EnsembleSettings(WEIGHTS, threshold=0.42, image_score="mean",
                                calibration={"method": "platt", "a": 1.5, "b": -0.2},
                                provenance={"data": "folder", "objective": "auc"})
    path = settings.dump(original, tmp_path / "sub" / "ensemble.json")
    assert settings.load(path) == original
    assert json.loads(path.read_text())["format"] == settings.FORMAT
    assert not list(path.parent.glob(".*partial"))


@pytest.mark.parametrize("change, message", [
    ({"threshold": 1.5}, "threshold"),
    ({"image_score": "median"}, "image_score"),
    ({"weights": {"xception": -1}}, "weights"),
    ({"weights": {"xception": float("nan")}}, "weights"),
    ({"weights": {}}, "weights"),
    ({"weights": {"xception": True, "f3net": False}}, "weights"),  # JSON true is not a weight of 1
    ({"threshold": True}, "threshold"),
    ({"threshold": False}, "threshold"),
    ({"calibration": {"method": "platt", "a": True, "b": 0.0}}, "finite numbers"),
    ({"calibration": {"method": "isotonic", "x": [False, True], "y": [0.1, 0.2]}}, "finite numbers"),
    ({"format": "v0"}, "format"),
    ({"extra": 1}, "unknown settings keys"),
    ({"calibration": {"method": "beta"}}, "calibration.method"),
    ({"calibration": {"method": "platt", "a": -1.0, "b": 0.0}}, "increasing"),
    ({"calibration": {"method": "isotonic", "x": [0.0, 0.0], "y": [0.1, 0.2]}}, "strictly increasing"),
    ({"calibration": {"method": "isotonic", "x": [0.0, 1.0], "y": [0.5, 0.2]}}, "non-decreasing"),
    ({"calibration": {"method": "isotonic", "x": [0.0], "y": [0.5]}}, "length"),
    ({"uncertain_band": {"low": 0.6, "high": 0.7}}, "low <= threshold"),  # the default 0.5 lies outside
    ({"uncertain_band": {"low": 0.5, "high": 0.5}}, "low < high"),
    ({"uncertain_band": {"low": 0.4, "high": 1.2}}, "high <= 1"),
    ({"uncertain_band": {"low": True, "high": 0.6}}, "finite numbers"),
    ({"uncertain_band": {"low": 0.4, "high": 0.6, "width": 1}}, "unknown uncertain_band keys"),
    ({"uncertain_band": [0.4, 0.6]}, "uncertain_band must be null or an object"),
])
def test_bad_values_are_refused_with_their_name(tmp_path, change, message):
    data = {**EnsembleSettings(WEIGHTS).to_dict(), **change}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(SettingsError, match=message):
        settings.load(path)


def test_the_band_round_trips_and_an_old_file_has_none(tmp_path):
    band = {"low": 0.31, "high": 0.55, "source": "threshold interval"}
    original = EnsembleSettings(WEIGHTS, threshold=0.42, uncertain_band=band)
    assert settings.load(settings.dump(original, tmp_path / "band.json")).uncertain_band == band
    old = EnsembleSettings(WEIGHTS).to_dict()
    del old["uncertain_band"]  # a file written before the band existed
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert settings.load(tmp_path / "old.json").uncertain_band is None


def test_unreadable_files_name_the_path(tmp_path):
    with pytest.raises(SettingsError, match="cannot read"):
        settings.load(tmp_path / "missing.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(SettingsError, match="not valid JSON"):
        settings.load(tmp_path / "broken.json")
