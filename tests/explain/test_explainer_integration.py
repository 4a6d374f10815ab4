"""deepfake_explainer through the real Triton server (cpu flavour with the explainer,
demo weights), with the SDK and the CLI. One face is explained per request: the four
full-size networks with gradients take seconds per face on 2 cores."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

import deepfake_contract as contract
from deepfake_client import DeepfakeClient, InvalidInputError, cli
from deepfake_client.overlay import render_overlay
from deepfake_dev import samples

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def explainer_server(export_artifacts, tmp_path_factory):
    from deepfake_dev.local_server import LocalTritonServer, Ports
    from export.repository import RepositoryOptions, assemble

    folder = tmp_path_factory.mktemp("explainer")
    repository = assemble(export_artifacts, folder / "cpu", RepositoryOptions(explainer=True))
    server = LocalTritonServer(repository, Ports.free(), log_path=folder / "tritonserver.log")
    server.start(timeout_s=900)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(explainer_server):
    with DeepfakeClient(explainer_server.grpc_url, timeout_s=600) as client:
        yield client


@pytest.fixture(scope="module")
def face_bytes(sample_media) -> bytes:
    return (sample_media / samples.FACE_IMAGE).read_bytes()


@pytest.fixture(scope="module")
def explained(client, face_bytes):
    return client.explain(face_bytes)


def test_the_explainer_returns_the_plain_detection(client, explained, face_bytes):
    plain = client.detect(face_bytes)
    assert explained.detection.label == plain.label
    assert explained.detection.fake_probability == pytest.approx(plain.fake_probability, abs=1e-6)
    assert len(explained.detection.faces) == len(plain.faces) == 1
    np.testing.assert_allclose(explained.detection.faces[0].box, plain.faces[0].box, atol=1e-3)


def test_one_map_per_model_in_range_on_the_face(explained):
    (face,) = explained.faces
    assert list(face.heatmaps) == list(explained.detection.model_names)
    for heatmap in [face.ensemble, *face.heatmaps.values()]:
        assert heatmap.shape == (contract.HEATMAP_SIZE, contract.HEATMAP_SIZE) and heatmap.dtype == np.float32
        assert 0.0 <= heatmap.min() and heatmap.max() <= 1.0
    assert sum(explained.weights.values()) == pytest.approx(1.0)
    # The crop's centre lies in the detector's face box: the transform places maps on the face.
    x1, y1, x2, y2 = explained.detection.faces[0].box
    centre = face.crop_to_image @ np.array([127.5, 127.5, 1.0])
    assert x1 < centre[0] < x2 and y1 < centre[1] < y2
    # The warped ensemble map covers the face and nothing far from it.
    warped = face.to_image(face.ensemble, 512, 512)  # the astronaut sample is 512 x 512
    ys, xs = np.nonzero(warped > 0.05)
    assert xs.min() > x1 - (x2 - x1) and xs.max() < x2 + (x2 - x1)
    assert ys.min() > y1 - (y2 - y1) and ys.max() < y2 + (y2 - y1)


def test_overlay_and_cli(explained, face_bytes, explainer_server, sample_media, tmp_path, capsys):
    png = render_overlay(face_bytes, explained)
    assert Image.open(io.BytesIO(png)).format == "PNG"
    out = tmp_path / "overlay.png"
    code = cli.main(["explain", str(sample_media / samples.FACE_IMAGE), "--url", explainer_server.grpc_url,
                     "--out", str(out), "--json"])
    assert code in (0, 1)  # REAL or FAKE: the demo weights decide
    report = json.loads(capsys.readouterr().out)
    assert report["num_faces"] == 1 and len(report["explained_faces"]) == 1 and report["overlay"] == str(out)
    assert Image.open(out).size[0] > 512


def test_no_face_and_bad_input(client, sample_media):
    nothing = client.explain((sample_media / samples.NO_FACE_IMAGE).read_bytes())
    assert nothing.detection.label.value == "NO_FACE" and nothing.faces == ()
    with pytest.raises(InvalidInputError):
        client.explain(b"not an image")
