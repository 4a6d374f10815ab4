"""A fifth classifier, as a new file in deepfake_models/classifiers/ would declare it (the
tests put it there, or load it under that name): a tiny CNN with every spec field."""

from __future__ import annotations

import torch
from torch import nn

from deepfake_models.layout import ReleasedLayout
from deepfake_models.registry import ClassifierSpec, register


class ToyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, stride=4)
        self.norm = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.norm(self.stem(x))).mean(dim=(2, 3)))


def gradcam_layer(network: ToyNet) -> nn.Module:
    """Its only feature map (4 x 16 x 16 for a 64 crop), before the ReLU and pooling."""
    return network.norm


TOY = register(ClassifierSpec(
    name="toy",
    column=50,
    network=ToyNet,
    layout=ReleasedLayout(name="toy", signature_keys=("model.head.weight",), renames=(("model.", ""),)),
    checkpoint_file="toy_best.pth",
    input_size=64,
    mean=(0.5, 0.5, 0.5),
    std=(0.25, 0.25, 0.25),
    published_at="https://example.invalid/toy",
    approx_size_mb=0.001,
    gradcam_layer=gradcam_layer,
    licence="CC0-1.0",
))
