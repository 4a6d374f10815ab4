"""Exposed deployments need API keys: read from a file or the environment (never argv), and
the gateway refuses to start beyond loopback without them unless told --insecure-no-auth."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from deepfake_client.web.security import read_api_keys
from deepfake_client.web.server import check_exposure

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(str(REPO / p) for p in ("", "model_repository", "client"))}
KEY = "0123456789abcdef0123456789abcdef"


def deepfake_web(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deepfake_client.cli", "web", "--url", "127.0.0.1:9", *args],
                          capture_output=True, text=True, env=env or ENV, timeout=60)


def test_beyond_loopback_without_a_key_the_gateway_refuses_to_start():
    # Refused before binding: nothing ever listens on the wildcard address in this test.
    result = deepfake_web("--host", "0.0.0.0", "--port", "1")
    assert result.returncode == 2 and "--insecure-no-auth" in result.stderr and "Traceback" not in result.stderr
    for host in ("0.0.0.0", "::", "192.0.2.10", "gateway.example"):
        with pytest.raises(ValueError, match="exposes the gateway"):
            check_exposure(host, (), insecure_no_auth=False)
        check_exposure(host, (KEY,), insecure_no_auth=False)
        check_exposure(host, (), insecure_no_auth=True)
    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        check_exposure(host, (), insecure_no_auth=False)  # loopback stays keyless


def test_keys_come_from_a_file_or_the_environment_never_the_command_line(tmp_path):
    keys = tmp_path / "keys"
    keys.write_text(f"# gateway keys\n{KEY}\n\n{'f' * 40}\n")
    assert read_api_keys(keys, environ={}) == (KEY, "f" * 40)
    assert read_api_keys(None, environ={"DEEPFAKE_WEB_API_KEYS": f"{KEY}, {'e' * 20}"}) == (KEY, "e" * 20)
    assert read_api_keys(None, environ={"DEEPFAKE_WEB_API_KEY_FILE": str(keys)}) == (KEY, "f" * 40)
    with pytest.raises(ValueError, match="shorter than 16"):
        read_api_keys(None, environ={"DEEPFAKE_WEB_API_KEYS": "secret"})
    refused = deepfake_web("--api-key", KEY)
    assert refused.returncode == 2 and "unrecognized arguments" in refused.stderr
    short = deepfake_web("--host", "0.0.0.0", env={**ENV, "DEEPFAKE_WEB_API_KEYS": "short"})
    assert short.returncode == 2 and "shorter than 16" in short.stderr
