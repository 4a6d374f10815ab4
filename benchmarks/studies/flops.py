"""Exact matrix-work FLOPs of a forward pass, counted by PyTorch itself (on CPU, no GPU needed).

torch.utils.flop_counter counts the operations that dominate these networks and
that a GPU's tensor cores execute: matrix products, convolutions (grouped and
depthwise included) and attention, at 2 FLOPs per multiply-add. Element-wise
work (activations, normalisation, the /255 scaling) is not counted: it is
memory-bound, not what a FLOP/s peak measures. The count does not depend on the
weights, so randomly initialised networks give the released models' figures.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from deepfake_models import ClassifierSpec
from deepfake_models.servable import build_servable


def count_flops(model: nn.Module, example: torch.Tensor) -> int:
    """FLOPs of one forward pass of `model` on `example`."""
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(example)
    return int(counter.get_total_flops())


def flops_per_face(spec: ClassifierSpec) -> int:
    """FLOPs the servable classifier spends on one face crop (batch 1, full-size network)."""
    crop = torch.zeros((1, spec.input_size, spec.input_size, 3), dtype=torch.uint8)
    return count_flops(build_servable(spec), crop)
