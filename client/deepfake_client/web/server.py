"""`deepfake web`: the gateway served by uvicorn."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from .limits import DEFAULT_LIMITS, Limits

DEFAULT_HOST = "127.0.0.1"  # loopback unless asked: put a TLS proxy in front for other hosts
DEFAULT_PORT = 8080


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def check_exposure(host: str, api_keys: Iterable[str], insecure_no_auth: bool) -> None:
    """Beyond loopback the gateway needs API keys, unless explicitly told to run open."""
    if not is_loopback(host) and not tuple(api_keys) and not insecure_no_auth:
        raise ValueError(
            f"--host {host} exposes the gateway beyond this machine: give API keys (DEEPFAKE_WEB_API_KEYS, "
            "DEEPFAKE_WEB_API_KEY_FILE or --keys-file) or pass --insecure-no-auth"
        )


def serve(
    client: Any,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    limits: Limits = DEFAULT_LIMITS,
    **options: Any,
) -> None:
    """options: create_app's allowed_origins, api_keys, key_rate and records."""
    import uvicorn

    from .app import create_app

    app = create_app(client, limits=limits, **options)
    # A base64 webcam frame is 4/3 of its bytes; larger messages close the socket (1009).
    uvicorn.run(app, host=host, port=port, ws_max_size=limits.max_ws_frame_bytes * 4 // 3 + 4096, log_level="info")
