"""Reading released checkpoints safely, and writing the fixed (safetensors) checkpoint
(deepfake_models.checkpoints reads it back)."""

from __future__ import annotations

import json
import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import safetensors.torch
import torch

from deepfake_models.checkpoints import StateDict, first_line
from deepfake_models.errors import CheckpointReadError
from export.provenance import atomic_output

# torch names the global its safe unpickler refused: "Unsupported global: GLOBAL module.Name was ..."
_REFUSED_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def read_checkpoint(path: Path) -> StateDict:
    """Load a plain tensor state_dict saved with torch.save, without running code.

    `map_location="cpu"`: the released files were saved from GPU models, and their
    storages are tagged cuda:0, which cannot be restored on a CPU-only host.
    """
    path = require_file(path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        refused = _REFUSED_GLOBAL.search(str(error))
        what = f"a {refused.group(1)} object" if refused else "Python objects other than tensors"
        raise CheckpointReadError(
            f"{path} holds {what}, which is not a tensor; it was not loaded, because "
            f"unpickling it could run code (Python objects other than tensors are refused)"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as error:
        raise CheckpointReadError(
            f"{path} ({path.stat().st_size:,} bytes) is truncated or corrupt and cannot be read "
            f"as a PyTorch checkpoint; download it again ({first_line(error)})"
        ) from None
    if not isinstance(loaded, Mapping) or not all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in loaded.items()
    ):
        raise CheckpointReadError(
            f"{path} is not a plain state_dict (a mapping of names to tensors), "
            f"as the released checkpoints are; found {type(loaded).__name__}"
        )
    return dict(loaded)


def require_file(path: Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise CheckpointReadError(f"{path}: no such file")
    return path


def write_fixed_checkpoint(state_dict: Mapping[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    """safetensors refuses non-contiguous tensors (F3Net's `_DCT_all_T` is a
    transposed view), so every tensor is written contiguous. The same tensors and
    metadata always give the same bytes (its sha256 goes into the ONNX metadata)."""
    tensors = {key: tensor.contiguous() for key, tensor in state_dict.items()}
    with atomic_output(path) as partial:
        safetensors.torch.save_file(tensors, str(partial), metadata=metadata)
        _sort_header(partial)
        partial.chmod(0o644)  # safetensors creates 0600 files; servers may run as another user


def _sort_header(path: Path) -> None:
    """Rewrite a safetensors header with its keys sorted, in place.

    safetensors serialises the header from a Rust HashMap, whose order changes from run to
    run (seen on the `__metadata__` keys). Sorting the compact JSON only reorders it, so the
    header keeps its length and padding and the tensor data stays where it is."""
    with open(path, "r+b") as handle:
        length = int.from_bytes(handle.read(8), "little")
        raw = handle.read(length)
        text = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        padded = text + b" " * (length - len(text))
        if len(padded) != length:
            raise RuntimeError(f"{path}: the sorted safetensors header is {len(text)} bytes, not {length}")
        handle.seek(8)
        handle.write(padded)
