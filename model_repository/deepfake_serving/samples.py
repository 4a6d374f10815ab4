"""Deterministic sample media built offline from `skimage.data`, shared by the demo,
the unit, integration and client tests and the Locust load tests.

- face image: the astronaut (Eileen Collins), one face near ASTRONAUT_FACE_BOX;
- no-face image: the coffee cup photo (MTCNN finds nothing in it);
- two-face image: the cameraman (left) next to the astronaut (right);
- a short mp4v video of the astronaut drifting across the frame;
- invalid inputs: every kind of bad upload the service must reject, with the
  fragment its error message contains.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from skimage import data as skimage_data

from .images import ImageLimits

# x1, y1, x2, y2 of the astronaut's face as MTCNN finds it (p ~ 0.99999).
ASTRONAUT_FACE_BOX = (180.0, 61.0, 268.0, 172.0)
# Offset of the astronaut in two_face_image(): it sits right of the 512-wide cameraman.
TWO_FACES_ASTRONAUT_OFFSET_X = 512
ENCODINGS = ("JPEG", "PNG", "WEBP", "BMP")
_SUFFIXES = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "BMP": "bmp"}


def face_image() -> np.ndarray:
    """The astronaut photo, (512, 512, 3) uint8 RGB, one face."""
    return np.ascontiguousarray(skimage_data.astronaut())


def no_face_image() -> np.ndarray:
    """A real photo without a face (a coffee cup), (400, 600, 3) uint8 RGB."""
    return np.ascontiguousarray(skimage_data.coffee())


def two_face_image() -> np.ndarray:
    """(512, 1024, 3) uint8 RGB: the cameraman (gray, p ~ 0.9993) left of the
    astronaut (p ~ 0.99999), so confidence order is not left-to-right order."""
    cameraman = np.repeat(skimage_data.camera()[:, :, None], 3, axis=2)
    return np.concatenate([cameraman, face_image()], axis=1)


def encode_image(image: np.ndarray | Image.Image, encoding: str = "JPEG", **options) -> bytes:
    """Encode with Pillow as JPEG (quality 95 unless given), PNG, WEBP (quality 90
    unless given) or BMP; `options` are Pillow save options (exif=, lossless=...)."""
    defaults = {"JPEG": {"quality": 95}, "PNG": {}, "WEBP": {"quality": 90}, "BMP": {}}
    if encoding not in defaults:
        raise ValueError(f"unknown encoding {encoding!r}; choose from {', '.join(ENCODINGS)}")
    return _pil_bytes(image, encoding, **{**defaults[encoding], **options})


def video_frames(num_frames: int = 16) -> list[np.ndarray]:
    """The astronaut drifting right and down by 4 and 2 pixels a frame (RGB, 512x512)."""
    astronaut = face_image()
    frames = []
    for index in range(num_frames):
        shift = np.float32([[1, 0, 4 * index - 2 * num_frames], [0, 1, 2 * index - num_frames]])
        frames.append(cv2.warpAffine(astronaut, shift, (512, 512), borderMode=cv2.BORDER_REFLECT))
    return frames


def write_video(path: Path, num_frames: int = 16, fps: float = 8.0) -> Path:
    """Write video_frames() as an mp4v-coded .mp4 file."""
    frames = video_frames(num_frames)
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write an mp4v video to {path}")
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path


def write_samples(folder: Path, limits: ImageLimits = ImageLimits()) -> dict[str, Path]:
    """Write the standard samples into `folder`; returns their paths by relative name:

    face.{jpg,png,webp,bmp}, no_face.jpg, two_faces.jpg, face.mp4 (16 frames), and
    invalid/<name>.bin for each of invalid_inputs(limits) (which also gives the
    fragment of the error message each must produce).
    """
    folder = Path(folder)
    images = {"face": face_image(), "no_face": no_face_image(), "two_faces": two_face_image()}
    contents = {f"face.{_SUFFIXES[e]}": encode_image(images["face"], e) for e in ENCODINGS}
    contents["no_face.jpg"] = encode_image(images["no_face"])
    contents["two_faces.jpg"] = encode_image(images["two_faces"])
    contents.update({f"invalid/{name}.bin": sample.data for name, sample in invalid_inputs(limits).items()})
    (folder / "invalid").mkdir(parents=True, exist_ok=True)
    written = {}
    for name, content in contents.items():
        written[name] = folder / name
        written[name].write_bytes(content)
    written["face.mp4"] = write_video(folder / "face.mp4")
    return written


@dataclass(frozen=True)
class InvalidInput:
    """A bad upload and a fragment of the error message that must explain it."""

    data: bytes
    message: str


def invalid_inputs(limits: ImageLimits = ImageLimits()) -> dict[str, InvalidInput]:
    """Every kind of input decode_image must reject under `limits`, by name."""
    small = face_image()[::8, ::8]
    jpeg = encode_image(face_image())
    return {
        "empty": InvalidInput(b"", "empty"),
        "truncated_jpeg": InvalidInput(jpeg[: len(jpeg) // 2], "corrupt or truncated"),
        "truncated_png": InvalidInput(encode_image(small, "PNG")[:100], "corrupt or truncated"),
        "random_bytes": InvalidInput(np.random.default_rng(0).bytes(4096), "not an image"),
        "text": InvalidInput(b"This is a text file, not a photo.\n", "not an image"),
        "gif": InvalidInput(_pil_bytes(small, "GIF"), "unsupported image format GIF"),
        "tiff": InvalidInput(_pil_bytes(small, "TIFF"), "unsupported image format TIFF"),
        "over_byte_limit": InvalidInput(jpeg + bytes(max(0, limits.max_bytes + 1 - len(jpeg))), "file is too large"),
        "over_pixel_limit": InvalidInput(_over_pixel_limit_png(limits), "megapixels"),
        "too_long_side": InvalidInput(_bilevel_png(1, limits.max_side + 1), "longest side"),
        # Every format's spec forbids a zero side, so Pillow reports the file as broken.
        "zero_width": InvalidInput(_png_header_only(0, 64), "corrupt"),
        "decompression_bomb": InvalidInput(_decompression_bomb(limits), "image is too large"),
    }


def _pil_bytes(image: np.ndarray | Image.Image, encoding: str, **options) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format=encoding, **options)
    return buffer.getvalue()


def _over_pixel_limit_png(limits: ImageLimits) -> bytes:
    """A valid PNG just over max_pixels, its sides within max_side."""
    width = min(limits.max_side, limits.max_pixels)
    height = limits.max_pixels // width + 1
    return _bilevel_png(width, height)


def _decompression_bomb(limits: ImageLimits) -> bytes:
    """A few-kB PNG that would decode to the largest square the side limit allows
    (268 megapixels by default: Pillow itself would refuse to open it)."""
    side = limits.max_side if limits.max_side**2 > limits.max_pixels else limits.max_side + 1
    return _bilevel_png(side, side)


def _bilevel_png(width: int, height: int) -> bytes:
    """A complete, valid black 1-bit PNG: a few kB of zlib for up to gigapixels."""
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed pixels
    compressor = zlib.compressobj(9)
    pixels = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return _png(width, height, bit_depth=1, idat=pixels)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares the given size (even an invalid one) and holds no pixels."""
    return _png(width, height, bit_depth=8, idat=zlib.compress(b""))


def _png(width: int, height: int, bit_depth: int, idat: bytes) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)  # grayscale
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
