"""The gateway's defences that sit in front of every route: response headers, the WebSocket
Origin check, upload admission (a cap on concurrent uploads, a body read timeout) and the
API key of exposed deployments. Pure ASGI middleware, so they see every answer, the
framework's own included."""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .limits import GatewayError

API_KEY_HEADER = "x-api-key"
API_KEY_ENV = "DEEPFAKE_WEB_API_KEYS"  # comma-separated keys
API_KEY_FILE_ENV = "DEEPFAKE_WEB_API_KEY_FILE"  # one key a line

# The page: its own scripts, styles and connections only; never framed. Images and the
# webcam preview may be data:/blob: URLs the page makes itself.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# Swagger UI (installed assets, no CDN) sets style attributes: styles may be inline there, scripts never.
DOCS_CSP = PAGE_CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
)


async def send_error(send: Any, error: GatewayError, extra: Iterable[tuple[bytes, bytes]] = ()) -> None:
    """A GatewayError as the documented JSON, sent straight from middleware."""
    body = json.dumps(error.to_dict()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]
    if error.retry_after_s:
        headers.append((b"retry-after", str(error.retry_after_s).encode()))
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class SecurityHeadersMiddleware:
    """nosniff, no referrer, no framing and a Content-Security-Policy on every HTTP answer."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        csp = (DOCS_CSP if scope["path"] == "/docs" else PAGE_CSP).encode()

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", ())}
                extra = [(n, v) for n, v in (*HEADERS, (b"content-security-policy", csp)) if n not in names]
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def header(scope: dict, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def origin_allowed(scope: dict, allowed: frozenset[str]) -> bool:
    """A WebSocket upgrade's Origin is this gateway's own (same host, http or https) or listed.

    Browsers always send Origin on a WebSocket; a client without one (a script) is no
    cross-site page, so it is let through.
    """
    origin = header(scope, b"origin")
    if origin is None:
        return True
    origin = origin.rstrip("/").lower()
    if origin in allowed:
        return True
    host = (header(scope, b"host") or "").lower()
    parts = urlsplit(origin)
    return bool(host) and parts.scheme in ("http", "https") and parts.netloc == host


class UploadAdmission:
    """At most `max_uploads` request bodies are read at once (others get 503 at once), and a
    body must keep moving: `idle_s` without a chunk, or `total_s` in all, ends it with 408.

    The body is read here, before the route sees it, so a stalled client holds one slot and
    what it sent so far, for at most `total_s`.
    """

    def __init__(self, app: Any, *, paths: Iterable[str], max_uploads: int, idle_s: float, total_s: float) -> None:
        self.app = app
        self.paths = frozenset(paths)
        self.slots = asyncio.Semaphore(max_uploads)
        self.max_uploads = max_uploads
        self.idle_s = idle_s
        self.total_s = total_s

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.paths:
            return await self.app(scope, receive, send)
        if self.slots.locked():
            error = GatewayError(503, "busy", f"{self.max_uploads} uploads are in progress; try again shortly", retry_after_s=2)
            return await send_error(send, error, [(b"connection", b"close")])
        async with self.slots:
            try:
                chunks = await self._read(receive)
            except TimeoutError:
                chunks = TimeoutError  # leave the except block: its traceback holds the chunks read
            if chunks is TimeoutError:
                error = GatewayError(408, "body_timeout", "the upload stalled: send the body without pauses")
                await send_error(send, error, [(b"connection", b"close")])
                # The body's chunks (64 KiB each, from the heap) are free now; give their pages back
                # to the system instead of keeping them for later uploads.
                release_free_heap()
                return
            if chunks is None:
                return  # the client went away
            await self.app(scope, _replay(chunks, receive), send)

    async def _read(self, receive: Any) -> list[bytes] | None:
        chunks: list[bytes] = []
        deadline = time.monotonic() + self.total_s
        while True:
            left = min(self.idle_s, deadline - time.monotonic())
            if left <= 0:
                raise TimeoutError
            message = await asyncio.wait_for(receive(), left)
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return chunks


def release_free_heap() -> None:
    """glibc's malloc_trim(0): free heap pages go back to the system; nothing elsewhere."""
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _replay(chunks: list[bytes], receive: Any) -> Any:
    """The body as it was received, chunk by chunk (never joined: no second copy), then the socket."""
    chunks.reverse()

    async def replayed() -> dict:
        if chunks:
            body = chunks.pop()
            return {"type": "http.request", "body": body, "more_body": bool(chunks)}
        return await receive()

    return replayed


def read_api_keys(key_file: str | Path | None = None, environ: dict[str, str] | None = None) -> tuple[str, ...]:
    """API keys from a file (one a line, `#` comments) and/or the environment; never argv."""
    environ = os.environ if environ is None else environ
    keys: list[str] = [k.strip() for k in environ.get(API_KEY_ENV, "").split(",") if k.strip()]
    path = key_file or environ.get(API_KEY_FILE_ENV)
    if path:
        for line in Path(path).read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                keys.append(line)
    short = [k for k in keys if len(k) < 16]
    if short:
        raise ValueError(f"{len(short)} API key(s) shorter than 16 characters: use long random keys (openssl rand -hex 32)")
    return tuple(keys)


class TokenBucket:
    """At most `rate` events a second on average, with bursts of `burst` (webcam frames, API keys)."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class ApiKeyMiddleware:
    """Every request but the health probe carries a known key in `X-API-Key` (or as
    `Authorization: Bearer`, or the `api_key` query parameter, for browsers' WebSockets,
    which cannot send headers); each key gets `rate` requests a
    second on average (bursts of `burst`)."""

    # The page, its assets and the API description hold no data: a browser loads them without a key.
    OPEN_PATHS = frozenset({"/", "/health", "/docs", "/openapi.json"})
    OPEN_PREFIXES = ("/static/", "/docs/assets/")

    def __init__(self, app: Any, *, keys: Iterable[str], rate: float, burst: float) -> None:
        self.app = app
        self.keys = tuple(k.encode() for k in keys)
        self.rate = rate
        self.buckets = {k: TokenBucket(rate, burst) for k in self.keys}

    def _match(self, given: str | None) -> bytes | None:
        if not given:
            return None
        given_bytes = given.encode()
        match = None
        for key in self.keys:  # every key compared, in constant time: no early exit
            if hmac.compare_digest(key, given_bytes):
                match = key
        return match

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] not in ("http", "websocket") or path in self.OPEN_PATHS or path.startswith(self.OPEN_PREFIXES):
            return await self.app(scope, receive, send)
        given = header(scope, API_KEY_HEADER.encode()) or _bearer(scope) or _query_key(scope)
        key = self._match(given)
        if key is None:
            error = GatewayError(401, "unauthorized", f"send a valid API key in the {API_KEY_HEADER} header")
        elif not self.buckets[key].take():
            error = GatewayError(429, "rate_limited", f"over {self.rate:g} requests per second for this key", retry_after_s=1)
        else:
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            await receive()  # the connect message
            return await send({"type": "websocket.close", "code": 1008, "reason": error.code})
        await send_error(send, error, [(b"www-authenticate", b"ApiKey")] if error.status == 401 else [])


def _bearer(scope: dict) -> str | None:
    """`Authorization: Bearer <key>`: what Prometheus can send from a file (credentials_file)."""
    scheme, _, value = (header(scope, b"authorization") or "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def _query_key(scope: dict) -> str | None:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("api_key")
    return values[0] if values else None
