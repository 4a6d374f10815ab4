"""The classifiers, one file each: the registry, and a fifth (toy) classifier that goes
through fix -> ONNX -> repository assembly by registering one spec and nothing else."""

from __future__ import annotations

import json
import pkgutil

import pytest
import torch
from torch import nn

import deepfake_contract as contract
from deepfake_models import CLASSIFIER_NAMES, ClassifierSpec, classifiers, registered, spec_by_name
from deepfake_models.layout import ReleasedLayout
from deepfake_models.registry import register, unregister
from export import triton_config
from export.artifacts import BuildArtifacts
from export.demo_weights import demo_state_dict
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


class ToyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, stride=4)
        self.norm = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.norm(self.stem(x))).mean(dim=(2, 3)))


TOY = ClassifierSpec(
    name="toy",
    column=50,
    network=ToyNet,
    layout=ReleasedLayout(name="toy", signature_keys=("model.head.weight",), renames=(("model.", ""),)),
    checkpoint_file="toy_best.pth",
    input_size=64,
    mean=(0.5, 0.5, 0.5),
    std=(0.25, 0.25, 0.25),
    published_at="https://example.invalid/toy",
    approx_size_mb=0.001,
)


@pytest.fixture
def toy():
    register(TOY)  # what a fifth file in deepfake_models/classifiers/ does at import
    yield TOY
    unregister(TOY.name)


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
