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
class Admission:
    """How much work the public models take (model_repository/README.md, "Admission").

    An image is admitted when one of the pipeline's `in_flight` instances takes it, or its
    priority level's queue has room; otherwise it is refused at once (UNAVAILABLE, "Exceeds
    maximum queue size") before any work is done. Nothing admitted is refused later. Each
    level admits in_flight + its queue images: at the flavour's measured capacity C
    (images/s) an admitted image waits about (in_flight + queue) / C."""

    in_flight: int  # pipeline instances: images worked on at once
    bulk_queue: int  # waiting at PRIORITY_BULK (the default: batches, videos, raw clients)
    interactive_queue: int  # waiting at PRIORITY_INTERACTIVE (single images, webcam frames)

    def __post_init__(self) -> None:
        if min(self.in_flight, self.bulk_queue, self.interactive_queue) < 1:
            raise ValueError(f"every admission bound must be >= 1, got {self}")

    @property
    def admitted(self) -> int:
        """The most images the pipeline holds at once (in flight plus both queues)."""
        return self.in_flight + self.bulk_queue + self.interactive_queue


@dataclass(frozen=True)
class Flavour:
    name: str
    classifier_runtime: str
    gpu: bool
    classifier_max_batch_size: int  # must be >= the detector's max_faces
    classifier_instances: int
    face_detector_instances: int
    max_queue_delay_us: int
    admission: Admission  # the public deepfake_detector model's bounds
    warmup: bool
    # The classifiers of one image run at once (GPU) or one after another (CPU, where they
    # would only compete for the same cores).
    parallel_classifiers: bool = True
    # Batches the classifiers' dynamic batcher closes as soon as it has them (empty: Triton's
    # default, the largest batch the queue allows).
    preferred_batch_sizes: tuple[int, ...] = ()

    @property
    def instance_kind(self) -> int:
        return mc.ModelInstanceGroup.KIND_GPU if self.gpu else mc.ModelInstanceGroup.KIND_CPU

    @property
    def inner_queue_size(self) -> int:
        """Every inner step's queue holds all that the public models admit (each admitted image
        has at most one request waiting per step), with room for direct callers."""
        return 2 * (self.admission.admitted + EXPLAINER_ADMISSION.admitted)


# deepfake_explainer: Grad-CAM costs seconds per face on a CPU, so few are admitted.
EXPLAINER_ADMISSION = Admission(in_flight=1, bulk_queue=2, interactive_queue=2)

FLAVOURS: dict[str, Flavour] = {
    f.name: f
    for f in (
        # CPU, 2 cores: the four classifiers take ~0.6 s per face (capacity ~1.6 images/s,
        # benchmarks/README.md) and more images at once add no throughput, only waiting. Two in
        # flight keep the detector of one image beside the classifiers of the other; a queue of
        # 6 per level lets a closed loop of 8 clients run without refusals (~5 s of waiting at most).
        Flavour("cpu", PYTHON_ONNX, gpu=False, classifier_max_batch_size=16,
                classifier_instances=1, face_detector_instances=1, max_queue_delay_us=0,
                admission=Admission(in_flight=2, bulk_queue=8, interactive_queue=8), warmup=False,
                parallel_classifiers=False, preferred_batch_sizes=(1,)),
        # GPU flavours: not measured here (no GPU in CI). Bound = capacity x target latency:
        # ~1,000 images/s x 50 ms ~ 50 in flight, and a queue of about as many per level.
        Flavour("onnxruntime", ONNXRUNTIME, gpu=True, classifier_max_batch_size=64,
                classifier_instances=1, face_detector_instances=2, max_queue_delay_us=1_000,
                admission=Admission(in_flight=48, bulk_queue=64, interactive_queue=32), warmup=True),
        Flavour("tensorrt", TENSORRT, gpu=True, classifier_max_batch_size=64,
                classifier_instances=2, face_detector_instances=4, max_queue_delay_us=1_000,
                admission=Admission(in_flight=48, bulk_queue=64, interactive_queue=32), warmup=True),
        Flavour("pytorch", PYTORCH, gpu=True, classifier_max_batch_size=64,
                classifier_instances=1, face_detector_instances=4, max_queue_delay_us=1_000,
                admission=Admission(in_flight=48, bulk_queue=64, interactive_queue=32), warmup=True),
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


def bound_queue(config: mc.ModelConfig, max_queue_size: int) -> None:
    """An inner step's queue: bounded (a request beyond it is refused), without a timeout (an
    admitted image is never refused for waiting). With max_batch_size 0 the dynamic batcher
    forms no batches: it is only the scheduler that owns this queue."""
    if max_queue_size <= 0:
        raise ValueError("every queue needs a size (0 means unbounded in Triton)")
    config.dynamic_batching.default_queue_policy.max_queue_size = max_queue_size


def admission_queue(config: mc.ModelConfig, admission: Admission) -> None:
    """The public model's queue: one bound per priority level, refused at once when full, no
    timeout (time is the client's: a deadline or a client-side timeout)."""
    batching = config.dynamic_batching
    batching.priority_levels = contract.PRIORITY_LEVELS
    batching.default_priority_level = contract.PRIORITY_BULK
    batching.default_queue_policy.max_queue_size = admission.bulk_queue
    batching.priority_queue_policy[contract.PRIORITY_INTERACTIVE].max_queue_size = admission.interactive_queue


def face_detector_config(flavour: Flavour, crop_sizes: tuple[int, ...], parameters: Mapping[str, str]) -> mc.ModelConfig:
    # max_batch_size 0: each request yields a variable number of faces, which the
    # classifiers (batching models) receive as a batch of that many rows.
    config = mc.ModelConfig(name=contract.FACE_DETECTOR_NAME, backend="python", max_batch_size=0)
    _add_tensors(config.input, [contract.IMAGE])
    _add_tensors(config.output, contract.detector_outputs(crop_sizes))
    config.instance_group.add(kind=flavour.instance_kind, count=flavour.face_detector_instances)
    bound_queue(config, flavour.inner_queue_size)
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
    bound_queue(config, flavour.inner_queue_size)
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


def combiner_config(flavour: Flavour, model_names: Sequence[str], parameters: Mapping[str, str]) -> mc.ModelConfig:
    config = mc.ModelConfig(name=contract.COMBINER_NAME, backend="python", max_batch_size=0)
    _add_tensors(config.input, [contract.NUM_FACES] + [contract.logits_tensor(m) for m in model_names])
    _add_tensors(config.output, contract.combiner_outputs(len(model_names)))
    # Pure NumPy: a CPU instance, no CUDA context, no GPU memory.
    config.instance_group.add(kind=mc.ModelInstanceGroup.KIND_CPU, count=1)
    bound_queue(config, flavour.inner_queue_size)
    _set_parameters(config, parameters)
    return config


def _step(model: str, inputs: Mapping[str, str], outputs: Mapping[str, str]):
    step = mc.ModelEnsembling.Step(model_name=model, model_version=-1)
    step.input_map.update(inputs)
    step.output_map.update(outputs)
    return step


def ensemble_config(classifiers: Sequence[ClassifierSpec]) -> mc.ModelConfig:
    """The data flow of `deepfake_detector`, as a Triton ensemble. It is not served: the
    pipeline model (pipeline_config) runs these steps, and check_ensemble proves on this
    description that every tensor it passes exists with the right type and shape. (The
    pipeline skips the classifiers when there is no face, so it never sends FACE_PRESENT.)"""
    names = [spec.name for spec in classifiers]
    sizes = crop_sizes(classifiers)
    config = mc.ModelConfig(name=contract.ENSEMBLE_NAME, platform="ensemble", max_batch_size=0)
    _add_tensors(config.input, [contract.IMAGE])
    _add_tensors(config.output, contract.ensemble_outputs(len(names)))

    detector_out = {t.name: t.name for t in contract.detector_outputs(sizes) if t != contract.FACE_PRESENT}
    steps = [_step(contract.FACE_DETECTOR_NAME, {contract.IMAGE.name: contract.IMAGE.name}, detector_out)]
    for spec in classifiers:
        classifier_in = {CLASSIFIER_INPUT: contract.crop_tensor(spec.input_size).name}
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
    # Only the deepfake_explainer pipeline calls it, at most EXPLAINER_ADMISSION.in_flight at once.
    bound_queue(config, flavour.inner_queue_size)
    config.instance_group.add(kind=flavour.instance_kind, count=1)
    _set_parameters(config, {**parameters, "model_names": encode(list(model_names)),
                             "crop_sizes": encode(list(sizes))})
    return config


def explainer_ensemble_config(classifiers: Sequence[ClassifierSpec]) -> mc.ModelConfig:
    """The data flow of `deepfake_explainer`: the deepfake_detector steps and outputs, plus
    the explainer step and its heatmaps (checked like an ensemble, see ensemble_config)."""
    config = ensemble_config(classifiers)
    config.name = contract.EXPLAINER_ENSEMBLE_NAME
    _add_tensors(config.output, contract.explainer_outputs(len(classifiers)))
    inputs = [contract.crop_tensor(s) for s in crop_sizes(classifiers)] + [contract.NUM_FACES, contract.FACE_LANDMARKS]
    outputs = contract.explainer_outputs(len(classifiers))
    config.ensemble_scheduling.step.append(
        _step(contract.EXPLAINER_NAME, {t.name: t.name for t in inputs}, {t.name: t.name for t in outputs}))
    return config


def pipeline_config(flavour: Flavour, classifiers: Sequence[ClassifierSpec], explain: bool = False) -> mc.ModelConfig:
    """A public model: `deepfake_detector` (explain False) or `deepfake_explainer`, a python
    model running deepfake_serving/pipeline.py, with its admission bounds."""
    num_models = len(classifiers)
    name = contract.EXPLAINER_ENSEMBLE_NAME if explain else contract.ENSEMBLE_NAME
    config = mc.ModelConfig(name=name, backend="python", max_batch_size=0)
    _add_tensors(config.input, [contract.IMAGE])
    _add_tensors(config.output, contract.explainer_ensemble_outputs(num_models) if explain
                 else contract.ensemble_outputs(num_models))
    admission = EXPLAINER_ADMISSION if explain else flavour.admission
    # BLS calls only wait for other models: a CPU instance, whatever the flavour.
    config.instance_group.add(kind=mc.ModelInstanceGroup.KIND_CPU, count=admission.in_flight)
    admission_queue(config, admission)
    _set_parameters(config, {
        "model_names": encode([spec.name for spec in classifiers]),
        "crop_sizes": encode([spec.input_size for spec in classifiers]),
        "explain": encode(explain),
        "parallel_classifiers": encode(flavour.parallel_classifiers),
        "mark_placeholders": encode(skips_placeholders(flavour)),
    })
    return config


def check_pipelines(configs: Mapping[str, mc.ModelConfig], classifiers: Sequence[ClassifierSpec]) -> list[str]:
    """Problems in a repository's public pipelines: each one's data flow is checked as the
    ensemble it is equivalent to, and its served inputs and outputs must be that flow's."""
    flows = [ensemble_config(classifiers)]
    if contract.EXPLAINER_ENSEMBLE_NAME in configs:
        flows.append(explainer_ensemble_config(classifiers))
    problems: list[str] = []
    for flow in flows:
        served = configs.get(flow.name)
        if served is None:
            problems.append(f"no model {flow.name!r}")
            continue
        if list(served.input) != list(flow.input) or list(served.output) != list(flow.output):
            problems.append(f"{flow.name}: served inputs/outputs differ from its data flow's")
        problems += check_ensemble({**configs, flow.name: flow}, flow.name)
    return problems
