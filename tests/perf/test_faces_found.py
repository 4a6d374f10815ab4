"""The SDK and CLI report faces the server's max_faces left out (NUM_FACES_FOUND, issue 13.2)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "client"))
from client_fakes import FakeTransport, ensemble_outputs, fake_client  # noqa: E402

from deepfake_client import ServerError, cli  # noqa: E402
from deepfake_client.results import parse_outputs  # noqa: E402


def test_faces_found_beyond_the_judged_faces_are_reported():
    result = parse_outputs(ensemble_outputs([[0.2] * 4, [0.3] * 4], faces_found=5))
    assert result.faces_found == 5 and result.faces_left_out == 3
    assert result.to_dict()["num_faces_found"] == 5


def test_an_older_server_without_the_output_reports_nothing_left_out():
    result = parse_outputs(ensemble_outputs([[0.2] * 4]))
    assert result.faces_found is None and result.faces_left_out == 0


def test_fewer_faces_found_than_judged_breaks_the_contract():
    with pytest.raises(ServerError, match="NUM_FACES_FOUND is 1 but NUM_FACES is 2"):
        parse_outputs(ensemble_outputs([[0.2] * 4, [0.3] * 4], faces_found=1))


@pytest.mark.parametrize("found, note", [(9, True), (1, False)])
def test_the_cli_says_when_faces_were_cut(monkeypatch, tmp_path, capsys, found, note):
    transport = FakeTransport(lambda _: ensemble_outputs([[0.1] * 4], faces_found=found))
    monkeypatch.setattr(cli, "open_client", lambda args: fake_client(transport))
    path = tmp_path / "crowd.png"
    cv2.imwrite(str(path), np.zeros((8, 8, 3), np.uint8))
    cli.main(["image", str(path)])
    out = capsys.readouterr().out
    assert ("9 faces found, only the 1 most confident were judged" in out) is note
    cli.main(["image", str(path), "--json"])
    assert json.loads(capsys.readouterr().out)["num_faces_found"] == found
