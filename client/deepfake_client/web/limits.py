"""What the gateway accepts, and the typed errors it answers with.

Every refusal is a `GatewayError`: an HTTP status, a short machine-readable code
and a sentence for a person. The page shows the sentence; seed-era clients read
it from `detail`, as FastAPI's own errors put it.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from dataclasses import dataclass

from PIL import Image

from ..errors import (
    DeepfakeError,
    InvalidInputError,
    ModelNotReadyError,
    RequestTimeoutError,
    ServerUnavailableError,
    TlsError,
    VideoError,
)
from ..video import VideoLimits

MIB = 1 << 20


@dataclass(frozen=True)
class Limits:
    # Images: the server refuses more than 20 MiB or 40 Mpx too; refusing here saves the upload to Triton.
    max_image_bytes: int = 20 * MIB
    max_image_pixels: int = 40_000_000
    max_batch_files: int = 32
    max_batch_bytes: int = 64 * MIB
    max_video_bytes: int = 100 * MIB
    max_video_seconds: float = 600.0
    max_video_frames: int = 64  # frames sampled (max_frames); each is one detection
    default_video_frames: int = 30  # the seed's default
    max_job_bytes: int = 1024 * MIB  # POST /api/jobs: a video or a zip of images
    job_video_bytes: int = 20 * MIB  # the page sends a larger video as a job (and more than max_batch_files images)
    max_ws_sessions: int = 4
    max_ws_fps: float = 2.0
    max_ws_frame_bytes: int = 2 * MIB
    max_in_flight: int = 32  # detections the gateway runs at once (its worker threads)
    # Bodies being read at once, and how long one may pause or take in all: a stalled
    # client cannot hold memory (8 x the largest body at most, for body_timeout_s at most).
    max_uploads: int = 8
    body_idle_timeout_s: float = 15.0
    body_timeout_s: float = 120.0

    def video_limits(self) -> VideoLimits:
        """What an uploaded video may claim before a frame is decoded (its length is checked
        after the probe, as 413)."""
        return VideoLimits(max_bytes=self.max_video_bytes)

    def upload_limit(self, path: str) -> int | None:
        """The documented limit of a route's upload (what a refusal states), or None."""
        return {"/api/detect/image": self.max_image_bytes, "/api/detect/batch": self.max_batch_bytes,
                "/api/video/detect": self.max_video_bytes, "/api/jobs": self.max_job_bytes}.get(path)

    def body_limit(self, path: str) -> int | None:
        """The largest request body a route takes (its upload plus 1 MiB of multipart overhead), or None."""
        upload = self.upload_limit(path)
        return None if upload is None else upload + MIB


DEFAULT_LIMITS = Limits()


class GatewayError(Exception):
    """A request the gateway refuses or cannot serve: answered as JSON with `status`."""

    def __init__(self, status: int, code: str, message: str, *, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s

    def to_dict(self) -> dict[str, str]:
        return {"error": self.code, "detail": self.message}


def too_large(what: str, size: float, limit: float, unit: str) -> GatewayError:
    if unit == "bytes":  # people read sizes in MiB, as the docs state the limits
        return GatewayError(413, "too_large", f"{what} is {size / MIB:,.1f} MiB, over the limit of {limit / MIB:,.0f} MiB")
    return GatewayError(413, "too_large", f"{what} is {size:,.0f} {unit}, over the limit of {limit:,.0f} {unit}")


def check_image(data: bytes, limits: Limits, name: str = "the image") -> tuple[int, int]:
    """Size, type and pixel count from the header alone (nothing decoded); returns (width, height)."""
    if not data:
        raise GatewayError(422, "empty", f"{name} is empty")
    if len(data) > limits.max_image_bytes:
        raise too_large(name, len(data), limits.max_image_bytes, "bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
    except Image.DecompressionBombError as exc:
        raise GatewayError(413, "too_large", f"{name} has too many pixels: {exc}") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise GatewayError(415, "unsupported_media_type", f"{name} is not an image (JPEG, PNG, WebP, BMP ...)") from exc
    if width * height > limits.max_image_pixels:
        raise too_large(f"{name} ({width}x{height})", width * height, limits.max_image_pixels, "pixels")
    return width, height


def decode_base64_frame(text: str, limits: Limits) -> bytes:
    """A webcam frame: base64, optionally as a data URL (data:image/jpeg;base64,...)."""
    if text.startswith("data:"):
        text = text.partition(",")[2]
    if len(text) > limits.max_ws_frame_bytes * 4 // 3 + 4:
        raise too_large("the frame", len(text) * 3 // 4, limits.max_ws_frame_bytes, "bytes")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise GatewayError(422, "invalid_frame", "the frame is not base64 (send a JPEG or PNG as base64 or a data URL)") from exc


def is_overload(error: DeepfakeError) -> bool:
    """Triton refused for lack of capacity: the SDK's overload error (by name, so any version's), or its status."""
    named = any("overload" in cls.__name__.lower() for cls in type(error).__mro__)
    return named or (error.status or "").rsplit(".", 1)[-1] in ("RESOURCE_EXHAUSTED", "429")


def from_sdk_error(error: DeepfakeError) -> GatewayError:
    """The HTTP answer for an SDK error: 503 for what waiting may fix, 422 for a bad input."""
    if is_overload(error):
        return GatewayError(503, "overloaded", f"the detector is overloaded, try again shortly: {error.message}", retry_after_s=2)
    if isinstance(error, (ServerUnavailableError, ModelNotReadyError, TlsError)):
        return GatewayError(503, "unavailable", f"the detector is unavailable: {error.message}", retry_after_s=5)
    if isinstance(error, VideoError):
        return GatewayError(415, "unsupported_media_type", error.message)
    if isinstance(error, InvalidInputError):
        return GatewayError(422, "invalid_input", error.message)
    if isinstance(error, RequestTimeoutError):
        return GatewayError(504, "timeout", error.message)
    return GatewayError(502, "server_error", error.message)
