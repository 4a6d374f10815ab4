"""The whole `face_detector` step: encoded images in, aligned face crops and face data out.

Pure Python (no Triton import): the python-backend adapter turns each
FaceDetection into output tensors and each InvalidImageError into an
INVALID_ARG error for that request only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .alignment import DEEPFAKEBENCH_SCALE, DEEPFAKEBENCH_SIZE, align_face, resize_crop
from .faces import Face, FaceDetector
from .images import BytesLike, ImageLimits, InvalidImageError, decode_image

# The crop sides of the published classifiers (each spec's input_size); the assembly sets `crop_sizes`.
DEFAULT_CROP_SIZES = (256, 224)


@dataclass(frozen=True, eq=False)
class FaceDetection:
    """The face_detector outputs for one image (N faces, most confident first).

    crops[size] is (max(N, 1), size, size, 3) uint8 RGB: with no face it holds
    one black placeholder row, because the classifiers need a batch >= 1 and
    the combiner ignores it (num_faces is 0). `present` marks it (False), so
    that the python classifiers skip it.
    """

    crops: Mapping[int, np.ndarray]
    num_faces: np.ndarray  # int32 (1,)
    boxes: np.ndarray  # float32 (N, 4): x1, y1, x2, y2 in original pixels
    scores: np.ndarray  # float32 (N,): MTCNN probability
    # float32 (N, 5, 2): the points each crop is aligned on (x, y), in the template's
    # order (eyes, nose, mouth); which points per DetectorSettings.landmarks.
    landmarks: np.ndarray
    num_found: np.ndarray  # int32 (1,): faces found before the max_faces cut (>= num_faces)
    present: np.ndarray  # bool (max(N, 1), 1): True for a face row, False for the placeholder


def detect_faces(
    encoded_images: Sequence[BytesLike],
    detector: FaceDetector,
    limits: ImageLimits = ImageLimits(),
    crop_sizes: Sequence[int] = DEFAULT_CROP_SIZES,
    on_device: str | None = None,
) -> list[FaceDetection | InvalidImageError]:
    """Decode, detect and align every image; a bad image yields its InvalidImageError
    in its place and does not affect the others.

    With the detector on a GPU, decoding (nvJPEG for JPEG) and alignment run there
    with torch (alignment_torch.py); `on_device` forces that path on any device
    ("cpu" included, which is how it is tested without a GPU)."""
    _check_crop_sizes(crop_sizes)
    device = detector.settings.device if on_device is None else on_device
    decode, align = (decode_image, face_detection) if device == "cpu" else _torch_steps(device)
    decoded: list[object] = []
    for data in encoded_images:
        try:
            decoded.append(decode(data, limits))
        except InvalidImageError as error:
            # A fresh error with the message only: the raised one holds its traceback (and its
            # cause's), whose frames hold `data`; kept in this list, that reference cycle would
            # keep every rejected upload alive until the cyclic GC happens to run.
            decoded.append(InvalidImageError(str(error)))
    images = [item for item in decoded if not isinstance(item, InvalidImageError)]
    faces_per_image = iter(detector.detect_counted(images))
    return [
        item if isinstance(item, InvalidImageError) else align(item, *next(faces_per_image), crop_sizes)
        for item in decoded
    ]


def _torch_steps(device: str):
    """Decode (nvJPEG on a GPU) and align (grid_sample) with torch on `device`."""
    from . import alignment_torch

    def decode(data: BytesLike, limits: ImageLimits):
        return alignment_torch.decode_on_device(data, limits, device)

    def align(image, faces: Sequence[Face], found: int | None, crop_sizes: Sequence[int]) -> FaceDetection:
        aligned = alignment_torch.align_faces(image, [face.crop_points for face in faces])
        if not faces:
            aligned = alignment_torch.placeholder(image.device)
        crops = {size: alignment_torch.resize_crops(aligned, size).cpu().numpy() for size in crop_sizes}
        return _pack(crops, faces, found)

    return decode, align


def face_detection(
    image: np.ndarray, faces: Sequence[Face], found: int | None = None, crop_sizes: Sequence[int] = DEFAULT_CROP_SIZES
) -> FaceDetection:
    """Align the faces found in `image` and pack them as the face_detector outputs.
    `found`: faces found before the max_faces cut (None: len(faces)).

    Every crop size is made as DeepfakeBench made its inputs: the 256 aligned
    crop, resized with INTER_CUBIC to the model's size when that differs.
    """
    aligned = [align_face(image, face.crop_points, DEEPFAKEBENCH_SIZE, DEEPFAKEBENCH_SCALE) for face in faces]
    if not aligned:
        aligned = [np.zeros((DEEPFAKEBENCH_SIZE, DEEPFAKEBENCH_SIZE, 3), np.uint8)]
    crops = {size: np.stack([resize_crop(crop, size) for crop in aligned]) for size in crop_sizes}
    return _pack(crops, faces, found)


def _pack(crops: Mapping[int, np.ndarray], faces: Sequence[Face], found: int | None) -> FaceDetection:
    return FaceDetection(
        crops=crops,
        num_faces=np.array([len(faces)], dtype=np.int32),
        boxes=np.array([face.box for face in faces], dtype=np.float32).reshape(-1, 4),
        scores=np.array([face.score for face in faces], dtype=np.float32),
        landmarks=np.array([face.crop_points for face in faces], dtype=np.float32).reshape(-1, 5, 2),
        num_found=np.array([len(faces) if found is None else found], dtype=np.int32),
        present=np.full((max(len(faces), 1), 1), bool(faces)),
    )


def _check_crop_sizes(crop_sizes: Sequence[int]) -> None:
    if not crop_sizes or any(isinstance(s, bool) or not isinstance(s, int) or s <= 0 for s in crop_sizes):
        raise ValueError(f"crop_sizes must be a non-empty sequence of positive integers, got {crop_sizes!r}")
