import io

import cv2
import numpy as np
import pytest
from PIL import Image

from deepfake_dev import samples
from deepfake_serving.images import ImageLimits, decode_image


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    return samples.write_samples(tmp_path_factory.mktemp("samples"))


def test_samples_are_deterministic():
    assert samples.encode_image(samples.two_face_image()) == samples.encode_image(samples.two_face_image())
    assert samples.invalid_images() == samples.invalid_images()


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


def test_write_samples_writes_the_named_files(written, tmp_path):
    images = {*samples.FACE_IMAGES.values(), samples.NO_FACE_IMAGE, samples.TWO_FACES_IMAGE}
    invalid = samples.invalid_images()
    expected = images | {samples.FACE_VIDEO} | {f"{samples.INVALID_FOLDER}/{name}.bin" for name in invalid}
    assert set(written) == expected
    folder = written[samples.FACE_IMAGE].parent
    assert all(path == folder / name and path.is_file() for name, path in written.items())
    np.testing.assert_array_equal(decode_image(written["face.png"].read_bytes()), samples.face_image())
    for name, data in invalid.items():
        assert written[f"{samples.INVALID_FOLDER}/{name}.bin"].read_bytes() == data


def test_written_images_have_the_promised_faces(written, detector):
    """What the demo, integration, client and load tests rely on."""
    names = [*samples.FACE_IMAGES.values(), samples.NO_FACE_IMAGE, samples.TWO_FACES_IMAGE]
    faces = detector.detect([decode_image(written[name].read_bytes()) for name in names])
    assert [len(f) for f in faces] == [1, 1, 1, 1, 0, 2]
    for image_faces in faces[:4]:
        np.testing.assert_allclose(image_faces[0].box, samples.ASTRONAUT_FACE_BOX, atol=3.0)


def test_video_has_moving_frames_with_the_face(written, detector):
    capture = cv2.VideoCapture(str(written[samples.FACE_VIDEO]))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    assert len(frames) == 16 and frames[0].shape == (512, 512, 3)
    first, last = detector.detect([frames[0], frames[-1]])
    assert len(first) == len(last) == 1
    # 15 frames of (4, 2) pixels of drift.
    np.testing.assert_allclose(last[0].box[:2] - first[0].box[:2], [60, 30], atol=4)


def test_invalid_images_follow_the_limits():
    limits = ImageLimits(max_bytes=100_000, max_pixels=10_000, max_side=200)
    invalid = samples.invalid_images(limits)
    assert len(invalid["over_byte_limit"]) == limits.max_bytes + 1
    generous = ImageLimits(max_pixels=10**9, max_side=10**5)
    over = decode_image(invalid["over_pixel_limit"], generous)  # a real, decodable image
    assert over.shape[0] * over.shape[1] > limits.max_pixels and max(over.shape) <= limits.max_side
    assert decode_image(invalid["too_long_side"], generous).shape == (limits.max_side + 1, 1, 3)


def test_decompression_bomb_is_one_for_pillow_too():
    bomb = samples.invalid_images()["decompression_bomb"]
    assert len(bomb) < 100_000
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(bomb))
