"""A settings file with a calibration, assembled and served by the real Triton server.

The returned FAKE_PROBABILITY (and each face's) must be the calibrated map of the
uncalibrated ensemble score, which the response lets us recompute from the models'
probabilities.
"""

from __future__ import annotations

import numpy as np
import pytest

from deepfake_client import DeepfakeClient, Label
from deepfake_contract import settings as ensemble_settings
from deepfake_dev import samples
from deepfake_serving.calibration import calibrated_probability
from deepfake_serving.combiner import CombinerSettings
from export import triton_config
from export.repository import RepositoryOptions, assemble
from export.specs import CLASSIFIERS

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::deepfake_client.UntrainedModelsWarning")]

NAMES = tuple(spec.name for spec in CLASSIFIERS)
SETTINGS = ensemble_settings.EnsembleSettings(
    weights=dict(zip(NAMES, [1.0, 2.0, 1.0, 1.0], strict=True)),
    threshold=0.4,
    image_score="max",
    calibration={"method": "platt", "a": 3.0, "b": -0.5},
    provenance={"data": "synthetic", "objective": "integration test"},
)


def assemble_with_settings(artifacts, out, settings_file):
    """What `deepfake-export repository --settings FILE` does once the consolidation branch lands.

    Until then, this branch's assemble() takes weights, threshold and image score as options,
    and the combiner config is rendered again, by the same generator, with the calibration added.
    """
    settings = ensemble_settings.load(settings_file)
    repository = assemble(artifacts, out, RepositoryOptions(weights=dict(settings.weights),
                                                            threshold=settings.threshold,
                                                            image_score=settings.image_score))
    combiner = CombinerSettings(model_names=NAMES, weights=dict(settings.weights), threshold=settings.threshold,
                                image_score=settings.image_score, calibration=settings.calibration)
    config = triton_config.combiner_config(NAMES, combiner.to_parameters())
    (repository / config.name / "config.pbtxt").write_text(triton_config.render(config))
    return repository


@pytest.fixture(scope="module")
def calibrated_server(export_artifacts, tmp_path_factory):
    from deepfake_dev.local_server import LocalTritonServer, Ports

    folder = tmp_path_factory.mktemp("calibrated")
    settings_file = ensemble_settings.dump(SETTINGS, folder / "settings.json")
    repository = assemble_with_settings(export_artifacts, folder / "repository", settings_file)
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
