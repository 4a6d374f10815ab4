"""ONNX export (contract, metadata, parity with PyTorch) and the mixed-precision
conversion used for strongly typed TensorRT builds, both on onnxruntime CPU."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from released_files import SMALL_EFFORT_SPEC, save, small_effort

from deepfake_contract import CLASSIFIER_INPUT, CLASSIFIER_OUTPUT
from deepfake_models import CLASSIFIERS
from deepfake_models.classifiers.xception import XCEPTION
from deepfake_models.servable import build_servable, load_servable
from export.artifacts import BuildArtifacts
from export.demo_weights import demo_state_dict, sidecar_path
from export.fixing import fix_checkpoint
from export.licences import DEMO_WEIGHTS
from export.mixed_precision import convert_to_mixed_precision, export_mixed_precision, write_mixed_precision_onnx
from export.onnx_export import MAX_TRACED_BATCH, OPSET, export_classifier, export_onnx
from export.parity import (
    fake_probability,
    measure,
    onnxruntime_runner,
    parity_faces,
    sample_face_crops,
    torch_runner,
    worst,
)
from export.provenance import sha256_file, write_json


def io_signature(model: onnx.ModelProto):
    def describe(value):
        tensor = value.type.tensor_type
        return value.name, tensor.elem_type, [d.dim_param or d.dim_value for d in tensor.shape.dim]

    return [describe(v) for v in model.graph.input], [describe(v) for v in model.graph.output]


@pytest.fixture(scope="module")
def small_effort_onnx(tmp_path_factory):
    servable = build_servable(SMALL_EFFORT_SPEC, small_effort(seed=0))
    path = tmp_path_factory.mktemp("onnx") / "effort_small.onnx"
    export_onnx(servable, path, {"model_name": "effort_clip", "untrained": "true"})
    return servable, path


def test_onnx_contract_uint8_nhwc_in_fp32_logits_out(small_effort_onnx):
    _, path = small_effort_onnx
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    inputs, outputs = io_signature(model)
    assert inputs == [(CLASSIFIER_INPUT, TensorProto.UINT8, ["batch", 28, 28, 3])]
    assert outputs == [(CLASSIFIER_OUTPUT, TensorProto.FLOAT, ["batch", 2])]
    assert {op.domain: op.version for op in model.opset_import}[""] == OPSET
    assert {p.key: p.value for p in model.metadata_props} == {"model_name": "effort_clip", "untrained": "true"}


def test_onnx_is_the_dynamo_exporters_own_model_in_one_file(small_effort_onnx, tmp_path):
    """export_onnx has torch's exporter save with external data (export memory), then joins the
    weights into one file: the graph and every initializer equal the exporter's own save."""
    servable, path = small_effort_onnx
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no external data left beside it
    plain = tmp_path / "plain.onnx"
    with torch.no_grad():
        program = torch.onnx.export(servable, (torch.zeros(2, 28, 28, 3, dtype=torch.uint8),), dynamo=True,
                                    opset_version=OPSET, input_names=[CLASSIFIER_INPUT], output_names=[CLASSIFIER_OUTPUT],
                                    dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=MAX_TRACED_BATCH)},),
                                    verbose=False)
    program.save(str(plain))
    ours, theirs = onnx.load(str(path)), onnx.load(str(plain))

    def initializers(model):
        return {t.name: (t.data_type, list(t.dims), numpy_helper.to_array(t).tobytes()) for t in model.graph.initializer}

    assert initializers(ours) == initializers(theirs) and len(ours.graph.initializer) > 10
    for model in (ours, theirs):
        del model.graph.initializer[:]
        del model.metadata_props[:]
    assert ours == theirs


def test_onnx_matches_pytorch_at_batch_1_and_8(small_effort_onnx):
    servable, path = small_effort_onnx
    results = measure(torch_runner(servable), onnxruntime_runner(path), 28)
    assert set(results) == {"1", "8"}
    assert worst(results) <= 1e-4


@pytest.fixture(scope="module")
def xception_artifacts(tmp_path_factory):
    """Demo-marked Xception weights → fixed checkpoint → ONNX, through the export steps."""
    folder = tmp_path_factory.mktemp("xception")
    checkpoint = save(demo_state_dict(XCEPTION, seed=0), folder / XCEPTION.checkpoint_file)
    write_json(sidecar_path(checkpoint), {"untrained": True, "sha256": sha256_file(checkpoint)})
    artifacts = BuildArtifacts(folder / "build")
    fix_checkpoint(checkpoint, artifacts)
    report = export_classifier("xception", artifacts)
    return artifacts, report, checkpoint


def test_the_parity_faces_are_the_aligned_sample_faces():
    faces = sample_face_crops(224)
    assert faces.shape == (3, 224, 224, 3) and faces.dtype == np.uint8  # one face + two faces
    assert 60 < faces.mean() < 200  # real pixels, not placeholder rows


def test_export_classifier_writes_metadata_and_parity_report(xception_artifacts):
    artifacts, report, checkpoint = xception_artifacts
    metadata = {p.key: p.value for p in onnx.load(str(artifacts.onnx("xception"))).metadata_props}
    assert metadata["model_name"] == "xception"
    assert metadata["untrained"] == "true" and artifacts.is_untrained("xception")
    assert metadata["licence"] == artifacts.licence("xception") == report["licence"] == DEMO_WEIGHTS  # demo-marked
    assert metadata["source_sha256"] == sha256_file(checkpoint)
    assert report["passed"] and set(report["batches"]) == {"1", "8", "sample_faces"}  # noise and real faces
    assert report["onnx_sha256"] == sha256_file(artifacts.onnx("xception"))
    assert worst(report["batches"]) <= 1e-4


def test_export_classifier_skips_when_up_to_date(xception_artifacts):
    artifacts, report, _ = xception_artifacts
    written = artifacts.onnx("xception").stat().st_mtime_ns
    assert export_classifier("xception", artifacts) == report
    assert artifacts.onnx("xception").stat().st_mtime_ns == written


# -- mixed precision --------------------------------------------------------------


def tiny_transformer_block() -> onnx.ModelProto:
    """MatMul → LayerNormalization → MatMul → Softmax → Exp, with FP32 weights."""
    rng = np.random.default_rng(0)

    def weight(name, *shape):
        return numpy_helper.from_array(rng.normal(0, 0.3, size=shape).astype(np.float32), name)

    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h1"]),
        helper.make_node("LayerNormalization", ["h1", "gamma", "beta"], ["h2"], axis=-1),
        helper.make_node("MatMul", ["h2", "w2"], ["h3"]),
        helper.make_node("Softmax", ["h3"], ["h4"], axis=-1),
        helper.make_node("Exp", ["h4"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "block",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
        [weight("w1", 8, 16), weight("gamma", 16), weight("beta", 16), weight("w2", 16, 4)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_mixed_precision_keeps_sensitive_ops_and_io_in_fp32():
    original = tiny_transformer_block()
    converted = convert_to_mixed_precision(original)
    onnx.checker.check_model(converted)
    inferred = onnx.shape_inference.infer_shapes(converted, check_type=True, strict_mode=True)
    types = {v.name: v.type.tensor_type.elem_type for v in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]}
    types.update({t.name: t.data_type for t in inferred.graph.initializer})
    by_op = {node.op_type: node for node in inferred.graph.node if node.op_type != "Cast"}

    assert types["x"] == types["y"] == TensorProto.FLOAT
    assert all(types[name] == TensorProto.FLOAT16 for name in by_op["MatMul"].input)
    for sensitive in ("LayerNormalization", "Softmax", "Exp"):
        assert all(types[name] == TensorProto.FLOAT for name in by_op[sensitive].input if name), sensitive
    assert [t.name for t in converted.graph.initializer if t.data_type == TensorProto.FLOAT] == ["gamma", "beta"]
    assert len(original.graph.node) == 5  # the input model is left alone

    x = np.random.default_rng(1).normal(size=(3, 8)).astype(np.float32)
    import onnxruntime as ort

    def run(model):
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        return session.run(None, {"x": x})[0]

    expected, actual = run(original), run(converted)
    assert actual.dtype == np.float32
    np.testing.assert_allclose(actual, expected, rtol=1e-2, atol=1e-3)


def test_mixed_precision_small_effort_agrees_with_fp32(small_effort_onnx, tmp_path):
    _, path = small_effort_onnx
    converted = tmp_path / "effort_small.fp16.onnx"
    write_mixed_precision_onnx(path, converted)
    model = onnx.load(str(converted))
    assert io_signature(model) == io_signature(onnx.load(str(path)))
    ops = {node.op_type for node in model.graph.node}
    assert {"LayerNormalization", "Softmax", "Cast"} <= ops
    assert worst(measure(onnxruntime_runner(path), onnxruntime_runner(converted), 28)) <= 1e-2


def test_mixed_precision_step_on_a_full_size_cnn(xception_artifacts):
    artifacts, _, _ = xception_artifacts
    report = export_mixed_precision("xception", artifacts)
    assert report["passed"] and worst(report["batches"]) <= 1e-2
    assert report["source_onnx_sha256"] == sha256_file(artifacts.onnx("xception"))
    fp16_weights = [t for t in onnx.load(str(artifacts.mixed_precision_onnx("xception"))).graph.initializer
                    if t.data_type == TensorProto.FLOAT16]
    assert len(fp16_weights) >= 74  # every convolution's weights
    assert artifacts.mixed_precision_onnx("xception").stat().st_size < 0.6 * artifacts.onnx("xception").stat().st_size


# -- full size, the four published architectures ----------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("spec", CLASSIFIERS, ids=lambda spec: spec.name)
def test_full_size_onnx_parity(export_artifacts, spec):
    """Recomputed here, independently of the export's own parity report."""
    artifacts = BuildArtifacts(export_artifacts)
    servable = load_servable(spec, artifacts.fixed_checkpoint(spec.name))
    session = onnxruntime_runner(artifacts.onnx(spec.name))
    onnx.checker.check_model(str(artifacts.onnx(spec.name)))
    for batch in (1, 8):
        faces = parity_faces(spec.input_size, batch, seed=123)
        with torch.inference_mode():
            reference = servable(torch.from_numpy(faces)).numpy()
        candidate = session(faces)
        difference = np.abs(fake_probability(reference) - fake_probability(candidate)).max()
        print(f"{spec.name} batch {batch}: max |Δ fake probability| = {difference:.2e}")
        assert difference <= 1e-4
    metadata = {p.key: p.value for p in onnx.load(str(artifacts.onnx(spec.name)), load_external_data=False).metadata_props}
    assert metadata["model_name"] == spec.name and metadata["untrained"] == "true"


@pytest.mark.slow
def test_rerunning_all_skips_up_to_date_work(export_artifacts):
    command = [sys.executable, "-m", "export", "all", "--checkpoints", str(export_artifacts / "no-real-weights"),
               "--out", str(export_artifacts), "--demo-if-missing"]
    artifacts = BuildArtifacts(export_artifacts)
    written = {spec.name: artifacts.onnx(spec.name).stat().st_mtime_ns for spec in CLASSIFIERS}
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert {spec.name: artifacts.onnx(spec.name).stat().st_mtime_ns for spec in CLASSIFIERS} == written
    for spec in CLASSIFIERS:
        assert f"{spec.name}: fixed checkpoint up to date" in result.stderr
        assert f"{spec.name}: ONNX up to date" in result.stderr
    assert "UNTRAINED DEMO MODELS" in result.stderr
