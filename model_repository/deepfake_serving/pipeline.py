"""The public models' pipeline: face detector -> classifiers -> combiner (-> explainer).

`deepfake_detector` and `deepfake_explainer` are python models that run these steps as BLS
calls (model_repository/README.md, "Admission"). Why not a Triton ensemble: an ensemble has
no single queue that counts the work admitted, so overload could only be shed by queue
timeouts inside the pipeline, after earlier steps had done their work (and Triton 2.51
leaks a request for each such refusal). Here the public model's own queue is the only place
where a request waits before any work is done: its instances bound the images in flight,
its queue (per priority level) bounds those waiting, and a full queue is refused at once.
Every later step has a queue large enough for everything admitted and no timeout, so an
admitted image is never refused.

`pb_utils` (triton_python_backend_utils) is passed in: this module imports without Triton.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

import deepfake_contract as contract

from .guard import INVALID_MARK


@dataclass(frozen=True)
class PipelineSettings:
    """Config parameters of a pipeline model (written at assembly, export/triton_config.py)."""

    model_names: tuple[str, ...]  # classifiers, in MODEL_NAMES order
    crop_sizes: tuple[int, ...]  # one per classifier: the crop tensor it reads
    explain: bool = False  # also run the explainer (deepfake_explainer)
    # Run the classifiers of one image at once (GPU) or one after another (CPU: they would
    # only share the same cores, each with its own thread pool).
    parallel_classifiers: bool = True
    # The classifiers take FACE_PRESENT and skip the rows marked False (python classifiers).
    mark_placeholders: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "model_names", tuple(self.model_names))
        object.__setattr__(self, "crop_sizes", tuple(int(s) for s in self.crop_sizes))
        if not self.model_names or len(self.model_names) != len(self.crop_sizes):
            raise ValueError(f"one crop size per classifier: {self.model_names} / {self.crop_sizes}")


def detector_output_names(settings: PipelineSettings) -> list[str]:
    sizes = tuple(dict.fromkeys(settings.crop_sizes))
    return [t.name for t in contract.detector_outputs(sizes) if t != contract.FACE_PRESENT]


def _failed(pb_utils, response) -> object | None:
    """The error answer for the client when a step failed, else None: INVALID_ARG with the
    step's reason when the input was at fault (guard.INVALID_MARK), else the step's own."""
    if not response.has_error():
        return None
    error = response.error()
    message = error.message()
    if message.startswith(INVALID_MARK) or error.code() == pb_utils.TritonError.INVALID_ARG:
        return pb_utils.InferenceResponse(
            error=pb_utils.TritonError(message.removeprefix(INVALID_MARK), pb_utils.TritonError.INVALID_ARG))
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(message, error.code()))


def _cancelled(pb_utils):
    return pb_utils.InferenceResponse(
        error=pb_utils.TritonError("the client cancelled the request", pb_utils.TritonError.CANCELLED))


async def _infer(pb_utils, model: str, inputs: Sequence, outputs: Sequence[str]):
    request = pb_utils.InferenceRequest(model_name=model, inputs=list(inputs), requested_output_names=list(outputs))
    return await request.async_exec()


def runs_all_steps(request) -> bool:
    """The liveness probe's request (contract.RUN_ALL_STEPS): call every step even without a
    face, so that a dead classifier stub fails the probe. The python classifiers get the
    placeholder row marked and do not run their network on it."""
    try:
        return json.loads(request.parameters() or "{}").get(contract.RUN_ALL_STEPS) is True
    except (ValueError, AttributeError):
        return False


async def _classify(pb_utils, settings: PipelineSettings, detected: dict,
                    placeholder: bool = False) -> tuple[list, object | None]:
    """Each classifier's logits tensor, or the error answer of the first that failed
    (placeholder: the crops are the no-face placeholder row, marked where that is understood)."""
    def inputs(size: int) -> list:
        crops = [pb_utils.Tensor(contract.CLASSIFIER_INPUT, detected[contract.crop_tensor(size).name].as_numpy())]
        if placeholder and settings.mark_placeholders:
            crops.append(pb_utils.Tensor(contract.FACE_PRESENT.name, np.zeros((1, 1), bool)))
        return crops

    calls = [_infer(pb_utils, name, inputs(size), [contract.CLASSIFIER_OUTPUT])
             for name, size in zip(settings.model_names, settings.crop_sizes)]
    if settings.parallel_classifiers:
        responses = await asyncio.gather(*calls)
    else:
        responses = [await call for call in calls]
    logits = []
    for name, response in zip(settings.model_names, responses):
        failed = _failed(pb_utils, response)
        if failed is not None:
            return [], failed
        rows = pb_utils.get_output_tensor_by_name(response, contract.CLASSIFIER_OUTPUT).as_numpy()
        logits.append(pb_utils.Tensor(contract.logits_tensor(name).name, rows))
    return logits, None


async def answer(pb_utils, request, settings: PipelineSettings):
    """The public answer to one request: every output of the contract, or the first step's error."""
    if request.is_cancelled():
        return _cancelled(pb_utils)
    image = pb_utils.get_input_tensor_by_name(request, contract.IMAGE.name)
    detector_outputs = detector_output_names(settings)
    response = await _infer(pb_utils, contract.FACE_DETECTOR_NAME, [image], detector_outputs)
    failed = _failed(pb_utils, response)
    if failed is not None:
        return failed
    detected = {name: pb_utils.get_output_tensor_by_name(response, name) for name in detector_outputs}
    num_faces = detected[contract.NUM_FACES.name]
    faces = int(num_faces.as_numpy()[0])
    if faces == 0 and not runs_all_steps(request):
        # No face: nothing to classify (the combiner takes zero logit rows for NO_FACE).
        logits = [pb_utils.Tensor(contract.logits_tensor(name).name, np.zeros((0, 2), np.float32))
                  for name in settings.model_names]
    else:
        if request.is_cancelled():
            return _cancelled(pb_utils)
        logits, failed = await _classify(pb_utils, settings, detected, placeholder=faces == 0)
        if failed is not None:
            return failed
    names = [t.name for t in contract.combiner_outputs(len(settings.model_names))]
    response = await _infer(pb_utils, contract.COMBINER_NAME, [num_faces, *logits], names)
    failed = _failed(pb_utils, response)
    if failed is not None:
        return failed
    tensors = {**detected, **{name: pb_utils.get_output_tensor_by_name(response, name) for name in names}}
    outputs = contract.ensemble_outputs(len(settings.model_names))
    if settings.explain:
        explained, failed = await _explain(pb_utils, settings, detected)
        if failed is not None:
            return failed
        tensors.update(explained)
        outputs += contract.explainer_outputs(len(settings.model_names))
    return pb_utils.InferenceResponse(output_tensors=[tensors[t.name] for t in outputs])


async def _explain(pb_utils, settings: PipelineSettings, detected: dict) -> tuple[dict, object | None]:
    sizes = tuple(dict.fromkeys(settings.crop_sizes))
    inputs = [detected[contract.crop_tensor(s).name] for s in sizes]
    inputs += [detected[contract.NUM_FACES.name], detected[contract.FACE_LANDMARKS.name]]
    names = [t.name for t in contract.explainer_outputs(len(settings.model_names))]
    response = await _infer(pb_utils, contract.EXPLAINER_NAME, inputs, names)
    failed = _failed(pb_utils, response)
    if failed is not None:
        return {}, failed
    return {name: pb_utils.get_output_tensor_by_name(response, name) for name in names}, None
