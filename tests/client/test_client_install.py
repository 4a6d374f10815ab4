"""`pip install ./client` into a fresh virtualenv: no torch, no server code, and it works."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CLIENT_DIR = Path(__file__).resolve().parents[2] / "client"


def run(command, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return result


@pytest.mark.slow  # downloads the client's dependencies (pip's cache makes repeats quicker)
@pytest.mark.timeout(1200)
def test_the_client_installs_alone_and_imports_without_torch(tmp_path):
    # Install from a copy, so the build leaves nothing in the working tree.
    source = shutil.copytree(CLIENT_DIR, tmp_path / "client", ignore=shutil.ignore_patterns("*.egg-info", "build"))
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv])
    python = venv / "bin" / "python"
    run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", source], timeout=1100)

    installed = {p["name"].lower() for p in json.loads(run([python, "-m", "pip", "list", "--format=json"]).stdout)}
    assert "deepfake-client" in installed and "tritonclient" in installed
    heavy = {"torch", "torchvision", "onnxruntime", "tensorrt", "deepfake-triton"} & installed
    assert not heavy, f"the client pulled in {heavy}"

    probe = (
        "import sys, deepfake_client, deepfake_client.cli, deepfake_client.aio;"
        "loaded = {m.split('.')[0] for m in sys.modules};"
        "print(sorted(loaded & {'torch', 'export', 'deepfake_serving', 'matplotlib'}))"
    )
    assert run([python, "-c", probe], cwd=tmp_path).stdout.strip() == "[]"
    assert "exit codes" in run([venv / "bin" / "deepfake", "--help"], cwd=tmp_path).stdout.lower()
