"""The GPU detector path (issue 13.6) run on the CPU: torch alignment against OpenCV's,
nvJPEG's stand-in decode, and the whole detect_faces on the torch path.

Tolerance. cv2.warpAffine computes in fixed point: source coordinates are rounded to
1/32 pixel (INTER_BITS = 5) and the bilinear weights to 15 bits, then the result to
uint8. grid_sample interpolates in float32 at the exact coordinate. On an edge where the
intensity changes by g levels per pixel the two can differ by up to g/64 from the
coordinate rounding plus 1 from the final rounding: a few levels on the sharpest edges
of a photo, and a fraction of a level on average. We allow a maximum of 4 levels and a
mean of 0.25 (measured on the sample faces: 3 and 0.10). The 224 resize (bicubic,
a = -0.75 in both) may differ by 1 level from rounding. A classifier sees crops that
differ by less than JPEG quality 95 changes them.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from deepfake_dev import samples
from deepfake_serving.alignment import align_face, resize_crop
from deepfake_serving.alignment_torch import align_faces, decode_on_device, resize_crops
from deepfake_serving.detection import detect_faces
from deepfake_serving.faces import FaceDetector
from deepfake_serving.images import ImageLimits, InvalidImageError

MAX_LEVELS, MEAN_LEVELS = 4, 0.25


@pytest.fixture(scope="module")
def detector():
    return FaceDetector()


@pytest.fixture(scope="module")
def two_faces(detector):
    image = samples.two_face_image()
    (faces,) = detector.detect([image])
    assert len(faces) == 2
    return image, [face.crop_points for face in faces]


def levels(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.int16) - b.astype(np.int16))


def test_torch_alignment_equals_opencv_within_fixed_point_rounding(two_faces):
    image, points = two_faces
    crops = align_faces(torch.from_numpy(image), points).numpy()
    assert crops.shape == (2, 256, 256, 3) and crops.dtype == np.uint8
    for crop, face_points in zip(crops, points, strict=True):
        diff = levels(crop, align_face(image, face_points))
        assert diff.max() <= MAX_LEVELS and diff.mean() <= MEAN_LEVELS


def test_the_transform_convention_is_right_not_just_close(two_faces):
    """A half-pixel convention error would move every pixel: check a shifted crop is far."""
    image, points = two_faces
    shifted = [p + 0.5 for p in points]
    crop = align_faces(torch.from_numpy(image), shifted).numpy()[0]
    assert levels(crop, align_face(image, points[0])).mean() > 2 * MEAN_LEVELS


def test_the_border_is_black_as_in_opencv():
    image = np.full((64, 64, 3), 200, np.uint8)
    points = np.array([[50, 30], [70, 30], [60, 40], [52, 50], [68, 50]], np.float32)  # partly outside
    torch_crop = align_faces(torch.from_numpy(image), [points]).numpy()[0]
    diff = levels(torch_crop, align_face(image, points))
    assert (torch_crop == 0).any() and diff.max() <= MAX_LEVELS and diff.mean() <= MEAN_LEVELS


def test_bicubic_resize_matches_inter_cubic(two_faces):
    image, points = two_faces
    crop = align_face(image, points[0])
    resized = resize_crops(torch.from_numpy(crop[None]), 224).numpy()[0]
    assert levels(resized, resize_crop(crop, 224)).max() <= 1


def test_jpeg_decodes_as_pillow_does_and_bad_files_get_the_same_errors():
    data = samples.encode_image(samples.face_image())
    decoded = decode_on_device(data, ImageLimits(), "cpu").numpy()
    expected = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert levels(decoded, expected).max() <= 1
    png = samples.encode_image(samples.face_image(), "PNG")
    np.testing.assert_array_equal(decode_on_device(png, ImageLimits(), "cpu").numpy(), samples.face_image())
    for bad in samples.invalid_images().values():
        with pytest.raises(InvalidImageError):
            decode_on_device(bad, ImageLimits(), "cpu")
    with pytest.raises(InvalidImageError, match="too large"):
        decode_on_device(data, ImageLimits(max_pixels=100), "cpu")


def test_the_torch_path_gives_the_outputs_of_the_opencv_path(detector):
    images = [samples.encode_image(samples.two_face_image(), "PNG"), samples.encode_image(samples.no_face_image()),
              b"not an image"]
    reference = detect_faces(images, detector)
    torch_path = detect_faces(images, detector, on_device="cpu")
    assert isinstance(torch_path[2], InvalidImageError)
    for ours, theirs in zip(torch_path[:2], reference[:2], strict=True):
        np.testing.assert_array_equal(ours.num_faces, theirs.num_faces)
        np.testing.assert_array_equal(ours.present, theirs.present)
        np.testing.assert_allclose(ours.boxes, theirs.boxes, atol=1e-3)
        for size in theirs.crops:
            assert ours.crops[size].shape == theirs.crops[size].shape
            assert levels(ours.crops[size], theirs.crops[size]).mean() <= MEAN_LEVELS


def test_a_large_image_is_detected_on_a_downscaled_tensor_too(detector):
    large = cv2.resize(samples.two_face_image(), (2560, 1280), interpolation=cv2.INTER_CUBIC)
    data = samples.encode_image(large, "PNG")
    (reference,) = detect_faces([data], detector)
    (ours,) = detect_faces([data], detector, on_device="cpu")
    assert ours.num_faces.tolist() == reference.num_faces.tolist() == [2]
    np.testing.assert_allclose(ours.boxes, reference.boxes, atol=3.0)  # area average vs INTER_AREA
