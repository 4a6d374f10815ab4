"""Servable classifier → ONNX (UINT8 NHWC `FACES` → FP32 `LOGITS`, dynamic batch),
checked with onnx.checker and against PyTorch on onnxruntime CPU."""

from __future__ import annotations

import gc
import logging
import tempfile
from pathlib import Path
from typing import Any

import onnx
import torch
from onnx.external_data_helper import ExternalDataInfo, uses_external_data

from deepfake_contract import CLASSIFIER_INPUT, CLASSIFIER_OUTPUT
from deepfake_models import spec_by_name
from deepfake_models.registry import ClassifierSpec
from deepfake_models.servable import ServableClassifier, load_servable
from export.artifacts import BuildArtifacts
from export.child_process import run_in_child
from export.errors import ExportError
from export.parity import (
    PARITY_BATCHES,
    measure,
    onnxruntime_runner,
    parity_faces,
    recorded,
    require_agreement,
    sample_face_crops,
    torch_runner,
    worst,
)
from export.provenance import atomic_output, code_fingerprint, read_json, sha256_file, tool_versions, write_json

log = logging.getLogger(__name__)

# The dynamo exporter's lowest opset (it translates from 18 up); TensorRT 10 and onnxruntime take it.
OPSET = 18
# Bounds the symbolic batch so that torch.export does not specialise it; the repository's largest is far below.
MAX_TRACED_BATCH = 4096


def export_onnx(servable: ServableClassifier, path: Path, metadata: dict[str, str]) -> None:
    """Export `servable` to ONNX at `path` (one file) with `metadata` as metadata_props, through
    torch's supported dynamo exporter (torch.export, then onnxscript's translation)."""
    size = servable.spec.input_size
    example = torch.zeros(2, size, size, 3, dtype=torch.uint8)  # batch 2: torch.export specialises 0 and 1
    batch = torch.export.Dim("batch", min=1, max=MAX_TRACED_BATCH)
    with torch.no_grad():
        program = torch.onnx.export(
            servable,
            (example,),
            dynamo=True,
            opset_version=OPSET,
            input_names=[CLASSIFIER_INPUT],
            output_names=[CLASSIFIER_OUTPUT],
            dynamic_shapes=({0: batch},),
            optimize=True,
            verbose=False,
        )
    program.model.metadata_props.update(metadata)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".onnx-split-") as scratch:
        split = Path(scratch) / "model.onnx"
        # External data: the exporter writes each weight from the model's own tensor, instead of
        # building a whole in-memory ModelProto beside them (ViT-L: 1.2 GB more).
        program.save(str(split), external_data=True)
        del program
        _join_external_data(split, path)


def _join_external_data(split: Path, path: Path) -> None:
    """Write the model at `split`, whose large initializers live in an external data file, as one
    ONNX file at `path`: its graph first, then each external initializer appended as its own
    serialised ModelProto, which protobuf merges into the graph, so one tensor at a time is in memory."""
    model = onnx.load(str(split), load_external_data=False)
    external = [tensor for tensor in model.graph.initializer if uses_external_data(tensor)]
    inline = [tensor for tensor in model.graph.initializer if not uses_external_data(tensor)]
    del model.graph.initializer[:]
    model.graph.initializer.extend(inline)
    with open(path, "wb") as handle:
        handle.write(model.SerializeToString())
        del model
        for tensor in external:
            handle.write(_inline_chunk(tensor, split.parent).SerializeToString())


def _inline_chunk(tensor: onnx.TensorProto, folder: Path) -> onnx.ModelProto:
    """A ModelProto holding only `tensor`, its bytes read from its external data file into raw_data."""
    info = ExternalDataInfo(tensor)
    location = (folder / info.location).resolve()
    if location.parent != folder.resolve() or info.length is None:
        raise ExportError(f"ONNX exporter wrote {tensor.name} to an unexpected place: {info.location!r}")
    with open(location, "rb") as data:
        data.seek(info.offset or 0)
        raw = data.read(info.length)
    chunk = onnx.ModelProto()
    copy = chunk.graph.initializer.add()
    copy.name, copy.data_type, copy.raw_data = tensor.name, tensor.data_type, raw
    copy.dims.extend(tensor.dims)
    return chunk


def _load_and_export(spec: ClassifierSpec, checkpoint: Path, path: Path, metadata: dict[str, str]) -> None:
    export_onnx(load_servable(spec, checkpoint), path, metadata)


def onnx_metadata(manifest: dict[str, Any]) -> dict[str, str]:
    return {
        "model_name": manifest["model"],
        "untrained": str(manifest["untrained"]).lower(),
        "licence": manifest["licence"],
        "source_sha256": manifest["source"]["sha256"],
        "fixed_checkpoint_sha256": manifest["fixed_checkpoint"]["sha256"],
        "layout": manifest["layout"],
        "input": f"{CLASSIFIER_INPUT} UINT8 NHWC RGB {manifest['input']['shape']}",
        "normalisation": f"(x/255 - mean)/std, mean={manifest['input']['mean']}, std={manifest['input']['std']}",
        "output": f"{CLASSIFIER_OUTPUT} FP32 [-1,2], index 1 = fake",
    }


def export_classifier(name: str, artifacts: BuildArtifacts) -> dict[str, Any]:
    """Export the fixed checkpoint of `name` to ONNX and write its parity report;
    skips the work when the report already covers this fixed checkpoint and code."""
    manifest = artifacts.manifest(name)
    onnx_path, report_path = artifacts.onnx(name), artifacts.onnx_parity(name)
    fingerprint = code_fingerprint()
    cached = read_json(report_path)
    if (
        cached is not None
        and cached["passed"]
        and cached["fixed_checkpoint_sha256"] == manifest["fixed_checkpoint"]["sha256"]
        and cached["code_fingerprint"] == fingerprint
        and onnx_path.is_file()
    ):
        log.info("%s: ONNX up to date", name)
        return cached

    spec = spec_by_name(name)
    servable = load_servable(spec, artifacts.fixed_checkpoint(name))
    # PyTorch's answers first, so that the model is freed before ONNX is loaded, checked
    # and run (ViT-L: ~1.2 GB that need not sit beside the ONNX graph and its session).
    faces = sample_face_crops(spec.input_size)
    inputs = [parity_faces(spec.input_size, batch) for batch in PARITY_BATCHES] + [faces]
    reference = recorded(torch_runner(servable), inputs)
    del servable
    gc.collect()
    log.info("%s: exporting ONNX (opset %d) -> %s", name, OPSET, onnx_path)
    with atomic_output(onnx_path) as partial:
        # torch's exporter keeps references to the model's weights after it returns (ViT-L:
        # 1.2 GB beside the checker's graph and the parity session), so it runs in a child.
        run_in_child(_load_and_export, spec, artifacts.fixed_checkpoint(name), partial, onnx_metadata(manifest))
        onnx.checker.check_model(str(partial))  # it loads the whole graph: after the model is freed
    log.info("%s: checking parity with PyTorch on onnxruntime CPU (noise batches %s, %d aligned sample faces)",
             name, PARITY_BATCHES, len(faces))
    results = measure(reference, onnxruntime_runner(onnx_path), spec.input_size, samples={"sample_faces": faces})
    report = {
        "model": name,
        "untrained": manifest["untrained"],
        "licence": manifest["licence"],
        "onnx": onnx_path.name,
        "onnx_sha256": sha256_file(onnx_path),
        "opset": OPSET,
        "reference": "PyTorch FP32 (CPU)",
        "candidate": "onnxruntime CPU",
        "tolerance_fake_probability": spec.tolerances.onnx,
        "batches": results,
        "passed": worst(results) <= spec.tolerances.onnx,
        "fixed_checkpoint_sha256": manifest["fixed_checkpoint"]["sha256"],
        "tool_versions": tool_versions(),
        "code_fingerprint": fingerprint,
    }
    write_json(report_path, report)
    log.info("%s: max |Δ fake probability| = %.2e (tolerance %.0e)", name, worst(results), spec.tolerances.onnx)
    require_agreement(results, spec.tolerances.onnx, f"{name}: ONNX disagrees with PyTorch", f"see {report_path}")
    return report
