"""Run one export step in a forked child process, so that whatever it leaves in memory is
returned to the system when it ends."""

from __future__ import annotations

import multiprocessing
import traceback
from collections.abc import Callable
from typing import Any

import torch

from export.errors import ExportError


def run_in_child(function: Callable[..., None], *args: Any) -> None:
    """Call function(*args) in a forked child (it inherits the registered classifiers) and wait;
    an ExportError raised there is raised here, any other failure as an ExportError with its
    traceback (the child's state is gone)."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(send, function, args), daemon=True)
    child.start()
    send.close()
    try:
        outcome = receive.recv()
    except EOFError:
        outcome = None
    finally:
        receive.close()
        child.join()
    if isinstance(outcome, ExportError):
        raise outcome
    if outcome != "done" or child.exitcode != 0:
        detail = outcome if isinstance(outcome, str) else f"exit code {child.exitcode}"
        raise ExportError(f"the export process failed: {detail}")


def _child(send: Any, function: Callable[..., None], args: tuple[Any, ...]) -> None:
    # One thread: OpenMP's thread pool does not survive a fork.
    torch.set_num_threads(1)
    try:
        function(*args)
        send.send("done")
    except ExportError as error:
        send.send(error)
    except Exception:  # reported to the parent, which raises it
        send.send(traceback.format_exc())
    finally:
        send.close()
