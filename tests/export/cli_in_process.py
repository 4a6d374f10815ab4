"""`deepfake-export` run in this process, its output captured as a finished process's would be.

A fresh interpreter per case would import torch again each time (seconds of CPU apiece); the
module entry point itself is covered by one subprocess case in test_export_cli.py."""

from __future__ import annotations

import contextlib
import io
import subprocess

from export.cli import main


def cli(*args: str) -> subprocess.CompletedProcess:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exit_:  # argparse's usage errors
            code = exit_.code
    return subprocess.CompletedProcess(["deepfake-export", *args], code, out.getvalue(), err.getvalue())
