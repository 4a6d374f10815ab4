"""FLOP counting, checked against FLOPs worked out by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchmarks.studies.flops import count_flops, flops_per_face
from deepfake_models.classifiers.efficientnet_b4 import EFFICIENTNET_B4
from deepfake_models.classifiers.effort_clip import EFFORT_CLIP
from deepfake_models.classifiers.f3net import F3NET
from deepfake_models.classifiers.xception import XCEPTION


def test_a_linear_layer_costs_two_flops_per_multiply_add():
    assert count_flops(nn.Linear(64, 32), torch.zeros(3, 64)) == 2 * 3 * 64 * 32


def test_convolutions_count_groups_and_stride():
    # 16 -> 32 channels, 3x3, stride 2, padding 1 on 20x20: a 10x10 output
    assert count_flops(nn.Conv2d(16, 32, 3, stride=2, padding=1), torch.zeros(1, 16, 20, 20)) == \
        2 * 10 * 10 * 32 * 16 * 9
    # depthwise: each output channel sees one input channel
    assert count_flops(nn.Conv2d(16, 16, 3, padding=1, groups=16), torch.zeros(2, 16, 8, 8)) == 2 * 2 * 8 * 8 * 16 * 9


def test_element_wise_work_is_not_counted():
    assert count_flops(nn.Sequential(nn.ReLU(), nn.Softmax(dim=-1)), torch.zeros(4, 100)) == 0


def vit_l14_flops(image: int = 224) -> int:
    """ViT-L/14 by hand: patch embedding, 24 blocks (QKV, attention, projection, 4x MLP), the 1024->2 head."""
    patches, width, layers = (image // 14) ** 2, 1024, 24
    tokens = patches + 1  # and the class token
    embedding = 2 * patches * (3 * 14 * 14) * width
    block = 2 * tokens * width * (3 * width + width + 2 * 4 * width) + 2 * 2 * tokens * tokens * width
    return embedding + layers * block + 2 * width * 2


@pytest.mark.slow
def test_effort_is_exactly_a_vit_l14():
    assert flops_per_face(EFFORT_CLIP) == vit_l14_flops()  # ≈ 162 GFLOP (docs/design.md §9)


@pytest.mark.slow
@pytest.mark.parametrize("spec, published_gmac, published_side", [
    (XCEPTION, 8.40, 299),  # timm legacy_xception (docs/design.md §10)
    (EFFICIENTNET_B4, 3.13, 320),  # timm efficientnet_b4
])
def test_cnns_match_published_macs_scaled_to_256_pixels(spec, published_gmac, published_side):
    expected = 2 * published_gmac * 1e9 * (256 / published_side) ** 2
    assert flops_per_face(spec) == pytest.approx(expected, rel=0.10)


@pytest.mark.slow
def test_f3net_costs_a_little_more_than_xception_on_its_frequency_input():
    extra = flops_per_face(F3NET) - flops_per_face(XCEPTION)
    assert 0 < extra < 0.2 * flops_per_face(XCEPTION)
