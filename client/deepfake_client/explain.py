"""Explanations: the detection result plus Grad-CAM heatmaps, from `deepfake_explainer`.

    from deepfake_client import DeepfakeClient
    from deepfake_client.overlay import render_overlay
    with DeepfakeClient("localhost:8001") as client:
        explanation = client.explain("photo.jpg")
    png = render_overlay(Path("photo.jpg").read_bytes(), explanation)

What a heatmap means (model_repository/README.md, docs/explanations.md): where a
model's "fake" evidence lies in the aligned face crop, scaled so that 1 is that
map's strongest point. It is not a score and not a manipulation mask.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

import deepfake_contract as contract

from .errors import ServerError
from .results import DetectionResult, json_number, parse_outputs

EXPLAINER_MODEL = contract.EXPLAINER_ENSEMBLE_NAME


@dataclass(frozen=True, eq=False)
class FaceExplanation:
    """Heatmaps of one face, on the pixel grid of its 256 x 256 aligned crop."""

    index: int  # the face's row in ExplanationResult.detection.faces
    heatmaps: dict[str, np.ndarray]  # model name -> FP32 [256, 256] in [0, 1] (enabled models only)
    ensemble: np.ndarray  # FP32 [256, 256] in [0, 1]: the weighted average of `heatmaps`
    crop_to_image: np.ndarray  # FP64 [2, 3]: crop pixel (x, y, 1) -> original image pixel (x, y)

    def to_image(self, heatmap: np.ndarray, width: int, height: int) -> np.ndarray:
        """A crop-grid map warped onto the original image (width x height), 0 outside the crop."""
        return _warp(heatmap, self.crop_to_image, width, height)

    def to_dict(self, heatmaps: bool = False) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "face": self.index,
            "crop_to_image": self.crop_to_image.tolist(),
            # Where each map peaks, in original pixels: a number a script can check.
            "peak": {name: _peak(self, m) for name, m in {"ensemble": self.ensemble, **self.heatmaps}.items()},
        }
        if heatmaps:
            summary["heatmaps"] = {name: m.tolist() for name, m in self.heatmaps.items()}
            summary["ensemble"] = self.ensemble.tolist()
        return summary


def _warp(heatmap: np.ndarray, crop_to_image: np.ndarray, width: int, height: int) -> np.ndarray:
    return cv2.warpAffine(np.ascontiguousarray(heatmap, np.float32), np.asarray(crop_to_image, np.float64),
                          (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)


def _peak(face: FaceExplanation, heatmap: np.ndarray) -> list[float] | None:
    if not np.isfinite(heatmap).all() or heatmap.max() <= 0:
        return None
    y, x = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    point = face.crop_to_image @ np.array([x, y, 1.0])  # cv2: integer coordinates are pixel centres
    return [round(float(point[0]), 1), round(float(point[1]), 1)]


@dataclass(frozen=True, eq=False)
class ExplanationResult:
    """The `deepfake_detector` verdict plus heatmaps of the first faces (at most the
    server's explainer max_faces, most confident first)."""

    detection: DetectionResult
    faces: tuple[FaceExplanation, ...]
    weights: dict[str, float]  # model -> weight in the ensemble map (sum 1 over enabled models)

    def to_dict(self, heatmaps: bool = False) -> dict[str, Any]:
        return {
            **self.detection.to_dict(),
            "heatmap_size": contract.HEATMAP_SIZE,
            "weights": {name: json_number(w) for name, w in self.weights.items()},
            "explained_faces": [face.to_dict(heatmaps) for face in self.faces],
        }


def parse_explanation(outputs: Mapping[str, np.ndarray | None]) -> ExplanationResult:
    """Build an ExplanationResult from the deepfake_explainer's output arrays."""
    detection = parse_outputs(outputs)
    try:
        return _parse(outputs, detection)
    except (KeyError, ValueError, TypeError) as exc:
        raise ServerError(f"the server's answer does not follow the deepfake_explainer contract: {exc}") from exc


def _parse(outputs: Mapping[str, np.ndarray | None], detection: DetectionResult) -> ExplanationResult:
    def required(name: str) -> np.ndarray:
        array = outputs.get(name)
        if array is None:
            raise KeyError(f"output {name} is missing")
        return np.asarray(array)

    names = detection.model_names
    size = contract.HEATMAP_SIZE
    heatmaps = required("HEATMAPS").astype(np.float32).reshape(-1, len(names), size, size)
    ensemble = required("ENSEMBLE_HEATMAP").astype(np.float32).reshape(-1, size, size)
    transforms = required("CROP_TO_IMAGE").astype(np.float64).reshape(-1, 2, 3)
    weights = required("HEATMAP_WEIGHTS").astype(np.float64).reshape(-1)
    count = len(heatmaps)
    if len(ensemble) != count or len(transforms) != count or count > len(detection.faces):
        raise ValueError(f"{count} heatmap rows, {len(ensemble)} ensemble rows, {len(transforms)} transforms "
                         f"for {len(detection.faces)} faces")
    if len(weights) != len(names):
        raise ValueError(f"{len(weights)} weights for {len(names)} models")
    faces = tuple(
        FaceExplanation(
            index=i,
            heatmaps={name: heatmaps[i, j] for j, name in enumerate(names) if weights[j] > 0},
            ensemble=ensemble[i],
            crop_to_image=transforms[i],
        )
        for i in range(count)
    )
    for face in faces:
        for name, m in {"ensemble": face.ensemble, **face.heatmaps}.items():
            if not (np.isfinite(m).all() and m.min() >= 0.0 and m.max() <= 1.0):
                raise ValueError(f"face {face.index}: {name} heatmap is not in [0, 1]")
    return ExplanationResult(detection, faces, {name: float(w) for name, w in zip(names, weights)})
