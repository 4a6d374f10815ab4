"""Typed errors of the SDK, and their translation from tritonclient's failures.

Every failure the SDK raises is a `DeepfakeError`. tritonclient reports server
errors as `InferenceServerException` with a gRPC status (`StatusCode.X`) or an
HTTP status code ("400"), and network failures as plain `OSError`s; callers
should not have to know either vocabulary.
"""

from __future__ import annotations

import asyncio
from typing import Optional

from tritonclient.utils import InferenceServerException


class DeepfakeError(Exception):
    """Base class of every error raised by deepfake_client."""

    def __init__(self, message: str, *, status: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status  # the transport's status code, when the server answered


class InvalidInputError(DeepfakeError, ValueError):
    """An input or argument cannot be used: a missing file, an unsupported type, a bad option."""


class InvalidImageError(InvalidInputError):
    """The server rejected the image (INVALID_ARG): undecodable, unsupported or too large."""


class VideoError(InvalidInputError):
    """A video cannot be read: not a video, empty, or without a decodable frame."""


class ServerUnavailableError(DeepfakeError, ConnectionError):
    """The server cannot be reached, or answered UNAVAILABLE (retried with backoff)."""


class RequestTimeoutError(DeepfakeError, TimeoutError):
    """The request did not complete within the client's timeout."""


class ModelNotReadyError(DeepfakeError):
    """The server is up but the model is not loaded (unknown, failed to load, or loading)."""


class ServerError(DeepfakeError):
    """The server failed the request, or answered outside the ensemble's contract."""


# Triton answers "Request for unknown model: 'x' is not found" / "... has no
# available versions" / "... is not at ready state" for models that are not servable.
_MODEL_NOT_READY_MARKERS = ("unknown model", "no available versions", "not at ready state")

_GRPC_PREFIX = "StatusCode."


def from_triton_exception(exc: InferenceServerException, model: str) -> DeepfakeError:
    """Map a tritonclient exception (gRPC or HTTP flavour) to the SDK's error classes."""
    status = exc.status() or ""
    message = exc.message() or str(exc)
    code = status[len(_GRPC_PREFIX) :] if status.startswith(_GRPC_PREFIX) else status
    if any(marker in message for marker in _MODEL_NOT_READY_MARKERS):
        return ModelNotReadyError(f"model {model!r} is not ready on the server: {message}", status=status)
    if code in ("INVALID_ARGUMENT", "400"):
        return InvalidImageError(f"the server rejected the input: {message}", status=status)
    if code in ("UNAVAILABLE", "503"):
        return ServerUnavailableError(f"the server is unavailable: {message}", status=status)
    if code in ("DEADLINE_EXCEEDED", "504"):
        return RequestTimeoutError(f"the request timed out: {message}", status=status)
    if code in ("NOT_FOUND", "404"):
        return ModelNotReadyError(f"model {model!r} is not ready on the server: {message}", status=status)
    return ServerError(f"the server failed the request ({status or 'no status'}): {message}", status=status)


def from_transport_exception(exc: BaseException, url: str, timeout_s: float) -> Optional[DeepfakeError]:
    """Map a network-level exception (HTTP clients raise these) to an SDK error, or None."""
    # TimeoutError subclasses OSError, so it is checked first.
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return RequestTimeoutError(f"no answer from {url} within {timeout_s:g} s")
    if isinstance(exc, OSError):
        return ServerUnavailableError(f"cannot reach the server at {url}: {exc}")
    return None
