"""The one tritonserver command line (deepfake_serving.launcher) and the local server's use of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepfake_dev import local_server
from deepfake_serving import launcher


def _values(command):
    return dict(arg.split("=", 1) for arg in command if arg.startswith("--") and "=" in arg)


def test_loopback_by_default_and_every_endpoint_binds_the_host():
    command = launcher.tritonserver_command("tritonserver", Path("/repo"), "k" * 32)
    values = _values(command)
    assert values["--http-address"] == values["--grpc-address"] == values["--metrics-address"] == "127.0.0.1"
    exposed = _values(launcher.tritonserver_command("tritonserver", Path("/repo"), "k" * 32, host="0.0.0.0"))
    assert exposed["--http-address"] == exposed["--grpc-address"] == exposed["--metrics-address"] == "0.0.0.0"


def test_flavour_differences_are_arguments():
    base = launcher.tritonserver_command("tritonserver", Path("/repo"), "k" * 32, log_verbose=1)
    assert "--http-max-input-size" not in _values(base)  # Triton 2.51 has no such flag
    assert _values(base)["--allow-gpu-metrics"] == "false"
    other = launcher.tritonserver_command("tritonserver", Path("/repo"), "k" * 32, gpu_metrics=True,
                                          http_max_input_bytes=1234, exit_timeout_s=7, ports=launcher.Ports(1, 2, 3))
    values = _values(other)
    assert values["--allow-gpu-metrics"] == "true" and values["--http-max-input-size"] == "1234"
    assert values["--exit-timeout-secs"] == "7"
    assert (values["--http-port"], values["--grpc-port"], values["--metrics-port"]) == ("1", "2", "3")
    assert _values(base)["--log-verbose"] == "1"


def test_extra_flags_come_last_and_must_be_a_sequence():
    command = launcher.tritonserver_command("t", Path("/r"), "k" * 32, extra=["--grpc-use-ssl=true"])
    assert command[-1] == "--grpc-use-ssl=true"
    with pytest.raises(TypeError):
        launcher.tritonserver_command("t", Path("/r"), "k" * 32, extra="--grpc-use-ssl=true")


@pytest.mark.parametrize("key", ["a,b" * 8, "a:b" * 8, "a=b" * 8, "a b" * 8])
def test_a_key_that_would_break_the_flag_is_refused(key):
    with pytest.raises(ValueError, match="admin key"):
        launcher.tritonserver_command("t", Path("/r"), key)


def test_redacted_hides_the_key():
    command = launcher.tritonserver_command("t", Path("/r"), "secret-" + "k" * 32)
    shown = " ".join(launcher.redacted(command))
    assert "secret-" not in shown and shown.count("admin-key=***") == 2


def test_the_local_server_binds_loopback_unless_told(tmp_path):
    (tmp_path / "deepfake_detector").mkdir()
    (tmp_path / "deepfake_detector" / "config.pbtxt").write_text("")
    server = local_server.LocalTritonServer(tmp_path, local_server.Ports(1, 2, 3))
    assert server.host == "127.0.0.1" and server.grpc_url == "127.0.0.1:2"
    command = local_server.server_command(tmp_path, tmp_path, server.ports, server.admin_key, host=server.host)
    assert _values(command)["--grpc-address"] == "127.0.0.1"
    exposed = local_server.LocalTritonServer(tmp_path, local_server.Ports(1, 2, 3), host="0.0.0.0")
    assert exposed.http_url == "127.0.0.1:1"  # clients here still use loopback
    server.stop()
    exposed.stop()


def test_the_local_server_reads_the_admin_key_from_a_file_not_a_flag(tmp_path, monkeypatch, capsys):
    seen = {}

    class Fake:
        def __init__(self, repository, ports, **kwargs):
            seen.update(kwargs)
            raise SystemExit(0)

    monkeypatch.setattr(local_server, "LocalTritonServer", Fake)
    key_file = tmp_path / "key"
    key_file.write_text("0123456789abcdef0123\n")
    with pytest.raises(SystemExit):
        local_server.main(["--repository", str(tmp_path), "--admin-key-file", str(key_file)])
    assert seen["admin_key"] == "0123456789abcdef0123" and seen["host"] == "127.0.0.1"
    assert local_server.main(["--repository", str(tmp_path), "--admin-key-file", str(tmp_path / "none")]) == 2
    assert "cannot read the admin key file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        local_server.main(["--repository", str(tmp_path), "--admin-key", "x"])  # no such flag any more
