"""Seeded random checkpoints in the exact released layouts ("untrained demo weights").

They let the whole pipeline (fix → ONNX → plans → Triton) run where the published
checkpoints are not available. They are plain state_dict pickles written with
torch.save, like the originals; a sidecar `<file>.demo.json` marks each one, and
everything built from them is flagged untrained. Their scores mean nothing.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deepfake_models import ClassifierSpec, registered
from export.layouts import to_released
from export.provenance import atomic_output, code_fingerprint, read_json, sha256_file, write_json

log = logging.getLogger(__name__)

SIDECAR_SUFFIX = ".demo.json"
_CALIBRATION_BATCH = 4


def sidecar_path(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.name + SIDECAR_SUFFIX)


def demo_state_dict(spec: ClassifierSpec, seed: int) -> dict[str, torch.Tensor]:
    """The released-layout state_dict of a freshly initialised network."""
    model_seed = model_demo_seed(spec.name, seed)
    torch.manual_seed(model_seed)
    network = spec.build_network()
    generator = torch.Generator().manual_seed(model_seed)
    calibrate_batchnorm(network, spec.input_size, generator)
    return to_released(network.state_dict(), spec.layout, generator)


def model_demo_seed(name: str, seed: int) -> int:
    """The torch seed of one model's demo weights: a stable hash of its name and `seed`, so
    adding or removing a classifier leaves the others' demo weights unchanged."""
    digest = hashlib.sha256(f"{name}:{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1  # torch.manual_seed takes < 2**64; keep it positive


def calibrate_batchnorm(network: nn.Module, input_size: int, generator: torch.Generator) -> None:
    """Set BatchNorm running statistics from one random batch.

    With default initialisation and unit running variances, activations shrink
    layer after layer and a deep CNN (EfficientNet-B4) returns the same logits for
    every input, which would make demo scores and parity checks meaningless.
    """
    norms = [module for module in network.modules() if isinstance(module, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    images = torch.rand(_CALIBRATION_BATCH, 3, input_size, input_size, generator=generator) * 2 - 1
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average: one batch sets the statistics exactly
    network.train()
    with torch.no_grad():
        network(images)
    network.eval()


def demo_record(checkpoint: Path, sha256: str) -> dict[str, Any] | None:
    """The demo sidecar of `checkpoint` if it describes exactly this file, else None."""
    record = read_json(sidecar_path(checkpoint))
    if record is not None and record.get("untrained") and record.get("sha256") == sha256:
        return record
    return None


def write_demo_weights(out_dir: Path, seed: int = 0) -> list[Path]:
    """Write one demo checkpoint per classifier (skipping those already written with the same
    seed and code) and return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    fingerprint = code_fingerprint()
    paths = []
    for spec in registered():
        path = out_dir / spec.checkpoint_file
        paths.append(path)
        record = read_json(sidecar_path(path))
        if (
            path.is_file()
            and record is not None
            and record.get("seed") == seed
            and record.get("code_fingerprint") == fingerprint
            and record.get("size_bytes") == path.stat().st_size
        ):
            log.info("%s: demo weights up to date (%s)", spec.name, path)
            continue
        log.info("%s: generating untrained demo weights (seed %d) -> %s", spec.name, seed, path)
        with atomic_output(path) as partial:
            torch.save(demo_state_dict(spec, seed), partial)
        write_json(
            sidecar_path(path),
            {
                "untrained": True,
                "what": "seeded random weights in the released layout; NOT a trained detector",
                "model": spec.name,
                "layout": spec.layout.name,
                "seed": seed,
                "sha256": sha256_file(path),
                "size_bytes": path.stat().st_size,
                "code_fingerprint": fingerprint,
            },
        )
    return paths
