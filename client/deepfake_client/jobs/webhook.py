"""The completion webhook: a POST of the job's result, signed with HMAC-SHA256, only to hosts on
an allow-list, sent at most once (the job's webhook_state is claimed before sending).

Signature: X-Deepfake-Signature: sha256=<hex of HMAC-SHA256(secret, "<timestamp>." + body)>, with the
timestamp in X-Deepfake-Timestamp (a receiver refuses old timestamps: no replays). Redirects are not
followed (a redirect could lead off the allow-list).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..errors import InvalidInputError

MAX_URL = 2048
TIMEOUT_S = 10.0
ATTEMPTS = 3  # within the one send: a receiver down for a moment still gets it


@dataclass(frozen=True)
class WebhookConfig:
    secret: bytes | None = None
    hosts: frozenset[str] = frozenset()  # host or host:port, lower case

    @classmethod
    def of(cls, secret: str | bytes | None, hosts: Iterable[str]) -> WebhookConfig:
        raw = secret.encode() if isinstance(secret, str) else secret
        return cls(raw or None, frozenset(h.strip().lower() for h in hosts if h.strip()))


def check_url(url: str, config: WebhookConfig) -> str:
    """The URL when it may be called; InvalidInputError why not."""
    if len(url) > MAX_URL:
        raise InvalidInputError(f"the webhook URL is over {MAX_URL} characters")
    if config.secret is None or not config.hosts:
        raise InvalidInputError("webhooks are off: the gateway has no webhook secret and allow-list")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        raise InvalidInputError("the webhook must be an http(s) URL without credentials")
    host = parts.hostname.lower()
    try:
        port = parts.port
    except ValueError as error:
        raise InvalidInputError(f"the webhook URL's port is invalid: {error}") from error
    if host not in config.hosts and (port is None or f"{host}:{port}" not in config.hosts):
        raise InvalidInputError(f"the webhook host {host!r} is not on the gateway's allow-list")
    return url


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(secret: bytes, timestamp: str, body: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def send(url: str, payload: dict[str, Any], config: WebhookConfig) -> str:
    """POSTs the payload; returns a line saying how it went (raises nothing)."""
    try:
        check_url(url, config)
    except InvalidInputError as error:
        return f"not sent: {error}"
    assert config.secret is not None
    body = json.dumps(payload, separators=(",", ":")).encode()
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    last = ""
    for attempt in range(ATTEMPTS):
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-Deepfake-Timestamp": timestamp,
                   "X-Deepfake-Signature": sign(config.secret, timestamp, body), "User-Agent": "deepfake-jobs"}
        connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        connection = connection_class(parts.hostname, parts.port, timeout=TIMEOUT_S)
        try:
            connection.request("POST", target, body=body, headers=headers)
            status = connection.getresponse().status
            if 200 <= status < 300:
                return f"sent: HTTP {status}"
            last = f"HTTP {status}"
            if status < 500:
                break  # the receiver refuses it: trying again will not help
        except (OSError, http.client.HTTPException) as error:
            last = f"{type(error).__name__}: {error}"
        finally:
            connection.close()
        time.sleep(1.0 * (attempt + 1))
    return f"failed: {last}"
