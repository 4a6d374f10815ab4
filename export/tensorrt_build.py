"""ONNX → TensorRT FP16 plan, built on the target GPU.

A plan only deserializes with the exact TensorRT version that built it and only
runs on GPUs of the compute capability it was built for, so plans are cached
per (TensorRT version, compute capability, ONNX sha256, build flags) under
BUILD/plans/<model>/<key>.plan, each with a JSON sidecar.

Precision: TensorRT 10 builds the FP32 ONNX with the FP16 builder flag;
TensorRT 11 has no such flag (strongly typed networks only), so it builds the
mixed-precision ONNX from export.mixed_precision.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_contract import CLASSIFIER_INPUT, CLASSIFIER_OUTPUT
from deepfake_models import spec_by_name
from export.artifacts import BuildArtifacts
from export.errors import ExportError, TensorRTUnavailableError
from export.mixed_precision import CONVERTER, export_mixed_precision
from export.parity import Runner, measure, onnxruntime_runner, require_agreement, worst
from export.provenance import atomic_output, read_json, sha256_file, write_json

log = logging.getLogger(__name__)

WHERE_TO_RUN = (
    "Build plans on the target GPU, inside the image you serve with "
    "(nvcr.io/nvidia/tritonserver:<tag>-py3) or nvcr.io/nvidia/tensorrt:<tag>-py3 of the same tag; "
    "see docker/README.md"
)
FP16_BUILDER_FLAG = "fp16-builder-flag"
STRONGLY_TYPED = "strongly-typed-mixed-precision"


@dataclass(frozen=True)
class Profile:
    """The batch sizes of the plan's optimisation profile."""

    min_batch: int = 1
    opt_batch: int = 8
    max_batch: int = 32

    def __post_init__(self) -> None:
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise ExportError(
                f"invalid optimisation profile: need 1 ≤ min ({self.min_batch}) ≤ opt ({self.opt_batch}) "
                f"≤ max ({self.max_batch})"
            )


def precision_mode(tensorrt_version: str) -> str:
    return FP16_BUILDER_FLAG if int(tensorrt_version.split(".")[0]) < 11 else STRONGLY_TYPED


def build_flags(mode: str, profile: Profile) -> dict[str, Any]:
    flags: dict[str, Any] = {"precision": mode, "profile": asdict(profile)}
    if mode == STRONGLY_TYPED:
        flags["mixed_precision_converter"] = CONVERTER
    return flags


def plan_cache_key(tensorrt_version: str, compute_capability: str, onnx_sha256: str, flags: dict[str, Any]) -> str:
    """A short stable id of everything a plan depends on."""
    identity = {
        "tensorrt_version": tensorrt_version,
        "compute_capability": compute_capability,
        "onnx_sha256": onnx_sha256,
        "flags": flags,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def plan_sidecar(
    name: str,
    *,
    tensorrt_version: str,
    gpu_name: str,
    compute_capability: str,
    onnx_file: str,
    onnx_sha256: str,
    flags: dict[str, Any],
    untrained: bool,
    parity: dict[str, dict[str, float]],
    licence: str | None = None,  # the weights' (artifacts.licence); None where unknown
) -> dict[str, Any]:
    tolerance = spec_by_name(name).tolerances.reduced_precision
    return {
        "model": name,
        "untrained": untrained,
        "licence": licence,
        "tensorrt_version": tensorrt_version,
        "gpu_name": gpu_name,
        "compute_capability": compute_capability,
        "onnx": onnx_file,
        "onnx_sha256": onnx_sha256,
        "flags": flags,
        "cache_key": plan_cache_key(tensorrt_version, compute_capability, onnx_sha256, flags),
        "parity": {
            "reference": "FP32 ONNX on onnxruntime CPU",
            "tolerance_fake_probability": tolerance,
            "batches": parity,
            "passed": worst(parity) <= tolerance,
        },
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def import_tensorrt():
    try:
        import tensorrt
    except ImportError as error:
        raise TensorRTUnavailableError(
            f"TensorRT is not installed here (import tensorrt failed: {error}). {WHERE_TO_RUN}."
        ) from None
    return tensorrt


def cuda_device() -> tuple[str, str]:
    """(GPU name, compute capability "major.minor") of the GPU the build runs on."""
    import torch

    if not torch.cuda.is_available():
        raise TensorRTUnavailableError(f"no CUDA GPU is visible (start the container with --gpus). {WHERE_TO_RUN}.")
    major, minor = torch.cuda.get_device_capability(0)
    return torch.cuda.get_device_name(0), f"{major}.{minor}"


def build_plan(name: str, artifacts: BuildArtifacts, profile: Profile) -> dict[str, Any]:
    """Build (or find in the cache) the FP16 plan of `name` for this GPU and TensorRT."""
    trt = import_tensorrt()
    gpu_name, compute_capability = cuda_device()
    onnx_path = artifacts.existing_onnx(name)
    onnx_sha256 = sha256_file(onnx_path)
    mode = precision_mode(trt.__version__)
    flags = build_flags(mode, profile)
    key = plan_cache_key(trt.__version__, compute_capability, onnx_sha256, flags)
    plan_path, sidecar_path = artifacts.plan(name, key), artifacts.plan_sidecar(name, key)
    cached = read_json(sidecar_path)
    if cached is not None and cached["parity"]["passed"] and plan_path.is_file():
        log.info("%s: plan up to date (%s)", name, plan_path)
        return cached

    parsed = onnx_path
    if mode == STRONGLY_TYPED:
        export_mixed_precision(name, artifacts)
        parsed = artifacts.mixed_precision_onnx(name)
    log.info("%s: building a TensorRT %s plan (%s) on %s, profile %s", name, trt.__version__, mode, gpu_name, profile)
    plan = _build_engine(trt, parsed, spec_by_name(name).input_size, profile, strongly_typed=mode == STRONGLY_TYPED)

    log.info("%s: checking the plan against the FP32 ONNX", name)
    batches = sorted({profile.min_batch, min(8, profile.max_batch)})
    results = measure(onnxruntime_runner(onnx_path), _engine_runner(trt, plan), spec_by_name(name).input_size, batches)
    sidecar = plan_sidecar(
        name,
        tensorrt_version=trt.__version__,
        gpu_name=gpu_name,
        compute_capability=compute_capability,
        onnx_file=onnx_path.name,
        onnx_sha256=onnx_sha256,
        flags=flags,
        untrained=artifacts.is_untrained(name),
        parity=results,
        licence=artifacts.licence(name),
    )
    require_agreement(
        results, spec_by_name(name).tolerances.reduced_precision,
        f"{name}: the TensorRT plan disagrees with the ONNX model", "plan not kept"
    )
    with atomic_output(plan_path) as partial:
        partial.write_bytes(plan)
    write_json(sidecar_path, sidecar)
    log.info("%s: wrote %s (max |Δ fake probability| %.2e)", name, plan_path, worst(results))
    return sidecar


def _build_engine(trt, onnx_path: Path, input_size: int, profile: Profile, strongly_typed: bool) -> bytes:
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    creation_flags = 0
    strongly_typed_flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if strongly_typed and strongly_typed_flag is not None:  # TensorRT 11 networks are always strongly typed
        creation_flags |= 1 << int(strongly_typed_flag)
    network = builder.create_network(creation_flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(index)) for index in range(parser.num_errors))
        raise ExportError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    if not strongly_typed:
        config.set_flag(trt.BuilderFlag.FP16)
    optimisation_profile = builder.create_optimization_profile()
    shape = (input_size, input_size, 3)
    optimisation_profile.set_shape(
        CLASSIFIER_INPUT, (profile.min_batch, *shape), (profile.opt_batch, *shape), (profile.max_batch, *shape)
    )
    config.add_optimization_profile(optimisation_profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(f"TensorRT failed to build a plan from {onnx_path} (see the TensorRT log above)")
    return bytes(serialized)


def _engine_runner(trt, plan: bytes) -> Runner:
    import torch

    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(plan)
    context = engine.create_execution_context()

    def run(faces: np.ndarray) -> np.ndarray:
        inputs = torch.from_numpy(faces).cuda()
        logits = torch.empty((faces.shape[0], 2), dtype=torch.float32, device="cuda")
        context.set_input_shape(CLASSIFIER_INPUT, tuple(faces.shape))
        context.set_tensor_address(CLASSIFIER_INPUT, inputs.data_ptr())
        context.set_tensor_address(CLASSIFIER_OUTPUT, logits.data_ptr())
        stream = torch.cuda.current_stream()
        if not context.execute_async_v3(stream.cuda_stream):
            raise ExportError("TensorRT failed to run the plan")
        stream.synchronize()
        return logits.cpu().numpy()

    return run
