"""Grad-CAM explanations of the classifiers' "fake" logit, per face (pure Python,
no Triton import; model_repository/explainer/1/model.py is the adapter).

What a heatmap is: Grad-CAM (Selvaraju et al. 2017, computed with captum's
LayerGradCam) of logit index 1 ("fake") at the model's last spatial feature map,
ReLU'd (only evidence *for* fake), upsampled bilinearly to the 256 x 256 aligned
crop and divided by its own maximum, so every map is FP32 in [0, 1] with 1 at
its strongest point. A map of zeros means the layer holds no positive evidence
for "fake". Maps are relative within one face and one model: they say where a
model looked, not how fake the face is (that is the score) and not that the
marked region is manipulated.

Target layers (the last feature map that still has a spatial layout) come from each
classifier's spec (`ClassifierSpec.gradcam_layer`, in deepfake_models/classifiers/), which
says why that layer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import LayerGradCam
from torch import nn

from deepfake_contract.parameters import decode

from .alignment import DEEPFAKEBENCH_SCALE, DEEPFAKEBENCH_SIZE, deepfakebench_template, estimate_similarity

FAKE_INDEX = 1  # classifier output column of the "fake" logit
# Heatmaps are drawn on the pixel grid of the 256 aligned crop: every smaller crop
# is a resize of it, so every map shares one crop-to-image transform.
HEATMAP_SIZE = DEEPFAKEBENCH_SIZE


def grad_cam(model: nn.Module, layer: nn.Module, crops: np.ndarray, size: int = HEATMAP_SIZE) -> np.ndarray:
    """Grad-CAM of the fake logit of `model` (UINT8 NHWC crops in, logits out) at
    `layer`, for each crop: FP32 [N, size, size] in [0, 1] (see the module docstring)."""
    device = next(model.parameters()).device
    faces = torch.from_numpy(np.ascontiguousarray(crops)).to(device)
    with torch.enable_grad():
        cam = LayerGradCam(model, layer).attribute(faces, target=FAKE_INDEX, relu_attributions=True)
    maps = F.interpolate(cam.detach().float(), size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    peak = maps.amax(dim=(1, 2), keepdim=True)
    maps = torch.where(peak > 0, maps / peak.clamp_min(torch.finfo(torch.float32).tiny), torch.zeros_like(maps))
    return maps.clamp(0.0, 1.0).cpu().numpy().astype(np.float32)


def ensemble_heatmap(heatmaps: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    """[F, M, H, W] per-model maps -> [F, H, W]: their average with the ensemble's
    weights, over the models with weight > 0 (the others' maps are NaN). Not
    renormalised: where the models disagree the ensemble map stays below 1."""
    w = np.asarray(weights, dtype=np.float64)
    enabled = w > 0
    if not enabled.any():
        raise ValueError("no model has a weight > 0")
    mixed = np.tensordot(heatmaps[:, enabled].astype(np.float64), w[enabled] / w[enabled].sum(), axes=([1], [0]))
    return mixed.astype(np.float32)


def crop_to_image(landmarks: np.ndarray) -> np.ndarray:
    """[F, 5, 2] alignment points -> [F, 2, 3] affine maps from 256-crop pixels (x, y)
    to original-image pixels: the inverse of the detector's alignment similarity."""
    template = deepfakebench_template(DEEPFAKEBENCH_SIZE, DEEPFAKEBENCH_SCALE)
    transforms = []
    for points in landmarks:
        forward = np.vstack([estimate_similarity(points, template), [0.0, 0.0, 1.0]])
        transforms.append(np.linalg.inv(forward)[:2])
    return np.array(transforms, dtype=np.float32).reshape(-1, 2, 3)


@dataclass(frozen=True, eq=False)
class Explanation:
    """The explainer's outputs for one image: F = min(faces found, max_faces) rows,
    the most confident faces first (the detector's order)."""

    heatmaps: np.ndarray  # FP32 [F, M, 256, 256], models in the ensemble's order; NaN: model disabled
    ensemble: np.ndarray  # FP32 [F, 256, 256]
    crop_to_image: np.ndarray  # FP32 [F, 2, 3]


@dataclass(frozen=True)
class ExplainerSettings:
    """max_faces: faces explained per image (the most confident first); bounds the cost.
    torch_threads: CPU threads of this instance (0: PyTorch's default, every core)."""

    max_faces: int = 2
    torch_threads: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.max_faces, bool) or not isinstance(self.max_faces, int) or self.max_faces < 1:
            raise ValueError(f"max_faces must be an integer >= 1, got {self.max_faces!r}")
        if isinstance(self.torch_threads, bool) or not isinstance(self.torch_threads, int) or self.torch_threads < 0:
            raise ValueError(f"torch_threads must be an integer >= 0, got {self.torch_threads!r}")


def parse_weights(params: Mapping[str, str], model_names: Sequence[str]) -> tuple[float, ...]:
    """The `weights` parameter (JSON object model -> weight >= 0) in model order."""
    weights = decode(params, "weights", kind=dict)
    text = params["weights"]
    if set(weights) != set(model_names):
        raise ValueError(f"weights must name exactly {list(model_names)}, got {text}")
    values = tuple(float(weights[name]) for name in model_names)
    if any(not np.isfinite(v) or v < 0 for v in values) or not any(v > 0 for v in values):
        raise ValueError(f"weights must be finite, >= 0 and not all 0, got {text}")
    return values


class Explainer:
    """Grad-CAM for every enabled classifier on the first `max_faces` faces.

    models: name -> (servable classifier, crop side), in the ensemble's order.
    target_layer: (name, servable classifier) -> the layer Grad-CAM explains; by default the
    one its spec names (deepfake_models).
    """

    def __init__(self, models: Mapping[str, tuple[nn.Module, int]], weights: Sequence[float], max_faces: int,
                 target_layer: Callable[[str, nn.Module], nn.Module] | None = None) -> None:
        if len(weights) != len(models):
            raise ValueError(f"{len(weights)} weights for {len(models)} models")
        if target_layer is None:
            from .explain_models import target_layer
        self.models = dict(models)
        self.weights = tuple(weights)
        self.max_faces = max_faces
        self.layers = {name: target_layer(name, model) for name, (model, _) in self.models.items()}

    def explain(self, crops: Mapping[int, np.ndarray], num_faces: int, landmarks: np.ndarray) -> Explanation:
        """crops: crop side -> UINT8 [max(N, 1), S, S, 3]; landmarks: FP32 [N, 5, 2]."""
        count = min(int(num_faces), self.max_faces)
        if count < 0 or len(landmarks) < count:
            raise ValueError(f"{num_faces} faces but {len(landmarks)} landmark rows")
        heatmaps = np.full((count, len(self.models), HEATMAP_SIZE, HEATMAP_SIZE), np.nan, dtype=np.float32)
        for column, (name, (model, side)) in enumerate(self.models.items()):
            if count == 0 or self.weights[column] <= 0:
                continue
            faces = crops.get(side)
            if faces is None or faces.shape[1:] != (side, side, 3) or len(faces) < count:
                raise ValueError(f"{name} needs {count} crops of {side} x {side} x 3")
            heatmaps[:, column] = grad_cam(model, self.layers[name], faces[:count])
        ensemble = (ensemble_heatmap(heatmaps, self.weights) if count
                    else np.zeros((0, HEATMAP_SIZE, HEATMAP_SIZE), np.float32))
        return Explanation(heatmaps, ensemble, crop_to_image(np.asarray(landmarks)[:count]))
