"""The export step's child process: its errors reach the parent as ExportErrors, its files stay."""

from __future__ import annotations

import os

import pytest

from export.child_process import run_in_child
from export.errors import ExportError, ParityError


def test_the_child_does_the_work(tmp_path):
    target = tmp_path / "written"
    run_in_child(target.write_text, "by the child")
    assert target.read_text() == "by the child"


def test_an_export_error_in_the_child_is_raised_as_itself():
    def refuse():
        raise ParityError("xception: ONNX disagrees with PyTorch")

    with pytest.raises(ParityError, match="disagrees"):
        run_in_child(refuse)


def test_a_bug_in_the_child_is_an_export_error_with_its_traceback():
    def bug():
        raise ValueError("no such layer")

    with pytest.raises(ExportError, match="ValueError: no such layer"):
        run_in_child(bug)


def test_a_child_that_dies_is_an_export_error_with_its_exit_code():
    with pytest.raises(ExportError, match="exit code 3"):
        run_in_child(os._exit, 3)
