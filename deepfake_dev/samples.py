"""Deterministic sample media built offline from `skimage.data`, shared by the demo,
the unit, integration and client tests and the Locust load tests.

- face image: the astronaut (Eileen Collins), one face near ASTRONAUT_FACE_BOX;
- no-face image: the coffee cup photo (MTCNN finds nothing in it);
- two-face image: the cameraman (left) next to the astronaut (right);
- a short mp4v video of the astronaut drifting across the frame;
- invalid images: every kind of bad upload the service must reject, and the
  fragment of the error message each must get (INVALID_IMAGE_MESSAGES).

write_samples(folder) writes all of them as files.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from skimage import data as skimage_data

from deepfake_serving.images import ImageLimits

# x1, y1, x2, y2 of the astronaut's face as MTCNN finds it (p ~ 0.99999).
ASTRONAUT_FACE_BOX = (180.0, 61.0, 268.0, 172.0)
# Offset of the astronaut in two_face_image(): it sits right of the 512-wide cameraman.
TWO_FACES_ASTRONAUT_OFFSET_X = 512
ENCODINGS = ("JPEG", "PNG", "WEBP", "BMP")

# File names written by write_samples(), relative to its folder.
FACE_IMAGE = "face.jpg"
FACE_IMAGES = {"JPEG": FACE_IMAGE, "PNG": "face.png", "WEBP": "face.webp", "BMP": "face.bmp"}
NO_FACE_IMAGE = "no_face.jpg"
TWO_FACES_IMAGE = "two_faces.jpg"
FACE_VIDEO = "face.mp4"
INVALID_FOLDER = "invalid"


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
    FACE_IMAGES (the astronaut in every accepted format, FACE_IMAGE among them),
    NO_FACE_IMAGE, TWO_FACES_IMAGE, FACE_VIDEO (16 frames) and
    invalid/<name>.bin for each of invalid_images(limits).
    """
    folder = Path(folder)
    contents = {name: encode_image(face_image(), encoding) for encoding, name in FACE_IMAGES.items()}
    contents[NO_FACE_IMAGE] = encode_image(no_face_image())
    contents[TWO_FACES_IMAGE] = encode_image(two_face_image())
    contents.update({f"{INVALID_FOLDER}/{name}.bin": data for name, data in invalid_images(limits).items()})
    (folder / INVALID_FOLDER).mkdir(parents=True, exist_ok=True)
    written = {}
    for name, content in contents.items():
        written[name] = folder / name
        written[name].write_bytes(content)
    written[FACE_VIDEO] = write_video(folder / FACE_VIDEO)
    return written


# A fragment of the error message each invalid image must be rejected with.
INVALID_IMAGE_MESSAGES = {
    "empty": "empty",
    "truncated_jpeg": "corrupt or truncated",
    "truncated_png": "corrupt or truncated",
    "random_bytes": "not an image",
    "text": "not an image",
    "gif": "unsupported image format GIF",
    "tiff": "unsupported image format TIFF",
    "over_byte_limit": "file is too large",
    "over_pixel_limit": "megapixels",
    "too_long_side": "longest side",
    # Every format's spec forbids a zero side, so Pillow reports the file as broken.
    "zero_width": "corrupt",
    "decompression_bomb": "image is too large",
}


def invalid_images(limits: ImageLimits = ImageLimits()) -> dict[str, bytes]:
    """Every kind of upload decode_image must reject under `limits`, by name
    (the keys of INVALID_IMAGE_MESSAGES)."""
    small = face_image()[::8, ::8]
    jpeg = encode_image(face_image())
    return {
        "empty": b"",
        "truncated_jpeg": jpeg[: len(jpeg) // 2],
        "truncated_png": encode_image(small, "PNG")[:100],
        "random_bytes": np.random.default_rng(0).bytes(4096),
        "text": b"This is a text file, not a photo.\n",
        "gif": _pil_bytes(small, "GIF"),
        "tiff": _pil_bytes(small, "TIFF"),
        "over_byte_limit": jpeg + bytes(max(0, limits.max_bytes + 1 - len(jpeg))),
        "over_pixel_limit": _over_pixel_limit_png(limits),
        "too_long_side": _bilevel_png(1, limits.max_side + 1),
        "zero_width": _png_header_only(0, 64),
        "decompression_bomb": _decompression_bomb(limits),
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
