import warnings

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFile, WebPImagePlugin

from deepfake_dev import samples
from deepfake_dev.samples import encode_image as encode
from deepfake_serving.images import ImageLimits, InvalidImageError, decode_image

RNG = np.random.default_rng(1234)
# Asymmetric, so any flip or rotation changes it.
PATTERN = RNG.integers(0, 256, size=(24, 40, 3), dtype=np.uint8)


# --- formats -----------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["PNG", "BMP"])
def test_lossless_formats_round_trip_exactly(astronaut, encoding):
    decoded = decode_image(encode(astronaut, encoding))
    assert decoded.dtype == np.uint8 and decoded.flags.c_contiguous
    np.testing.assert_array_equal(decoded, astronaut)


def test_lossless_webp_round_trips_exactly(astronaut):
    np.testing.assert_array_equal(decode_image(encode(astronaut, "WEBP", lossless=True)), astronaut)


@pytest.mark.parametrize("encoding", ["JPEG", "WEBP"])
def test_lossy_formats_decode_to_the_same_rgb_picture(astronaut, encoding):
    decoded = decode_image(samples.encode_image(astronaut, encoding))
    assert decoded.shape == astronaut.shape and decoded.dtype == np.uint8
    error = np.abs(decoded.astype(np.int16) - astronaut)
    assert error.mean() < 4  # measured ~3; a channel swap or a wrong image gives > 30


def test_jpeg_matches_opencv_decoding_in_rgb_order(astronaut):
    data = samples.encode_image(astronaut, "JPEG")
    reference = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert np.abs(decode_image(data).astype(np.int16) - reference).max() <= 2


def test_accepts_bytearray_and_memoryview(astronaut):
    data = encode(astronaut, "PNG")
    np.testing.assert_array_equal(decode_image(bytearray(data)), astronaut)
    np.testing.assert_array_equal(decode_image(memoryview(np.frombuffer(data, np.uint8))), astronaut)


def test_animated_image_gives_its_first_frame():
    frames = [Image.fromarray(PATTERN), Image.fromarray(255 - PATTERN)]
    data = encode(frames[0], "PNG", save_all=True, append_images=frames[1:])
    np.testing.assert_array_equal(decode_image(data), PATTERN)


# --- EXIF orientation --------------------------------------------------------------

# How each EXIF orientation must be undone for display, written out with numpy.
DISPLAYED = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1, :],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, k=-1),  # rotate 90 degrees clockwise
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, k=1),  # rotate 90 degrees counter-clockwise
}


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


@pytest.mark.parametrize("orientation", sorted(DISPLAYED))
def test_exif_orientation_is_applied(orientation):
    data = encode(PATTERN, "PNG", exif=_exif(orientation))
    np.testing.assert_array_equal(decode_image(data), DISPLAYED[orientation](PATTERN))


def test_jpeg_exif_rotation_is_applied(astronaut):
    tall = astronaut[:, :300]
    decoded = decode_image(encode(tall, "JPEG", quality=95, exif=_exif(6)))
    assert decoded.shape == (300, 512, 3)
    assert np.abs(decoded.astype(np.int16) - np.rot90(tall, k=-1)).mean() < 4


# --- pixel formats -----------------------------------------------------------------


def test_sixteen_bit_gray_is_scaled_not_clipped():
    values = np.array([[0, 1, 128, 257, 32767, 32768, 65279, 65534, 65535]], dtype=np.uint16)
    decoded = decode_image(encode(Image.fromarray(values), "PNG"))
    expected = np.round(values / 65535.0 * 255.0).astype(np.uint8)
    np.testing.assert_array_equal(decoded, np.repeat(expected[:, :, None], 3, axis=2))


def test_sixteen_bit_rgb_is_scaled_not_clipped():
    rgb16 = RNG.integers(0, 65536, size=(16, 16, 3), dtype=np.uint16)
    ok, encoded = cv2.imencode(".png", rgb16[:, :, ::-1])  # OpenCV writes BGR
    assert ok
    decoded = decode_image(encoded.tobytes())
    assert np.abs(decoded.astype(np.float64) - rgb16 / 257.0).max() <= 1.0


def test_grayscale_becomes_three_equal_channels():
    gray = PATTERN[:, :, 0]
    np.testing.assert_array_equal(decode_image(encode(gray, "PNG")), np.stack([gray] * 3, axis=2))


def test_bilevel_becomes_black_and_white():
    bits = PATTERN[:, :, 0] > 127
    decoded = decode_image(encode(Image.fromarray(bits), "BMP"))
    np.testing.assert_array_equal(decoded[:, :, 0], np.where(bits, 255, 0))


def _on_black(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return np.round(rgb.astype(np.float64) * alpha[..., None] / 255.0).astype(np.uint8)


def test_rgba_is_composited_on_black():
    alpha = np.tile(np.array([0, 1, 128, 254, 255], np.uint8), (24, 8))
    rgba = np.dstack([PATTERN, alpha])
    decoded = decode_image(encode(rgba, "PNG"))
    np.testing.assert_array_equal(decoded, _on_black(PATTERN, alpha))
    assert decoded[:, 0::5].max() == 0  # fully transparent columns are black


def test_gray_with_alpha_is_composited_on_black():
    gray, alpha = PATTERN[:, :, 0], PATTERN[:, :, 1]
    decoded = decode_image(encode(Image.fromarray(np.dstack([gray, alpha]), "LA"), "PNG"))
    np.testing.assert_array_equal(decoded, _on_black(np.stack([gray] * 3, axis=2), alpha))


def test_palette_with_transparent_index_is_black_there():
    indices = (PATTERN[:, :, 0] % 4).astype(np.uint8)
    palette = [255, 0, 0, 0, 255, 0, 0, 0, 255, 200, 200, 200]
    image = Image.fromarray(indices, "P")
    image.putpalette(palette)
    decoded = decode_image(encode(image, "PNG", transparency=3))
    colours = np.array(palette, np.uint8).reshape(4, 3)
    colours[3] = 0
    np.testing.assert_array_equal(decoded, colours[indices])


def test_cmyk_jpeg_becomes_rgb(astronaut):
    data = encode(Image.fromarray(astronaut).convert("CMYK"), "JPEG", quality=95)
    decoded = decode_image(data)
    assert decoded.shape == astronaut.shape
    assert np.abs(decoded.astype(np.int16) - astronaut).mean() < 4


# --- bad input -----------------------------------------------------------------------

INVALID = samples.invalid_images()


def test_every_invalid_image_has_its_expected_message():
    assert set(INVALID) == set(samples.INVALID_IMAGE_MESSAGES)


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_image_is_rejected_with_a_useful_message(name):
    with pytest.raises(InvalidImageError) as raised:
        decode_image(INVALID[name])
    assert samples.INVALID_IMAGE_MESSAGES[name] in str(raised.value)


def test_unsupported_format_message_names_the_accepted_formats():
    with pytest.raises(InvalidImageError, match="GIF; accepted formats: JPEG, PNG, WebP, BMP"):
        decode_image(INVALID["gif"])


def test_limits_are_configurable(astronaut):
    png = encode(astronaut, "PNG")
    with pytest.raises(InvalidImageError, match=f"{len(png):,} bytes"):
        decode_image(png, ImageLimits(max_bytes=len(png) - 1))
    with pytest.raises(InvalidImageError, match="512x512 = 262,144 pixels"):
        decode_image(png, ImageLimits(max_pixels=512 * 512 - 1))
    with pytest.raises(InvalidImageError, match="longest side may be at most 511"):
        decode_image(png, ImageLimits(max_side=511))
    assert decode_image(png, ImageLimits(max_bytes=len(png), max_pixels=512 * 512, max_side=512)).shape == (512, 512, 3)


@pytest.mark.parametrize("name", ["over_pixel_limit", "too_long_side", "decompression_bomb"])
def test_size_limits_are_checked_before_the_pixels_are_decoded(monkeypatch, name):
    def refuse_to_decode(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse_to_decode)
    with pytest.raises(InvalidImageError, match="image is too large"):
        decode_image(INVALID[name])


def test_byte_limit_is_checked_before_anything_is_parsed(monkeypatch):
    monkeypatch.setattr("deepfake_serving.images._identify", lambda data: pytest.fail("bytes were parsed"))
    with pytest.raises(InvalidImageError, match="file is too large"):
        decode_image(INVALID["over_byte_limit"])


def _lossless_webp_declaring(width: int, height: int) -> bytes:
    """A lossless WebP (VP8L) whose header is patched to declare another size."""
    data = bytearray(encode(PATTERN, "WEBP", lossless=True))
    assert data[12:16] == b"VP8L"
    bits = int.from_bytes(data[21:25], "little") & ~((1 << 28) - 1)
    data[21:25] = (bits | (width - 1) | ((height - 1) << 14)).to_bytes(4, "little")
    return bytes(data)


def test_webp_header_is_read_correctly():
    np.testing.assert_array_equal(decode_image(_lossless_webp_declaring(40, 24)), PATTERN)


def test_webp_declaring_a_huge_canvas_is_rejected_before_pillow_allocates_it(monkeypatch):
    monkeypatch.setattr(WebPImagePlugin, "WebPImageFile", lambda fp: pytest.fail("the WebP decoder was created"))
    with pytest.raises(InvalidImageError, match="8000x8000 = 64,000,000 pixels"):
        decode_image(_lossless_webp_declaring(8000, 8000))


def test_webp_declaring_zero_width_is_rejected():
    data = bytearray(samples.encode_image(PATTERN, "WEBP"))
    assert data[12:16] == b"VP8 " and data[23:26] == b"\x9d\x01\x2a"
    data[26:28] = b"\x00\x00"
    with pytest.raises(InvalidImageError, match="invalid dimensions 0x24"):
        decode_image(bytes(data))


def test_pillow_global_limit_does_not_override_ours(monkeypatch, astronaut):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    with pytest.raises(InvalidImageError, match="image is too large"):
        decode_image(INVALID["decompression_bomb"])
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    np.testing.assert_array_equal(decode_image(encode(astronaut, "PNG")), astronaut)


def test_decoding_changes_no_process_global_state():
    pixel_limit = Image.MAX_IMAGE_PIXELS
    filters = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for data in INVALID.values():
            with pytest.raises(InvalidImageError):
                decode_image(data)
    assert not caught, [str(w.message) for w in caught]
    assert Image.MAX_IMAGE_PIXELS == pixel_limit
    assert warnings.filters == filters
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.parametrize("encoding", ["JPEG", "PNG", "WEBP", "BMP"])
def test_corrupted_files_give_an_image_or_invalid_image_error(astronaut, encoding):
    """Random damage never escapes as another exception type (a server error)."""
    original = samples.encode_image(astronaut[:64, :64], encoding)
    rng = np.random.default_rng(7)
    for _ in range(40):
        damaged = bytearray(original)
        positions = rng.integers(0, len(damaged), size=rng.integers(1, 8))
        for position in positions:
            damaged[position] = rng.integers(0, 256)
        cut = rng.integers(len(damaged) // 2, len(damaged) + 1)
        try:
            decoded = decode_image(bytes(damaged[:cut]))
        except InvalidImageError as error:
            assert str(error)
        else:
            assert decoded.dtype == np.uint8 and decoded.ndim == 3 and decoded.shape[2] == 3


@pytest.mark.parametrize("field", ["max_bytes", "max_pixels", "max_side"])
@pytest.mark.parametrize("value", [0, -1, 1.5, True])
def test_image_limits_reject_nonsense(field, value):
    with pytest.raises(ValueError, match=field):
        ImageLimits(**{field: value})
