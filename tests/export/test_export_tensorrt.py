"""TensorRT plan building: the pure-Python parts run everywhere; building a plan
needs TensorRT and a GPU (NGC container) and is skipped otherwise."""

from __future__ import annotations

import importlib.util

import pytest

from export.artifacts import BuildArtifacts
from export.errors import ExportError, TensorRTUnavailableError
from export.tensorrt_build import (
    FP16_BUILDER_FLAG,
    STRONGLY_TYPED,
    Profile,
    build_flags,
    build_plan,
    plan_cache_key,
    plan_sidecar,
    precision_mode,
)

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None
ONNX_SHA = "a" * 64


def test_precision_mode_follows_the_tensorrt_major_version():
    assert precision_mode("10.5.0") == FP16_BUILDER_FLAG
    assert precision_mode("10.14.1.48") == FP16_BUILDER_FLAG
    assert precision_mode("11.4.0.106") == STRONGLY_TYPED
    assert "mixed_precision_converter" in build_flags(STRONGLY_TYPED, Profile())
    assert "mixed_precision_converter" not in build_flags(FP16_BUILDER_FLAG, Profile())


def test_cache_key_changes_with_everything_a_plan_depends_on():
    flags = build_flags(FP16_BUILDER_FLAG, Profile(1, 8, 32))
    key = plan_cache_key("10.5.0", "9.0", ONNX_SHA, flags)
    assert key == plan_cache_key("10.5.0", "9.0", ONNX_SHA, dict(reversed(list(flags.items()))))
    variants = [
        plan_cache_key("10.6.0", "9.0", ONNX_SHA, flags),
        plan_cache_key("10.5.0", "8.9", ONNX_SHA, flags),
        plan_cache_key("10.5.0", "9.0", "b" * 64, flags),
        plan_cache_key("10.5.0", "9.0", ONNX_SHA, build_flags(FP16_BUILDER_FLAG, Profile(1, 8, 64))),
        plan_cache_key("10.5.0", "9.0", ONNX_SHA, build_flags(STRONGLY_TYPED, Profile(1, 8, 32))),
    ]
    assert len({key, *variants}) == 6


@pytest.mark.parametrize("batches", [(0, 8, 32), (1, 64, 32), (4, 2, 32)])
def test_invalid_profile_is_a_clear_error(batches):
    with pytest.raises(ExportError, match="invalid optimisation profile"):
        Profile(*batches)


def sidecar_with(parity, flags):
    return plan_sidecar(
        "xception", tensorrt_version="11.4.0", gpu_name="NVIDIA H100", compute_capability="9.0",
        onnx_file="xception.onnx", onnx_sha256=ONNX_SHA, flags=flags, untrained=True, parity=parity,
    )


def test_sidecar_records_the_build_and_its_parity():
    flags = build_flags(STRONGLY_TYPED, Profile(1, 8, 32))
    sidecar = sidecar_with({"1": {"max_abs_fake_probability_diff": 3e-3}, "8": {"max_abs_fake_probability_diff": 4e-3}}, flags)
    assert sidecar["cache_key"] == plan_cache_key("11.4.0", "9.0", ONNX_SHA, flags)
    assert sidecar["tensorrt_version"] == "11.4.0" and sidecar["compute_capability"] == "9.0"
    assert sidecar["gpu_name"] == "NVIDIA H100" and sidecar["onnx_sha256"] == ONNX_SHA
    assert sidecar["flags"]["profile"] == {"min_batch": 1, "opt_batch": 8, "max_batch": 32}
    assert sidecar["untrained"] is True and sidecar["parity"]["passed"] is True
    failing = sidecar_with({"1": {"max_abs_fake_probability_diff": 2e-2}}, flags)
    assert failing["parity"]["passed"] is False


def test_artifacts_list_only_complete_plans(tmp_path):
    artifacts = BuildArtifacts(tmp_path)
    sidecar = artifacts.plan_sidecar("f3net", "k1")
    sidecar.parent.mkdir(parents=True)
    sidecar.write_text('{"tensorrt_version": "10.5.0", "compute_capability": "9.0"}')
    assert artifacts.plans("f3net") == []  # a sidecar without its plan
    artifacts.plan("f3net", "k1").write_bytes(b"plan")
    assert artifacts.plans("f3net") == [
        {"tensorrt_version": "10.5.0", "compute_capability": "9.0", "plan": str(artifacts.plan("f3net", "k1"))}
    ]


@pytest.mark.skipif(HAS_TENSORRT, reason="TensorRT is installed: the missing-TensorRT message cannot be shown")
def test_missing_tensorrt_says_what_is_missing_and_where_to_run(tmp_path):
    with pytest.raises(TensorRTUnavailableError, match=r"TensorRT is not installed here.*nvcr\.io/nvidia/tritonserver"):
        build_plan("xception", BuildArtifacts(tmp_path), Profile())


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_TENSORRT, reason="needs TensorRT (NGC tritonserver/tensorrt container on a GPU)")
def test_plan_builds_and_matches_onnx(export_artifacts):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    artifacts = BuildArtifacts(export_artifacts)
    sidecar = build_plan("xception", artifacts, Profile(1, 4, 8))
    assert sidecar["parity"]["passed"]
    assert artifacts.plan("xception", sidecar["cache_key"]).stat().st_size > 0
    assert build_plan("xception", artifacts, Profile(1, 4, 8)) == sidecar  # cached
