"""Turn the image inputs users have into the encoded file bytes the server decodes.

Files and bytes are sent untouched: the server is the authority on which
formats and sizes it accepts. Pixel arrays are encoded losslessly (PNG), since a
lossy re-encode adds artefacts of its own to what a deepfake detector inspects.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image

from .errors import InvalidInputError

ImageInput = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, np.ndarray, Image.Image]

# zlib level 1: PNG stays lossless; higher levels cost much CPU for a few % of bytes.
_PNG_COMPRESS_LEVEL = 1


def encode_image(image: ImageInput) -> bytes:
    """Encoded image bytes for the ensemble's IMAGE input."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
        if not data:
            raise InvalidInputError("the image bytes are empty")
        return data
    if isinstance(image, (str, os.PathLike)):
        return read_image_file(Path(image))
    if isinstance(image, np.ndarray):
        return encode_rgb_array(image)
    if isinstance(image, Image.Image):
        return _encode_png(image if image.mode == "RGB" else image.convert("RGB"))
    raise InvalidInputError(
        f"unsupported image input of type {type(image).__name__}: pass a file path, "
        "encoded bytes, an HxWx3 RGB uint8 numpy array or a PIL image"
    )


def read_image_file(path: Path) -> bytes:
    if not path.exists():
        raise InvalidInputError(f"image file not found: {path}")
    if not path.is_file():
        raise InvalidInputError(f"not a file: {path}")
    data = path.read_bytes()
    if not data:
        raise InvalidInputError(f"image file is empty: {path}")
    return data


def encode_rgb_array(array: np.ndarray) -> bytes:
    """PNG bytes of an HxWx3 RGB uint8 array."""
    if array.dtype != np.uint8:
        raise InvalidInputError(f"image arrays must be uint8 (0-255), got dtype {array.dtype}")
    if array.ndim != 3 or array.shape[2] != 3 or array.shape[0] == 0 or array.shape[1] == 0:
        raise InvalidInputError(f"image arrays must be HxWx3 RGB, got shape {array.shape}")
    return _encode_png(Image.fromarray(np.ascontiguousarray(array)))


def _encode_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=_PNG_COMPRESS_LEVEL)
    return buffer.getvalue()
