"""F3Net as DeepfakeBench runs it: the FAD (frequency-aware decomposition) head in
front of a 12-channel Xception (training/detectors/f3net_detector.py).

Written from the layout in docs/design.md §4, not copied.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from deepfake_models.classifiers.xception import Xception
from deepfake_models.layout import ReleasedLayout
from deepfake_models.registry import CC_BY_NC_4_0, DEEPFAKEBENCH_MEAN_STD, DEEPFAKEBENCH_RELEASE, ClassifierSpec, register

RESOLUTION = 256


def dct_matrix(size: int) -> torch.Tensor:
    """Orthonormal DCT-II matrix D, D[i, j] = c(i)·cos((j + ½)·π·i / size).

    Computed in float64 and cast to float32, as the checkpoint's `_DCT_all` was.
    """
    i = torch.arange(size, dtype=torch.float64).unsqueeze(1)
    j = torch.arange(size, dtype=torch.float64).unsqueeze(0)
    scale = torch.full((size, 1), math.sqrt(2.0 / size), dtype=torch.float64)
    scale[0] = math.sqrt(1.0 / size)
    return (scale * torch.cos((j + 0.5) * math.pi * i / size)).float()


def band_mask(start: float, end: float, size: int) -> torch.Tensor:
    """1 where start ≤ i + j ≤ end (both inclusive), else 0."""
    index_sum = torch.arange(size).unsqueeze(1) + torch.arange(size).unsqueeze(0)
    return ((index_sum >= start) & (index_sum <= end)).float()


class Filter(nn.Module):
    """A fixed frequency band plus a trained soft correction in (-1, 1)."""

    def __init__(self, size: int, start: float, end: float) -> None:
        super().__init__()
        self.base = nn.Parameter(band_mask(start, end, size), requires_grad=False)
        self.learnable = nn.Parameter(torch.randn(size, size) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (self.base + (2 * torch.sigmoid(self.learnable) - 1))


class FADHead(nn.Module):
    """Splits each RGB channel into low/middle/high/all DCT bands → 12 channels.

    The attribute names `_DCT_all`, `_DCT_all_T` and `filters.{0..3}` are the
    checkpoint's; the DCT matrices are loaded from it like every other tensor.
    """

    def __init__(self, size: int = RESOLUTION) -> None:
        super().__init__()
        self._DCT_all = nn.Parameter(dct_matrix(size), requires_grad=False)
        # A transposed view, not a copy, as in DeepfakeBench: the released tensor is
        # non-contiguous, which the fixed checkpoint writer has to handle.
        self._DCT_all_T = nn.Parameter(dct_matrix(size).t(), requires_grad=False)
        # DeepfakeBench's band limits, e.g. 256 // 2.82 == 90.0 (a float).
        bands = [(0, size // 2.82), (size // 2.82, size // 2), (size // 2, size * 2), (0, size * 2)]
        self.filters = nn.ModuleList(Filter(size, start, end) for start, end in bands)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spectrum = self._DCT_all @ x @ self._DCT_all_T
        bands = [self._DCT_all_T @ band(spectrum) @ self._DCT_all for band in self.filters]
        return torch.cat(bands, dim=1)


class F3Net(nn.Module):
    def __init__(self, num_classes: int = 2) -> None:
        super().__init__()
        self.fad_head = FADHead(RESOLUTION)
        self.xception = Xception(in_channels=12, num_classes=num_classes, head_dropout=0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.xception(self.fad_head(x))


def gradcam_layer(network: F3Net) -> nn.Module:
    """Its 12-channel Xception's `bn4` (8 x 8): the RGB crop goes through the DCT band
    split first, so the map locates evidence in the image, not in a band."""
    return network.xception.bn4


F3NET = register(ClassifierSpec(
    name="f3net",
    column=30,
    network=F3Net,
    layout=ReleasedLayout(
        name="f3net",
        # The FAD head, plus the Xception backbone's key (so this layout wins over Xception's).
        signature_keys=("FAD_head._DCT_all", "backbone.block1.rep.0.pointwise.weight"),
        renames=(("FAD_head.", "fad_head."), ("backbone.", "xception.")),
    ),
    checkpoint_file="f3net_best.pth",
    input_size=RESOLUTION,
    mean=DEEPFAKEBENCH_MEAN_STD[0],
    std=DEEPFAKEBENCH_MEAN_STD[1],
    published_at=DEEPFAKEBENCH_RELEASE,
    approx_size_mb=90.4,
    gradcam_layer=gradcam_layer,
    licence=CC_BY_NC_4_0,
))
