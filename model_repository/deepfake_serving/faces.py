"""Face detection with facenet-pytorch's MTCNN: boxes, confidences, five landmarks,
and the five points each face is to be aligned on (see landmarks.py).

MTCNN's cost grows with the pixels of the first level of its image pyramid,
(side * 12 / min_face_size)^2, so a 40-megapixel photo takes seconds on a CPU.
Images whose longer side exceeds `max_detection_side` are therefore detected on
a downscaled copy; `min_face_size` keeps meaning original pixels, except that
no face smaller than `MIN_DETECTION_FACE` pixels (or min_face_size, if smaller)
*at detection resolution* is searched for. Boxes and landmarks are mapped back
to original pixels, and the faces are aligned on the full-resolution image.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np
import torch
from facenet_pytorch import MTCNN

from .landmarks import (
    DEFAULT_LANDMARK_METHOD,
    DLIB68,
    LANDMARK_METHODS,
    MTCNN_CALIBRATED,
    DlibRefiner,
    calibrated_points,
)

# Smallest face searched for at detection resolution on a downscaled copy (the default
# min_face_size): it keeps MTCNN's pyramid, and so its time, the same for any image larger
# than max_detection_side. PNet's window is 12 pixels.
MIN_DETECTION_FACE = 40.0
_DEVICE_PATTERN = re.compile(r"cpu|cuda(:\d+)?")


@dataclass(frozen=True)
class DetectorSettings:
    """How faces are found.

    min_face_size: smallest face searched for, in original image pixels (>= 12):
        MTCNN's image pyramid starts there, so a face somewhat smaller can still
        be found, and a smaller value costs more time (more candidate windows).
    confidence_threshold: faces with a lower MTCNN probability are dropped.
    max_faces: at most this many faces per image, the most confident ones
        (the classifiers' max_batch_size must be at least this).
    device: "cpu", "cuda" or "cuda:<index>".
    max_detection_side: images with a longer side are detected on a copy
        downscaled to it (None: always full resolution). On such an image of
        longer side L the smallest face found (for min_face_size >= 40) is
        max(min_face_size, MIN_DETECTION_FACE * L / max_detection_side) pixels,
        i.e. 40/1,280 = 3.1% of the longer side at the defaults: 60 pixels in a
        1080p video frame, 126 pixels on a 4,032-pixel photo. It bounds MTCNN's
        time: a 4,096² image costs about what a 1,280² one does
        (benchmarks/studies/detection_bound.py). Raise it to find smaller faces in
        large images, at (side / 1,280)² the time.
    landmarks: the points the crops are aligned on (landmarks.py, docs/alignment.md):
        "mtcnn_calibrated" (MTCNN's points moved to where DeepfakeBench's
        training points lie on average), "mtcnn" (MTCNN's points as they are)
        or "dlib68" (DeepfakeBench's own points from dlib's 68-point model:
        closest to training, but needs dlib-bin and face_recognition_models,
        and that model is for non-commercial use only).
    """

    min_face_size: int = 40
    confidence_threshold: float = 0.9
    max_faces: int = 8
    device: str = "cpu"
    max_detection_side: int | None = 1280
    landmarks: str = DEFAULT_LANDMARK_METHOD

    def __post_init__(self) -> None:
        if not self.min_face_size >= 12:
            raise ValueError(f"min_face_size must be at least 12 pixels, got {self.min_face_size}")
        if not 0.0 <= self.confidence_threshold <= 1.0:
            raise ValueError(f"confidence_threshold must be in [0, 1], got {self.confidence_threshold}")
        if not self.max_faces >= 1:
            raise ValueError(f"max_faces must be at least 1, got {self.max_faces}")
        if not _DEVICE_PATTERN.fullmatch(self.device):
            raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:<index>', got {self.device!r}")
        if self.max_detection_side is not None and not self.max_detection_side >= MIN_DETECTION_FACE:
            raise ValueError(
                f"max_detection_side must be None or at least {MIN_DETECTION_FACE:g}, got {self.max_detection_side}"
            )
        if self.landmarks not in LANDMARK_METHODS:
            raise ValueError(f"landmarks must be one of {', '.join(LANDMARK_METHODS)}; got {self.landmarks!r}")


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face, in pixels of the original image."""

    box: np.ndarray  # float32 (4,): x1, y1, x2, y2, clipped to the image
    score: float  # MTCNN probability that this is a face
    landmarks: np.ndarray  # float32 (5, 2): x, y of image-left eye, image-right eye, nose, mouth corners
    # float32 (5, 2): the points to align the crop on, in the template's order, per
    # DetectorSettings.landmarks (FaceDetector always sets them; None: `landmarks`).
    alignment_points: np.ndarray | None = None

    @property
    def crop_points(self) -> np.ndarray:
        """The five points the face's crop is aligned on."""
        return self.landmarks if self.alignment_points is None else self.alignment_points


class FaceDetector:
    """MTCNN with the settings' device, thresholds and face limit.

    Not safe to call from several threads at once (one detector per Triton
    model instance, which runs one `execute` at a time). With landmarks="dlib68"
    construction raises dlib_landmarks.LandmarkModelUnavailableError when dlib
    or its model is not installed.
    """

    def __init__(self, settings: DetectorSettings = DetectorSettings()) -> None:
        self.settings = settings
        # dlib runs on the CPU whatever the device; it is loaded only when asked for.
        self._dlib_refiner = DlibRefiner() if settings.landmarks == DLIB68 else None
        self._mtcnn = MTCNN(
            keep_all=True,
            min_face_size=settings.min_face_size,
            select_largest=False,
            device=torch.device(settings.device),
        )

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """Faces in each (H, W, 3) uint8 RGB image, most confident first.

        Images of the same shape are detected in one batched MTCNN call.
        """
        return [faces for faces, _ in self.detect_counted(images)]

    def detect_counted(self, images: Sequence[np.ndarray]) -> list[tuple[list[Face], int]]:
        """As `detect`, with the number of faces above the confidence threshold
        before the max_faces cut (more than len(faces) when faces were left out)."""
        for index, image in enumerate(images):
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype not in (np.uint8, torch.uint8):
                raise ValueError(f"image {index}: expected (H, W, 3) uint8 RGB, got {image.dtype} {image.shape}")
        indices_by_shape: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for index, image in enumerate(images):
            indices_by_shape[tuple(image.shape)].append(index)
        faces: list[tuple[list[Face], int]] = [([], 0) for _ in images]
        for shape, indices in indices_by_shape.items():
            group_faces = self._detect_same_shape([images[i] for i in indices], shape[0], shape[1])
            for index, (image_faces, found) in zip(indices, group_faces):
                faces[index] = ([self._with_alignment_points(images[index], face) for face in image_faces], found)
        return faces

    def _with_alignment_points(self, image: np.ndarray, face: Face) -> Face:
        """The face with its alignment points, found on the full-resolution image."""
        if self._dlib_refiner is not None:
            pixels = image.cpu().numpy() if isinstance(image, torch.Tensor) else image
            points = self._dlib_refiner.points(pixels, face.box, face.landmarks)
        elif self.settings.landmarks == MTCNN_CALIBRATED:
            points = calibrated_points(face.landmarks)
        else:
            points = face.landmarks
        return replace(face, alignment_points=np.asarray(points, dtype=np.float32))

    def _detect_same_shape(self, images: list[np.ndarray], height: int, width: int) -> list[tuple[list[Face], int]]:
        detection_width, detection_height = self._detection_size(width, height)
        scale_x, scale_y = width / detection_width, height / detection_height
        # Smallest face at detection resolution: min_face_size shrunk with the image, within the floor.
        floor = min(MIN_DETECTION_FACE, self.settings.min_face_size)
        min_face = max(self.settings.min_face_size / max(scale_x, scale_y), floor)
        if min(detection_width, detection_height) < min_face:
            return [([], 0) for _ in images]  # no face of the minimum size fits (and MTCNN would fail)
        if isinstance(images[0], torch.Tensor):  # decoded on the GPU (detection.py): stays there
            batch = torch.stack(images)
            if (detection_width, detection_height) != (width, height):
                batch = torch.nn.functional.interpolate(
                    batch.permute(0, 3, 1, 2).float(), size=(detection_height, detection_width), mode="area"
                ).permute(0, 2, 3, 1)
        else:
            if (detection_width, detection_height) != (width, height):
                images = [cv2.resize(i, (detection_width, detection_height), interpolation=cv2.INTER_AREA)
                          for i in images]
            batch = np.stack(images)
        self._mtcnn.min_face_size = min_face
        boxes, probabilities, points = self._mtcnn.detect(batch, landmarks=True)
        return [
            self._select(image_boxes, image_probabilities, image_points, (scale_x, scale_y), (width, height))
            for image_boxes, image_probabilities, image_points in zip(boxes, probabilities, points)
        ]

    def _detection_size(self, width: int, height: int) -> tuple[int, int]:
        limit = self.settings.max_detection_side
        if limit is None or max(width, height) <= limit:
            return width, height
        factor = limit / max(width, height)
        return max(1, round(width * factor)), max(1, round(height * factor))

    def _select(
        self,
        boxes: np.ndarray | None,
        probabilities: np.ndarray,
        points: np.ndarray | None,
        scale: tuple[float, float],
        size: tuple[int, int],
    ) -> tuple[list[Face], int]:
        if boxes is None:  # facenet's marker for "no face in this image"
            return [], 0
        boxes = _to_original_pixels(np.asarray(boxes, np.float64).reshape(-1, 2, 2), scale).reshape(-1, 4)
        points = _to_original_pixels(np.asarray(points, np.float64).reshape(-1, 5, 2), scale)
        probabilities = np.asarray(probabilities, np.float64)
        np.clip(boxes[:, 0::2], 0, size[0], out=boxes[:, 0::2])
        np.clip(boxes[:, 1::2], 0, size[1], out=boxes[:, 1::2])
        order = np.argsort(-probabilities, kind="stable")
        kept = [i for i in order if probabilities[i] >= self.settings.confidence_threshold]
        faces = [
            Face(
                box=boxes[i].astype(np.float32),
                score=float(probabilities[i]),
                landmarks=points[i].astype(np.float32),
            )
            for i in kept[: self.settings.max_faces]
        ]
        return faces, len(kept)


def _to_original_pixels(points: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    """Map (..., 2) x, y coordinates of a resized image back to the original image.

    cv2.resize aligns pixel centres: x_resized + 0.5 = (x_original + 0.5) / scale_x.
    """
    factors = np.array(scale, dtype=np.float64)
    if np.all(factors == 1.0):
        return points
    return (points + 0.5) * factors - 0.5
