"""`make test` on a developer's machine: a missing browser is named, never installed with sudo."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_without_root_make_browser_says_what_to_install_and_runs_no_sudo(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    for name, body in (("id", "echo 1000"), ("sudo", f"echo sudo >> {calls}"), ("apt-get", f"echo apt-get >> {calls}")):
        script = bin_dir / name
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["make", "-s", "browser", "CHROMIUM=no-such-chromium", f"CHROMEDRIVER={tmp_path}/none"],
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "sudo apt-get install chromium chromium-driver" in result.stdout
    assert not calls.exists()  # neither sudo nor apt-get ran
