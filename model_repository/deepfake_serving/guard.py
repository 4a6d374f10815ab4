"""Per-request error handling for the python models (no Triton import here).

A client's bad input becomes INVALID_ARG with a message written for the client. Anything
else is a bug or a broken instance: it is logged server-side with its traceback, and the
client gets a short INTERNAL message naming the model, never a traceback or a server path.
One request's failure never fails the others handed over in the same execute() call.

Nothing here keeps an exception object: a kept exception holds its traceback, the
traceback its frames, and the frames the request payloads, which then only the cyclic
garbage collector could free (a 19 MiB upload each).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from deepfake_contract import CLASSIFIER_INPUT, CLASSIFIER_OUTPUT, FACE_PRESENT

from .combiner import CombinerInputError
from .images import InvalidImageError
from .placeholders import run_faces_in_one_batch

T = TypeVar("T")


class BadRequest(ValueError):
    """The request's tensors are not what this model accepts; the message tells the client why."""


# The errors that mean "the client sent something this model refuses".
INVALID_INPUT = (BadRequest, InvalidImageError, CombinerInputError)


@dataclass(frozen=True)
class Failure:
    """Why one request is answered with an error: invalid (the client's fault) or internal."""

    message: str
    invalid: bool


def guarded(model: str, log: Callable[[str], None], fn: Callable[..., T], *args) -> T | Failure:
    """fn(*args), or the Failure to send the client instead."""
    try:
        return fn(*args)
    except INVALID_INPUT as exc:
        return Failure(str(exc), invalid=True)
    except Exception as exc:  # a bug or a broken instance: log it here, tell the client little
        log(f"{model}: unexpected {type(exc).__name__} while serving a request:\n{traceback.format_exc()}")
        return Failure(f"{model}: internal error ({type(exc).__name__}); the details are in the server log",
                       invalid=False)


def guarded_batch(model: str, log: Callable[[str], None], inputs: Sequence[object],
                  run: Callable[[list], list]) -> list:
    """`run` on the valid inputs at once (it returns one result per input); if that fails, run
    them one by one so that only the requests that fail alone get an error."""
    valid = [i for i, item in enumerate(inputs) if not isinstance(item, Failure)]
    results = list(inputs)
    if not valid:
        return results
    batch = guarded(model, lambda _: None, run, [inputs[i] for i in valid])
    if isinstance(batch, Failure):
        batch = [guarded(model, log, _alone, run, inputs[i]) for i in valid]
    for i, result in zip(valid, batch):
        results[i] = result
    return results


def _alone(run: Callable[[list], list], item):
    (result,) = run([item])
    return result


def nonempty_rows(array: np.ndarray, name: str) -> np.ndarray:
    """A batched input with at least one row (Triton has checked dtype and the other dims)."""
    if array.ndim == 0 or array.shape[0] == 0:
        raise BadRequest(f"{name} must hold at least one row, got shape {list(array.shape)}")
    return array


# The python-backend side; `pb_utils` is triton_python_backend_utils, passed in so that this
# module imports without Triton (tests).

# Starts the message of an INVALID_ARG answer. Triton 2.51's python backend hands a BLS caller
# (the pipeline, deepfake_serving/pipeline.py) every error as INTERNAL, so the pipeline tells the
# client's fault by this mark, and removes it before answering.
INVALID_MARK = "invalid input: "


def error_response(pb_utils, failure: Failure):
    if failure.invalid:
        return pb_utils.InferenceResponse(
            error=pb_utils.TritonError(INVALID_MARK + failure.message, pb_utils.TritonError.INVALID_ARG))
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(failure.message, pb_utils.TritonError.INTERNAL))


def execute_classifier(pb_utils, model: str, requests, infer: Callable[[np.ndarray], np.ndarray]) -> list:
    """A classifier's execute(): every request's crops in one batch, each answered on its own;
    rows the detector marked as no-face placeholders (FACE_PRESENT) are not run."""
    log = pb_utils.Logger.log_error

    def crops(request):
        array = nonempty_rows(pb_utils.get_input_tensor_by_name(request, CLASSIFIER_INPUT).as_numpy(), CLASSIFIER_INPUT)
        marks = pb_utils.get_input_tensor_by_name(request, FACE_PRESENT.name)  # optional input
        present = None if marks is None else marks.as_numpy()
        if present is not None and len(present) != len(array):
            raise BadRequest(f"{FACE_PRESENT.name} has {len(present)} rows for {len(array)} crops")
        return array, present

    def run(items):
        return run_faces_in_one_batch([faces for faces, _ in items], [present for _, present in items], infer)

    inputs = [guarded(model, log, crops, request) for request in requests]
    return [error_response(pb_utils, result) if isinstance(result, Failure)
            else pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(CLASSIFIER_OUTPUT, result)])
            for result in guarded_batch(model, log, inputs, run)]
