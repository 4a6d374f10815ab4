"""Per-request error handling of the python models (deepfake_serving.guard) and the
rejected-upload reference cycle (detect_faces keeps no traceback)."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from deepfake_serving.detection import detect_faces
from deepfake_serving.faces import DetectorSettings
from deepfake_serving.guard import BadRequest, Failure, guarded, guarded_batch, nonempty_rows
from deepfake_serving.images import InvalidImageError


def test_a_bad_request_becomes_an_invalid_failure_with_its_message():
    logged = []

    def refuse(x):
        raise BadRequest(f"no {x}")

    assert guarded("m", logged.append, refuse, "thanks") == Failure("no thanks", invalid=True)
    assert guarded("m", logged.append, lambda: 3) == 3
    assert logged == []


def test_an_unexpected_error_is_logged_with_its_traceback_and_the_client_sees_no_path():
    logged = []

    def broken():
        raise KeyError("/secret/server/path.py")

    failure = guarded("xception", logged.append, broken)
    assert not failure.invalid
    assert failure.message == "xception: internal error (KeyError); the details are in the server log"
    assert "/secret/server/path.py" in logged[0] and "Traceback" in logged[0] and "broken" in logged[0]


def test_a_batch_that_fails_is_rerun_one_by_one_so_only_the_bad_request_fails():
    logged, calls = [], []

    def run(items):
        calls.append(list(items))
        if "bad" in items:
            raise RuntimeError("boom")
        return [item.upper() for item in items]

    inputs = ["a", Failure("refused", invalid=True), "bad", "c"]
    results = guarded_batch("m", logged.append, inputs, run)
    assert results[0] == "A" and results[3] == "C"
    assert results[1] == Failure("refused", invalid=True)
    assert isinstance(results[2], Failure) and not results[2].invalid
    assert calls[0] == ["a", "bad", "c"] and len(logged) == 1  # the batch failure itself is not logged


def test_a_batch_of_failures_runs_nothing():
    inputs = [Failure("x", invalid=True)]
    assert guarded_batch("m", print, inputs, lambda items: pytest.fail("ran")) == inputs


def test_nonempty_rows():
    assert nonempty_rows(np.zeros((2, 3)), "X").shape == (2, 3)
    for shape in ((0, 3), ()):
        with pytest.raises(BadRequest, match="at least one row"):
            nonempty_rows(np.zeros(shape), "X")


class _Payload(bytearray):
    """A request payload that can be watched with a weak reference."""


class _NoFaces:
    settings = DetectorSettings()

    def detect_counted(self, images):
        return [([], 0) for _ in images]


@pytest.mark.parametrize("data", [b"not an image at all" * 100, b"\xff\xd8\xff" + b"\x00" * 2000,
                                  b"\x89PNG\r\n\x1a\n" + b"\x00" * 2000])
def test_a_rejected_upload_is_freed_without_the_cyclic_gc(data):
    gc.disable()
    try:
        payload = _Payload(data)
        watch = weakref.ref(payload)
        (result,) = detect_faces([payload], _NoFaces())
        assert isinstance(result, InvalidImageError)
        assert result.__traceback__ is None and result.__cause__ is None and result.__context__ is None
        del payload
        assert watch() is None, "the rejected payload is still referenced (traceback cycle)"
    finally:
        gc.enable()
