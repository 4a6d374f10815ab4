import io

import cv2
import numpy as np
import pytest
from PIL import Image

from deepfake_serving import samples
from deepfake_serving.images import ImageLimits, decode_image


def test_samples_are_deterministic():
    assert samples.encode_image(samples.two_face_image()) == samples.encode_image(samples.two_face_image())
    first, second = samples.invalid_inputs(), samples.invalid_inputs()
    assert first == second


def test_sample_images_are_rgb_uint8():
    for image, shape in [
        (samples.face_image(), (512, 512, 3)),
        (samples.no_face_image(), (400, 600, 3)),
        (samples.two_face_image(), (512, 1024, 3)),
    ]:
        assert image.shape == shape and image.dtype == np.uint8


@pytest.mark.parametrize("encoding", samples.ENCODINGS)
def test_encoders_write_the_named_format(encoding):
    data = samples.encode_image(samples.face_image(), encoding)
    assert Image.open(io.BytesIO(data)).format == encoding


def test_encoder_rejects_unknown_formats():
    with pytest.raises(ValueError, match="GIF"):
        samples.encode_image(samples.face_image(), "GIF")


def test_write_samples(tmp_path):
    written = samples.write_samples(tmp_path)
    expected_images = {"face.jpg", "face.png", "face.webp", "face.bmp", "no_face.jpg", "two_faces.jpg"}
    expected_invalid = {f"invalid/{name}.bin" for name in samples.invalid_inputs()}
    assert set(written) == expected_images | expected_invalid | {"face.mp4"}
    assert all(path.is_file() and path.parent.is_relative_to(tmp_path) for path in written.values())
    np.testing.assert_array_equal(decode_image(written["face.png"].read_bytes()), samples.face_image())
    assert decode_image(written["two_faces.jpg"].read_bytes()).shape == (512, 1024, 3)
    invalid = samples.invalid_inputs()
    for name, sample in invalid.items():
        assert written[f"invalid/{name}.bin"].read_bytes() == sample.data


def test_video_has_moving_frames_with_the_face(tmp_path, detector):
    path = samples.write_video(tmp_path / "face.mp4", num_frames=12)
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    assert len(frames) == 12 and frames[0].shape == (512, 512, 3)
    first, last = detector.detect([frames[0], frames[-1]])
    assert len(first) == len(last) == 1
    # 11 frames of (4, 2) pixels of drift.
    np.testing.assert_allclose(last[0].box[:2] - first[0].box[:2], [44, 22], atol=4)


def test_invalid_inputs_follow_the_limits():
    limits = ImageLimits(max_bytes=100_000, max_pixels=10_000, max_side=200)
    invalid = samples.invalid_inputs(limits)
    assert len(invalid["over_byte_limit"].data) == limits.max_bytes + 1
    generous = ImageLimits(max_pixels=10**9, max_side=10**5)
    over = decode_image(invalid["over_pixel_limit"].data, generous)  # a real, decodable image
    assert over.shape[0] * over.shape[1] > limits.max_pixels and max(over.shape) <= limits.max_side
    assert decode_image(invalid["too_long_side"].data, generous).shape == (limits.max_side + 1, 1, 3)


def test_decompression_bomb_is_one_for_pillow_too():
    bomb = samples.invalid_inputs()["decompression_bomb"].data
    assert len(bomb) < 100_000
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(bomb))
