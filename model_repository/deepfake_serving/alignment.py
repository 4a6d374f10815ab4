"""DeepfakeBench face alignment: five landmarks -> similarity transform -> square crop.

The classifiers were trained on crops made this way (docs/design.md §4):
the landmarks are mapped onto the ArcFace 112x112 five-point template, shifted
and scaled for the crop size, with a 1.3 margin, by the least-squares similarity
transform, and warped with cv2.warpAffine's defaults (bilinear, black border).
"""

from __future__ import annotations

import cv2
import numpy as np

# Five points of the ArcFace 112x112 template: image-left eye, image-right eye,
# nose tip, image-left and image-right mouth corners (x, y).
ARCFACE_TEMPLATE_112 = np.array(
    [
        [30.2946, 51.6963],
        [65.5318, 51.5014],
        [48.0252, 71.7366],
        [33.5493, 92.3655],
        [62.7299, 92.2041],
    ],
    dtype=np.float64,
)
ARCFACE_SIZE = 112
# The ArcFace points were defined on a 96-wide crop; +8 centres them in 112.
ARCFACE_X_SHIFT = 8.0
DEEPFAKEBENCH_SIZE = 256
DEEPFAKEBENCH_SCALE = 1.3


def deepfakebench_template(size: int = DEEPFAKEBENCH_SIZE, scale: float = DEEPFAKEBENCH_SCALE) -> np.ndarray:
    """The five target points, in pixels of a size x size crop, for a face margin `scale`.

    With scale 1.3 the template is shrunk towards the top-left by 256/(256+2*38.4)
    after shifting it by the margin, so the face fills about 1/1.3 of the crop.
    """
    if size <= 0:
        raise ValueError(f"crop size must be positive, got {size}")
    if not scale >= 1.0:
        raise ValueError(f"scale must be >= 1, got {scale}")
    template = ARCFACE_TEMPLATE_112.copy()
    template[:, 0] += ARCFACE_X_SHIFT
    template *= size / ARCFACE_SIZE
    margin = (scale - 1.0) * size / 2.0
    return (template + margin) * (size / (size + 2.0 * margin))


def estimate_similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2x3 matrix of the rotation + uniform scale + translation that maps `source`
    onto `target` with the least squared error (Umeyama 1991, no reflection)."""
    source = _as_points(source, "source")
    target = _as_points(target, "target")
    if len(source) != len(target):
        raise ValueError(f"source has {len(source)} points but target has {len(target)}")
    source_mean = source.mean(axis=0)
    target_mean = target.mean(axis=0)
    source_centred = source - source_mean
    target_centred = target - target_mean
    source_variance = (source_centred**2).sum() / len(source)
    if source_variance <= 1e-12:
        raise ValueError("the source points all coincide; no similarity transform is defined")

    covariance = target_centred.T @ source_centred / len(source)
    u, singular_values, vt = np.linalg.svd(covariance)
    # Flip the weakest axis if the best orthogonal map would be a reflection.
    signs = np.array([1.0, 1.0 if np.linalg.det(u) * np.linalg.det(vt) > 0 else -1.0])
    rotation = u @ np.diag(signs) @ vt
    scale = (singular_values * signs).sum() / source_variance
    translation = target_mean - scale * rotation @ source_mean
    return np.hstack([scale * rotation, translation[:, None]])


def align_face(
    image: np.ndarray,
    landmarks: np.ndarray,
    size: int = DEEPFAKEBENCH_SIZE,
    scale: float = DEEPFAKEBENCH_SCALE,
) -> np.ndarray:
    """The size x size uint8 crop of the face whose five landmarks (x, y) are given,
    in the same order as the template, in pixels of `image` (H, W, 3 uint8)."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.dtype} {image.shape}")
    matrix = estimate_similarity(landmarks, deepfakebench_template(size, scale))
    return cv2.warpAffine(image, matrix, (size, size))


def relative_similarity(
    points: np.ndarray,
    reference_points: np.ndarray,
    size: int = DEEPFAKEBENCH_SIZE,
    scale: float = DEEPFAKEBENCH_SCALE,
) -> np.ndarray:
    """The 2x3 similarity that takes pixels of the crop aligned on `points` to the
    pixels showing the same image point in the crop aligned on `reference_points`."""
    template = deepfakebench_template(size, scale)
    crop = np.vstack([estimate_similarity(points, template), [0.0, 0.0, 1.0]])
    reference_crop = np.vstack([estimate_similarity(reference_points, template), [0.0, 0.0, 1.0]])
    return (reference_crop @ np.linalg.inv(crop))[:2]


def crop_displacement(
    points: np.ndarray,
    reference_points: np.ndarray,
    size: int = DEEPFAKEBENCH_SIZE,
    scale: float = DEEPFAKEBENCH_SCALE,
) -> float:
    """How far apart two alignments of one face are: the RMS distance, in crop pixels,
    by which what one crop shows at the five template points is moved in the other."""
    template = deepfakebench_template(size, scale)
    relative = relative_similarity(points, reference_points, size, scale)
    moved = template @ relative[:, :2].T + relative[:, 2]
    return float(np.sqrt(((moved - template) ** 2).sum(axis=1).mean()))


def resize_crop(crop: np.ndarray, size: int) -> np.ndarray:
    """Resize a square crop as DeepfakeBench's test loader does (cv2 INTER_CUBIC)."""
    if crop.shape[0] == size and crop.shape[1] == size:
        return crop
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_CUBIC)


def _as_points(points: np.ndarray, name: str) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) < 2:
        raise ValueError(f"{name} must be an (N >= 2, 2) array of x, y points, got shape {points.shape}")
    if not np.isfinite(points).all():
        raise ValueError(f"{name} contains NaN or infinite coordinates")
    return points
