"""EfficientNet-B4 as DeepfakeBench builds it (training/networks/efficientnetb4.py).

The backbone is efficientnet_pytorch's own B4 (not timm/torchvision: key names and
the static "same" paddings, precomputed for image_size 380, differ there), with two
changes DeepfakeBench makes: an unpadded 3×3/s2 stem and an `Identity` `_fc`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from efficientnet_pytorch import EfficientNet
from torch import nn

from deepfake_models.layout import ReleasedLayout
from deepfake_models.registry import CC_BY_NC_4_0, DEEPFAKEBENCH_MEAN_STD, DEEPFAKEBENCH_RELEASE, ClassifierSpec, register

FEATURE_CHANNELS = 1792


class EfficientNetB4(nn.Module):
    def __init__(self, num_classes: int = 2) -> None:
        super().__init__()
        self.efficientnet = EfficientNet.from_name("efficientnet-b4")
        self.efficientnet._conv_stem = nn.Conv2d(3, 48, kernel_size=3, stride=2, bias=False)
        self.efficientnet._fc = nn.Identity()
        # MemoryEfficientSwish is a custom autograd Function that ONNX cannot export;
        # the plain swish computes the same values.
        self.efficientnet.set_swish(memory_efficient=False)
        self.last_layer = nn.Linear(FEATURE_CHANNELS, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.efficientnet.extract_features(x)
        return self.last_layer(F.adaptive_avg_pool2d(features, 1).flatten(1))


def gradcam_layer(network: EfficientNetB4) -> nn.Module:
    """`_bn1` of the backbone's head: 1792 x 8 x 8, before swish and pooling."""
    return network.efficientnet._bn1


EFFICIENTNET_B4 = register(ClassifierSpec(
    name="efficientnet_b4",
    column=20,
    network=EfficientNetB4,
    layout=ReleasedLayout(
        name="efficientnet_b4",
        signature_keys=("backbone.efficientnet._conv_stem.weight",),
        renames=(("backbone.", ""),),
    ),
    checkpoint_file="effnb4_best.pth",
    input_size=256,
    mean=DEEPFAKEBENCH_MEAN_STD[0],
    std=DEEPFAKEBENCH_MEAN_STD[1],
    published_at=DEEPFAKEBENCH_RELEASE,
    approx_size_mb=71.0,
    gradcam_layer=gradcam_layer,
    licence=CC_BY_NC_4_0,
))
