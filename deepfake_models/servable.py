"""The servable classifier: UINT8 NHWC RGB crops in, FP32 logits out.

This is exactly what gets exported to ONNX/TensorRT, and what a PyTorch serving
flavour or a baseline benchmark runs: scaling (/255) and the checkpoint's
mean/std normalisation happen inside the model, so every runtime gets the same
input contract (deepfake_contract: CLASSIFIER_INPUT, CLASSIFIER_OUTPUT).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from deepfake_models.checkpoints import load_strict, read_fixed_checkpoint
from deepfake_models.errors import InvalidFacesError
from deepfake_models.registry import ClassifierSpec


class ServableClassifier(nn.Module):
    def __init__(self, spec: ClassifierSpec, network: nn.Module) -> None:
        super().__init__()
        self.spec = spec
        self.network = network
        # Not persistent: they come from the spec, not from the checkpoint.
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(spec.std).view(1, 3, 1, 1), persistent=False)

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        """faces: UINT8 [N, S, S, 3] RGB → logits FP32 [N, 2] (index 1 = fake)."""
        if not torch.onnx.is_in_onnx_export():
            check_faces(faces, self.spec.input_size)
        pixels = faces.permute(0, 3, 1, 2).to(self.mean.dtype)
        normalised = (pixels / 255.0 - self.mean) / self.std
        return self.network(normalised).float()


def check_faces(faces: torch.Tensor, input_size: int) -> None:
    expected = f"UINT8 faces of shape [N, {input_size}, {input_size}, 3] (RGB, NHWC, N ≥ 1)"
    if not isinstance(faces, torch.Tensor):
        raise InvalidFacesError(f"expected a tensor of {expected}, got {type(faces).__name__}")
    shape_ok = faces.dim() == 4 and faces.shape[0] >= 1 and tuple(faces.shape[1:]) == (input_size, input_size, 3)
    if faces.dtype != torch.uint8 or not shape_ok:
        raise InvalidFacesError(f"expected {expected}, got {str(faces.dtype).removeprefix('torch.')} {list(faces.shape)}")


def build_servable(spec: ClassifierSpec, network: nn.Module | None = None) -> ServableClassifier:
    """A servable wrapper around `network` (default: the full-size, randomly
    initialised network for `spec`), in eval mode."""
    return ServableClassifier(spec, network if network is not None else spec.build_network()).eval()


def load_servable(
    spec: ClassifierSpec,
    fixed_checkpoint: Path,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> ServableClassifier:
    """Build the servable model for `spec` and load a fixed checkpoint into it strictly.

    `dtype=torch.float16` on a CUDA device gives the PyTorch-FP16 flavour; inputs stay
    UINT8 and outputs FP32 either way. On the CPU in FP32, the weights are the checkpoint
    file's memory map (safetensors), not a copy of it.
    """
    servable = build_servable(spec, spec.build_network(empty=True))
    load_strict(servable.network, read_fixed_checkpoint(fixed_checkpoint), str(fixed_checkpoint))
    return servable.to(device=device, dtype=dtype)
