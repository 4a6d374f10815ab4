"""Where the explainer gets its PyTorch networks: `deepfake_models`, one file per classifier.

They are loaded from the fixed (safetensors) checkpoints exactly as the `pytorch`
flavour's classifier does.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def load_classifier(name: str, checkpoint: Path, device: str | torch.device = "cpu") -> tuple[nn.Module, int]:
    """The eval-mode FP32 torch classifier `name` (UINT8 NHWC RGB crops in, FP32 logits
    [N, 2] out, index 1 = fake) loaded strictly from its fixed checkpoint, and its crop side."""
    from deepfake_models import spec_by_name
    from deepfake_models.servable import load_servable

    spec = spec_by_name(name)
    return load_servable(spec, Path(checkpoint), device, torch.float32), spec.input_size


def target_layer(name: str, model: nn.Module) -> nn.Module:
    """The layer of the servable classifier `model` (`load_classifier`'s) that Grad-CAM explains:
    the one classifier `name`'s spec names, on its network."""
    from deepfake_models import spec_by_name

    return spec_by_name(name).gradcam_layer(model.network)
