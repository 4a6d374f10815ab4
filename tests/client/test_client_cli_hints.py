"""The `deepfake` command's first-hour rough edges (issue 19): one --timeout default, clear hints for
URLs, folders and videos, an example in every subcommand's help, the reason in `deepfake health`."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from client_fakes import FakeTransport, fake_client, one_face

from deepfake_client import cli
from deepfake_client.cli import EXAMPLES, EXPLAIN_TIMEOUT_S, ExitCode, build_parser, main, open_client
from deepfake_client.client import DEFAULT_TIMEOUT_S

SUBCOMMANDS = sorted(EXAMPLES)
ARGUMENTS = {"image": ["a.jpg"], "folder": ["d"], "video": ["v.mp4"], "stream": ["0"], "explain": ["a.jpg"],
             "evaluate": ["d"], "calibrate": ["d"], "health": [], "web": [], "history": ["list"],
             "job": ["worker", "--queue", "redis://127.0.0.1:6379/0"]}


@pytest.fixture
def server(monkeypatch):
    transport = FakeTransport(lambda _: one_face(0.1))
    monkeypatch.setattr(cli, "open_client", lambda args: fake_client(transport))
    return transport


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def timeout_of(argv) -> float:
    with open_client(build_parser().parse_args(argv)) as client:
        return client.timeout_s


def test_every_subcommand_is_listed_once_with_an_example():
    actions = [a for a in build_parser()._actions if a.dest == "command"]
    assert set(actions[0].choices) == set(SUBCOMMANDS) == set(ARGUMENTS)


@pytest.mark.parametrize("command", [c for c in SUBCOMMANDS if c != "history"])  # history reads a database only
def test_the_timeout_default_is_the_sdks_except_explain_and_never_leaks(command):
    """explain's longer default used to leak into every subcommand through the shared parent parser."""
    expected = EXPLAIN_TIMEOUT_S if command == "explain" else DEFAULT_TIMEOUT_S
    assert timeout_of([command, *ARGUMENTS[command]]) == expected
    assert timeout_of([command, *ARGUMENTS[command], "--timeout", "7"]) == 7.0


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_help_has_an_example(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and f"example:\n  deepfake {command} " in out
    assert EXAMPLES[command] in out


@pytest.mark.parametrize("command", ["image", "video", "explain", "folder"])
def test_a_url_is_refused_with_a_hint_not_a_mangled_path(server, command, capsys):
    url = "https://example.com/photos/face.jpg"
    code, out, err = run([command, url], capsys)
    assert code == ExitCode.INVALID_INPUT
    assert f"URLs are not supported: {url} (download the file first, then give its path)" in out + err
    assert "https:/example" not in out + err and "Traceback" not in err


def test_image_given_a_folder_or_a_video_names_the_command_to_use(server, tmp_path, capsys):
    code, out, err = run(["image", tmp_path], capsys)
    assert code == ExitCode.INVALID_INPUT and f"use `deepfake folder {tmp_path}`" in out + err
    clip = tmp_path / "clip.MP4"
    clip.write_bytes(b"not read")
    code, out, err = run(["image", clip], capsys)
    assert code == ExitCode.INVALID_INPUT and f"use `deepfake video {clip}`" in out + err
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), np.zeros((8, 8, 3), np.uint8))
    assert run(["image", photo], capsys)[0] == ExitCode.REAL  # an image still goes through


def test_health_table_and_json_say_why(server, capsys):
    code, out, _ = run(["health"], capsys)
    assert code == ExitCode.REAL and out.splitlines()[1].split() == ["reason", "ready"]
    server.unready_models = {"xception"}
    code, out, _ = run(["health"], capsys)
    assert code == ExitCode.UNAVAILABLE and "reason" in out and "these models cannot serve: xception" in out
    code, out, _ = run(["health", "--json"], capsys)
    assert json.loads(out)["reason"] == "these models cannot serve: xception"
    server.ready = False
    code, out, _ = run(["health"], capsys)
    assert "the model deepfake_detector is not ready" in out
