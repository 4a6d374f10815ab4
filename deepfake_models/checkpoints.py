"""The fixed checkpoint (safetensors, canonical keys) read back strictly, for serving and export."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import safetensors.torch
import torch
from safetensors import SafetensorError
from torch import nn
from torch.nn.modules.module import register_module_parameter_registration_hook

from deepfake_models.errors import CheckpointMismatchError, CheckpointReadError

StateDict = dict[str, torch.Tensor]


def check_keys(
    found: Mapping[str, torch.Size], expected: Mapping[str, torch.Size], source: str, key_prefix: str = ""
) -> None:
    """Raise CheckpointMismatchError naming every missing/unexpected key and shape mismatch;
    keys are shown with `key_prefix` (what the file had before it was stripped, e.g. `module.`)."""
    missing = [key_prefix + key for key in expected if key not in found]
    unexpected = [key_prefix + key for key in found if key not in expected]
    mismatched = [
        (key_prefix + key, tuple(found[key]), tuple(shape))
        for key, shape in expected.items()
        if key in found and tuple(found[key]) != tuple(shape)
    ]
    if missing or unexpected or mismatched:
        raise CheckpointMismatchError(source, missing, unexpected, mismatched)


def shapes(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Size]:
    return {key: tensor.shape for key, tensor in state_dict.items()}


def load_strict(network: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Load `state_dict` into `network`, every key and shape checked. Its tensors are assigned,
    not copied into the network's (no second copy of ViT-L's 1.2 GB, and a network built under
    `parameters_on_meta` has no first one); cast to the network's dtypes, as a copy would be."""
    expected = network.state_dict()
    check_keys(shapes(state_dict), shapes(expected), source)
    cast = {key: tensor.to(expected[key].dtype) for key, tensor in state_dict.items()}
    network.load_state_dict(cast, strict=True, assign=True)


@contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Modules built inside get their parameters on the `meta` device: no memory and no
    random initialisation, for `load_strict` to assign. Buffers stay real: non-persistent
    ones (CLIP's position_ids) are in no checkpoint."""
    handle = register_module_parameter_registration_hook(
        lambda module, name, param: None if param is None else nn.Parameter(param.to("meta"), param.requires_grad)
    )
    try:
        yield
    finally:
        handle.remove()


def read_fixed_checkpoint(path: Path) -> StateDict:
    if not Path(path).is_file():
        raise CheckpointReadError(f"{path}: no such fixed checkpoint (run `deepfake-export fix` first)")
    try:
        return safetensors.torch.load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as error:
        raise CheckpointReadError(f"{path} is not a readable safetensors file ({first_line(error)})") from None


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
