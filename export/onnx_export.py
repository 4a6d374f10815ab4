"""Servable classifier → ONNX (UINT8 NHWC `FACES` → FP32 `LOGITS`, dynamic batch),
checked with onnx.checker and against PyTorch on onnxruntime CPU."""

from __future__ import annotations

import gc
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import onnx
import torch
from onnx import numpy_helper

from deepfake_contract import CLASSIFIER_INPUT, CLASSIFIER_OUTPUT
from deepfake_models import spec_by_name
from deepfake_models.servable import ServableClassifier, load_servable
from export.artifacts import BuildArtifacts
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

OPSET = 17


def export_onnx(servable: ServableClassifier, path: Path, metadata: dict[str, str]) -> None:
    """Trace `servable` to ONNX at `path` (one file) with `metadata` as metadata_props."""
    size = servable.spec.input_size
    example = torch.zeros(2, size, size, 3, dtype=torch.uint8)
    weights: dict[str, torch.Tensor] = {}
    with torch.inference_mode(), warnings.catch_warnings(), _weights_set_aside(weights):
        # The crop size is fixed by the contract, so shape checks traced as constants are right.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # dynamo=False: the TorchScript exporter handles HF CLIP and the static
        # ZeroPad2d paddings, and gives plain opset-17 graphs.
        torch.onnx.export(
            servable,
            (example,),
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=[CLASSIFIER_INPUT],
            output_names=[CLASSIFIER_OUTPUT],
            dynamic_axes={CLASSIFIER_INPUT: {0: "batch"}, CLASSIFIER_OUTPUT: {0: "batch"}},
            do_constant_folding=True,
        )
    _add_weights(path, weights, metadata)


@contextmanager
def _weights_set_aside(weights: dict[str, torch.Tensor]) -> Iterator[None]:
    """Inside, torch's TorchScript exporter encodes the graph without its weights (initializers,
    constant-folded) and leaves them in `weights`: it would encode them into a ModelProto,
    serialise it and parse it again, three copies of ViT-L's 1.2 GB beside the model's. There is
    no public option for this: it wraps the private `Graph._export_onnx(params, ...)`."""
    encode = torch._C.Graph._export_onnx

    def encode_without_weights(graph, params, *args):
        weights.update(params)
        return encode(graph, {}, *args)

    torch._C.Graph._export_onnx = encode_without_weights
    try:
        yield
    finally:
        torch._C.Graph._export_onnx = encode


def _add_weights(path: Path, weights: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Rewrite the weightless graph at `path` with `weights` as its initializers (no longer graph
    inputs) and `metadata`. Each initializer is appended as its own serialised ModelProto, which
    protobuf merges into the graph, so only one tensor at a time is copied."""
    model = onnx.load(str(path))
    inputs = [value for value in model.graph.input if value.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    with open(path, "wb") as handle:
        handle.write(model.SerializeToString())
        for name, tensor in weights.items():
            chunk = onnx.ModelProto()
            chunk.graph.initializer.append(numpy_helper.from_array(tensor.detach().numpy(), name))
            handle.write(chunk.SerializeToString())


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
    log.info("%s: exporting ONNX (opset %d) -> %s", name, OPSET, onnx_path)
    with atomic_output(onnx_path) as partial:
        export_onnx(servable, partial, onnx_metadata(manifest))
        del servable
        gc.collect()
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
