"""FP32 ONNX → mixed-precision ONNX for strongly typed TensorRT builds.

TensorRT 11 removed the FP16 builder flag: precision comes from the tensor types
in the network. This converter gives compute-heavy ops (convolutions, matrix
products, element-wise arithmetic) FP16 weights and activations, keeps
numerically sensitive ops (LayerNormalization, Softmax, reductions, pooling
averages, exp/pow/sqrt, ...) and the model's inputs and outputs in FP32, and
inserts the Casts in between. Ops not listed below stay FP32, so an unknown op
is never silently downcast.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from deepfake_models import spec_by_name
from export.artifacts import BuildArtifacts
from export.parity import measure, onnxruntime_runner, require_agreement, worst
from export.provenance import atomic_output, read_json, sha256_file, write_json

log = logging.getLogger(__name__)

CONVERTER = "builtin-fp16-v1"
FLOAT, FLOAT16 = TensorProto.FLOAT, TensorProto.FLOAT16

# Compute that is safe and fast in FP16 (FP32 accumulation inside TensorRT's kernels).
FP16_OPS = frozenset(
    {"Conv", "ConvTranspose", "MatMul", "Gemm", "Add", "Sub", "Mul", "Div", "Relu", "Sigmoid", "Tanh",
     "MaxPool", "Pad", "Clip", "Neg", "Abs"}
)
# Ops that only move data: they keep the precision their inputs already have.
PRECISION_FOLLOWING_OPS = frozenset(
    {"Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Concat", "Slice", "Split", "Gather",
     "Expand", "Identity", "Shape"}
)
_FP16_MAX = float(np.finfo(np.float16).max)


def convert_to_mixed_precision(model: onnx.ModelProto) -> onnx.ModelProto:
    """A converted copy of `model` (which is left unchanged)."""
    converted = onnx.ModelProto()
    converted.CopyFrom(model)
    _Converter(converted.graph, _tensor_types(converted)).run()
    converted.metadata_props.add(key="precision", value=f"mixed FP16/FP32 ({CONVERTER}), FP32 inputs and outputs")
    return converted


def write_mixed_precision_onnx(source: Path, destination: Path) -> None:
    converted = convert_to_mixed_precision(onnx.load(str(source)))
    # The checker does not type-check; strict inference does (on a weightless copy).
    onnx.shape_inference.infer_shapes(_skeleton(converted), check_type=True, strict_mode=True)
    with atomic_output(destination) as partial:
        onnx.save(converted, str(partial))
        onnx.checker.check_model(str(partial))


def export_mixed_precision(name: str, artifacts: BuildArtifacts) -> dict[str, Any]:
    """Convert the FP32 ONNX of `name` and check it against the FP32 ONNX on
    onnxruntime CPU (which runs FP16 nodes lacking a CPU kernel through FP32
    casts, so this checks the conversion and the FP16 rounding of weights and
    activations, not FP16 accumulation). Skips the work when up to date."""
    source, destination = artifacts.existing_onnx(name), artifacts.mixed_precision_onnx(name)
    report_path = artifacts.mixed_precision_parity(name)
    source_sha256 = sha256_file(source)
    cached = read_json(report_path)
    if (
        cached is not None
        and cached["passed"]
        and cached["source_onnx_sha256"] == source_sha256
        and cached["converter"] == CONVERTER
        and destination.is_file()
    ):
        log.info("%s: mixed-precision ONNX up to date", name)
        return cached
    log.info("%s: converting to mixed precision (%s) -> %s", name, CONVERTER, destination)
    write_mixed_precision_onnx(source, destination)
    spec = spec_by_name(name)
    results = measure(onnxruntime_runner(source), onnxruntime_runner(destination), spec.input_size)
    report = {
        "model": name,
        "onnx": destination.name,
        "onnx_sha256": sha256_file(destination),
        "source_onnx_sha256": source_sha256,
        "converter": CONVERTER,
        "reference": "FP32 ONNX on onnxruntime CPU",
        "candidate": "mixed-precision ONNX on onnxruntime CPU",
        "tolerance_fake_probability": spec.tolerances.reduced_precision,
        "batches": results,
        "passed": worst(results) <= spec.tolerances.reduced_precision,
    }
    write_json(report_path, report)
    log.info("%s: mixed precision max |Δ fake probability| = %.2e", name, worst(results))
    require_agreement(
        results, spec.tolerances.reduced_precision, f"{name}: mixed-precision ONNX disagrees with FP32", f"see {report_path}"
    )
    return report


class _Converter:
    def __init__(self, graph: onnx.GraphProto, types: dict[str, int]) -> None:
        self.graph = graph
        self.types = types
        self.initializers = {tensor.name: tensor for tensor in graph.initializer}
        self.converted: dict[tuple[str, int], str] = {}  # (tensor, type) -> name of that version
        self.nodes: list[onnx.NodeProto] = []

    def run(self) -> None:
        for node in self.graph.node:
            if any(attribute.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                   for attribute in node.attribute):
                raise ValueError(f"mixed precision: control-flow node {node.op_type} {node.name!r} is not supported")
            precision = self._precision(node)
            for index, name in enumerate(node.input):
                node.input[index] = self._as_type(name, precision)
            if precision == FLOAT16:
                for name in node.output:
                    if self.types.get(name) == FLOAT:
                        self.types[name] = FLOAT16
            self.nodes.append(node)
        self._restore_fp32_outputs()
        self._replace_graph_contents()

    def _precision(self, node: onnx.NodeProto) -> int:
        if node.op_type in FP16_OPS:
            return FLOAT16
        if node.op_type in PRECISION_FOLLOWING_OPS and any(self.types.get(name) == FLOAT16 for name in node.input):
            return FLOAT16
        return FLOAT

    def _as_type(self, name: str, wanted: int) -> str:
        """`name`, or a version of it converted to `wanted` when it is a float of the other type."""
        current = self.types.get(name)
        if not name or current not in (FLOAT, FLOAT16) or current == wanted:
            return name
        if (name, wanted) in self.converted:
            return self.converted[(name, wanted)]
        suffix = "fp16" if wanted == FLOAT16 else "fp32"
        new_name = f"{name}__{suffix}"
        if name in self.initializers and wanted == FLOAT16:
            values = numpy_helper.to_array(self.initializers[name])
            self.graph.initializer.append(
                numpy_helper.from_array(np.clip(values, -_FP16_MAX, _FP16_MAX).astype(np.float16), new_name)
            )
        else:
            self.nodes.append(helper.make_node("Cast", [name], [new_name], name=new_name, to=wanted))
        self.types[new_name] = wanted
        self.converted[(name, wanted)] = new_name
        return new_name

    def _restore_fp32_outputs(self) -> None:
        """Graph outputs keep FP32: the producer writes `<name>__fp16`, a Cast writes `<name>`."""
        for output in self.graph.output:
            if self.types.get(output.name) != FLOAT16:
                continue
            internal = f"{output.name}__fp16"
            for node in self.nodes:
                for field in (node.input, node.output):
                    for index, name in enumerate(field):
                        if name == output.name:
                            field[index] = internal
            self.nodes.append(helper.make_node("Cast", [internal], [output.name], name=output.name, to=FLOAT))

    def _replace_graph_contents(self) -> None:
        del self.graph.node[:]
        self.graph.node.extend(self.nodes)
        used = {name for node in self.nodes for name in node.input}
        kept = [tensor for tensor in self.graph.initializer if tensor.name in used]
        del self.graph.initializer[:]
        self.graph.initializer.extend(kept)
        # Recorded intermediate types are stale now; runtimes infer them again.
        del self.graph.value_info[:]


def _skeleton(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with each initializer replaced by a typed input: the same types for
    shape inference without copying hundreds of MB of weights."""
    graph = model.graph
    weights = [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in graph.initializer]
    skeleton_graph = helper.make_graph(list(graph.node), graph.name, list(graph.input) + weights, list(graph.output))
    return helper.make_model(skeleton_graph, opset_imports=list(model.opset_import), ir_version=model.ir_version)


def _tensor_types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(_skeleton(model))
    graph = inferred.graph
    return {info.name: info.type.tensor_type.elem_type for info in [*graph.input, *graph.value_info, *graph.output]}
