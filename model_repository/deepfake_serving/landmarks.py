"""Which five points a face crop is aligned on (DetectorSettings.landmarks).

DeepfakeBench aligned its training crops on dlib's iBUG points 37 and 44 (upper
eyelids), 30 (nose tip), 49 (upper lip, left) and 55 (lower lip, right); see
dlib_landmarks.py. MTCNN gives eye centres and mouth corners instead, so its
crops show the face about 5% larger, 2-3 degrees rotated and a few pixels lower
than the training crops did (docs/alignment.md has the measurements).

- "mtcnn": MTCNN's points as they are (the behaviour before this setting).
- "mtcnn_calibrated" (default): MTCNN's points moved to where DeepfakeBench's
  points lie on average, with a fixed template measured on 94 faces. Free and
  without dependencies; it removes the systematic offset, not the per-face one.
- "dlib68": dlib's 68-point predictor run in the MTCNN box gives DeepfakeBench's
  points themselves (about 1 pixel from its crops, 1-3 ms a face on one CPU
  core), falling back to "mtcnn_calibrated" where dlib evidently fails. Needs
  dlib-bin and face_recognition_models, and the model's training data
  (iBUG 300-W) excludes commercial use.
"""

from __future__ import annotations

import numpy as np

from .alignment import crop_displacement, deepfakebench_template, estimate_similarity
from .dlib_landmarks import Dlib68, deepfakebench_points

MTCNN = "mtcnn"
MTCNN_CALIBRATED = "mtcnn_calibrated"
DLIB68 = "dlib68"
LANDMARK_METHODS = (MTCNN, MTCNN_CALIBRATED, DLIB68)
DEFAULT_LANDMARK_METHOD = MTCNN_CALIBRATED

# Where MTCNN's five points land, on average, in DeepfakeBench's 256 x 256 crop
# (scale 1.3) of the same face: the template to align MTCNN's points on.
# Measured by benchmarks/studies/alignment_fidelity.py (dlib 68-point reference) on 94
# frontal faces: the 92 of skimage's LFW subset both detectors find, the
# astronaut and Grace Hopper (each the mean over 12 rotated, scaled, shifted
# and mirrored copies).
MTCNN_POINTS_IN_DEEPFAKEBENCH_CROP = np.array(
    [
        [98.40, 126.06],
        [158.49, 122.51],
        [127.89, 158.94],
        [106.58, 190.90],
        [157.60, 188.34],
    ],
    dtype=np.float64,
)

# dlib's HOG box from MTCNN's box (x1, y1, x2, y2), in units of the MTCNN box's
# side sqrt(width * height): centre offset (x, y) and side. Medians on the same
# faces; the predictor starts from its mean shape placed in the box, so a box
# in the detector's convention is what it was trained for.
HOG_BOX_CENTRE_OFFSET = (0.014, 0.092)
HOG_BOX_SIDE = 0.987
# dlib's predictor fails on turned faces (it puts an eye on the cameraman's
# camera) where MTCNN still finds the features. On 116 frontal images dlib's
# and the calibrated crop differ by at most 8.3 pixels (RMS at the template
# points of the 256 crop), on the cameraman by 35-42: past this limit the
# calibrated MTCNN points are used instead.
DLIB68_MAX_DISAGREEMENT_PX = 12.0


def calibrated_points(mtcnn_points: np.ndarray) -> np.ndarray:
    """Where DeepfakeBench's five points are expected in the image, given MTCNN's.

    The similarity that takes MTCNN's points onto their calibrated template,
    inverted, carries the DeepfakeBench template back into the image: aligning
    on the result is aligning MTCNN's points on the calibrated template.
    """
    to_crop = np.vstack([estimate_similarity(mtcnn_points, MTCNN_POINTS_IN_DEEPFAKEBENCH_CROP), [0.0, 0.0, 1.0]])
    to_image = np.linalg.inv(to_crop)[:2]
    return deepfakebench_template() @ to_image[:, :2].T + to_image[:, 2]


def hog_box_from_mtcnn_box(box: np.ndarray) -> np.ndarray:
    """The square box dlib's HOG detector would give for the face MTCNN boxed,
    as float (left, top, right, bottom) with right/bottom the last pixel inside."""
    x1, y1, x2, y2 = (float(v) for v in box)
    if not (x2 > x1 and y2 > y1):
        raise ValueError(f"expected a box x1 < x2, y1 < y2, got {box}")
    side = np.sqrt((x2 - x1) * (y2 - y1))
    centre_x = (x1 + x2) / 2 + HOG_BOX_CENTRE_OFFSET[0] * side
    centre_y = (y1 + y2) / 2 + HOG_BOX_CENTRE_OFFSET[1] * side
    half = HOG_BOX_SIDE * side / 2
    return np.array([centre_x - half, centre_y - half, centre_x + half - 1, centre_y + half - 1])


class DlibRefiner:
    """DeepfakeBench's five points from dlib's 68-point predictor in the MTCNN box,
    or the calibrated MTCNN points where dlib has evidently failed."""

    def __init__(self) -> None:
        self._dlib68 = Dlib68()

    def points(self, image: np.ndarray, mtcnn_box: np.ndarray, mtcnn_points: np.ndarray) -> np.ndarray:
        fallback = calibrated_points(mtcnn_points)
        x1, y1, x2, y2 = mtcnn_box
        if not (x2 - x1 >= 1 and y2 - y1 >= 1):  # clipped to nothing at the image border
            return fallback
        points = self.dlib_points(image, mtcnn_box)
        try:
            disagreement = crop_displacement(points, fallback)
        except ValueError:  # dlib collapsed all five points onto one
            return fallback
        return fallback if disagreement > DLIB68_MAX_DISAGREEMENT_PX else points

    def dlib_points(self, image: np.ndarray, mtcnn_box: np.ndarray) -> np.ndarray:
        """dlib's parts 37/44/30/49/55, whatever they are worth."""
        return deepfakebench_points(self._dlib68.landmarks(image, hog_box_from_mtcnn_box(mtcnn_box)))
