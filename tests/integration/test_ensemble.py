"""The deepfake_detector ensemble on the real Triton server (cpu flavour, demo weights).

Uses tritonclient directly, not our SDK, so that these tests pin the server contract.
"""

from __future__ import annotations

import json
import math
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from triton_calls import infer_image
from tritonclient.utils import InferenceServerException

import deepfake_contract as contract
from deepfake_dev import samples
from deepfake_models import CLASSIFIERS
from deepfake_serving.images import ImageLimits

pytestmark = pytest.mark.integration

def read(sample_media: Path, name: str) -> bytes:
    return (sample_media / name).read_bytes()


@pytest.fixture(scope="module")
def astronaut(deepfake_server, sample_media):
    return infer_image(deepfake_server.grpc_url, read(sample_media, samples.FACE_IMAGE))


def test_astronaut_has_one_face_where_mtcnn_puts_it(astronaut):
    assert astronaut["NUM_FACES"].tolist() == [1]
    np.testing.assert_allclose(astronaut["FACE_BOXES"][0], [180, 61, 268, 172], atol=4)
    assert astronaut["FACE_SCORES"][0] > 0.99
    assert astronaut["FACE_LANDMARKS"].shape == (1, 5, 2)


def test_astronaut_verdict_is_a_probability_with_four_model_columns(astronaut):
    names = [n.decode() for n in astronaut["MODEL_NAMES"]]
    assert names == [spec.name for spec in CLASSIFIERS]
    per_model = astronaut["MODEL_FAKE_PROBABILITY"]
    assert per_model.shape == (1, 4) and per_model.dtype == np.float32
    assert np.all((per_model >= 0) & (per_model <= 1))
    score = float(astronaut["FAKE_PROBABILITY"][0])
    assert 0.0 <= score <= 1.0
    assert astronaut["LABEL"][0].decode() == ("FAKE" if score > 0.5 else "REAL")
    # Demo weights are reported as such, per model.
    assert astronaut["MODEL_UNTRAINED"].tolist() == [True] * 4


def test_face_score_is_the_weighted_average_of_the_model_columns(astronaut, deepfake_server):


    weights = json.loads((deepfake_server.repository / "repository.json").read_text())["weights"]
    w = np.array([weights[spec.name] for spec in CLASSIFIERS], dtype=np.float64)
    expected = astronaut["MODEL_FAKE_PROBABILITY"].astype(np.float64) @ (w / w.sum())
    np.testing.assert_allclose(astronaut["FACE_FAKE_PROBABILITY"], expected, atol=1e-6)
    assert astronaut["FAKE_PROBABILITY"][0] == pytest.approx(expected.max(), abs=1e-6)


def test_no_face_is_a_result_not_an_error(deepfake_server, sample_media):
    out = infer_image(deepfake_server.grpc_url, read(sample_media, samples.NO_FACE_IMAGE))
    assert out["LABEL"].tolist() == [b"NO_FACE"]
    assert out["NUM_FACES"].tolist() == [0]
    assert math.isnan(out["FAKE_PROBABILITY"][0])
    assert out["FACE_BOXES"].shape == (0, 4)
    assert out["FACE_FAKE_PROBABILITY"].shape == (0,)
    assert out["MODEL_FAKE_PROBABILITY"].shape == (0, 4)


def test_two_faces(deepfake_server, sample_media):
    out = infer_image(deepfake_server.grpc_url, read(sample_media, samples.TWO_FACES_IMAGE))
    assert out["NUM_FACES"].tolist() == [2]
    assert out["FACE_BOXES"].shape == (2, 4)
    assert out["MODEL_FAKE_PROBABILITY"].shape == (2, 4)
    assert out["FACE_SCORES"][0] >= out["FACE_SCORES"][1]  # most confident first


@pytest.mark.parametrize("case", sorted(samples.invalid_images(ImageLimits())))
def test_bad_input_is_invalid_arg_and_the_server_keeps_serving(deepfake_server, case):
    data = samples.invalid_images(ImageLimits())[case]
    client = grpcclient.InferenceServerClient(deepfake_server.grpc_url)
    image = grpcclient.InferInput("IMAGE", [len(data)], "UINT8")
    image.set_data_from_numpy(np.frombuffer(data, dtype=np.uint8))
    with pytest.raises(InferenceServerException) as error:
        client.infer(contract.ENSEMBLE_NAME, [image])
    assert error.value.status() == "StatusCode.INVALID_ARGUMENT", error.value
    assert error.value.message() and "invalid input: " not in error.value.message()  # the step's mark is removed
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(contract.ENSEMBLE_NAME)


def test_http_reports_bad_input_as_400(deepfake_server):
    client = httpclient.InferenceServerClient(deepfake_server.http_url)
    image = httpclient.InferInput("IMAGE", [4], "UINT8")
    image.set_data_from_numpy(np.frombuffer(b"nope", dtype=np.uint8))
    with pytest.raises(InferenceServerException) as error:
        client.infer(contract.ENSEMBLE_NAME, [image])
    assert error.value.status() == "400"


def _answer_or_refusal(url: str, data: bytes):
    try:
        return infer_image(url, data)
    except InferenceServerException as error:
        return error


def test_32_concurrent_requests_are_answered_or_refused_as_overloaded(deepfake_server, sample_media):
    """32 at once is far beyond the cpu flavour's admission bound (2 in flight + 8 waiting per
    priority level): the rest are refused at the entry (UNAVAILABLE, model_repository/README.md);
    every answer given is right."""
    images = [read(sample_media, name) for name in (samples.FACE_IMAGE, samples.NO_FACE_IMAGE, samples.TWO_FACES_IMAGE)]
    requests = [images[i % 3] for i in range(32)]
    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(lambda data: _answer_or_refusal(deepfake_server.grpc_url, data), requests))
    refused = [r for r in results if isinstance(r, InferenceServerException)]
    print("gRPC overload refusals:", sorted({(r.status(), r.message()) for r in refused}))
    assert all(r.status() == "StatusCode.UNAVAILABLE" and "Exceeds maximum queue size" in r.message()
               for r in refused), refused[:3]
    answered = [(i, r) for i, r in enumerate(results) if not isinstance(r, InferenceServerException)]
    assert answered
    assert [int(r["NUM_FACES"][0]) for _, r in answered] == [[1, 0, 2][i % 3] for i, _ in answered]
    # Same image, same answer, whatever the batch it was merged into.
    faces = [r["MODEL_FAKE_PROBABILITY"] for i, r in answered if i % 3 == 0]
    for other in faces[1:]:
        np.testing.assert_allclose(other, faces[0], atol=1e-5)


def test_admin_apis_are_closed(deepfake_server):
    client = httpclient.InferenceServerClient(deepfake_server.http_url)
    with pytest.raises(InferenceServerException, match="restricted"):
        client.get_model_repository_index()
    with pytest.raises(InferenceServerException, match="restricted"):
        client.unload_model(contract.ENSEMBLE_NAME)
    assert client.is_model_ready(contract.ENSEMBLE_NAME)


def test_custom_metrics_count_images_and_faces(deepfake_server, sample_media):


    infer_image(deepfake_server.grpc_url, read(sample_media, samples.FACE_IMAGE))
    text = urllib.request.urlopen(deepfake_server.metrics_url).read().decode()
    assert 'deepfake_images_total{outcome="faces"}' in text
    assert "deepfake_faces_total" in text
    assert "nv_inference_queue_duration_us" in text
