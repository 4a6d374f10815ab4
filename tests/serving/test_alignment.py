import cv2
import numpy as np
import pytest
from skimage.transform import SimilarityTransform

from deepfake_serving.alignment import (
    align_face,
    deepfakebench_template,
    estimate_similarity,
    resize_crop,
)

# ArcFace's five points on its 112 x 112 crop, as published (insightface), typed in again.
ARCFACE = [(30.2946, 51.6963), (65.5318, 51.5014), (48.0252, 71.7366), (33.5493, 92.3655), (62.7299, 92.2041)]


def expected_template(size: float, scale: float) -> np.ndarray:
    """docs/design.md §4 step by step, one point at a time."""
    margin = size * (scale - 1) / 2
    points = []
    for x, y in ARCFACE:
        x, y = (x + 8) * size / 112, y * size / 112
        x, y = x + margin, y + margin
        points.append((x * size / (size + 2 * margin), y * size / (size + 2 * margin)))
    return np.array(points)


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


@pytest.mark.parametrize("size, scale", [(256, 1.3), (224, 1.3), (112, 1.0), (256, 1.0), (300, 1.5)])
def test_template_follows_the_deepfakebench_formula(size, scale):
    np.testing.assert_allclose(deepfakebench_template(size, scale), expected_template(size, scale), atol=1e-9)


def test_template_256_at_scale_1_3_in_numbers():
    template = deepfakebench_template()  # defaults: 256, 1.3
    # Left eye: ((30.2946 + 8) * 256 / 112 + 38.4) * 256 / 332.8, (51.6963 * 256 / 112 + 38.4) * 256 / 332.8
    assert template[0] == pytest.approx([96.8696, 120.4331], abs=1e-4)
    # The face fills about 1/1.3 of the crop: eye distance shrinks by 1.3 from the scale-1 template.
    eye_distance = np.linalg.norm(template[1] - template[0])
    unscaled = deepfakebench_template(256, 1.0)
    assert eye_distance == pytest.approx(np.linalg.norm(unscaled[1] - unscaled[0]) / 1.3)
    # At scale 1 and size 112 it is the ArcFace template shifted 8 pixels right.
    np.testing.assert_allclose(deepfakebench_template(112, 1.0), np.array(ARCFACE) + [8, 0])


def known_similarity(angle_degrees: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    angle = np.deg2rad(angle_degrees)
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return np.hstack([rotation, np.array(shift)[:, None]])


@pytest.mark.parametrize("angle, scale, shift", [(0, 1, (0, 0)), (25, 1.7, (-40, 12.5)), (-170, 0.2, (300, -7))])
def test_similarity_is_recovered_exactly_from_exact_points(angle, scale, shift):
    source = np.random.default_rng(0).uniform(0, 500, size=(5, 2))
    matrix = known_similarity(angle, scale, shift)
    np.testing.assert_allclose(estimate_similarity(source, apply(matrix, source)), matrix, atol=1e-9)


@pytest.mark.parametrize("seed", range(8))
def test_similarity_matches_scikit_image_on_noisy_points(seed):
    rng = np.random.default_rng(seed)
    source = rng.uniform(0, 1000, size=(5, 2))
    target = deepfakebench_template() + rng.normal(0, 5, size=(5, 2))
    if seed % 2:  # mirrored landmarks: both must still answer with a rotation, not a reflection
        source[:, 0] = -source[:, 0]
    reference = SimilarityTransform.from_estimate(source, target).params[:2]
    ours = estimate_similarity(source, target)
    np.testing.assert_allclose(ours, reference, rtol=1e-9, atol=1e-9)
    assert np.linalg.det(ours[:, :2]) > 0


def test_similarity_rejects_degenerate_points():
    with pytest.raises(ValueError, match="coincide"):
        estimate_similarity(np.ones((5, 2)), deepfakebench_template())
    with pytest.raises(ValueError, match="NaN"):
        estimate_similarity(np.full((5, 2), np.nan), deepfakebench_template())
    with pytest.raises(ValueError, match="5 points but target has 4"):
        estimate_similarity(np.eye(5, 2), np.eye(4, 2))


def dot_image(points: np.ndarray, shape=(600, 800)) -> np.ndarray:
    """Black image with a small white disc centred on each point (sub-pixel exact)."""
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    image = np.zeros(shape, np.float64)
    for x, y in points:
        image += np.clip(3.0 - np.hypot(cols - x, rows - y), 0, 1)
    return np.repeat((image * 255).round().astype(np.uint8)[:, :, None], 3, axis=2)


def centroids(crop: np.ndarray, near: np.ndarray) -> np.ndarray:
    rows, cols = np.mgrid[: crop.shape[0], : crop.shape[1]]
    weights = crop[:, :, 0].astype(np.float64)
    found = []
    for x, y in near:
        mask = weights * (np.hypot(cols - x, rows - y) < 8)
        found.append(((cols * mask).sum() / mask.sum(), (rows * mask).sum() / mask.sum()))
    return np.array(found)


def test_crop_puts_the_landmarks_on_the_template():
    # A face turned by 30 degrees, twice the template's size, somewhere in a large image.
    landmarks = apply(known_similarity(30, 2.0, (150, -60)), deepfakebench_template())
    crop = align_face(dot_image(landmarks), landmarks)
    assert crop.shape == (256, 256, 3) and crop.dtype == np.uint8
    np.testing.assert_allclose(centroids(crop, deepfakebench_template()), deepfakebench_template(), atol=0.1)


def test_crop_matches_the_deepfakebench_recipe(astronaut, astronaut_face):
    """skimage's estimate + cv2.warpAffine with default flags, as in DeepfakeBench."""
    matrix = SimilarityTransform.from_estimate(astronaut_face.landmarks, deepfakebench_template()).params[:2]
    reference = cv2.warpAffine(astronaut, matrix, (256, 256))
    difference = np.abs(align_face(astronaut, astronaut_face.landmarks).astype(np.int16) - reference)
    # warpAffine rounds sample positions to 1/32 pixel: float rounding flips a few of them, by up
    # to 3 grey levels on an AMD EPYC (2 on the Xeon); a wrong recipe differs almost everywhere.
    assert difference.max() <= 4 and np.count_nonzero(difference) < 0.001 * difference.size


def test_border_outside_the_image_is_black(astronaut):
    corner_face = deepfakebench_template() - 100  # face partly off the top-left corner
    crop = align_face(astronaut, corner_face)
    assert crop[:90, :90].max() == 0 and crop[-50:, -50:].max() > 0


def test_astronaut_crop_has_its_eyes_on_the_template(detector, astronaut, astronaut_face):
    """Re-detect the face in the aligned crop: its landmarks are where the transform sent them."""
    template = deepfakebench_template()
    matrix = estimate_similarity(astronaut_face.landmarks, template)
    moved = apply(matrix, astronaut_face.landmarks)
    (faces,) = detector.detect([align_face(astronaut, astronaut_face.landmarks)])
    assert len(faces) == 1
    np.testing.assert_allclose(faces[0].landmarks, moved, atol=2.0)  # MTCNN's own jitter
    # Five points of a real face do not fit the template exactly (this smile: up to 10 px at
    # the mouth); the eyes, which anchor the crop, stay within 5 px.
    np.testing.assert_allclose(faces[0].landmarks[:2], template[:2], atol=5.0)


def test_effort_crop_is_the_256_crop_resized_with_inter_cubic(astronaut, astronaut_face):
    crop = align_face(astronaut, astronaut_face.landmarks)
    resized = resize_crop(crop, 224)
    np.testing.assert_array_equal(resized, cv2.resize(crop, (224, 224), interpolation=cv2.INTER_CUBIC))
    assert not np.array_equal(resized, cv2.resize(crop, (224, 224), interpolation=cv2.INTER_LINEAR))
    assert resize_crop(crop, 256) is crop


def test_align_face_rejects_a_non_rgb_image(astronaut, astronaut_face):
    with pytest.raises(ValueError, match="uint8"):
        align_face(astronaut.astype(np.float32), astronaut_face.landmarks)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        align_face(astronaut[:, :, 0], astronaut_face.landmarks)
