"""The classifiers, one file each: the registry, and a fifth (toy) classifier that goes
through fix -> ONNX -> repository assembly by registering one spec file and nothing else
(tests/models/fifth_classifier/toy.py; test_toy_classifier_served.py serves it)."""

from __future__ import annotations

import json
import pkgutil
import re
from dataclasses import replace

import numpy as np
import pytest
import torch
from fifth_classifier import toy_registered
from torch import nn

import deepfake_contract as contract
from deepfake_models import CLASSIFIER_NAMES, classifiers, registered, spec_by_name
from deepfake_models.registry import register, unregister
from deepfake_models.servable import build_servable
from deepfake_serving.alignment import deepfakebench_template
from deepfake_serving.explain import Explainer
from export import triton_config
from export.artifacts import BuildArtifacts
from export.demo_weights import demo_state_dict
from export.errors import ExportError
from export.fixing import fix_checkpoint
from export.onnx_export import export_classifier
from export.repository import RepositoryOptions, assemble, default_settings


def test_every_file_registers_one_classifier_in_the_public_column_order():
    files = {module.name for module in pkgutil.iter_modules(classifiers.__path__)}
    assert files == {"xception", "efficientnet_b4", "f3net", "effort_clip"}
    assert CLASSIFIER_NAMES == ("xception", "efficientnet_b4", "f3net", "effort_clip")  # MODEL_NAMES order
    for spec in registered():
        assert spec.network.__module__ == f"deepfake_models.classifiers.{spec.name}"  # network and spec together


def test_a_clash_is_refused():
    clone = spec_by_name("f3net")
    with pytest.raises(ValueError, match="same name"):
        register(clone)


@pytest.fixture
def toy():
    with toy_registered() as spec:  # what a fifth file in deepfake_models/classifiers/ does at import
        yield spec


def _fabricated(artifacts: BuildArtifacts, name: str) -> None:
    """Stand-in export outputs of a full-size classifier (assembly only links them)."""
    for path, content in ((artifacts.onnx(name), b"onnx"), (artifacts.fixed_checkpoint(name), b"st")):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content + name.encode())
    artifacts.manifest_path(name).write_text(json.dumps({"untrained": True, "source": {"sha256": "0" * 64}}))


def test_a_fifth_classifier_is_one_registered_spec(toy, tmp_path):
    artifacts = BuildArtifacts(tmp_path / "build")
    checkpoint = tmp_path / "weights" / toy.checkpoint_file
    checkpoint.parent.mkdir()
    torch.save(demo_state_dict(toy, seed=0), checkpoint)  # released layout: keys under `model.`

    manifest = fix_checkpoint(checkpoint, artifacts)  # found by its file name and its layout
    assert manifest["model"] == "toy" and manifest["input"]["shape"] == [-1, 64, 64, 3]
    report = export_classifier("toy", artifacts)
    assert report["passed"] and report["tolerance_fake_probability"] == toy.tolerances.onnx

    for name in CLASSIFIER_NAMES:
        _fabricated(artifacts, name)
    specs = registered()
    assert [spec.name for spec in specs] == [*CLASSIFIER_NAMES, "toy"]
    out = assemble(artifacts.root, tmp_path / "cpu", RepositoryOptions(ensemble=default_settings(specs)), specs)

    configs = {p.parent.name: triton_config.parse(p.read_text()) for p in out.glob("*/config.pbtxt")}
    assert triton_config.check_pipelines(configs, specs) == []
    flow = triton_config.ensemble_config(specs)
    toy_step = next(s for s in flow.ensemble_scheduling.step if s.model_name == "toy")
    assert dict(toy_step.input_map) == {contract.CLASSIFIER_INPUT: "FACES_64"}
    ensemble = configs[contract.ENSEMBLE_NAME]
    assert json.loads(ensemble.parameters["crop_sizes"].string_value)[-1] == 64
    assert json.loads(configs["face_detector"].parameters["crop_sizes"].string_value) == [256, 224, 64]
    names = next(t for t in ensemble.output if t.name == "MODEL_NAMES")
    assert list(names.dims) == [5]
    assert configs["toy"].parameters["intra_op_threads"].string_value == "1"
    assert (out / "toy" / "1" / "model.onnx").stat().st_size > 0
    assert json.loads((out / "repository.json").read_text())["weights"]["toy"] == 1.0


def test_every_spec_declares_its_licence_checksum_and_grad_cam_layer():
    for spec in registered():
        assert spec.licence == "CC BY-NC 4.0"  # all four published checkpoints
        assert spec.published_sha256 is None or re.fullmatch(r"[0-9a-f]{64}", spec.published_sha256)
        network = spec.build_network(empty=True)
        layer = spec.gradcam_layer(network)
        assert isinstance(layer, nn.Module) and layer is not network


def test_demo_weights_do_not_depend_on_the_other_classifiers(toy):
    """A model's demo seed comes from its name: registering a fifth classifier leaves the
    others' demo weights as they were (before, the seed was seed * count + position)."""
    key = "model.head.weight"
    with_toy = demo_state_dict(spec_by_name("xception"), seed=1)
    unregister(toy.name)
    try:
        without_toy = demo_state_dict(spec_by_name("xception"), seed=1)
    finally:
        register(toy)
    assert with_toy.keys() == without_toy.keys()
    assert all(torch.equal(with_toy[name], without_toy[name]) for name in with_toy)
    assert not torch.equal(demo_state_dict(toy, seed=0)[key], demo_state_dict(toy, seed=1)[key])


def test_a_file_that_is_not_the_published_one_is_refused(toy, tmp_path):
    unregister(toy.name)
    register(replace(toy, published_sha256="0" * 64))
    checkpoint = tmp_path / toy.checkpoint_file
    torch.save(demo_state_dict(toy, seed=0), checkpoint)  # no demo sidecar: taken for a published file
    with pytest.raises(ExportError, match="not that of the published toy checkpoint"):
        fix_checkpoint(checkpoint, BuildArtifacts(tmp_path / "build"))


def test_the_explainer_takes_the_toy_grad_cam_layer_from_its_spec(toy):
    """Explainer({"toy": ...}) raised KeyError when explain.py listed the four layers itself."""
    torch.manual_seed(0)
    model = build_servable(toy)
    explainer = Explainer({"toy": (model, toy.input_size)}, weights=(1.0,), max_faces=1)
    assert explainer.layers["toy"] is model.network.norm
    crops = np.random.default_rng(0).integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    landmarks = deepfakebench_template()[None].astype(np.float32)
    explanation = explainer.explain({64: crops}, num_faces=1, landmarks=landmarks)
    assert explanation.heatmaps.shape == (1, 1, contract.HEATMAP_SIZE, contract.HEATMAP_SIZE)
    assert np.isfinite(explanation.heatmaps).all() and 0.0 <= explanation.heatmaps.min() <= explanation.heatmaps.max() <= 1.0
