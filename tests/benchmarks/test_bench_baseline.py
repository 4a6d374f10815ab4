"""The seed-style baseline: the served crops, the four models one after another, one face at a time."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from benchmarks.comparison.baseline import SeedPipeline
from benchmarks.load.workload import image_requests
from deepfake_models import CLASSIFIERS
from deepfake_serving.detection import detect_faces
from deepfake_serving.faces import FaceDetector
from deepfake_serving.images import InvalidImageError


class RecordingModel(nn.Module):
    """Stands in for a classifier: records what it is given, answers fixed logits."""

    def __init__(self, logits: tuple[float, float], calls: list) -> None:
        super().__init__()
        self.logits = torch.tensor([logits])
        self.calls = calls

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        self.calls.append((self, faces.clone(), torch.is_inference_mode_enabled()))
        return self.logits.repeat(len(faces), 1)


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


@pytest.fixture()
def pipeline(detector):
    calls: list = []
    models = {spec: RecordingModel((0.0, float(i)), calls) for i, spec in enumerate(CLASSIFIERS)}
    return SeedPipeline(models, detector), models, calls


def test_one_face_runs_each_model_once_at_batch_one_on_the_served_crops(pipeline, detector):
    seed, models, calls = pipeline
    image = image_requests()["face"].payloads[0]
    verdict = seed(image)
    (served,) = detect_faces([image], detector)
    assert [call[0] for call in calls] == list(models.values())  # one after another, in order
    for (_model, faces, inference_mode), spec in zip(calls, CLASSIFIERS):
        assert faces.shape == (1, spec.input_size, spec.input_size, 3) and faces.dtype == torch.uint8
        assert np.array_equal(faces.numpy(), served.crops[spec.input_size][:1])
        assert inference_mode
    assert verdict.num_faces == 1
    # logits (0, i): fake probability sigmoid(i) per model, in the models' order
    np.testing.assert_allclose(verdict.model_fake_probability, [[0.5, *(1 / (1 + np.exp(-i)) for i in (1, 2, 3))]],
                               rtol=1e-6)
    assert verdict.label == "FAKE"  # mean of those is above 0.5


def test_two_faces_are_scored_one_at_a_time(pipeline):
    seed, models, calls = pipeline
    verdict = seed(image_requests()["two_faces"].payloads[0])
    assert verdict.num_faces == 2
    assert len(calls) == 8 and all(len(faces) == 1 for _, faces, _ in calls)
    assert verdict.model_fake_probability.shape == (2, 4)


def test_no_face_skips_the_classifiers(pipeline):
    seed, _, calls = pipeline
    verdict = seed(image_requests()["no_face"].payloads[0])
    assert (verdict.label, verdict.num_faces, calls) == ("NO_FACE", 0, [])
    assert verdict.model_fake_probability.shape == (0, 4)


def test_an_undecodable_image_raises_the_served_error(pipeline):
    seed, _, calls = pipeline
    with pytest.raises(InvalidImageError, match="not an image"):
        seed(b"this is not an image")
    assert calls == []


@pytest.mark.slow
def test_the_real_baseline_agrees_with_the_exported_onnx_models(export_artifacts, detector):
    """Same fixed checkpoints, same crops: eager FP32 PyTorch and the served ONNX give the same scores."""
    from deepfake_serving.onnx_classifier import OnnxClassifier
    from export.artifacts import BuildArtifacts

    torch.set_num_threads(2)
    artifacts = BuildArtifacts(export_artifacts)
    seed = SeedPipeline.load(artifacts)
    image = image_requests()["face"].payloads[0]
    verdict = seed(image)
    (served,) = detect_faces([image], detector)
    for column, spec in enumerate(CLASSIFIERS):
        logits = OnnxClassifier(artifacts.onnx(spec.name))(served.crops[spec.input_size])
        probability = 1 / (1 + np.exp(logits[0, 0] - logits[0, 1]))
        assert verdict.model_fake_probability[0, column] == pytest.approx(probability, abs=1e-4)
