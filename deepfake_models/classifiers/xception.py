"""Xception as DeepfakeBench defines it (training/networks/xception.py).

Module names mirror the released checkpoints (`conv1`, `block1.rep.0`, `skipbn`,
`last_linear`, `adjust_channel`, ...), so a checkpoint maps onto this module by
stripping its `backbone.` prefix only. Written from the layout documented in
docs/design.md §4, not copied.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepfake_models.layout import ReleasedLayout
from deepfake_models.registry import CC_BY_NC_4_0, DEEPFAKEBENCH_MEAN_STD, DEEPFAKEBENCH_RELEASE, ClassifierSpec, register

FEATURE_CHANNELS = 2048


class SeparableConv2d(nn.Module):
    """Depthwise 3×3 followed by pointwise 1×1, both without bias."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, in_channels, 3, 1, 1, groups=in_channels, bias=False)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.conv1(x))


class Block(nn.Module):
    """Residual block of `repetitions` (ReLU, SeparableConv2d, BatchNorm) triples.

    The triples live in one `rep` Sequential whose indices are part of the
    checkpoint keys: `start_with_relu=False` removes the leading ReLU (shifting
    every index by one) and a strided block ends in a MaxPool.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        repetitions: int,
        stride: int,
        start_with_relu: bool = True,
        grow_first: bool = True,
    ) -> None:
        super().__init__()
        if out_channels != in_channels or stride != 1:
            self.skip: nn.Module | None = nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)
            self.skipbn: nn.Module | None = nn.BatchNorm2d(out_channels)
        else:
            self.skip = None
            self.skipbn = None

        widths = [in_channels] + [out_channels if grow_first else in_channels] * repetitions
        if not grow_first:
            widths[-1] = out_channels
        layers: list[nn.Module] = []
        for cin, cout in zip(widths[:-1], widths[1:]):
            layers += [nn.ReLU(), SeparableConv2d(cin, cout), nn.BatchNorm2d(cout)]
        if not start_with_relu:
            layers = layers[1:]
        if stride != 1:
            layers.append(nn.MaxPool2d(3, stride, 1))
        self.rep = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.skip is None else self.skipbn(self.skip(x))
        return self.rep(x) + skip


class Xception(nn.Module):
    """DeepfakeBench Xception in `mode: original`.

    `adjust_channel` is unused in this mode but is part of the released state_dict,
    so it is declared to keep loading strict. `head_dropout` switches `last_linear`
    to `Sequential(Dropout, Linear)`, as F3Net's config (`dropout: 0.5`) does.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 2, head_dropout: float | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 32, 3, 2, 0, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 64, 3, bias=False)
        self.bn2 = nn.BatchNorm2d(64)

        self.block1 = Block(64, 128, 2, 2, start_with_relu=False)
        self.block2 = Block(128, 256, 2, 2)
        self.block3 = Block(256, 728, 2, 2)
        for index in range(4, 12):
            setattr(self, f"block{index}", Block(728, 728, 3, 1))
        self.block12 = Block(728, 1024, 2, 2, grow_first=False)

        self.conv3 = SeparableConv2d(1024, 1536)
        self.bn3 = nn.BatchNorm2d(1536)
        self.conv4 = SeparableConv2d(1536, FEATURE_CHANNELS)
        self.bn4 = nn.BatchNorm2d(FEATURE_CHANNELS)

        self.adjust_channel = nn.Sequential(
            nn.Conv2d(FEATURE_CHANNELS, 512, 1, 1), nn.BatchNorm2d(512), nn.ReLU()
        )
        linear = nn.Linear(FEATURE_CHANNELS, num_classes)
        self.last_linear: nn.Module = (
            linear if head_dropout is None else nn.Sequential(nn.Dropout(head_dropout), linear)
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        for index in range(1, 13):
            x = getattr(self, f"block{index}")(x)
        x = F.relu(self.bn3(self.conv3(x)))
        return self.bn4(self.conv4(x))

    def classifier(self, features: torch.Tensor) -> torch.Tensor:
        pooled = F.adaptive_avg_pool2d(F.relu(features), 1).flatten(1)
        return self.last_linear(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def gradcam_layer(network: Xception) -> nn.Module:
    """`bn4`: 2048 x 8 x 8, the last feature map, before the classifier's ReLU and pooling."""
    return network.bn4


# The published DeepfakeBench checkpoint: every key under `backbone.`.
XCEPTION = register(ClassifierSpec(
    name="xception",
    column=10,
    network=Xception,
    layout=ReleasedLayout(
        name="xception",
        signature_keys=("backbone.block1.rep.0.pointwise.weight",),
        renames=(("backbone.", ""),),
    ),
    checkpoint_file="xception_best.pth",
    input_size=256,
    mean=DEEPFAKEBENCH_MEAN_STD[0],
    std=DEEPFAKEBENCH_MEAN_STD[1],
    published_at=DEEPFAKEBENCH_RELEASE,
    approx_size_mb=87.8,
    gradcam_layer=gradcam_layer,
    licence=CC_BY_NC_4_0,
))
