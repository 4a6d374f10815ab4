"""Out-of-scope flags: what in an image lies outside what the models were trained on.

Reported beside the verdict, never acted on (docs/design.md §11 says where each is computed
and why). Per image, from the encoded bytes the SDK sends:

- `strong_jpeg_compression`: a JPEG whose luminance quantisation table is coarser than the
  IJG table of quality STRONG_JPEG_QUALITY (the estimate reads the table, not the pixels);
- `greyscale`: no colour (a one-channel file, or three equal channels);
- `upscaled`: almost no detail in the upper half of the spectrum, as an image enlarged
  UPSCALED_FACTOR times or more has (heavy blur reads the same: it is the same loss);

and from the server's answer:

- `too_many_faces` (image): the detector found more faces than its max_faces judged;
- `small_face` (face): the 256 aligned crop enlarges the face more than SMALL_FACE_MAGNIFICATION
  times, so the fine texture the models read was made up by interpolation.

The decoders are bounded: the image was already checked against the size limits of its
caller, and the spectrum is taken on at most a SPECTRUM_WINDOW square.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import replace

import numpy as np
from PIL import Image

from .results import DetectionResult, Face

STRONG_JPEG_COMPRESSION = "strong_jpeg_compression"
GREYSCALE = "greyscale"
UPSCALED = "upscaled"
TOO_MANY_FACES = "too_many_faces"
SMALL_FACE = "small_face"
IMAGE_FLAGS = (STRONG_JPEG_COMPRESSION, GREYSCALE, UPSCALED, TOO_MANY_FACES)
FACE_FLAGS = (SMALL_FACE,)

# Below IJG quality 50 the quantisation steps double or more over the standard table; the
# models were trained on FaceForensics++ c23 (light H.264 compression).
STRONG_JPEG_QUALITY = 50
# The IJG (libjpeg) luminance table at quality 50, in natural order (JPEG standard, Annex K).
_IJG_LUMINANCE = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
)
# Colour: the chroma of the image differs from its luminance by more than this (0-255 levels).
GREY_CHROMA_LEVELS = 2.0
GREY_THUMBNAIL = 256
UPSCALED_FACTOR = 2
# Share of the spectrum's detail energy (0.1-1 of Nyquist) above 1/UPSCALED_FACTOR of Nyquist.
# Measured on skimage's astronaut, coffee, chelsea and camera: 0.09-0.17 as they are (0.06-0.18
# as JPEG quality 10-95), 0.014-0.042 enlarged 2x bicubically (tests/client/test_scope.py).
UPSCALED_ENERGY_SHARE = 0.05
SPECTRUM_WINDOW = 512
# Eye to eye in the 256 aligned crop: the ArcFace template at DeepfakeBench's 1.3 margin
# (deepfake_serving.alignment.deepfakebench_template; tests/client/test_scope.py checks it).
CROP_EYE_DISTANCE_PX = 61.96
SMALL_FACE_MAGNIFICATION = 2.0


def jpeg_quality(image: Image.Image) -> float | None:
    """The IJG quality (1-100) whose luminance table matches this JPEG's on average; None when
    the file is not a JPEG. Quality 50 is the standard table; lower qualities scale it up."""
    tables = getattr(image, "quantization", None)
    if image.format != "JPEG" or not tables:
        return None
    luminance = tables.get(0) or next(iter(tables.values()))
    # A sum, so the estimate does not depend on the order Pillow lists the coefficients in.
    scale = 100.0 * sum(luminance) / sum(_IJG_LUMINANCE)
    quality = 5000.0 / scale if scale > 100.0 else (200.0 - scale) / 2.0
    return float(min(max(quality, 1.0), 100.0))


def is_greyscale(image: Image.Image) -> bool:
    if image.mode in ("1", "L", "LA", "I", "I;16", "F"):
        return True
    # Box-averaged to about GREY_THUMBNAIL px first (fast), then converted: colour survives averaging.
    factor = max(1, max(image.size) // GREY_THUMBNAIL)
    rgb = np.asarray(image.reduce(factor).convert("RGB"), dtype=np.float32)
    chroma = np.abs(rgb - rgb.mean(axis=2, keepdims=True)).max(axis=2)
    return float(np.percentile(chroma, 99)) <= GREY_CHROMA_LEVELS


def high_frequency_share(luminance: np.ndarray) -> float:
    """Share of the detail energy (0.1 to 1 of Nyquist) above 1/UPSCALED_FACTOR of Nyquist, on
    the centre SPECTRUM_WINDOW square of a 2-D luminance array; NaN when it is flat or tiny."""
    height, width = luminance.shape
    size = min(height, width, SPECTRUM_WINDOW)
    if size < 32:
        return math.nan
    top, left = (height - size) // 2, (width - size) // 2
    window = luminance[top:top + size, left:left + size].astype(np.float64)
    window -= window.mean()
    taper = np.hanning(size)
    power = np.abs(np.fft.fftshift(np.fft.fft2(window * np.outer(taper, taper)))) ** 2
    axis = (np.arange(size) - size // 2) / (size / 2)  # in units of Nyquist
    radius = np.hypot(*np.meshgrid(axis, axis))
    detail = power[(radius >= 0.1) & (radius <= 1.0)].sum()
    if detail <= 0:
        return math.nan
    return float(power[(radius > 1.0 / UPSCALED_FACTOR) & (radius <= 1.0)].sum() / detail)


def image_flags(data: bytes) -> tuple[str, ...]:
    """The flags read from the encoded image (empty when Pillow cannot read it: the server
    answers for that)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            quality = jpeg_quality(image)
            image.load()
    except (OSError, ValueError, Image.DecompressionBombError):
        return ()
    flags = []
    if quality is not None and quality < STRONG_JPEG_QUALITY:
        flags.append(STRONG_JPEG_COMPRESSION)
    if is_greyscale(image):
        flags.append(GREYSCALE)
    if high_frequency_share(np.asarray(_centre(image).convert("L"))) < UPSCALED_ENERGY_SHARE:
        flags.append(UPSCALED)
    return tuple(flags)


def _centre(image: Image.Image) -> Image.Image:
    """The centre SPECTRUM_WINDOW square (or less): only it is converted, not the whole image."""
    size = min(image.width, image.height, SPECTRUM_WINDOW)
    left, top = (image.width - size) // 2, (image.height - size) // 2
    return image.crop((left, top, left + size, top + size))


def face_magnification(face: Face) -> float:
    """How many times the aligned crop enlarges this face: from its eyes when landmarks are
    served, else from its box (eye distance about 0.4 of an MTCNN box's width)."""
    if face.landmarks is not None:
        (x1, y1), (x2, y2) = face.landmarks[0], face.landmarks[1]
        eyes = math.hypot(x2 - x1, y2 - y1)
    else:
        eyes = 0.4 * (face.box[2] - face.box[0])
    return math.inf if eyes <= 0 else CROP_EYE_DISTANCE_PX / eyes


def face_flags(face: Face) -> tuple[str, ...]:
    return (SMALL_FACE,) if face_magnification(face) > SMALL_FACE_MAGNIFICATION else ()


def with_flags(result: DetectionResult, data: bytes | None) -> DetectionResult:
    """The result with its image and face flags (image flags from `data` when given)."""
    flags = list(image_flags(data)) if data is not None else []
    if result.faces_left_out:
        flags.append(TOO_MANY_FACES)
    faces = tuple(replace(face, flags=face_flags(face)) for face in result.faces)
    return replace(result, flags=tuple(flags), faces=faces)
