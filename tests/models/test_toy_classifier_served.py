"""A fifth classifier added by one file, served for real: the toy spec file is put into a copy
of deepfake_models/classifiers/ (what a developer does), exported, assembled with the
explainer by the public `assemble`, and served on the real Triton server; a detection and an
explanation go through Triton with the SDK."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from fifth_classifier import packages_with_toy, toy_registered

from deepfake_client import DeepfakeClient
from deepfake_dev import samples
from deepfake_models import registered
from deepfake_models.servable import load_servable
from deepfake_serving.combiner import fake_probability
from deepfake_serving.detection import detect_faces
from deepfake_serving.faces import FaceDetector
from export.artifacts import BuildArtifacts
from export.demo_weights import demo_state_dict
from export.fixing import fix_checkpoint
from export.onnx_export import export_classifier
from export.repository import RepositoryOptions, assemble, default_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _link_exported(source: BuildArtifacts, target: BuildArtifacts, name: str) -> None:
    """The four published models' export outputs, linked (not rebuilt) into the toy's build folder."""
    for path in (source.fixed_checkpoint(name), source.manifest_path(name), source.onnx(name),
                 source.onnx_parity(name), source.int8_onnx(name), source.int8_report(name)):
        if path.is_file():
            link = target.root / path.relative_to(source.root)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path)


@pytest.fixture(scope="module")
def toy_server(export_artifacts, tmp_path_factory):
    from deepfake_dev.local_server import LocalTritonServer, Ports

    folder = tmp_path_factory.mktemp("toy")
    with toy_registered() as toy:
        specs = registered()
        artifacts = BuildArtifacts(folder / "build")
        for spec in specs[:-1]:
            _link_exported(BuildArtifacts(export_artifacts), artifacts, spec.name)
        checkpoint = folder / "weights" / toy.checkpoint_file
        checkpoint.parent.mkdir()
        torch.save(demo_state_dict(toy, seed=0), checkpoint)
        fix_checkpoint(checkpoint, artifacts)
        export_classifier(toy.name, artifacts)
        repository = assemble(artifacts.root, folder / "cpu",
                              RepositoryOptions(explainer=True, ensemble=default_settings(specs)), specs)
        # The server's python models import deepfake_models: the copy with the toy file in it. The
        # python backend's stubs do not read PYTHONPATH; their sys.path starts with the server's
        # working directory (before any installed copy), so the server starts in the copies' folder.
        packages = packages_with_toy(folder / "packages")
        previous = Path.cwd()
        os.chdir(packages)
        try:
            server = LocalTritonServer(repository, Ports.free(), log_path=folder / "tritonserver.log")
            server.start(timeout_s=900)
        finally:
            os.chdir(previous)
        try:
            yield server, toy, artifacts
        finally:
            server.stop()


def test_the_toy_is_served_in_the_ensemble_and_explained(toy_server, sample_media):
    server, toy, artifacts = toy_server
    image = (sample_media / samples.FACE_IMAGE).read_bytes()
    with DeepfakeClient(server.grpc_url, timeout_s=600) as client:
        detection = client.detect(image)
        explained = client.explain(image)

    assert detection.model_names[-1] == "toy" and len(detection.model_names) == 5
    assert len(detection.faces) == 1
    # The toy column is the toy's answer on the aligned 64 crop (golden: PyTorch on its fixed checkpoint).
    (local,) = detect_faces([image], FaceDetector(), crop_sizes=(256, 224, toy.input_size))
    network = load_servable(toy, artifacts.fixed_checkpoint(toy.name))
    with torch.no_grad():
        expected = fake_probability(network(torch.from_numpy(local.crops[toy.input_size][:1])).numpy())[0]
    assert detection.faces[0].model_probabilities["toy"] == pytest.approx(float(expected), abs=5e-3)

    assert explained.detection.model_names == detection.model_names
    (face,) = explained.faces
    heatmap = face.heatmaps["toy"]
    assert heatmap.shape == (256, 256) and np.isfinite(heatmap).all()
    assert 0.0 <= heatmap.min() and heatmap.max() <= 1.0
    assert explained.weights["toy"] == pytest.approx(1 / 5)
