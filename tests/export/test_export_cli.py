"""`deepfake-export` as a user runs it: errors print one clear message and exit
non-zero without a traceback.

The CLI runs in this process (cli_in_process.py); one case runs `python -m export` itself, so
the module entry point is covered too."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from cli_in_process import cli
from released_files import save

from deepfake_models import CLASSIFIERS
from deepfake_models.classifiers.efficientnet_b4 import EFFICIENTNET_B4
from deepfake_models.classifiers.f3net import F3NET
from deepfake_models.classifiers.xception import XCEPTION
from export.demo_weights import demo_state_dict


def cli_process(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "export", *args], capture_output=True, text=True, timeout=300)


def assert_clean_failure(result, *messages: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    for message in messages:
        assert message in result.stderr, result.stderr


def test_missing_checkpoint(tmp_path):
    result = cli_process("fix", str(tmp_path / "xception_best.pth"), "--out", str(tmp_path / "build"))
    assert_clean_failure(result, "deepfake-export fix: error:", "xception_best.pth: no such file")


def test_truncated_checkpoint(tmp_path):
    path = save(demo_state_dict(EFFICIENTNET_B4, seed=0), tmp_path / EFFICIENTNET_B4.checkpoint_file)
    path.write_bytes(path.read_bytes()[:1_000_000])
    assert_clean_failure(cli("fix", str(path), "--out", str(tmp_path / "build")), "truncated or corrupt")


def test_wrong_architecture(tmp_path):
    path = save(demo_state_dict(F3NET, seed=0), tmp_path / XCEPTION.checkpoint_file)
    result = cli("fix", str(path), "--out", str(tmp_path / "build"))
    assert_clean_failure(result, "is a checkpoint of the f3net model, not of the xception model")


def test_renamed_key(tmp_path):
    released = demo_state_dict(XCEPTION, seed=0)
    released["backbone.fc.weight"] = released.pop("backbone.last_linear.weight")
    path = save(released, tmp_path / XCEPTION.checkpoint_file)
    result = cli("fix", str(path), "--out", str(tmp_path / "build"))
    assert_clean_failure(result, "missing keys (1): backbone.last_linear.weight", "unexpected keys (1): backbone.fc.weight")
    assert not (tmp_path / "build" / "fixed" / "xception.safetensors").exists()


def test_unknown_file(tmp_path):
    path = save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "model.pth")
    assert_clean_failure(cli("fix", str(path), "--out", str(tmp_path / "build")), "not one of the supported")


def test_fix_succeeds_on_a_good_file(tmp_path):
    path = save(demo_state_dict(XCEPTION, seed=0), tmp_path / XCEPTION.checkpoint_file)
    result = cli("fix", str(path), "--out", str(tmp_path / "build"))
    assert result.returncode == 0, result.stderr
    assert "xception: fixed checkpoint in" in result.stdout
    assert (tmp_path / "build" / "fixed" / "xception.safetensors").is_file()
    assert (tmp_path / "build" / "fixed" / "xception.json").is_file()


def test_an_output_folder_it_cannot_write_is_one_clear_message(tmp_path):
    """The machine's errors (a full disk, a path it cannot write) are said, not a traceback."""
    path = save(demo_state_dict(XCEPTION, seed=0), tmp_path / XCEPTION.checkpoint_file)
    (tmp_path / "a-file").write_text("not a folder")
    result = cli("fix", str(path), "--out", str(tmp_path / "a-file" / "build"))
    assert_clean_failure(result, "deepfake-export fix: error: Not a directory", str(tmp_path / "a-file"))


def test_onnx_before_fix(tmp_path):
    result = cli("onnx", "--artifacts", str(tmp_path / "build"), "--model", "f3net")
    assert_clean_failure(result, "no fixed checkpoint for f3net", "deepfake-export fix")


@pytest.mark.skipif(__import__("importlib").util.find_spec("tensorrt") is not None, reason="TensorRT is installed")
def test_tensorrt_missing(tmp_path):
    result = cli("tensorrt", "--artifacts", str(tmp_path), "--opt-batch", "4", "--max-batch", "16")
    assert_clean_failure(result, "TensorRT is not installed here", "nvcr.io/nvidia/tritonserver:<tag>-py3")


def test_all_without_checkpoints_lists_what_to_download(tmp_path):
    result = cli("all", "--checkpoints", str(tmp_path / "weights"), "--out", str(tmp_path / "build"))
    assert_clean_failure(result, "holds none of the published checkpoints", "--demo-if-missing",
                         *(spec.checkpoint_file for spec in CLASSIFIERS))


def test_all_never_mixes_real_and_demo_weights(tmp_path):
    save(demo_state_dict(XCEPTION, seed=0), tmp_path / "weights" / XCEPTION.checkpoint_file)
    result = cli("all", "--checkpoints", str(tmp_path / "weights"), "--out", str(tmp_path / "build"), "--demo-if-missing")
    assert_clean_failure(result, "holds 1 of the 4 published checkpoints", "never mixed", F3NET.checkpoint_file)
    assert not (tmp_path / "build" / "demo_weights").exists()
