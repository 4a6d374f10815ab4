"""Our crops against DeepfakeBench's (docs/alignment.md): the dlib reference protocol,
its iBUG point semantics, and the landmark methods of DetectorSettings.landmarks.

Needs dlib-bin and face_recognition_models (requirements/dev.txt): without them
these tests fail, they are not skipped.
"""

from __future__ import annotations

import sys

import dlib
import numpy as np
import pytest
import torch

from benchmarks.studies.alignment_fidelity import cameraman, grace_hopper, lfw_faces, overlap, variations
from deepfake_contract.parameters import from_parameters
from deepfake_dev import samples
from deepfake_serving import dlib_landmarks
from deepfake_serving.alignment import align_face, crop_displacement, deepfakebench_template, estimate_similarity
from deepfake_serving.detection import detect_faces
from deepfake_serving.dlib_landmarks import (
    DEEPFAKEBENCH_POINTS,
    Dlib68,
    LandmarkModelUnavailableError,
    deepfakebench_points,
    deepfakebench_reference,
)
from deepfake_serving.faces import DetectorSettings, FaceDetector
from deepfake_serving.landmarks import (
    LANDMARK_METHODS,
    MTCNN_POINTS_IN_DEEPFAKEBENCH_CROP,
    DlibRefiner,
    calibrated_points,
    hog_box_from_mtcnn_box,
)
from export.triton_config import face_detector_parameters

# Stated tolerances (docs/alignment.md): RMS displacement of the template points
# between our crop and the reference crop, in pixels of the 256 crop, on the
# astronaut and Grace Hopper and 12 variations of each (measured max / mean:
# calibrated 6.0 / 2.9, dlib68 1.7 / 0.8, uncorrected MTCNN 5.0 / 3.2).
CALIBRATED_MAX_PX, CALIBRATED_MEAN_PX = 6.5, 3.5
DLIB68_MAX_PX, DLIB68_MEAN_PX = 2.5, 1.2
LFW_TEST_FACES = 30


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """MTCNN on ~80 images: one thread is several times faster on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def dlib68() -> Dlib68:
    return Dlib68()


@pytest.fixture(scope="module")
def refiner() -> DlibRefiner:
    return DlibRefiner()


@pytest.fixture(scope="module")
def mtcnn_detector() -> FaceDetector:
    return FaceDetector(DetectorSettings(landmarks="mtcnn"))


@pytest.fixture(scope="module")
def astronaut_reference(dlib68):
    return deepfakebench_reference(samples.face_image(), dlib68)


def measured(images, dlib68, detector):
    """(image, reference, MTCNN face) for every image where both detectors find the face."""
    found = []
    for image in images:
        reference = deepfakebench_reference(image, dlib68)
        if reference is None:
            continue
        (faces,) = detector.detect([image])
        faces = [face for face in faces if overlap(face.box, reference.box) > 0.3]
        if faces:
            found.append((image, reference, faces[0]))
    return found


@pytest.fixture(scope="module")
def hd_set(dlib68, mtcnn_detector):
    images = [image for photo in (samples.face_image(), grace_hopper()) for image in variations(photo).values()]
    found = measured(images, dlib68, mtcnn_detector)
    assert len(found) == 24  # both detectors find every variation of both faces
    return found


@pytest.fixture(scope="module")
def lfw_set(dlib68, mtcnn_detector):
    found = measured(lfw_faces()[:LFW_TEST_FACES], dlib68, mtcnn_detector)
    assert len(found) >= 25
    return found


# ---- the reference protocol ---------------------------------------------------------------


def test_deepfakebench_points_are_37_44_30_49_55():
    assert DEEPFAKEBENCH_POINTS == (37, 44, 30, 49, 55)
    landmarks = np.arange(68 * 2, dtype=np.float64).reshape(68, 2)
    np.testing.assert_array_equal(deepfakebench_points(landmarks), landmarks[[37, 44, 30, 49, 55]])
    with pytest.raises(ValueError, match="68"):
        deepfakebench_points(landmarks[:60])


@pytest.mark.parametrize("photo", ["astronaut", "hopper"])
def test_the_five_points_mean_what_deepfakebench_took_them_for(dlib68, photo):
    """iBUG 68, 0-based: 37 upper lid of the image-left eye, 44 upper lid of the image-right
    eye, 30 nose tip, 49 upper lip by the left corner, 55 lower lip by the right corner."""
    image = samples.face_image() if photo == "astronaut" else grace_hopper()
    reference = deepfakebench_reference(image, dlib68)
    p = reference.landmarks68
    np.testing.assert_array_equal(reference.points, p[[37, 44, 30, 49, 55]])
    left_eye_centre, right_eye_centre = p[36:42].mean(axis=0), p[42:48].mean(axis=0)
    # 37: upper lid, above the eye centre, between the outer corner 36 and the inner corner 39.
    assert p[37, 1] < left_eye_centre[1] and p[37, 1] < p[41, 1]
    assert p[36, 0] < p[37, 0] < p[38, 0] < p[39, 0]
    # 44: its mirror point on the image-right eye (inner corner 42, outer corner 45).
    assert p[44, 1] < right_eye_centre[1] and p[44, 1] < p[46, 1]
    assert p[42, 0] < p[43, 0] < p[44, 0] < p[45, 0]
    assert p[37, 0] < left_eye_centre[0] and p[44, 0] > right_eye_centre[0]  # both towards the outer corners
    # 30: the nose tip, the lowest point of the bridge 27-30, above the base of the nose 33.
    assert np.all(p[30, 1] > p[27:30, 1]) and p[30, 1] < p[33, 1]
    # 49 upper lip next to the left corner 48; 55 lower lip next to the right corner 54.
    assert p[48, 0] < p[49, 0] < p[51, 0] and p[49, 1] < p[59, 1]
    assert p[57, 0] < p[55, 0] < p[54, 0] and p[55, 1] > p[53, 1]
    # So the mouth pair is not symmetric: 49 sits higher than 55.
    assert p[49, 1] < p[55, 1]


def test_reference_crop_is_the_template_crop_of_whole_pixel_dlib_points(astronaut_reference):
    assert astronaut_reference.points.shape == (5, 2)
    np.testing.assert_array_equal(astronaut_reference.points, np.round(astronaut_reference.points))  # dlib's ints
    np.testing.assert_array_equal(astronaut_reference.crop, align_face(samples.face_image(), astronaut_reference.points))
    assert astronaut_reference.crop.shape == (256, 256, 3)


def test_reference_takes_the_largest_hog_face(dlib68):
    astronaut = samples.face_image()
    small = astronaut[::2, ::2]  # the same face at half size, to the left
    canvas = np.zeros((512, 768, 3), np.uint8)
    canvas[:256, :256] = small
    canvas[:, 256:] = astronaut
    assert len(dlib.get_frontal_face_detector()(canvas, 1)) == 2
    reference = deepfakebench_reference(canvas, dlib68)
    assert reference.box[0] > 256  # the full-size astronaut
    alone = deepfakebench_reference(astronaut, dlib68)
    np.testing.assert_allclose(reference.points - [256, 0], alone.points, atol=1.0)


def test_reference_finds_no_face_in_the_no_face_photo(dlib68):
    assert deepfakebench_reference(samples.no_face_image(), dlib68) is None


def test_hog_box_convention_is_what_dlib_gives(astronaut_reference, mtcnn_detector):
    """The MTCNN box converted for the predictor lands on dlib's own HOG box."""
    (faces,) = mtcnn_detector.detect([samples.face_image()])
    converted = hog_box_from_mtcnn_box(faces[0].box)
    assert overlap(converted, astronaut_reference.box.astype(np.float64)) > 0.8
    assert overlap(faces[0].box, astronaut_reference.box.astype(np.float64)) < overlap(
        converted, astronaut_reference.box.astype(np.float64))


# ---- the landmark methods against the reference -------------------------------------------


def test_uncorrected_mtcnn_crop_is_materially_off(hd_set, lfw_set):
    """Why the setting exists: > 2 px at 256 on average, the face zoomed in ~5%, rotated ~2.5 degrees."""
    for found in (hd_set, lfw_set):
        errors = [crop_displacement(face.landmarks, reference.points) for _, reference, face in found]
        assert np.mean(errors) > 2.5
    scales = []
    for _, reference, face in lfw_set:
        crop = estimate_similarity(face.landmarks, deepfakebench_template())
        training = estimate_similarity(reference.points, deepfakebench_template())
        scales.append(np.linalg.norm(training[:, 0]) / np.linalg.norm(crop[:, 0]))
    assert np.mean(scales) < 0.97


def test_calibrated_crop_is_within_tolerance_of_the_reference(hd_set):
    errors = [crop_displacement(calibrated_points(face.landmarks), reference.points) for _, reference, face in hd_set]
    assert max(errors) <= CALIBRATED_MAX_PX
    assert np.mean(errors) <= CALIBRATED_MEAN_PX


def test_calibration_removes_most_of_the_offset_on_many_faces(lfw_set):
    raw = [crop_displacement(face.landmarks, reference.points) for _, reference, face in lfw_set]
    calibrated = [crop_displacement(calibrated_points(face.landmarks), reference.points) for _, reference, face in lfw_set]
    assert np.mean(calibrated) < 0.8 * np.mean(raw)
    assert np.mean(np.less(calibrated, raw)) > 0.7  # better on most faces, not on every one


def test_dlib68_crop_is_within_tolerance_of_the_reference(hd_set, refiner):
    errors = [
        crop_displacement(refiner.points(image, face.box, face.landmarks), reference.points)
        for image, reference, face in hd_set
    ]
    assert max(errors) <= DLIB68_MAX_PX
    assert np.mean(errors) <= DLIB68_MEAN_PX


def test_dlib68_on_many_faces(lfw_set, refiner):
    errors = [
        crop_displacement(refiner.points(image, face.box, face.landmarks), reference.points)
        for image, reference, face in lfw_set
    ]
    assert np.median(errors) <= 1.0 and np.mean(errors) <= 1.5


def test_dlib68_falls_back_to_calibrated_points_where_dlib_fails(refiner, mtcnn_detector):
    """dlib puts the cameraman's eye on his camera; MTCNN's calibrated points are kept."""
    image = cameraman()
    (faces,) = mtcnn_detector.detect([image])
    face = faces[0]
    assert crop_displacement(refiner.dlib_points(image, face.box), calibrated_points(face.landmarks)) > 20
    np.testing.assert_allclose(refiner.points(image, face.box, face.landmarks), calibrated_points(face.landmarks))


def test_dlib68_falls_back_on_a_box_clipped_to_nothing(refiner, astronaut_face):
    box = np.array([0.0, 40.0, 0.0, 90.0], np.float32)  # a face cut off at the left border
    np.testing.assert_allclose(refiner.points(samples.face_image(), box, astronaut_face.landmarks),
                               calibrated_points(astronaut_face.landmarks))


# ---- the calibration's maths --------------------------------------------------------------


def test_calibrated_points_align_mtcnn_points_on_the_calibrated_template(astronaut_face):
    """Aligning on the calibrated points == aligning MTCNN's points on the calibrated template."""
    points = calibrated_points(astronaut_face.landmarks)
    direct = estimate_similarity(astronaut_face.landmarks, MTCNN_POINTS_IN_DEEPFAKEBENCH_CROP)
    np.testing.assert_allclose(estimate_similarity(points, deepfakebench_template()), direct, atol=1e-9)


def test_calibration_commutes_with_moving_the_image(astronaut_face):
    angle, scale, shift = np.deg2rad(17), 1.6, np.array([40.0, -25.0])
    move = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = astronaut_face.landmarks.astype(np.float64) @ move.T + shift
    np.testing.assert_allclose(calibrated_points(moved), calibrated_points(astronaut_face.landmarks) @ move.T + shift,
                               atol=1e-6)


def test_crop_displacement_measures_what_it_says():
    template = deepfakebench_template()
    assert crop_displacement(template, template) == pytest.approx(0.0, abs=1e-9)
    # Points 3 px to the right in the image: the second crop shows everything 3 px to the left.
    assert crop_displacement(template + [3.0, 0.0], template) == pytest.approx(3.0)


# ---- the setting ----------------------------------------------------------------------------


def test_default_is_calibrated_and_methods_are_checked():
    assert DetectorSettings().landmarks == "mtcnn_calibrated"
    assert LANDMARK_METHODS == ("mtcnn", "mtcnn_calibrated", "dlib68")
    with pytest.raises(ValueError, match="landmarks must be one of"):
        DetectorSettings(landmarks="dlib81")


def test_setting_flows_into_the_triton_parameters():
    parameters = face_detector_parameters()
    assert parameters["landmarks"] == '"mtcnn_calibrated"'
    assert from_parameters(DetectorSettings, {"landmarks": '"dlib68"'}).landmarks == "dlib68"
    with pytest.raises(ValueError, match="landmarks"):
        face_detector_parameters({"landmarks": '"retinaface"'})


def test_old_behaviour_is_still_available(astronaut):
    (old,) = detect_faces([samples.encode_image(astronaut, "PNG")], FaceDetector(DetectorSettings(landmarks="mtcnn")))
    (new,) = detect_faces([samples.encode_image(astronaut, "PNG")], FaceDetector())
    (faces,) = FaceDetector(DetectorSettings(landmarks="mtcnn")).detect([astronaut])
    np.testing.assert_array_equal(faces[0].crop_points, faces[0].landmarks)
    np.testing.assert_array_equal(old.landmarks[0], faces[0].landmarks)
    np.testing.assert_array_equal(old.crops[256][0], align_face(astronaut, faces[0].landmarks))
    assert np.abs(old.crops[256][0].astype(int) - new.crops[256][0]).mean() > 5  # the default crop differs


@pytest.mark.parametrize("method", ["mtcnn_calibrated", "dlib68"])
def test_detector_aligns_on_the_methods_points(astronaut, astronaut_reference, method):
    detector = FaceDetector(DetectorSettings(landmarks=method))
    (faces,) = detector.detect([astronaut])
    face = faces[0]
    assert face.alignment_points.dtype == np.float32 and face.alignment_points.shape == (5, 2)
    (result,) = detect_faces([samples.encode_image(astronaut, "PNG")], detector)
    np.testing.assert_allclose(result.landmarks[0], face.alignment_points, atol=1e-4)
    np.testing.assert_array_equal(result.crops[256][0], align_face(astronaut, result.landmarks[0]))
    limit = CALIBRATED_MAX_PX if method == "mtcnn_calibrated" else DLIB68_MAX_PX
    ours = crop_displacement(face.alignment_points, astronaut_reference.points)
    assert ours <= limit and ours < crop_displacement(face.landmarks, astronaut_reference.points)


def test_missing_dlib_model_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(dlib_landmarks, "MODEL_PACKAGE", "no_such_face_models_package")
    with pytest.raises(LandmarkModelUnavailableError, match="pip install dlib-bin"):
        FaceDetector(DetectorSettings(landmarks="dlib68"))
    FaceDetector(DetectorSettings(landmarks="mtcnn_calibrated"))  # the default needs no dlib


def test_missing_dlib_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)  # makes `import dlib` fail
    with pytest.raises(LandmarkModelUnavailableError, match="dlib is not installed"):
        Dlib68()
