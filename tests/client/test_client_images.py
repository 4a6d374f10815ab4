"""Image inputs: what is sent for a path, bytes, a numpy array or a PIL image."""

from __future__ import annotations

import io

import numpy as np
import pytest
from client_fakes import random_rgb
from PIL import Image

from deepfake_client import InvalidInputError
from deepfake_client.images import encode_image


def decode(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def test_files_and_bytes_are_sent_untouched(tmp_path):
    content = b"\xff\xd8\xff\xe0 whatever the server will judge"
    path = tmp_path / "photo.jpg"
    path.write_bytes(content)
    assert encode_image(path) == content
    assert encode_image(str(path)) == content
    assert encode_image(content) == content
    assert encode_image(bytearray(content)) == content
    assert encode_image(memoryview(content)) == content


def test_arrays_are_encoded_losslessly_as_png():
    pixels = random_rgb()
    image = decode(encode_image(pixels))
    assert image.format == "PNG" and image.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(image), pixels)


def test_non_contiguous_arrays_keep_their_pixels():
    pixels = random_rgb(64, 64)[::2, ::-1]
    np.testing.assert_array_equal(np.asarray(decode(encode_image(pixels))), pixels)


def test_pil_images_are_sent_as_rgb_png():
    rgba = Image.fromarray(np.dstack([random_rgb(), np.full((48, 64), 255, np.uint8)]))
    image = decode(encode_image(rgba))
    assert image.format == "PNG" and image.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(image), np.asarray(rgba)[:, :, :3])


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((8, 8, 3), np.float32), "uint8"),
        (np.zeros((8, 8), np.uint8), "HxWx3"),
        (np.zeros((8, 8, 4), np.uint8), "HxWx3"),
        (np.zeros((0, 8, 3), np.uint8), "HxWx3"),
        (b"", "empty"),
        (42, "unsupported image input of type int"),
    ],
)
def test_unusable_inputs_fail_before_any_request(bad, message):
    with pytest.raises(InvalidInputError, match=message):
        encode_image(bad)


def test_missing_empty_and_folder_paths_are_explained(tmp_path):
    with pytest.raises(InvalidInputError, match="image file not found: .*nope.jpg"):
        encode_image(tmp_path / "nope.jpg")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(InvalidInputError, match="image file is empty"):
        encode_image(tmp_path / "empty.jpg")
    with pytest.raises(InvalidInputError, match="not a file"):
        encode_image(tmp_path)
