"""Shared fixtures: sample media, demo-weight export artifacts, the real Triton server.

The expensive ones are session-scoped and built once: the export of the four
full-size demo models (cached under build/test-artifacts between runs; the export
command itself skips work that is up to date) and one Triton server.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
TEST_ARTIFACTS = REPO_ROOT / "build" / "test-artifacts"

# The record store and job folders default to ~/.local/share/deepfake: tests (and the CLI and
# gateway processes they start, which inherit the environment) never touch a user's own data.
os.environ["DEEPFAKE_DATA_DIR"] = tempfile.mkdtemp(prefix="deepfake-test-data-")


@pytest.fixture(scope="session")
def sample_media(tmp_path_factory) -> Path:
    """The standard sample set (face, no face, two faces, video, invalid inputs)."""
    from deepfake_dev import samples

    folder = tmp_path_factory.mktemp("samples")
    samples.write_samples(folder)
    return folder


@pytest.fixture(scope="session")
def export_artifacts() -> Path:
    """Demo-weight checkpoints -> fixed checkpoints -> ONNX, through the real CLI."""
    command = [sys.executable, "-m", "export", "all", "--checkpoints", str(TEST_ARTIFACTS / "no-real-weights"),
               "--out", str(TEST_ARTIFACTS), "--demo-if-missing"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"export failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return TEST_ARTIFACTS


@pytest.fixture(scope="session")
def cpu_repository(export_artifacts, tmp_path_factory) -> Path:
    from export.repository import assemble

    return assemble(export_artifacts, tmp_path_factory.mktemp("repository") / "cpu")


@pytest.fixture(scope="session")
def deepfake_server(cpu_repository, tmp_path_factory):
    """The real Triton server (nvidia-pytriton's tritonserver 2.51) on the cpu repository."""
    from deepfake_dev.local_server import LocalTritonServer, Ports

    log = tmp_path_factory.mktemp("triton") / "tritonserver.log"
    server = LocalTritonServer(cpu_repository, Ports.free(), log_path=log)
    server.start(timeout_s=900)
    yield server
    server.stop()
