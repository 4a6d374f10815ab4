import numpy as np
import pytest

from deepfake_dev import samples
from deepfake_models import CLASSIFIERS
from deepfake_serving.alignment import align_face, resize_crop
from deepfake_serving.detection import DEFAULT_CROP_SIZES, FaceDetection, detect_faces
from deepfake_serving.images import ImageLimits, InvalidImageError, decode_image

FACE_JPEG = samples.encode_image(samples.face_image())
NO_FACE_PNG = samples.encode_image(samples.no_face_image(), "PNG")
TWO_FACES_PNG = samples.encode_image(samples.two_face_image(), "PNG")


def assert_outputs_well_formed(result: FaceDetection, faces: int) -> None:
    rows = max(faces, 1)
    assert set(result.crops) == set(DEFAULT_CROP_SIZES)
    for size, crops in result.crops.items():
        assert crops.shape == (rows, size, size, 3) and crops.dtype == np.uint8
        assert crops.flags.c_contiguous
    assert result.num_faces.shape == (1,) and result.num_faces.dtype == np.int32
    assert result.num_faces[0] == faces
    assert result.boxes.shape == (faces, 4) and result.boxes.dtype == np.float32
    assert result.scores.shape == (faces,) and result.scores.dtype == np.float32
    assert result.landmarks.shape == (faces, 5, 2) and result.landmarks.dtype == np.float32


def test_crop_sizes_are_the_classifiers_input_sizes():
    assert set(DEFAULT_CROP_SIZES) == {spec.input_size for spec in CLASSIFIERS}


def test_one_face(detector, astronaut_face):
    (result,) = detect_faces([FACE_JPEG], detector)
    assert_outputs_well_formed(result, faces=1)
    np.testing.assert_allclose(result.boxes[0], samples.ASTRONAUT_FACE_BOX, atol=3.0)
    assert result.scores[0] > 0.99


def test_crops_are_aligned_on_the_decoded_image(detector):
    (result,) = detect_faces([FACE_JPEG], detector)
    image = decode_image(FACE_JPEG)
    aligned = align_face(image, result.landmarks[0])
    np.testing.assert_array_equal(result.crops[256][0], aligned)
    np.testing.assert_array_equal(result.crops[224][0], resize_crop(aligned, 224))


def test_no_face_gives_one_black_placeholder_row(detector):
    (result,) = detect_faces([NO_FACE_PNG], detector)
    assert_outputs_well_formed(result, faces=0)
    assert all(crops.max() == 0 for crops in result.crops.values())


def test_two_faces_in_confidence_order(detector):
    (result,) = detect_faces([TWO_FACES_PNG], detector)
    assert_outputs_well_formed(result, faces=2)
    assert result.scores[0] > result.scores[1]
    assert result.boxes[0, 0] > samples.TWO_FACES_ASTRONAUT_OFFSET_X  # the astronaut first
    image = decode_image(TWO_FACES_PNG)
    for row in range(2):
        np.testing.assert_array_equal(result.crops[256][row], align_face(image, result.landmarks[row]))


def test_bad_images_fail_alone(detector):
    invalid, messages = samples.invalid_images(), samples.INVALID_IMAGE_MESSAGES
    encoded = [invalid["text"], FACE_JPEG, invalid["truncated_jpeg"], NO_FACE_PNG, TWO_FACES_PNG]
    results = detect_faces(encoded, detector)
    assert isinstance(results[0], InvalidImageError) and messages["text"] in str(results[0])
    assert isinstance(results[2], InvalidImageError) and messages["truncated_jpeg"] in str(results[2])
    alone = [detect_faces([data], detector)[0] for data in (FACE_JPEG, NO_FACE_PNG, TWO_FACES_PNG)]
    for mixed, single in zip([results[1], results[3], results[4]], alone):
        assert isinstance(mixed, FaceDetection)
        np.testing.assert_array_equal(mixed.num_faces, single.num_faces)
        np.testing.assert_allclose(mixed.boxes, single.boxes, atol=1e-3)
        np.testing.assert_array_equal(mixed.crops[256].shape, single.crops[256].shape)


def test_limits_apply_per_image(detector):
    limits = ImageLimits(max_bytes=len(FACE_JPEG))
    results = detect_faces([FACE_JPEG, NO_FACE_PNG], detector, limits)
    assert isinstance(results[0], FaceDetection)
    assert isinstance(results[1], InvalidImageError) and "file is too large" in str(results[1])


def test_all_images_invalid(detector):
    results = detect_faces([b"", b"GIF89a"], detector)
    assert all(isinstance(r, InvalidImageError) for r in results)


def test_other_crop_sizes_are_cubic_resizes_of_the_256_crop(detector):
    (result,) = detect_faces([FACE_JPEG], detector, crop_sizes=(256, 299, 128))
    assert set(result.crops) == {256, 299, 128}
    for size in (299, 128):
        np.testing.assert_array_equal(result.crops[size][0], resize_crop(result.crops[256][0], size))


@pytest.mark.parametrize("crop_sizes", [(), (0,), (256, -1), (224.0,), (True,)])
def test_crop_sizes_must_be_positive_integers(detector, crop_sizes):
    with pytest.raises(ValueError, match="crop_sizes"):
        detect_faces([FACE_JPEG], detector, crop_sizes=crop_sizes)
