"""Conversion parity through the served chain: PyTorch -> ONNX -> Triton.

The same crops must give the same logits whether run by onnxruntime directly or
by each classifier model inside Triton, and the ensemble's per-model
probabilities must match the PyTorch models on the fixed checkpoints.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import tritonclient.grpc as grpcclient

import deepfake_contract as contract
from deepfake_dev import samples
from deepfake_models import CLASSIFIERS
from deepfake_models.servable import load_servable
from deepfake_serving.combiner import fake_probability
from deepfake_serving.cpu_runtime import open_classifier
from deepfake_serving.detection import detect_faces
from deepfake_serving.faces import FaceDetector
from export.artifacts import BuildArtifacts

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def local_detection(sample_media):
    """The face_detector step computed in this process, for the two-face image."""
    data = (sample_media / samples.TWO_FACES_IMAGE).read_bytes()
    (detection,) = detect_faces([data], FaceDetector())
    assert int(detection.num_faces[0]) == 2
    return data, detection


def infer(url: str, model: str, name: str, array: np.ndarray, outputs: list[str]) -> dict[str, np.ndarray]:
    client = grpcclient.InferenceServerClient(url)
    tensor = grpcclient.InferInput(name, list(array.shape), "UINT8")
    tensor.set_data_from_numpy(array)
    result = client.infer(model, [tensor], outputs=[grpcclient.InferRequestedOutput(o) for o in outputs])
    return {o: result.as_numpy(o) for o in outputs}


def test_face_detector_in_triton_matches_the_local_pipeline(deepfake_server, local_detection):
    data, local = local_detection
    sizes = sorted(local.crops)
    names = [contract.crop_tensor(s).name for s in sizes] + ["NUM_FACES", "FACE_BOXES", "FACE_LANDMARKS"]
    served = infer(deepfake_server.grpc_url, contract.FACE_DETECTOR_NAME, "IMAGE",
                   np.frombuffer(data, np.uint8), names)
    assert served["NUM_FACES"].tolist() == local.num_faces.tolist()
    np.testing.assert_allclose(served["FACE_BOXES"], local.boxes, atol=0.05)
    np.testing.assert_allclose(served["FACE_LANDMARKS"], local.landmarks, atol=0.05)
    for size in sizes:
        crops = served[contract.crop_tensor(size).name]
        assert crops.dtype == np.uint8 and crops.shape == local.crops[size].shape
        # Same code; only float rounding in MTCNN may move a landmark by a hair.
        diff = np.abs(crops.astype(int) - local.crops[size].astype(int))
        assert diff.mean() < 0.5, f"{size}: mean |Δ| = {diff.mean():.3f}"


@pytest.mark.parametrize("spec", CLASSIFIERS, ids=lambda s: s.name)
def test_classifier_in_triton_equals_its_runtime_run_directly(deepfake_server, export_artifacts, local_detection, spec):
    """The cpu repository serves the classifiers on OpenVINO (repository.json says so); served
    and run in this process on the same runtime, the logits agree."""
    import json

    runtime = json.loads((deepfake_server.repository / "repository.json").read_text())["cpu_runtime"]
    assert runtime == "openvino"
    crops = local_detection[1].crops[spec.input_size]
    served = infer(deepfake_server.grpc_url, spec.name, contract.CLASSIFIER_INPUT, crops,
                   [contract.CLASSIFIER_OUTPUT])[contract.CLASSIFIER_OUTPUT]
    classifier = open_classifier(BuildArtifacts(export_artifacts).onnx(spec.name), runtime)
    assert classifier.runtime == "openvino"
    direct = classifier(crops)
    assert served.shape == (len(crops), 2) and served.dtype == np.float32
    np.testing.assert_allclose(served, direct, rtol=1e-5, atol=1e-5)


def test_ensemble_per_model_probabilities_match_pytorch(deepfake_server, export_artifacts, local_detection):
    """Golden chain: fixed checkpoint in PyTorch FP32 vs the served ensemble, same image."""
    data, local = local_detection
    outputs = ["MODEL_FAKE_PROBABILITY", "FACE_BOXES"]
    served = infer(deepfake_server.grpc_url, contract.ENSEMBLE_NAME, "IMAGE", np.frombuffer(data, np.uint8), outputs)
    np.testing.assert_allclose(served["FACE_BOXES"], local.boxes, atol=0.05)
    artifacts = BuildArtifacts(export_artifacts)
    columns = []
    for spec in CLASSIFIERS:
        model = load_servable(spec, artifacts.fixed_checkpoint(spec.name))
        with torch.inference_mode():
            logits = model(torch.from_numpy(local.crops[spec.input_size])).numpy()
        columns.append(fake_probability(logits))
    expected = np.stack(columns, axis=1)
    np.testing.assert_allclose(served["MODEL_FAKE_PROBABILITY"], expected, atol=1e-4)
