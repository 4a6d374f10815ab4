"""Typed errors of the SDK, and their translation from tritonclient's failures.

Every failure the SDK raises is a `DeepfakeError`. tritonclient reports server
errors as `InferenceServerException` with a gRPC status (`StatusCode.X`) or an
HTTP status code ("400"), and network failures as plain `OSError`s; callers
should not have to know either vocabulary.
"""

from __future__ import annotations

import asyncio
import copy
import ssl

from tritonclient.utils import InferenceServerException


class DeepfakeError(Exception):
    """Base class of every error raised by deepfake_client."""

    def __init__(self, message: str, *, status: str | None = None) -> None:
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


class OverloadedError(ServerUnavailableError):
    """The server refused the request because it is overloaded: retry later, with backoff.

    Triton refuses a request when a model's queue is full ("Exceeds maximum queue
    size") or when it waited longer than the model's queue timeout ("Request
    timeout expired"): gRPC UNAVAILABLE, HTTP 503. The request was never run.
    Not retried unless the RetryPolicy asks (`overloaded_attempts`), and then with
    jittered backoff, so that refused clients do not come back all at once.
    """


class TlsError(DeepfakeError, ConnectionError):
    """The TLS handshake failed: an untrusted server certificate, a client certificate the
    server requires or refuses (mutual TLS), or TLS on one side only. Not retried."""


class RequestTimeoutError(DeepfakeError, TimeoutError):
    """The request did not complete within the client's timeout."""


def in_context(error: DeepfakeError, context: str) -> DeepfakeError:
    """The same error (same class and status), its message prefixed by where it happened."""
    named = copy.copy(error)
    named.message = f"{context}: {error.message}"
    named.args = (named.message,)
    return named


class ModelNotReadyError(DeepfakeError):
    """The server is up but the model is not loaded (unknown, failed to load, or loading)."""


class ServerError(DeepfakeError):
    """The server failed the request, or answered outside the ensemble's contract."""


# Triton answers "Request for unknown model: 'x' is not found" / "... has no
# available versions" / "... is not at ready state" for models that are not servable.
_MODEL_NOT_READY_MARKERS = ("unknown model", "no available versions", "not at ready state")

# Triton 2.51's refusals by a model's queue policy, as measured over gRPC (UNAVAILABLE) and
# HTTP (503), directly and through an ensemble ("in ensemble 'x', " is prefixed):
# "[request id: <id_unknown>] Exceeds maximum queue size" and "Request timeout expired".
_OVERLOADED_MARKERS = ("Exceeds maximum queue size", "Request timeout expired")

_GRPC_PREFIX = "StatusCode."

_HANDSHAKE_MARKERS = ("handshake failed", "handshake read failed", "ssl_error", "tsi_")
_TLS_HINT = "check the CA, the client certificate (mutual TLS), and that the port serves TLS"
_UNTRUSTED_HINT = "give the CA that signed it (TlsConfig(ca=...), --tls-ca), and check its host names and dates"


def _grpc_connection_error(message: str, status: str, tls: bool) -> DeepfakeError | None:
    """gRPC reports TLS failures as UNAVAILABLE connection errors: name them, or None."""
    lowered = message.lower()
    if "certificate_verify_failed" in lowered:
        return TlsError(f"the server's certificate is not trusted: {_UNTRUSTED_HINT}: {message}", status=status)
    if any(marker in lowered for marker in _HANDSHAKE_MARKERS):
        return TlsError(f"TLS handshake with the server failed ({_TLS_HINT}): {message}", status=status)
    if "failed to connect" in lowered and "socket closed" in lowered:
        # TCP connected, then the server hung up: a TLS port reached in plain text or, since
        # TLS 1.3 servers check the client's certificate after the client's handshake is
        # done, a client certificate the server requires or refuses.
        if tls:
            return TlsError(
                "the server closed the connection during the TLS handshake: it requires a client certificate "
                f"signed by its CA (mutual TLS), or refused the one given: {message}",
                status=status,
            )
        return ServerUnavailableError(
            f"the server closed the connection (if its port serves TLS, connect with grpcs:// or a CA): {message}",
            status=status,
        )
    return None


def from_triton_exception(exc: InferenceServerException, model: str, tls: bool = False) -> DeepfakeError:
    """Map a tritonclient exception (gRPC or HTTP flavour) to the SDK's error classes; tls: the client used TLS."""
    status = exc.status() or ""
    message = exc.message() or str(exc)
    code = status[len(_GRPC_PREFIX) :] if status.startswith(_GRPC_PREFIX) else status
    connection_error = _grpc_connection_error(message, status, tls) if code == "UNAVAILABLE" else None
    if connection_error is not None:
        return connection_error
    if any(marker in message for marker in _MODEL_NOT_READY_MARKERS):
        return ModelNotReadyError(f"model {model!r} is not ready on the server: {message}", status=status)
    if code in ("INVALID_ARGUMENT", "400"):
        return InvalidImageError(f"the server rejected the input: {message}", status=status)
    if code in ("UNAVAILABLE", "503") and any(marker in message for marker in _OVERLOADED_MARKERS):
        return OverloadedError(f"the server is overloaded, retry later: {message}", status=status)
    if code in ("UNAVAILABLE", "503"):
        return ServerUnavailableError(f"the server is unavailable: {message}", status=status)
    if code in ("DEADLINE_EXCEEDED", "504"):
        return RequestTimeoutError(f"the request timed out: {message}", status=status)
    if code in ("NOT_FOUND", "404"):
        return ModelNotReadyError(f"model {model!r} is not ready on the server: {message}", status=status)
    return ServerError(f"the server failed the request ({status or 'no status'}): {message}", status=status)


def from_transport_exception(exc: BaseException, url: str, timeout_s: float) -> DeepfakeError | None:
    """Map a network-level exception (HTTP clients raise these) to an SDK error, or None."""
    # TimeoutError and ssl.SSLError subclass OSError, so they are checked first.
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TlsError(f"the certificate of {url} is not trusted: {_UNTRUSTED_HINT}: {exc}")
    if isinstance(exc, ssl.SSLError):
        return TlsError(f"TLS with {url} failed ({_TLS_HINT}): {exc}")
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return RequestTimeoutError(f"no answer from {url} within {timeout_s:g} s")
    if isinstance(exc, OSError):
        return ServerUnavailableError(f"cannot reach the server at {url}: {exc}")
    return None
