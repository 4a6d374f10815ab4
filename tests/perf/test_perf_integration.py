"""On the real Triton server (cpu flavour): classifiers skip rows marked not present,
and the ensemble reports the faces found before the max_faces cut."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

import deepfake_contract as contract
from deepfake_dev import samples

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from triton_calls import infer_image  # noqa: E402

pytestmark = pytest.mark.integration


def classify(url: str, crops: np.ndarray, present: np.ndarray | None) -> np.ndarray:
    client = grpcclient.InferenceServerClient(url)
    faces = grpcclient.InferInput(contract.CLASSIFIER_INPUT, list(crops.shape), "UINT8")
    faces.set_data_from_numpy(crops)
    inputs = [faces]
    if present is not None:
        marks = grpcclient.InferInput(contract.FACE_PRESENT.name, list(present.shape), "BOOL")
        marks.set_data_from_numpy(present)
        inputs.append(marks)
    return client.infer("xception", inputs).as_numpy(contract.CLASSIFIER_OUTPUT)


def test_the_served_classifier_skips_rows_marked_absent(deepfake_server):
    crops = np.random.default_rng(0).integers(0, 256, (3, 256, 256, 3), dtype=np.uint8)
    everything = classify(deepfake_server.grpc_url, crops, None)
    marked = classify(deepfake_server.grpc_url, crops, np.array([[True], [False], [True]]))
    assert np.abs(everything).sum(axis=1).min() > 0  # the network answers every real row
    np.testing.assert_array_equal(marked[1], [0.0, 0.0])
    np.testing.assert_allclose(marked[[0, 2]], everything[[0, 2]], atol=1e-4)


def test_the_ensemble_reports_faces_found(deepfake_server, sample_media):
    two = infer_image(deepfake_server.grpc_url, (sample_media / samples.TWO_FACES_IMAGE).read_bytes())
    assert two["NUM_FACES_FOUND"].tolist() == [2] and two["NUM_FACES"].tolist() == [2]
    none = infer_image(deepfake_server.grpc_url, (sample_media / samples.NO_FACE_IMAGE).read_bytes())
    assert none["NUM_FACES_FOUND"].tolist() == [0] and none["LABEL"].tolist() == [b"NO_FACE"]
