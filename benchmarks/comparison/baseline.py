"""The seed system's serving design, rebuilt faithfully as the baseline the served pipeline must beat.

The seed answered one request at a time in one process: decode, MTCNN, then the
four PyTorch models one after another, each on one face at a time (batch 1),
eager FP32, with torch's default thread count. It is rebuilt here from the
same parts as the served pipeline, so the comparison is of serving designs,
not of models or crops: the same fixed checkpoints (strictly loaded), the same
decode limits, MTCNN settings and DeepfakeBench-aligned crops
(deepfake_serving.detection), and the same weighted average
(deepfake_serving.combiner). Gradients are off (inference mode), as any seed
serving code would have them. Unlike the served ensemble, an image without a
face skips the classifiers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from deepfake_models import CLASSIFIERS, ClassifierSpec, crop_sizes
from deepfake_models.servable import load_servable
from deepfake_serving.combiner import CombinerSettings, combine
from deepfake_serving.detection import detect_faces
from deepfake_serving.faces import FaceDetector
from deepfake_serving.images import InvalidImageError
from export.artifacts import BuildArtifacts


@dataclass(frozen=True)
class SeedVerdict:
    label: str
    num_faces: int
    model_fake_probability: np.ndarray  # (faces, models), columns in the pipeline's model order


class SeedPipeline:
    def __init__(self, models: Mapping[ClassifierSpec, nn.Module], detector: FaceDetector,
                 weights: Mapping[str, float] | None = None) -> None:
        self.models = dict(models)
        self.detector = detector
        names = tuple(spec.name for spec in self.models)
        self.combiner = CombinerSettings(model_names=names, weights=weights or {name: 1.0 for name in names})
        self.crop_sizes = crop_sizes(self.models)

    @classmethod
    def load(cls, artifacts: BuildArtifacts, specs: Sequence[ClassifierSpec] = CLASSIFIERS) -> SeedPipeline:
        """The four fixed checkpoints as eager FP32 models on the CPU, and MTCNN with the served settings."""
        models = {spec: load_servable(spec, artifacts.fixed_checkpoint(spec.name), "cpu", torch.float32)
                  for spec in specs}
        return cls(models, FaceDetector())

    @torch.inference_mode()
    def __call__(self, image: bytes) -> SeedVerdict:
        (detection,) = detect_faces([image], self.detector, crop_sizes=self.crop_sizes)
        if isinstance(detection, InvalidImageError):
            raise detection
        faces = int(detection.num_faces[0])
        logits = [np.zeros((0, 2), np.float32) for _ in self.models]
        if faces:
            logits = [self._one_face_at_a_time(model, detection.crops[spec.input_size][:faces])
                      for spec, model in self.models.items()]
        verdict = combine(faces, logits, self.combiner)
        return SeedVerdict(verdict.label, faces, verdict.model_fake_probability)

    @staticmethod
    def _one_face_at_a_time(model: nn.Module, crops: np.ndarray) -> np.ndarray:
        return np.concatenate([model(torch.from_numpy(crops[i:i + 1])).numpy() for i in range(len(crops))])
