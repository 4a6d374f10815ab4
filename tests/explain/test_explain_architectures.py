"""Grad-CAM on the four real architectures with the demo-weight fixed checkpoints:
shapes, ranges, determinism, the Explainer's bounds, and the model-randomisation
sanity check (Adebayo et al. 2018: a map that survives re-initialising the layers
it explains does not explain the model)."""

from __future__ import annotations

import gc

import numpy as np
import pytest
import torch
from torch import nn

from deepfake_models import CLASSIFIER_NAMES
from deepfake_serving.explain import HEATMAP_SIZE, Explainer, grad_cam
from deepfake_serving.explain_models import load_classifier, target_layer

pytestmark = pytest.mark.slow


def crops(side: int, count: int = 2) -> np.ndarray:
    """Smooth random images (a face-free stand-in: the demo weights are untrained anyway)."""
    rng = np.random.default_rng(7)
    coarse = rng.integers(0, 256, (count, 8, 8, 3)).astype(np.float32)
    smooth = torch.nn.functional.interpolate(torch.from_numpy(coarse).permute(0, 3, 1, 2), size=(side, side),
                                             mode="bicubic", align_corners=False)
    return smooth.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def load(export_artifacts, name: str):
    return load_classifier(name, export_artifacts / "fixed" / f"{name}.safetensors")


def head(model: nn.Module, name: str) -> nn.Linear:
    """The last layer of each network (the classifier on the pooled features)."""
    network = model.network
    return {
        "xception": lambda: network.last_linear,
        "efficientnet_b4": lambda: network.last_layer,
        "f3net": lambda: network.xception.last_linear[-1],
        "effort_clip": lambda: network.head,
    }[name]()


@pytest.mark.parametrize("name", CLASSIFIER_NAMES)
def test_heatmaps_have_the_contract_shape_range_and_are_deterministic(export_artifacts, name):
    model, side = load(export_artifacts, name)
    faces = crops(side)
    layer = target_layer(name, model)
    first = grad_cam(model, layer, faces)
    second = grad_cam(model, layer, faces)
    assert first.shape == (2, HEATMAP_SIZE, HEATMAP_SIZE) and first.dtype == np.float32
    assert np.isfinite(first).all() and first.min() >= 0.0 and first.max() <= 1.0
    # Each map peaks at 1, or is zeros where the layer holds no positive evidence for "fake" (with
    # untrained weights that depends on the demo seed); a real map, not flat, for at least one crop
    # (a target layer with no gradient gives zeros for every crop).
    peaks = first.max(axis=(1, 2))
    assert np.all(np.isclose(peaks, 1.0) | (peaks == 0.0)), peaks
    assert ((peaks == 1.0) & (first.std(axis=(1, 2)) > 0.05)).any()
    np.testing.assert_allclose(first, second, atol=1e-5)
    # Explaining does not change what the model computes.
    with torch.no_grad():
        logits = model(torch.from_numpy(faces))
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", CLASSIFIER_NAMES)
def test_reinitialising_the_last_layer_changes_the_heatmap(export_artifacts, name):
    model, side = load(export_artifacts, name)
    faces = crops(side)
    before = grad_cam(model, target_layer(name, model), faces)
    torch.manual_seed(1234)
    head(model, name).reset_parameters()
    after = grad_cam(model, target_layer(name, model), faces)
    difference = float(np.abs(before - after).mean())
    assert difference > 0.05, f"{name}: the map barely moved ({difference:.3f}) when its classifier was re-drawn"
    del model
    gc.collect()


def test_explainer_bounds_faces_and_skips_disabled_models(export_artifacts):
    names = ("xception", "f3net")  # two of the CNNs keep this test short
    models = {name: load(export_artifacts, name) for name in names}
    explainer = Explainer(models, weights=(1.0, 0.0), max_faces=1)
    landmarks = np.tile(np.array([[90, 110], [166, 110], [128, 150], [98, 190], [158, 190]], np.float32), (3, 1, 1))
    explanation = explainer.explain({256: crops(256, 3)}, num_faces=3, landmarks=landmarks)
    assert explanation.heatmaps.shape == (1, 2, HEATMAP_SIZE, HEATMAP_SIZE)
    assert np.isnan(explanation.heatmaps[:, 1]).all()  # f3net has weight 0: not computed
    np.testing.assert_allclose(explanation.ensemble, explanation.heatmaps[:, 0])
    assert explanation.crop_to_image.shape == (1, 2, 3)
    empty = explainer.explain({256: crops(256, 1)}, num_faces=0, landmarks=np.zeros((0, 5, 2), np.float32))
    assert empty.heatmaps.shape[0] == empty.ensemble.shape[0] == empty.crop_to_image.shape[0] == 0
    with pytest.raises(ValueError):
        explainer.explain({224: crops(224, 1)}, num_faces=1, landmarks=landmarks[:1])
