"""Decode untrusted encoded image files into RGB uint8 arrays, or say clearly why not.

Only JPEG, PNG, WebP and BMP are accepted. The format is recognised from the
file's magic bytes and opened with that format's Pillow plugin class directly,
not with `Image.open`: this way our own limits decide (`Image.open` would check
the process-global `Image.MAX_IMAGE_PIXELS` and print a `DecompressionBombWarning`
or raise it through someone's warnings filter), and nothing process-global is
changed. Only Pillow's WebP plugin still checks twice that global while opening;
its DecompressionBombError is reported as an image too large. Pillow's
`ImageFile.LOAD_TRUNCATED_IMAGES` is left off, so truncated files are errors.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import (
    BmpImagePlugin,
    Image,
    ImageFile,
    ImageOps,
    JpegImagePlugin,
    PngImagePlugin,
    WebPImagePlugin,
)

BytesLike = bytes | bytearray | memoryview

MIB = 1024 * 1024
ACCEPTED_FORMATS = ("JPEG", "PNG", "WebP", "BMP")
_ACCEPTED = ", ".join(ACCEPTED_FORMATS)

# Alpha is composited onto black: the hidden colour of transparent pixels is
# arbitrary, and black is also what the face alignment puts outside the image.
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_SIXTEEN_BIT_GRAY_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})


class InvalidImageError(ValueError):
    """The bytes are not an image this service accepts; the message tells the user why."""


@dataclass(frozen=True)
class ImageLimits:
    """Bounds on what `decode_image` accepts, checked before the pixels are decoded.

    max_bytes: size of the encoded file (20 MiB holds any sane phone photo).
    max_pixels: width x height (40 Mpx: a 7,300 x 5,500 photo; decoded RGB is 120 MB).
    max_side: longest side, which rejects absurd shapes such as 1 x 100,000 whose
        pixel count is harmless (16,384: WebP's own maximum is 16,383).
    """

    max_bytes: int = 20 * MIB
    max_pixels: int = 40_000_000
    max_side: int = 16_384

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_pixels", "max_side"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"ImageLimits.{name} must be a positive integer, got {value!r}")


def decode_image(data: BytesLike, limits: ImageLimits = ImageLimits()) -> np.ndarray:
    """Decode an encoded JPEG, PNG, WebP or BMP file into an (H, W, 3) uint8 RGB array.

    The EXIF orientation is applied; grayscale, palette, CMYK and 16-bit images
    are converted to 8-bit RGB; alpha is composited onto black. Animated WebP/PNG
    files give their first frame. Raises InvalidImageError for anything else.
    """
    size = memoryview(data).nbytes
    if size == 0:
        raise InvalidImageError("the image is empty (0 bytes were received)")
    if size > limits.max_bytes:
        raise InvalidImageError(
            f"image file is too large: {size:,} bytes ({size / MIB:.1f} MiB); "
            f"the limit is {limits.max_bytes:,} bytes ({limits.max_bytes / MIB:.1f} MiB)"
        )
    data = bytes(data)
    plugin, format_name = _identify(data)
    if format_name == "WebP":
        # Pillow's WebP plugin allocates the canvas while opening: check the declared size first.
        declared = _webp_canvas_size(data)
        if declared is not None:
            _check_dimensions(*declared, limits)
    try:
        image = plugin(io.BytesIO(data))
        _check_dimensions(image.width, image.height, limits)
        image.load()
        ImageOps.exif_transpose(image, in_place=True)
        return _to_rgb(image)
    except (InvalidImageError, MemoryError):
        raise
    except Image.DecompressionBombError as error:  # Pillow's global limit, if set below ours
        raise InvalidImageError(f"image is too large to decode safely ({error})") from error
    except Exception as error:  # any decoder failure on user bytes means the file is broken
        raise InvalidImageError(
            f"the {format_name} file is corrupt or truncated and cannot be decoded ({error})"
        ) from error


def _identify(data: bytes) -> tuple[type[ImageFile.ImageFile], str]:
    """The Pillow plugin class and display name of an accepted format, from the magic bytes."""
    if data.startswith(b"\xff\xd8\xff"):
        return JpegImagePlugin.JpegImageFile, "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PngImagePlugin.PngImageFile, "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return WebPImagePlugin.WebPImageFile, "WebP"
    if data.startswith(b"BM"):
        return BmpImagePlugin.BmpImageFile, "BMP"
    unsupported = _unsupported_format_name(data)
    if unsupported:
        raise InvalidImageError(f"unsupported image format {unsupported}; accepted formats: {_ACCEPTED}")
    raise InvalidImageError(f"the data is not an image file; accepted formats: {_ACCEPTED}")


def _unsupported_format_name(data: bytes) -> str | None:
    """Names a few image formats users commonly send by mistake, for a clearer message."""
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return "TIFF"
    if data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"hevc"):
        return "HEIC/HEIF"
    if data[4:8] == b"ftyp" and data[8:12] in (b"avif", b"avis"):
        return "AVIF"
    if data.startswith((b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51")):
        return "JPEG 2000"
    return None


def _webp_canvas_size(data: bytes) -> tuple[int, int] | None:
    """Width and height declared in a WebP header (RIFF container spec), or None if unreadable."""
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        # Extended format: 24-bit little-endian (width - 1) and (height - 1).
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        # Lossless: 14 bits (width - 1), then 14 bits (height - 1).
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        # Lossy key frame: 14-bit width and height after the start code.
        width = int.from_bytes(data[26:28], "little") & 0x3FFF
        height = int.from_bytes(data[28:30], "little") & 0x3FFF
        return width, height
    return None


def _check_dimensions(width: int, height: int, limits: ImageLimits) -> None:
    if width <= 0 or height <= 0:
        raise InvalidImageError(f"the image has invalid dimensions {width}x{height} pixels")
    if max(width, height) > limits.max_side:
        raise InvalidImageError(
            f"image is too large: {width}x{height} pixels; the longest side may be at most {limits.max_side} pixels"
        )
    if width * height > limits.max_pixels:
        raise InvalidImageError(
            f"image is too large: {width}x{height} = {width * height:,} pixels; "
            f"the limit is {limits.max_pixels:,} pixels ({limits.max_pixels / 1e6:g} megapixels)"
        )


def _to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode in _SIXTEEN_BIT_GRAY_MODES:
        gray = _sixteen_to_eight_bits(np.asarray(image))
        return np.repeat(gray[:, :, None], 3, axis=2)
    has_alpha = image.mode in _ALPHA_MODES or "transparency" in image.info
    if has_alpha:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.uint16)
        alpha = rgba[:, :, 3:]
        return ((rgba[:, :, :3] * alpha + 127) // 255).astype(np.uint8)
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    return np.array(rgb, dtype=np.uint8)


def _sixteen_to_eight_bits(values: np.ndarray) -> np.ndarray:
    """Scale 0..65535 onto 0..255 with rounding (65535 -> 255); clipping would saturate."""
    scaled = (values.astype(np.uint32) * 255 + 32767) // 65535
    return scaled.astype(np.uint8)
