import numpy as np
import pytest
import torch

from deepfake_dev import samples
from deepfake_serving.faces import DetectorSettings, FaceDetector


def test_finds_the_astronaut_face(astronaut_face):
    np.testing.assert_allclose(astronaut_face.box, samples.ASTRONAUT_FACE_BOX, atol=3.0)
    assert astronaut_face.score > 0.99
    assert astronaut_face.box.dtype == np.float32 and astronaut_face.box.shape == (4,)
    assert astronaut_face.landmarks.dtype == np.float32 and astronaut_face.landmarks.shape == (5, 2)


def test_landmarks_are_eyes_nose_mouth_corners_image_left_first(astronaut_face):
    left_eye, right_eye, nose, left_mouth, right_mouth = astronaut_face.landmarks
    assert left_eye[0] < nose[0] < right_eye[0] and left_mouth[0] < nose[0] < right_mouth[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(left_mouth[1], right_mouth[1])
    x1, y1, x2, y2 = astronaut_face.box
    assert np.all((astronaut_face.landmarks >= [x1, y1]) & (astronaut_face.landmarks <= [x2, y2]))


def test_no_face_in_the_no_face_photo(detector):
    assert detector.detect([samples.no_face_image()]) == [[]]


def test_two_faces_most_confident_first(detector):
    (faces,) = detector.detect([samples.two_face_image()])
    assert len(faces) == 2
    assert faces[0].score > faces[1].score > 0.9
    # The astronaut (right half) is the more confident one, so the order is not left to right.
    expected_astronaut = np.add(samples.ASTRONAUT_FACE_BOX, [samples.TWO_FACES_ASTRONAUT_OFFSET_X, 0] * 2)
    np.testing.assert_allclose(faces[0].box, expected_astronaut, atol=3.0)
    assert faces[1].box[2] < samples.TWO_FACES_ASTRONAUT_OFFSET_X


def test_max_faces_keeps_the_most_confident():
    (faces,) = FaceDetector(DetectorSettings(max_faces=1)).detect([samples.two_face_image()])
    assert len(faces) == 1 and faces[0].box[0] > samples.TWO_FACES_ASTRONAUT_OFFSET_X


def test_confidence_threshold_is_honoured(detector):
    (both,) = detector.detect([samples.two_face_image()])
    between = (both[0].score + both[1].score) / 2
    (faces,) = FaceDetector(DetectorSettings(confidence_threshold=between)).detect([samples.two_face_image()])
    assert [f.score for f in faces] == [both[0].score]


def test_min_face_size_starts_the_search(astronaut):
    # MTCNN's pyramid starts at min_face_size: a ~90-pixel face is not searched for at 300.
    assert FaceDetector(DetectorSettings(min_face_size=300)).detect([astronaut]) == [[]]


def test_same_shaped_images_are_detected_in_one_batched_call(detector, astronaut, monkeypatch):
    calls = []
    original = detector._mtcnn.detect
    monkeypatch.setattr(
        detector._mtcnn, "detect", lambda batch, **kw: calls.append(batch.shape) or original(batch, **kw)
    )
    blanked = astronaut.copy()
    blanked[:, 150:300] = 0  # same shape, no face
    mirrored = np.ascontiguousarray(astronaut[:, ::-1])
    images = [astronaut, samples.no_face_image(), blanked, mirrored]
    batched = detector.detect(images)
    assert sorted(calls) == sorted([(3, 512, 512, 3), (1, 400, 600, 3)])
    one_by_one = [detector.detect([image])[0] for image in images]
    assert [len(f) for f in batched] == [1, 0, 0, 1]
    for batch_faces, single_faces in zip(batched, one_by_one):
        assert len(batch_faces) == len(single_faces)
        for a, b in zip(batch_faces, single_faces):
            np.testing.assert_allclose(a.box, b.box, atol=1e-3)
            np.testing.assert_allclose(a.landmarks, b.landmarks, atol=1e-3)


def test_images_smaller_than_the_minimum_face_have_no_face(detector, astronaut):
    assert detector.detect([astronaut[:30, :30], astronaut[:1, :1], astronaut[:39, :500]]) == [[], [], []]


def test_detect_of_no_images_is_empty(detector):
    assert detector.detect([]) == []


def test_large_images_are_detected_downscaled_and_mapped_back_exactly(astronaut, astronaut_face):
    """A 2x pixel-replicated astronaut, downscaled 2x by INTER_AREA, is the astronaut
    again: the downscaled detection must equal the direct one, mapped to 2x pixels."""
    large = np.repeat(np.repeat(astronaut, 2, axis=0), 2, axis=1)
    # min_face_size 80 at 2x is 40 at detection resolution: the same MTCNN run as the fixture's.
    (faces,) = FaceDetector(DetectorSettings(min_face_size=80, max_detection_side=512)).detect([large])
    assert len(faces) == 1
    # cv2.resize aligns pixel centres: x_large + 0.5 = 2 * (x + 0.5).
    np.testing.assert_allclose(faces[0].landmarks, (astronaut_face.landmarks + 0.5) * 2 - 0.5, rtol=1e-6)
    np.testing.assert_allclose(faces[0].box, (astronaut_face.box + 0.5) * 2 - 0.5, rtol=1e-6)
    assert faces[0].score == pytest.approx(astronaut_face.score)


def test_downscaled_detection_finds_faces_where_full_resolution_does(astronaut):
    large = np.repeat(np.repeat(astronaut, 2, axis=0), 2, axis=1)
    (downscaled,) = FaceDetector(DetectorSettings(max_detection_side=700)).detect([large])
    (full,) = FaceDetector(DetectorSettings(max_detection_side=None)).detect([large])
    assert len(downscaled) == len(full) == 1
    face_width = full[0].box[2] - full[0].box[0]
    np.testing.assert_allclose(downscaled[0].landmarks, full[0].landmarks, atol=0.03 * face_width)


def test_boxes_are_clipped_to_the_image(detector, astronaut):
    cut = np.ascontiguousarray(astronaut[90:, 200:])  # forehead and left cheek cut off
    (faces,) = detector.detect([cut])
    assert len(faces) == 1
    x1, y1, x2, y2 = faces[0].box
    assert x1 >= 0 and y1 >= 0 and x2 <= cut.shape[1] and y2 <= cut.shape[0]
    assert x1 == 0 or y1 == 0


def test_rejects_images_that_are_not_rgb_uint8(detector, astronaut):
    with pytest.raises(ValueError, match="image 1"):
        detector.detect([astronaut, astronaut[:, :, 0]])
    with pytest.raises(ValueError, match="uint8"):
        detector.detect([astronaut.astype(np.float32)])


@pytest.mark.parametrize(
    "field, value",
    [
        ("min_face_size", 11),
        ("confidence_threshold", 1.5),
        ("confidence_threshold", -0.1),
        ("max_faces", 0),
        ("device", "gpu"),
        ("device", "cuda:x"),
        ("max_detection_side", 10),
    ],
)
def test_settings_reject_nonsense(field, value):
    with pytest.raises(ValueError, match=field):
        DetectorSettings(**{field: value})


def test_settings_accept_cuda_device_names():
    assert DetectorSettings(device="cuda:1").device == "cuda:1"
    assert DetectorSettings(device="cuda", max_detection_side=None).max_detection_side is None


def test_faces_are_sorted_by_score_filtered_and_capped(monkeypatch):
    """Selection does not rely on MTCNN's output order (given here as worst first)."""
    detector = FaceDetector(DetectorSettings(confidence_threshold=0.9, max_faces=2))
    scores = [0.5, 0.95, 0.99, 0.92]
    boxes = np.array([[10.0 * i, 0, 10.0 * i + 50, 50] for i in range(4)])
    points = np.arange(4 * 5 * 2, dtype=np.float64).reshape(4, 5, 2)
    fake_result = ([boxes], [np.array(scores)], [points])
    monkeypatch.setattr(detector._mtcnn, "detect", lambda batch, landmarks: fake_result)
    (faces,) = detector.detect([np.zeros((100, 100, 3), np.uint8)])
    assert [f.score for f in faces] == [0.99, 0.95]
    np.testing.assert_array_equal([f.box for f in faces], boxes[[2, 1]])
    np.testing.assert_array_equal([f.landmarks for f in faces], points[[2, 1]])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_detection_matches_cpu(astronaut, astronaut_face):
    (faces,) = FaceDetector(DetectorSettings(device="cuda")).detect([astronaut])
    assert len(faces) == 1
    np.testing.assert_allclose(faces[0].landmarks, astronaut_face.landmarks, atol=0.5)
    np.testing.assert_allclose(faces[0].box, astronaut_face.box, atol=0.5)
