"""Reading released checkpoints safely, strict key/shape checks, and the fixed
(safetensors) checkpoint format."""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import safetensors.torch
import torch
from safetensors import SafetensorError
from torch import nn

from export.errors import CheckpointMismatchError, CheckpointReadError
from export.provenance import atomic_output

StateDict = dict[str, torch.Tensor]


def read_checkpoint(path: Path) -> StateDict:
    """Load a plain tensor state_dict saved with torch.save, without running code.

    `map_location="cpu"`: the released files were saved from GPU models, and their
    storages are tagged cuda:0, which cannot be restored on a CPU-only host.
    """
    path = require_file(path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointReadError(
            f"{path} holds Python objects other than tensors; it was not loaded, because "
            f"unpickling them could run code ({_first_line(error)})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as error:
        raise CheckpointReadError(
            f"{path} ({path.stat().st_size:,} bytes) is truncated or corrupt and cannot be read "
            f"as a PyTorch checkpoint; download it again ({_first_line(error)})"
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


def check_keys(
    found: Mapping[str, torch.Size], expected: Mapping[str, torch.Size], source: str
) -> None:
    """Raise CheckpointMismatchError naming every missing/unexpected key and shape mismatch."""
    missing = [key for key in expected if key not in found]
    unexpected = [key for key in found if key not in expected]
    mismatched = [
        (key, tuple(found[key]), tuple(shape))
        for key, shape in expected.items()
        if key in found and tuple(found[key]) != tuple(shape)
    ]
    if missing or unexpected or mismatched:
        raise CheckpointMismatchError(source, missing, unexpected, mismatched)


def shapes(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Size]:
    return {key: tensor.shape for key, tensor in state_dict.items()}


def load_strict(network: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    check_keys(shapes(state_dict), shapes(network.state_dict()), source)
    network.load_state_dict(state_dict, strict=True)


def write_fixed_checkpoint(state_dict: Mapping[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    """safetensors refuses non-contiguous tensors (F3Net's `_DCT_all_T` is a
    transposed view), so every tensor is written contiguous."""
    tensors = {key: tensor.contiguous() for key, tensor in state_dict.items()}
    with atomic_output(path) as partial:
        safetensors.torch.save_file(tensors, str(partial), metadata=metadata)
        partial.chmod(0o644)  # safetensors creates 0600 files; servers may run as another user


def read_fixed_checkpoint(path: Path) -> StateDict:
    if not Path(path).is_file():
        raise CheckpointReadError(f"{path}: no such fixed checkpoint (run `deepfake-export fix` first)")
    try:
        return safetensors.torch.load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as error:
        raise CheckpointReadError(f"{path} is not a readable safetensors file ({_first_line(error)})") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
