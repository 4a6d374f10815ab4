"""dlib's 68-point iBUG landmarks, and DeepfakeBench's five alignment points taken from them.

DeepfakeBench made its training crops (docs/design.md §4) with dlib's
HOG detector on the RGB frame (upsample 1, largest box), an 81-point shape
predictor whose first 68 points follow the iBUG 300-W scheme, and five of those
points: 37, 44, 30, 49, 55 (0-based, as dlib numbers them). In that scheme:

    36-41  image-left eye, clockwise from its outer corner: 37 is on the upper
           lid, between the outer corner and the middle of the lid;
    42-47  image-right eye, clockwise from its inner corner: 44 is on the upper
           lid, between the middle and the outer corner (37's mirror point);
    30     nose tip (lowest point of the bridge 27-30);
    48-59  outer lip contour, clockwise from the image-left corner 48:
           49 is on the upper lip next to the left corner, 54 is the right
           corner and 55 is on the LOWER lip next to it (49's mirror is 53).

So the eye points sit above the eye centres and the mouth points are not the
corners (one is above, one below): an MTCNN crop (eye centres, mouth corners)
differs from a training crop. docs/alignment.md has the measurements.

dlib and the model are optional dependencies (`dlib-bin`, and
`face_recognition_models` which ships shape_predictor_68_face_landmarks.dat).
The 68-point model is trained on iBUG 300-W, whose licence excludes commercial
use (see docs/alignment.md): the service only loads it when asked to.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .alignment import DEEPFAKEBENCH_SCALE, DEEPFAKEBENCH_SIZE, align_face

# DeepfakeBench's part() indices, in the order of the alignment template:
# image-left eye, image-right eye, nose, image-left mouth, image-right mouth.
DEEPFAKEBENCH_POINTS = (37, 44, 30, 49, 55)
NUM_IBUG_POINTS = 68
# DeepfakeBench's detector call: dlib's HOG detector upsampling the frame once.
DEEPFAKEBENCH_UPSAMPLE = 1

MODEL_PACKAGE = "face_recognition_models"
MODEL_FILE = "models/shape_predictor_68_face_landmarks.dat"
INSTALL_HINT = "pip install dlib-bin==20.0.1.post1 face_recognition_models==0.3.0"


class LandmarkModelUnavailableError(RuntimeError):
    """dlib or its 68-point model is not installed."""


def predictor_path() -> Path:
    """Where face_recognition_models keeps the 68-point model.

    The package is located without importing it: its __init__ imports
    pkg_resources, which setuptools >= 81 no longer provides.
    """
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LandmarkModelUnavailableError(f"{MODEL_PACKAGE} is not installed ({INSTALL_HINT})")
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    if not path.is_file():
        raise LandmarkModelUnavailableError(f"{path} is missing; reinstall {MODEL_PACKAGE} ({INSTALL_HINT})")
    return path


def _import_dlib():
    try:
        import dlib
    except ImportError as error:
        raise LandmarkModelUnavailableError(f"dlib is not installed ({INSTALL_HINT})") from error
    return dlib


class Dlib68:
    """dlib's HOG face detector and 68-point shape predictor (loading takes ~1 s).

    Boxes are (left, top, right, bottom) in dlib's integer convention, where
    right and bottom are the last pixel inside the box. Not thread-safe.
    """

    def __init__(self, model_path: Path | None = None) -> None:
        dlib = _import_dlib()
        self._dlib = dlib
        self._predictor = dlib.shape_predictor(str(model_path or predictor_path()))
        self._hog = None  # built on first use: the refinement step never needs it

    def largest_face(self, image: np.ndarray, upsample: int = DEEPFAKEBENCH_UPSAMPLE) -> np.ndarray | None:
        """DeepfakeBench's box: the largest HOG detection in the RGB image, or None."""
        if self._hog is None:
            self._hog = self._dlib.get_frontal_face_detector()
        rectangles = self._hog(_rgb(image), upsample)
        if not rectangles:
            return None
        largest = max(rectangles, key=lambda r: r.width() * r.height())
        return np.array([largest.left(), largest.top(), largest.right(), largest.bottom()], dtype=np.int64)

    def landmarks(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        """The 68 iBUG points (x, y) that the predictor places in `box`, as dlib gives
        them: whole pixels. Float boxes are rounded to dlib's integer rectangle."""
        left, top, right, bottom = (int(round(float(v))) for v in box)
        shape = self._predictor(_rgb(image), self._dlib.rectangle(left, top, right, bottom))
        return np.array([(shape.part(i).x, shape.part(i).y) for i in range(shape.num_parts)], dtype=np.float64)


def deepfakebench_points(landmarks68: np.ndarray) -> np.ndarray:
    """The five alignment points DeepfakeBench takes from the iBUG landmarks."""
    landmarks68 = np.asarray(landmarks68, dtype=np.float64)
    if landmarks68.shape[0] < NUM_IBUG_POINTS or landmarks68.shape[1:] != (2,):
        raise ValueError(f"expected at least {NUM_IBUG_POINTS} (x, y) landmarks, got shape {landmarks68.shape}")
    return landmarks68[list(DEEPFAKEBENCH_POINTS)]


@dataclass(frozen=True, eq=False)
class ReferenceFace:
    """DeepfakeBench's crop of the largest face, made with the 68-point model."""

    box: np.ndarray  # int64 (4,): the HOG box, dlib's convention
    landmarks68: np.ndarray  # float64 (68, 2)
    points: np.ndarray  # float64 (5, 2): parts 37, 44, 30, 49, 55
    crop: np.ndarray  # uint8 (size, size, 3) RGB


def deepfakebench_reference(
    image: np.ndarray, dlib68: Dlib68, size: int = DEEPFAKEBENCH_SIZE, scale: float = DEEPFAKEBENCH_SCALE
) -> ReferenceFace | None:
    """DeepfakeBench's preprocessing of one RGB frame (None if HOG finds no face):
    largest HOG face, its 68 points, the five points, the template crop."""
    box = dlib68.largest_face(image)
    if box is None:
        return None
    landmarks68 = dlib68.landmarks(image, box)
    points = deepfakebench_points(landmarks68)
    return ReferenceFace(box, landmarks68, points, align_face(image, points, size, scale))


def _rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.dtype} {image.shape}")
    return np.ascontiguousarray(image)
