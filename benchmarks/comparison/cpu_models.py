"""Per-model CPU cost: what the seed-style baseline runs against what the `cpu` flavour serves.

    python -m benchmarks.comparison.cpu_models --artifacts build --out reports/cpu-models

For each classifier, milliseconds per face of: the fixed checkpoint in eager FP32
PyTorch at batch 1 with torch's default threads (the baseline), and the exported
ONNX on onnxruntime at 1 thread and at all cores, at batch 1 and `--batch`.
It explains the end-to-end ratio (benchmarks/comparison/compare.py) and the choice of
`intra_op_threads` per classifier (export/repository.py). Run it alone on the
machine: every configuration uses all the cores it is given.

Writes OUT/cpu_models.json and OUT/cpu_models.md.
"""

from __future__ import annotations

import argparse
import gc
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from benchmarks.common.machine import describe, machine_info
from benchmarks.common.report import markdown_table, write_report
from benchmarks.studies.gpu import time_call
from deepfake_models import CLASSIFIERS, ClassifierSpec
from deepfake_models.servable import load_servable
from deepfake_serving.onnx_classifier import OnnxClassifier
from export.artifacts import BuildArtifacts


def _faces(spec: ClassifierSpec, batch: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (batch, spec.input_size, spec.input_size, 3), dtype=np.uint8)


def ms_per_face(run: Callable[[], object], batch: int, min_seconds: float) -> float:
    return time_call(run, synchronize=lambda: None, min_seconds=min_seconds, min_iterations=2, warmup=1) / batch * 1e3


def pytorch_ms_per_face(spec: ClassifierSpec, artifacts: BuildArtifacts, min_seconds: float) -> float:
    model = load_servable(spec, artifacts.fixed_checkpoint(spec.name))
    faces = torch.from_numpy(_faces(spec, 1))
    with torch.inference_mode():
        return ms_per_face(lambda: model(faces), 1, min_seconds)


def onnxruntime_ms_per_face(spec: ClassifierSpec, artifacts: BuildArtifacts, threads: int, batch: int,
                            min_seconds: float) -> float:
    session = OnnxClassifier(artifacts.onnx(spec.name), intra_op_threads=threads)
    faces = _faces(spec, batch)
    return ms_per_face(lambda: session(faces), batch, min_seconds)


def measure_model(spec: ClassifierSpec, artifacts: BuildArtifacts, batch: int, min_seconds: float) -> dict[str, float]:
    """ms per face by runtime; one model in memory at a time."""
    row = {f"pytorch eager, {torch.get_num_threads()} threads, batch 1":
           pytorch_ms_per_face(spec, artifacts, min_seconds)}
    gc.collect()
    for threads, label in ((1, "1 thread"), (0, "all cores")):
        for size in dict.fromkeys((1, batch)):
            row[f"onnxruntime, {label}, batch {size}"] = onnxruntime_ms_per_face(spec, artifacts, threads, size,
                                                                                 min_seconds)
    return row


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifacts", type=Path, default=Path("build"), help="export output folder")
    parser.add_argument("--out", type=Path, required=True, help="report folder")
    parser.add_argument("--batch", type=int, default=8, help="the larger batch size tried on onnxruntime")
    parser.add_argument("--min-seconds", type=float, default=6.0, help="time measured per configuration")
    args = parser.parse_args(argv)
    machine = machine_info()
    artifacts = BuildArtifacts(args.artifacts)
    rows = {}
    for spec in CLASSIFIERS:
        rows[spec.name] = measure_model(spec, artifacts, args.batch, args.min_seconds)
        print(spec.name, {k: round(v) for k, v in rows[spec.name].items()}, flush=True)
    columns = list(next(iter(rows.values())))
    rows["all four"] = {column: sum(row[column] for row in rows.values()) for column in columns}
    table = markdown_table(["ms per face", *columns], [[name, *row.values()] for name, row in rows.items()])
    markdown = f"# Classifier cost on the CPU\n\nMachine: {describe(machine)}\n\n{table}"
    write_report(args.out, "cpu_models", {"machine": machine, "ms_per_face": rows}, markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
