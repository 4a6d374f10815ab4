"""Strict loading of released checkpoint files: each pitfall loads or fails exactly
as specified, with errors that name the offending keys."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import logging
import subprocess
import sys

import pytest
import safetensors.torch
import torch
from released_files import (
    SMALL_EFFORT_SPEC,
    released_effort_state_dict,
    save,
    small_clip_config,
    small_effort,
    tag_storages_cuda,
)

from deepfake_models.checkpoints import load_strict, read_fixed_checkpoint
from deepfake_models.classifiers.effort_clip import Effort
from deepfake_models.classifiers.f3net import F3NET
from deepfake_models.classifiers.xception import XCEPTION
from deepfake_models.errors import CheckpointMismatchError, CheckpointReadError
from export.artifacts import BuildArtifacts
from export.checkpoints import read_checkpoint, write_fixed_checkpoint
from export.demo_weights import demo_state_dict
from export.errors import WrongArchitectureError
from export.fixing import canonicalize, fix_checkpoint, identify
from export.layouts import fold_svd_residual
from export.provenance import sha256_file


def load_released(state_dict, network, source="file.pth"):
    """The loader's path from a released state_dict to a strictly loaded network."""
    kept, layout, conversion = identify(state_dict, source)
    load_strict(network, canonicalize(kept, layout, conversion, network, source), source)
    return conversion


@pytest.fixture(scope="module")
def xception_file(tmp_path_factory):
    return save(demo_state_dict(XCEPTION, seed=1), tmp_path_factory.mktemp("w") / XCEPTION.checkpoint_file)


@pytest.mark.parametrize("spec", [XCEPTION, F3NET], ids=lambda spec: spec.name)
def test_released_cnn_file_loads_strictly_with_its_values(tmp_path, spec):
    released = demo_state_dict(spec, seed=3)
    path = save(released, tmp_path / spec.checkpoint_file)
    network = spec.build_network()
    conversion = load_released(read_checkpoint(path), network)
    loaded = network.state_dict()
    for released_key, canonical_key in conversion.renamed.items():
        torch.testing.assert_close(loaded[canonical_key], released[released_key], rtol=0, atol=0)
    assert len(conversion.renamed) == len(released) and not conversion.dropped


def test_f3net_keys_are_renamed_by_the_table(tmp_path):
    conversion = load_released(demo_state_dict(F3NET, seed=0), F3NET.build_network())
    assert conversion.renamed["FAD_head._DCT_all_T"] == "fad_head._DCT_all_T"
    assert conversion.renamed["backbone.last_linear.1.weight"] == "xception.last_linear.1.weight"


def test_an_empty_network_holds_nothing_until_load_strict_fills_it_strictly():
    """build_network(empty=True) (export, serving): parameters on `meta` until load_strict assigns
    a checkpoint, with every key and shape still checked; the result is the checkpoint's model."""
    spec = dataclasses.replace(SMALL_EFFORT_SPEC, network=functools.partial(Effort, small_clip_config()))
    source = small_effort(seed=0)
    checkpoint = source.state_dict()
    missing = {key: value for key, value in checkpoint.items() if key != "head.bias"}
    for broken in (missing, {**checkpoint, "head.extra": torch.zeros(2)}, {**checkpoint, "head.bias": torch.zeros(3)}):
        with pytest.raises(CheckpointMismatchError):
            load_strict(spec.build_network(empty=True), broken, "file.safetensors")

    network = spec.build_network(empty=True)
    assert all(parameter.is_meta for parameter in network.parameters())
    assert not network.backbone.embeddings.position_ids.is_meta  # non-persistent: in no checkpoint
    load_strict(network, {key: value.double() if value.is_floating_point() else value
                          for key, value in checkpoint.items()}, "file.safetensors")
    assert not any(t.is_meta for t in itertools.chain(network.parameters(), network.buffers()))
    assert {t.dtype for t in network.parameters()} == {torch.float32}  # cast as a copy would be
    pixels = torch.rand(2, 3, 28, 28)
    with torch.inference_mode():
        torch.testing.assert_close(network(pixels), source(pixels), rtol=0, atol=0)
    assert not any(parameter.is_meta for parameter in spec.build_network().parameters())


def test_module_prefixed_effort_loads_folded(tmp_path):
    source = small_effort(seed=0)
    released = released_effort_state_dict(source, seed=1)
    assert all(key.startswith("module.") for key in released)
    target = small_effort(seed=99)
    conversion = load_released(read_checkpoint(save(released, tmp_path / "effort.pth")), target)
    assert conversion.stripped_ddp_prefix and len(conversion.folded) == 2 * 4
    stem = "module.backbone.encoder.layers.1.self_attn.q_proj."
    expected = fold_svd_residual(*(released[stem + part] for part in ("weight_main", "U_residual", "S_residual", "V_residual")))
    torch.testing.assert_close(target.state_dict()["backbone.encoder.layers.1.self_attn.q_proj.weight"], expected)
    torch.testing.assert_close(target.state_dict()["head.weight"], source.state_dict()["head.weight"])


def test_effort_without_the_ddp_prefix_loads_too():
    released = {key.removeprefix("module."): value for key, value in released_effort_state_dict(small_effort()).items()}
    assert not load_released(released, small_effort(seed=5)).stripped_ddp_prefix


def test_old_transformers_position_ids_are_dropped_and_logged(caplog):
    released = released_effort_state_dict(small_effort())
    released["module.backbone.embeddings.position_ids"] = torch.arange(5).unsqueeze(0)
    with caplog.at_level(logging.INFO):
        conversion = load_released(released, small_effort(seed=5))
    assert conversion.dropped == ["backbone.embeddings.position_ids"]
    assert "dropping backbone.embeddings.position_ids" in caplog.text


def test_effort_repo_orthogonality_tensors_are_dropped_exactly():
    released = released_effort_state_dict(small_effort())
    hidden = 32
    extras = {
        f"module.backbone.encoder.layers.{layer}.self_attn.{proj}_proj.{name}": torch.zeros(shape)
        for layer in range(2)
        for proj in ("q", "k", "v", "out")
        for name, shape in (("S_r", [hidden - 1]), ("U_r", [hidden, hidden - 1]), ("V_r", [hidden - 1, hidden]))
    }
    conversion = load_released({**released, **extras}, small_effort(seed=5))
    assert sorted(conversion.dropped) == sorted(key.removeprefix("module.") for key in extras)
    assert len(conversion.dropped) == 2 * 4 * 3  # 288 at full size (24 layers)


def test_an_unlisted_extra_key_is_not_dropped():
    released = released_effort_state_dict(small_effort())
    released["module.backbone.encoder.layers.0.mlp.fc1.S_r"] = torch.zeros(3)
    with pytest.raises(CheckpointMismatchError, match=r"unexpected keys \(1\): module\.backbone.encoder.layers.0.mlp.fc1.S_r"):
        load_released(released, small_effort(seed=5))


def test_cuda_tagged_file_loads_on_cpu(tmp_path):
    released = demo_state_dict(XCEPTION, seed=2)
    path = save(released, tmp_path / XCEPTION.checkpoint_file)
    tag_storages_cuda(path)
    if not torch.cuda.is_available():  # what a loader without map_location hits on a CPU host
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(path, weights_only=True)
    loaded = read_checkpoint(path)
    assert all(tensor.device.type == "cpu" for tensor in loaded.values())
    torch.testing.assert_close(loaded["backbone.conv1.weight"], released["backbone.conv1.weight"], rtol=0, atol=0)


def test_truncated_file_is_a_clear_error(tmp_path, xception_file):
    truncated = tmp_path / "xception_best.pth"
    truncated.write_bytes(xception_file.read_bytes()[: xception_file.stat().st_size // 2])
    with pytest.raises(CheckpointReadError, match="truncated or corrupt"):
        read_checkpoint(truncated)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointReadError, match="no such file"):
        read_checkpoint(tmp_path / "absent.pth")


class Payload:
    """Stands for code pickled into a checkpoint."""


def test_file_with_pickled_code_is_refused(tmp_path):
    path = tmp_path / "code.pth"
    torch.save({"weights": torch.zeros(1), "payload": Payload()}, path)
    with pytest.raises(CheckpointReadError, match="Python objects other than tensors") as refused:
        read_checkpoint(path)
    assert f"holds a {__name__}.Payload object" in str(refused.value)  # the refused global, by name


def test_wrapped_state_dict_is_not_a_plain_state_dict(tmp_path):
    path = save({"state_dict": {"a": torch.zeros(1)}}, tmp_path / "wrapped.pth")
    with pytest.raises(CheckpointReadError, match="not a plain state_dict"):
        read_checkpoint(path)


def test_renamed_key_is_named_in_the_error():
    released = demo_state_dict(XCEPTION, seed=0)
    released["backbone.block4.rep.1.pointwise.weights"] = released.pop("backbone.block4.rep.1.pointwise.weight")
    with pytest.raises(CheckpointMismatchError) as caught:
        load_released(released, XCEPTION.build_network())
    assert caught.value.missing == ["backbone.block4.rep.1.pointwise.weight"]
    assert caught.value.unexpected == ["backbone.block4.rep.1.pointwise.weights"]
    assert "missing keys (1): backbone.block4.rep.1.pointwise.weight" in str(caught.value)


def test_shape_mismatch_names_key_and_shapes():
    released = demo_state_dict(XCEPTION, seed=0)
    released["backbone.last_linear.weight"] = torch.zeros(1000, 2048)
    with pytest.raises(CheckpointMismatchError, match=r"backbone.last_linear.weight: checkpoint \[1000, 2048\], model \[2, 2048\]"):
        load_released(released, XCEPTION.build_network())


def test_file_of_another_architecture_is_rejected(tmp_path):
    f3net_named_as_xception = save(demo_state_dict(F3NET, seed=0), tmp_path / XCEPTION.checkpoint_file)
    with pytest.raises(WrongArchitectureError, match="is a checkpoint of the f3net model, not of the xception model"):
        fix_checkpoint(f3net_named_as_xception, BuildArtifacts(tmp_path / "build"))


def test_a_wrong_file_is_named_by_model_not_by_layout():
    effort = released_effort_state_dict(small_effort())  # `module.`-prefixed, as released
    with pytest.raises(WrongArchitectureError, match="checkpoint of the effort_clip model, not of the xception model"):
        identify(effort, "effort.pth", XCEPTION.layout)


def test_non_contiguous_tensors_are_written_to_safetensors(tmp_path):
    transposed = torch.arange(12.0).reshape(3, 4).t()
    with pytest.raises(ValueError, match="contiguous"):  # the pitfall itself
        safetensors.torch.save_file({"_DCT_all_T": transposed}, str(tmp_path / "plain.safetensors"))
    path = tmp_path / "fixed.safetensors"
    write_fixed_checkpoint({"_DCT_all_T": transposed}, path, metadata={"model": "f3net"})
    torch.testing.assert_close(read_fixed_checkpoint(path)["_DCT_all_T"], transposed, rtol=0, atol=0)


def test_fixed_checkpoints_are_byte_reproducible(tmp_path):
    """Same tensors and metadata -> same sha256, in this process and in others (safetensors'
    header order comes from a Rust HashMap whose seed differs per map and per process)."""
    script = (
        "import sys, torch; from export.checkpoints import write_fixed_checkpoint as w; from pathlib import Path\n"
        "t = {f'layer{i}.weight': torch.arange(float(i + 3)) for i in range(12)}\n"
        "for n in range(4): w(t, Path(sys.argv[1]) / f'{n}.safetensors',"
        " metadata={'model': 'xception', 'layout': 'xception', 'untrained': 'true', 'a': '1', 'z': '2'})\n"
    )
    for run in range(3):
        subprocess.run([sys.executable, "-c", script, str(tmp_path / f"run{run}")], check=True, timeout=120)
    digests = {sha256_file(path) for path in tmp_path.glob("run*/*.safetensors")}
    assert len(list(tmp_path.glob("run*/*.safetensors"))) == 12 and len(digests) == 1
    metadata = safetensors.safe_open(str(tmp_path / "run0" / "0.safetensors"), "pt").metadata()
    assert metadata == {"model": "xception", "layout": "xception", "untrained": "true", "a": "1", "z": "2"}


def test_fix_writes_checkpoint_and_manifest_then_skips_when_up_to_date(tmp_path, xception_file):
    artifacts = BuildArtifacts(tmp_path / "build")
    manifest = fix_checkpoint(xception_file, artifacts)
    assert manifest["model"] == "xception" and manifest["layout"] == "xception"
    assert manifest["untrained"] is False  # no demo sidecar next to this file
    assert manifest["input"]["mean"] == [0.5, 0.5, 0.5] and manifest["input"]["channel_order"] == "RGB"
    assert manifest["conversion"]["renamed"]["backbone.conv1.weight"] == "conv1.weight"
    fixed = read_fixed_checkpoint(artifacts.fixed_checkpoint("xception"))
    assert set(fixed) == set(XCEPTION.build_network().state_dict())
    written = artifacts.fixed_checkpoint("xception").stat().st_mtime_ns
    assert fix_checkpoint(xception_file, artifacts) == manifest
    assert artifacts.fixed_checkpoint("xception").stat().st_mtime_ns == written
