"""Grad-CAM known answers on toy classifiers, and the pure helpers (no full-size model)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from deepfake_serving.alignment import deepfakebench_template, estimate_similarity
from deepfake_serving.explain import (
    ExplainerSettings,
    crop_to_image,
    ensemble_heatmap,
    grad_cam,
    parse_weights,
)

SIDE = 64


def detector(colour: tuple[float, float, float]) -> nn.Conv2d:
    """A 4x4/stride-4 conv that fires (> 0) on patches of `colour` only."""
    conv = nn.Conv2d(3, 1, kernel_size=4, stride=4)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(colour).view(1, 3, 1, 1).expand(1, 3, 4, 4) / 16.0)
        conv.bias.fill_(-0.1)
    return conv


class RegionToy(nn.Module):
    """UINT8 NHWC crops -> logits, built like the real CNNs (feature map, ReLU, global
    average pool). The fake logit (index 1) reads a red-patch detector, the real logit
    (index 0) a blue-patch detector; the crops have a red patch in their top-left
    quadrant and a blue one in their bottom-right, so the fake evidence is top-left."""

    def __init__(self) -> None:
        super().__init__()
        self.fake_features = detector((1.0, -1.0, -1.0))
        self.real_features = detector((-1.0, -1.0, 1.0))

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        pixels = faces.permute(0, 3, 1, 2).float() / 255.0
        fake = torch.relu(self.fake_features(pixels)).mean(dim=(1, 2, 3))
        real = torch.relu(self.real_features(pixels)).mean(dim=(1, 2, 3))
        return torch.stack([real, fake], dim=1)


class Flipped(nn.Module):
    """The toy with its class indices swapped: what a flipped FAKE_INDEX would explain."""

    def __init__(self, toy: RegionToy) -> None:
        super().__init__()
        self.toy = toy

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        return self.toy(faces).flip(1)


def patched_crops(count: int = 2) -> np.ndarray:
    crops = np.full((count, SIDE, SIDE, 3), 128, dtype=np.uint8)
    crops[:, 8:24, 4:28] = (230, 20, 20)  # red, top-left
    crops[:, 40:60, 36:60] = (20, 20, 230)  # blue, bottom-right
    return crops


def quadrant_mass(heatmap: np.ndarray) -> dict[str, float]:
    half = heatmap.shape[0] // 2
    total = float(heatmap.sum())
    if total == 0:
        return {"top_left": 0.0, "bottom_right": 0.0}
    return {"top_left": float(heatmap[:half, :half].sum()) / total,
            "bottom_right": float(heatmap[half:, half:].sum()) / total}


def test_heatmap_mass_sits_where_the_fake_evidence_is():
    toy = RegionToy().eval()
    heatmaps = grad_cam(toy, toy.fake_features, patched_crops(), size=SIDE)
    assert heatmaps.shape == (2, SIDE, SIDE) and heatmaps.dtype == np.float32
    for heatmap in heatmaps:
        mass = quadrant_mass(heatmap)
        # Bilinear upsampling spreads a little over the patch's border.
        assert mass["top_left"] > 0.9, mass
        assert mass["bottom_right"] < 0.01, mass
        assert heatmap.max() == pytest.approx(1.0) and heatmap.min() >= 0.0


def test_a_flipped_class_index_fails_the_known_answer():
    toy = RegionToy().eval()
    flipped = Flipped(toy).eval()
    # At the fake feature map the flipped logit has no gradient: an empty map.
    assert np.all(grad_cam(flipped, toy.fake_features, patched_crops(1), size=SIDE) == 0.0)
    # Where the flipped logit does look, it is the other region.
    heatmap = grad_cam(flipped, toy.real_features, patched_crops(1), size=SIDE)[0]
    assert quadrant_mass(heatmap)["bottom_right"] > 0.9


def test_a_wrong_target_layer_fails_the_known_answer():
    toy = RegionToy().eval()
    heatmap = grad_cam(toy, toy.real_features, patched_crops(1), size=SIDE)[0]
    assert quadrant_mass(heatmap)["top_left"] < 0.9


def test_a_model_without_fake_evidence_gives_zeros():
    toy = RegionToy().eval()
    crops = np.full((1, SIDE, SIDE, 3), 128, dtype=np.uint8)  # no red patch anywhere
    heatmap = grad_cam(toy, toy.fake_features, crops, size=SIDE)[0]
    assert np.all(heatmap == 0.0)


def test_ensemble_is_the_weighted_mean_over_enabled_models():
    maps = np.zeros((1, 3, 4, 4), np.float32)
    maps[0, 0] = 1.0
    maps[0, 1] = 0.5
    maps[0, 2] = np.nan  # a disabled model
    mixed = ensemble_heatmap(maps, [3.0, 1.0, 0.0])
    np.testing.assert_allclose(mixed, np.full((1, 4, 4), 0.875))
    with pytest.raises(ValueError):
        ensemble_heatmap(maps, [0.0, 0.0, 0.0])


def test_crop_to_image_inverts_the_alignment():
    template = deepfakebench_template()
    angle, scale, shift = 0.3, 0.7, np.array([40.0, 25.0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    landmarks = (template @ rotation.T) * scale + shift  # the face, in image pixels
    (transform,) = crop_to_image(landmarks[None].astype(np.float32))
    back = template @ transform[:, :2].T + transform[:, 2]
    np.testing.assert_allclose(back, landmarks, atol=1e-3)
    forward = estimate_similarity(landmarks, template)
    np.testing.assert_allclose(np.vstack([transform, [0, 0, 1]]) @ np.vstack([forward, [0, 0, 1]]), np.eye(3),
                               atol=1e-4)


def test_parameters_are_checked():
    names = ("a", "b")
    assert parse_weights({"weights": '{"a": 1, "b": 0}'}, names) == (1.0, 0.0)
    for bad in ('{"a": 1}', '{"a": -1, "b": 1}', '{"a": 0, "b": 0}', "[1, 2]", "{a: 1}"):
        with pytest.raises(ValueError):
            parse_weights({"weights": bad}, names)
    with pytest.raises(ValueError):
        ExplainerSettings(max_faces=0)

