"""The `tensorrt` flavour as the serving container assembles it: generated from plan files
(fabricated: no TensorRT here) with the sidecars `deepfake-export tensorrt` writes, checked
against the real exported ONNX models (whose I/O the plans inherit) and the plans' profile."""

from __future__ import annotations

import json

import onnx
import pytest
from deploy_files import load_entrypoint, onnx_graph_io
from onnx import TensorProto, helper

from deepfake_models import CLASSIFIER_NAMES, CLASSIFIERS
from export import triton_config
from export.artifacts import BuildArtifacts
from export.provenance import sha256_file
from export.tensorrt_build import build_flags, plan_sidecar, precision_mode

ONNX_TO_TRITON = {"UINT8": "TYPE_UINT8", "FLOAT": "TYPE_FP32"}


def _shape(info) -> list:
    return [d.dim_param or d.dim_value for d in info.type.tensor_type.shape.dim]


def test_onnx_io_reader_agrees_with_onnx(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Cast", ["FACES"], ["X"], to=TensorProto.FLOAT),
         helper.make_node("ReduceMean", ["X"], ["LOGITS"], axes=[1, 2], keepdims=0)],
        "g",
        [helper.make_tensor_value_info("FACES", TensorProto.UINT8, ["batch", 4, 4, 3])],
        [helper.make_tensor_value_info("LOGITS", TensorProto.FLOAT, ["batch", 3])],
        initializer=[helper.make_tensor("unused", TensorProto.FLOAT, [1000], [0.5] * 1000)],
    )
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    inputs, outputs = onnx_graph_io(path)
    model = onnx.load(str(path))
    assert [i.SerializeToString() for i in inputs] == [i.SerializeToString() for i in model.graph.input]
    assert [o.SerializeToString() for o in outputs] == [o.SerializeToString() for o in model.graph.output]
    assert _shape(inputs[0]) == ["batch", 4, 4, 3]


@pytest.mark.slow
def test_generated_tensorrt_repository_matches_the_onnx_models_and_plans(export_artifacts, tmp_path):
    entrypoint = load_entrypoint()
    tensorrt_version, compute_capability = "10.16.1.11", "9.0"
    profile = entrypoint.plan_profile(8)
    view = entrypoint.prepare_build_view(export_artifacts, tmp_path / "cache", tmp_path / "work" / "build",
                                         CLASSIFIER_NAMES)
    keys = entrypoint.expected_plan_keys(view, CLASSIFIER_NAMES, tensorrt_version, compute_capability, profile)
    built = BuildArtifacts(view)
    flags = build_flags(precision_mode(tensorrt_version), profile)
    for name in CLASSIFIER_NAMES:  # what build_plan leaves for this GPU
        built.plan(name, keys[name]).parent.mkdir(parents=True, exist_ok=True)
        built.plan(name, keys[name]).write_bytes(b"serialized engine of " + name.encode())
        sidecar = plan_sidecar(name, tensorrt_version=tensorrt_version, gpu_name="NVIDIA H100 80GB HBM3",
                               compute_capability=compute_capability, onnx_file=f"{name}.onnx",
                               onnx_sha256=sha256_file(built.onnx(name)), flags=flags, untrained=True,
                               parity={"1": {"max_abs_fake_probability_diff": 2e-3}})
        assert sidecar["cache_key"] == keys[name]
        built.plan_sidecar(name, keys[name]).write_text(json.dumps(sidecar))

    selected = entrypoint.select_plans(view, keys, tmp_path / "work" / "selected")
    repository = entrypoint.assemble_repository(selected, tmp_path / "work" / "repository",
                                                tensorrt_version, compute_capability)
    configs = {p.parent.name: triton_config.parse(p.read_text()) for p in repository.glob("*/config.pbtxt")}
    assert triton_config.check_pipelines(configs, CLASSIFIERS) == []
    for name in CLASSIFIER_NAMES:
        config = configs[name]
        assert config.platform == "tensorrt_plan"
        assert (repository / name / "1" / "model.plan").read_bytes() == b"serialized engine of " + name.encode()
        # The plan is built from this ONNX file: its I/O is the plan's I/O.
        inputs, outputs = onnx_graph_io(BuildArtifacts(export_artifacts).onnx(name))
        for declared, actual in ((config.input, inputs), (config.output, outputs)):
            assert [t.name for t in declared] == [t.name for t in actual]
            for tensor, info in zip(declared, actual):
                onnx_type = TensorProto.DataType.Name(info.type.tensor_type.elem_type)
                assert triton_config.mc.DataType.Name(tensor.data_type) == ONNX_TO_TRITON[onnx_type], tensor.name
                batch, *dims = _shape(info)
                assert isinstance(batch, str) and batch, f"{name}.{tensor.name}: the batch dimension must be dynamic"
                assert config.max_batch_size > 0 and list(tensor.dims) == dims, f"{name}.{tensor.name}"
        # The plan's profile admits every batch Triton sends it, warmup included.
        record = json.loads(BuildArtifacts(selected).plan_sidecar(name, keys[name]).read_text())
        plan_profile = record["flags"]["profile"]
        assert plan_profile["min_batch"] == 1 <= plan_profile["opt_batch"] <= plan_profile["max_batch"]
        assert config.max_batch_size <= plan_profile["max_batch"]
        assert all(w.batch_size <= plan_profile["max_batch"] for w in config.model_warmup)
        assert record["onnx_sha256"] == sha256_file(BuildArtifacts(export_artifacts).onnx(name))
        # Bounded, and never refuses an admitted image for waiting (admission is at the entry).
        policy = config.dynamic_batching.default_queue_policy
        assert 0 < policy.max_queue_size and policy.default_timeout_microseconds == 0
    detector = configs["face_detector"].parameters
    assert int(detector["max_faces"].string_value) <= min(configs[n].max_batch_size for n in CLASSIFIER_NAMES)
    for limit in ("max_bytes", "max_pixels", "max_side"):
        assert int(detector[limit].string_value) > 0
    summary = json.loads((repository / "repository.json").read_text())
    assert summary["flavour"] == "tensorrt"
