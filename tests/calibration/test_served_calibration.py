"""A settings file with a calibration, assembled as `make serve` does
(`deepfake-export repository --settings FILE`) and served by the real Triton server.

The served weights and threshold are the file's, and the returned FAKE_PROBABILITY (and
each face's) is the calibrated map of the uncalibrated ensemble score, which the
response lets us recompute from the models' probabilities.
"""

from __future__ import annotations

import numpy as np
import pytest

from deepfake_client import DeepfakeClient, Label
from deepfake_contract import settings as ensemble_settings
from deepfake_dev import samples
from deepfake_models import CLASSIFIERS
from deepfake_serving.calibration import calibrated_probability
from export.cli import main as export_main

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::deepfake_client.UntrainedModelsWarning")]

NAMES = tuple(spec.name for spec in CLASSIFIERS)
SETTINGS = ensemble_settings.EnsembleSettings(
    weights=dict(zip(NAMES, [1.0, 2.0, 1.0, 1.0], strict=True)),
    threshold=0.4,
    image_score="max",
    calibration={"method": "platt", "a": 3.0, "b": -0.5},
    provenance={"data": "synthetic", "objective": "integration test"},
)


@pytest.fixture(scope="module")
def calibrated_server(export_artifacts, tmp_path_factory):
    from deepfake_dev.local_server import LocalTritonServer, Ports

    folder = tmp_path_factory.mktemp("calibrated")
    settings_file = ensemble_settings.dump(SETTINGS, folder / "settings.json")
    repository = folder / "repository"
    assert export_main(["repository", "--artifacts", str(export_artifacts), "--out", str(repository),
                        "--settings", str(settings_file)]) == 0
    server = LocalTritonServer(repository, Ports.free(), log_path=folder / "tritonserver.log")
    server.start(timeout_s=900)
    yield server
    server.stop()


@pytest.mark.parametrize("image", [samples.FACE_IMAGE, samples.TWO_FACES_IMAGE])
def test_served_probability_is_the_calibrated_map_of_the_ensemble_score(calibrated_server, sample_media, image):
    with DeepfakeClient(calibrated_server.grpc_url, timeout_s=300) as client:
        result = client.detect(sample_media / image)
    assert result.faces
    weights = np.array([SETTINGS.weights[name] for name in result.model_names])
    raw = np.array([[face.model_probabilities[name] for name in result.model_names] for face in result.faces])
    raw_faces = raw @ (weights / weights.sum())  # the uncalibrated per-face ensemble score
    expected_faces = calibrated_probability(SETTINGS.calibration, raw_faces)
    np.testing.assert_allclose([face.fake_probability for face in result.faces], expected_faces, atol=1e-5)
    expected = float(calibrated_probability(SETTINGS.calibration, raw_faces.max()))
    assert result.fake_probability == pytest.approx(expected, abs=1e-5)
    assert abs(result.fake_probability - raw_faces.max()) > 1e-3  # the calibration did change the number
    assert result.label == (Label.FAKE if expected > SETTINGS.threshold else Label.REAL)


def test_served_settings_are_the_files(calibrated_server):
    with DeepfakeClient(calibrated_server.grpc_url, timeout_s=300) as client:
        served = client.ensemble_settings()
    assert served.weights == pytest.approx(SETTINGS.weights)
    assert served.threshold == pytest.approx(SETTINGS.threshold)
