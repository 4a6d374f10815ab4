"""Typed builders for every `config.pbtxt` of the repository.

Configs are built as Triton's own protobuf messages (`ModelConfig` from
tritonclient), so a misspelt field fails here instead of at server start, and
the four near-identical classifier configs come from one function.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

import deepfake_contract as contract
from deepfake_contract import CLASSIFIER_INPUT, CLASSIFIER_OUTPUT, TensorSpec
from deepfake_contract.parameters import encode, from_parameters, to_parameters
from deepfake_models import ClassifierSpec, crop_sizes
from deepfake_serving.faces import DetectorSettings
from deepfake_serving.images import ImageLimits

# How the classifiers run in each flavour of the repository (docs/design.md §5).
PYTHON_ONNX = "python_onnxruntime"  # python backend + onnxruntime (pip-installable Triton)
ONNXRUNTIME = "onnxruntime"  # Triton's onnxruntime backend
TENSORRT = "tensorrt"  # TensorRT FP16 plans
PYTORCH = "pytorch"  # python backend + PyTorch FP16 on the GPU (no TensorRT at hand)


@dataclass(frozen=True)
class Flavour:
    name: str
    classifier_runtime: str
    gpu: bool
    classifier_max_batch_size: int  # must be >= the detector's max_faces
    classifier_instances: int
    face_detector_instances: int
    max_queue_delay_us: int
    max_queue_size: int  # requests waiting per classifier before new ones are rejected
    queue_timeout_us: int  # longest wait in any step's queue before the request is rejected
    warmup: bool
    # Requests waiting for face_detector before new ones are rejected. Every step has a bounded
    # queue and a timeout (model_repository/README.md, overload).
    detector_max_queue_size: int = 64
    # Batches the classifiers' dynamic batcher closes as soon as it has them (empty: Triton's
    # default, the largest batch the queue allows). A batch runs to its end whatever the queue
    # timeout: on a CPU a 16-face batch of ViT-L/14 is ~18 s, so the cpu flavour runs one
    # request's faces at a time and lets the timeout refuse the rest.
    preferred_batch_sizes: tuple[int, ...] = ()

    @property
    def instance_kind(self) -> int:
        return mc.ModelInstanceGroup.KIND_GPU if self.gpu else mc.ModelInstanceGroup.KIND_CPU


FLAVOURS: dict[str, Flavour] = {
    f.name: f
    for f in (
        # CPU: ViT-L/14 takes ~1.1 s per face on 2 cores (capacity ~0.86 images/s,
        # benchmarks/README.md). The 2 s queue timeout sheds the overload; the queue sizes are
        # a hard cap above what the timeout lets accumulate (Triton 2.51, which serves this
        # flavour, mishandles a full queue inside an ensemble: model_repository/README.md).
        Flavour("cpu", PYTHON_ONNX, gpu=False, classifier_max_batch_size=16,
                classifier_instances=1, face_detector_instances=2, max_queue_delay_us=5_000,
                max_queue_size=64, queue_timeout_us=2_000_000, warmup=False, detector_max_queue_size=64,
                preferred_batch_sizes=(1,)),
        Flavour("onnxruntime", ONNXRUNTIME, gpu=True, classifier_max_batch_size=64,
                classifier_instances=1, face_detector_instances=2, max_queue_delay_us=1_000,
                max_queue_size=1024, queue_timeout_us=2_000_000, warmup=True, detector_max_queue_size=1024),
        Flavour("tensorrt", TENSORRT, gpu=True, classifier_max_batch_size=64,
                classifier_instances=2, face_detector_instances=4, max_queue_delay_us=1_000,
                max_queue_size=1024, queue_timeout_us=2_000_000, warmup=True, detector_max_queue_size=1024),
        Flavour("pytorch", PYTORCH, gpu=True, classifier_max_batch_size=64,
                classifier_instances=1, face_detector_instances=4, max_queue_delay_us=1_000,
                max_queue_size=1024, queue_timeout_us=2_000_000, warmup=True, detector_max_queue_size=1024),
    )
}


def _config_dtype(dtype: str) -> int:
    # Triton's wire type BYTES is spelled TYPE_STRING in model configs.
    return mc.DataType.Value("TYPE_STRING" if dtype == "BYTES" else f"TYPE_{dtype}")


def _add_tensors(repeated, tensors: Sequence[TensorSpec]) -> None:
    for t in tensors:
        repeated.add(name=t.name, data_type=_config_dtype(t.dtype), dims=list(t.dims))


def _set_parameters(config: mc.ModelConfig, parameters: Mapping[str, str]) -> None:
    for key, value in parameters.items():
        config.parameters[key].string_value = str(value)


def face_detector_parameters(overrides: Mapping[str, str] = {}) -> dict[str, str]:
    """Detector and image-limit parameters: the runtime defaults, with validated overrides.
    (The device is chosen at run time from the instance kind.)"""
    defaults = {**to_parameters(DetectorSettings(), exclude=("device",)), **to_parameters(ImageLimits()),
                "torch_threads": encode(1)}
    unknown = set(overrides) - set(defaults)
    if unknown:
        raise ValueError(f"unknown face_detector parameters {sorted(unknown)}; known: {sorted(defaults)}")
    parameters = {**defaults, **overrides}
    from_parameters(DetectorSettings, parameters)  # raises ValueError on a bad value
    from_parameters(ImageLimits, parameters)
    return parameters


def bound_queue(config: mc.ModelConfig, max_queue_size: int, timeout_us: int) -> None:
    """A bounded queue whose requests are refused (UNAVAILABLE) when it is full or after
    waiting timeout_us. With max_batch_size 0 the dynamic batcher forms no batches: it is
    only the scheduler that owns this queue."""
    if max_queue_size <= 0 or timeout_us <= 0:
        raise ValueError("every queue needs a size and a timeout (0 means unbounded in Triton)")
    policy = config.dynamic_batching.default_queue_policy
    policy.max_queue_size = max_queue_size
    policy.timeout_action = mc.ModelQueuePolicy.REJECT
    policy.default_timeout_microseconds = timeout_us


def face_detector_config(flavour: Flavour, crop_sizes: tuple[int, ...], parameters: Mapping[str, str]) -> mc.ModelConfig:
    # max_batch_size 0: each request yields a variable number of faces, which the
    # classifiers (batching models) receive as a batch of that many rows.
    config = mc.ModelConfig(name=contract.FACE_DETECTOR_NAME, backend="python", max_batch_size=0)
    _add_tensors(config.input, [contract.IMAGE])
    _add_tensors(config.output, contract.detector_outputs(crop_sizes))
    config.instance_group.add(kind=flavour.instance_kind, count=flavour.face_detector_instances)
    bound_queue(config, flavour.detector_max_queue_size, flavour.queue_timeout_us)
    # The model emits exactly the crop tensors declared above.
    _set_parameters(config, {**parameters, "crop_sizes": encode(crop_sizes)})
    return config


def classifier_config(spec: ClassifierSpec, flavour: Flavour, parameters: Mapping[str, str]) -> mc.ModelConfig:
    config = mc.ModelConfig(name=spec.name, max_batch_size=flavour.classifier_max_batch_size)
    if flavour.classifier_runtime in (PYTHON_ONNX, PYTORCH):
        config.backend = "python"
    elif flavour.classifier_runtime == ONNXRUNTIME:
        config.backend = "onnxruntime"
    else:
        config.platform = "tensorrt_plan"
    crop = TensorSpec(CLASSIFIER_INPUT, "UINT8", (spec.input_size, spec.input_size, 3))
    _add_tensors(config.input, [crop])
    if skips_placeholders(flavour):
        # Optional: a direct caller without it gets every row classified.
        present = TensorSpec(contract.FACE_PRESENT.name, "BOOL", contract.FACE_PRESENT.dims[1:])
        _add_tensors(config.input, [present])
        config.input[-1].optional = True
    _add_tensors(config.output, [TensorSpec(CLASSIFIER_OUTPUT, "FP32", (2,))])

    config.dynamic_batching.max_queue_delay_microseconds = flavour.max_queue_delay_us
    config.dynamic_batching.preferred_batch_size.extend(flavour.preferred_batch_sizes)
    bound_queue(config, flavour.max_queue_size, flavour.queue_timeout_us)
    config.instance_group.add(kind=flavour.instance_kind, count=flavour.classifier_instances)

    if flavour.warmup:
        # Not READY until a full batch has run: readiness probes then mean "fast".
        for batch in sorted({1, flavour.classifier_max_batch_size}):
            warmup = config.model_warmup.add(name=f"batch_{batch}", batch_size=batch, count=2)
            warm_input = warmup.inputs[CLASSIFIER_INPUT]
            warm_input.data_type = mc.TYPE_UINT8
            warm_input.dims.extend(crop.dims)
            warm_input.random_data = True
    _set_parameters(config, parameters)
    return config


def skips_placeholders(flavour: Flavour) -> bool:
    """Python classifiers skip the detector's no-face placeholder row (FACE_PRESENT False).

    TensorRT plans and Triton's onnxruntime backend run every row they get: the
    placeholder is one row of a dynamic batch of up to 64 on a GPU, whose cost
    is that of the batch, not of its rows (benchmarks/README.md)."""
    return flavour.classifier_runtime in (PYTHON_ONNX, PYTORCH)


def add_ort_tensorrt_accelerator(config: mc.ModelConfig, cache_dir: str) -> None:
    """onnxruntime backend: run through the TensorRT execution provider in FP16.

    The engine cache matters: without it every load rebuilds the engines (minutes).
    """
    accelerator = config.optimization.execution_accelerators.gpu_execution_accelerator.add(name="tensorrt")
    accelerator.parameters.update({
        "precision_mode": "FP16",
        "max_workspace_size_bytes": str(4 << 30),
        "trt_engine_cache_enable": "1",
        "trt_engine_cache_path": cache_dir,
    })


# The combiner takes microseconds per request; its queue is bounded because it can also be
# called directly (model_repository/README.md), not because the ensemble would fill it.
COMBINER_MAX_QUEUE_SIZE = 256
COMBINER_QUEUE_TIMEOUT_US = 2_000_000


def combiner_config(model_names: Sequence[str], parameters: Mapping[str, str]) -> mc.ModelConfig:
    config = mc.ModelConfig(name=contract.COMBINER_NAME, backend="python", max_batch_size=0)
    _add_tensors(config.input, [contract.NUM_FACES] + [contract.logits_tensor(m) for m in model_names])
    _add_tensors(config.output, contract.combiner_outputs(len(model_names)))
    # Pure NumPy: a CPU instance, no CUDA context, no GPU memory.
    config.instance_group.add(kind=mc.ModelInstanceGroup.KIND_CPU, count=1)
    bound_queue(config, COMBINER_MAX_QUEUE_SIZE, COMBINER_QUEUE_TIMEOUT_US)
    _set_parameters(config, parameters)
    return config


def _step(model: str, inputs: Mapping[str, str], outputs: Mapping[str, str]):
    step = mc.ModelEnsembling.Step(model_name=model, model_version=-1)
    step.input_map.update(inputs)
    step.output_map.update(outputs)
    return step


def ensemble_config(classifiers: Sequence[ClassifierSpec], mark_placeholders: bool = False) -> mc.ModelConfig:
    """mark_placeholders: feed the detector's FACE_PRESENT to the classifiers
    (those that skip placeholders, see skips_placeholders)."""
    names = [spec.name for spec in classifiers]
    sizes = crop_sizes(classifiers)
    config = mc.ModelConfig(name=contract.ENSEMBLE_NAME, platform="ensemble", max_batch_size=0)
    _add_tensors(config.input, [contract.IMAGE])
    _add_tensors(config.output, contract.ensemble_outputs(len(names)))

    detector_out = {t.name: t.name for t in contract.detector_outputs(sizes)
                    if mark_placeholders or t != contract.FACE_PRESENT}
    steps = [_step(contract.FACE_DETECTOR_NAME, {contract.IMAGE.name: contract.IMAGE.name}, detector_out)]
    for spec in classifiers:
        classifier_in = {CLASSIFIER_INPUT: contract.crop_tensor(spec.input_size).name}
        if mark_placeholders:
            classifier_in[contract.FACE_PRESENT.name] = contract.FACE_PRESENT.name
        steps.append(_step(spec.name, classifier_in, {CLASSIFIER_OUTPUT: contract.logits_tensor(spec.name).name}))
    combiner_in = {contract.NUM_FACES.name: contract.NUM_FACES.name}
    combiner_in.update({contract.logits_tensor(n).name: contract.logits_tensor(n).name for n in names})
    combiner_out = {t.name: t.name for t in contract.combiner_outputs(len(names))}
    steps.append(_step(contract.COMBINER_NAME, combiner_in, combiner_out))
    config.ensemble_scheduling.step.extend(steps)
    return config


def render(config: mc.ModelConfig) -> str:
    return text_format.MessageToString(config)


def parse(text: str) -> mc.ModelConfig:
    return text_format.Parse(text, mc.ModelConfig())


def _full_shape(config: mc.ModelConfig, dims) -> tuple[int, ...]:
    """Shape a tensor has on the wire: batching models get a leading batch dimension."""
    return ((-1,) if config.max_batch_size > 0 else ()) + tuple(dims)


def _compatible(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return len(a) == len(b) and all(x == y or -1 in (x, y) for x, y in zip(a, b))


def check_ensemble(configs: Mapping[str, mc.ModelConfig], ensemble_name: str = contract.ENSEMBLE_NAME) -> list[str]:
    """Problems in the ensemble's wiring: unknown models or tensors, type/shape mismatches,
    outputs nobody produces. An empty list means Triton's own load-time checks will pass
    for these reasons too (and the ensemble cannot deadlock on a missing output)."""
    problems: list[str] = []
    ensemble = configs[ensemble_name]
    available = {t.name: (t.data_type, tuple(t.dims)) for t in ensemble.input}
    for step in ensemble.ensemble_scheduling.step:
        model = configs.get(step.model_name)
        if model is None:
            problems.append(f"step uses unknown model {step.model_name!r}")
            continue
        inputs = {t.name: t for t in model.input}
        outputs = {t.name: t for t in model.output}
        for model_tensor, ensemble_tensor in step.input_map.items():
            if model_tensor not in inputs:
                problems.append(f"{model.name} has no input {model_tensor!r}")
            elif ensemble_tensor not in available:
                problems.append(f"{model.name}.{model_tensor} reads {ensemble_tensor!r}, which no earlier step produces")
            else:
                dtype, shape = available[ensemble_tensor]
                wanted = inputs[model_tensor]
                if dtype != wanted.data_type or not _compatible(shape, _full_shape(model, wanted.dims)):
                    problems.append(
                        f"{model.name}.{model_tensor} expects {mc.DataType.Name(wanted.data_type)} "
                        f"{list(_full_shape(model, wanted.dims))}, {ensemble_tensor!r} is "
                        f"{mc.DataType.Name(dtype)} {list(shape)}"
                    )
        missing_inputs = {n for n, t in inputs.items() if not t.optional} - set(step.input_map)
        if missing_inputs:
            problems.append(f"{model.name}: inputs {sorted(missing_inputs)} are not fed")
        for model_tensor, ensemble_tensor in step.output_map.items():
            if model_tensor not in outputs:
                problems.append(f"{model.name} has no output {model_tensor!r}")
            else:
                out = outputs[model_tensor]
                available[ensemble_tensor] = (out.data_type, _full_shape(model, out.dims))
    for t in ensemble.output:
        if t.name not in available:
            problems.append(f"ensemble output {t.name!r} is produced by no step")
        elif available[t.name][0] != t.data_type or not _compatible(available[t.name][1], tuple(t.dims)):
            problems.append(f"ensemble output {t.name!r} is declared {mc.DataType.Name(t.data_type)} "
                            f"{list(t.dims)} but produced as {mc.DataType.Name(available[t.name][0])} "
                            f"{list(available[t.name][1])}")
    return problems


def explainer_config(flavour: Flavour, model_names: Sequence[str], sizes: tuple[int, ...],
                     parameters: Mapping[str, str]) -> mc.ModelConfig:
    """The explainer model: Grad-CAM of every classifier for the first max_faces faces."""
    config = mc.ModelConfig(name=contract.EXPLAINER_NAME, backend="python", max_batch_size=0)
    _add_tensors(config.input, [contract.crop_tensor(s) for s in sizes] + [contract.NUM_FACES, contract.FACE_LANDMARKS])
    _add_tensors(config.output, contract.explainer_outputs(len(model_names)))
    # One request at a time holds the instance for seconds on a CPU: a bounded queue
    # with the flavour's timeout, like the classifiers'.
    batching = config.dynamic_batching
    policy = batching.default_queue_policy
    policy.max_queue_size = EXPLAINER_MAX_QUEUE_SIZE
    policy.timeout_action = mc.ModelQueuePolicy.REJECT
    policy.default_timeout_microseconds = flavour.queue_timeout_us
    config.instance_group.add(kind=flavour.instance_kind, count=1)
    _set_parameters(config, {**parameters, "model_names": encode(list(model_names)),
                             "crop_sizes": encode(list(sizes))})
    return config


# Explanations cost seconds per face on a CPU: few may wait.
EXPLAINER_MAX_QUEUE_SIZE = 8


def explainer_ensemble_config(classifiers: Sequence[ClassifierSpec], mark_placeholders: bool = False) -> mc.ModelConfig:
    """`deepfake_explainer`: the deepfake_detector ensemble's steps and outputs, plus the
    explainer step and its heatmaps. The plain ensemble is not changed.
    mark_placeholders: as for ensemble_config (the same value as the plain ensemble's)."""
    config = ensemble_config(classifiers, mark_placeholders)
    config.name = contract.EXPLAINER_ENSEMBLE_NAME
    _add_tensors(config.output, contract.explainer_outputs(len(classifiers)))
    inputs = [contract.crop_tensor(s) for s in crop_sizes(classifiers)] + [contract.NUM_FACES, contract.FACE_LANDMARKS]
    outputs = contract.explainer_outputs(len(classifiers))
    config.ensemble_scheduling.step.append(
        _step(contract.EXPLAINER_NAME, {t.name: t.name for t in inputs}, {t.name: t.name for t in outputs}))
    return config
