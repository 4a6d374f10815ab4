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


# glibc's mallopt(M_MMAP_THRESHOLD): blocks from this size up get their own mapping, given back
# to the system when freed. Left alone, glibc raises the threshold to the largest block freed
# so far (up to 32 MiB), and an upload's buffers (each a few to 20 MiB) then come from the heap,
# which keeps them after they are freed: measured, 200 refused 19 MiB uploads left the gateway
# 29% larger with this off and within 5% with it on (tests/security/test_memory_returns.py).
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 20


def return_large_blocks_to_the_system() -> bool:
    """Large blocks are mapped on their own and unmapped when freed (glibc); False elsewhere."""
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to set
        return False


def serve(
    client: Any,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    limits: Limits = DEFAULT_LIMITS,
    **options: Any,
) -> None:
    """options: create_app's allowed_origins, api_keys, key_rate, records, provenance and jobs."""
    import uvicorn

    from .app import create_app

    return_large_blocks_to_the_system()
    app = create_app(client, limits=limits, **options)
    # A base64 webcam frame is 4/3 of its bytes; larger messages close the socket (1009).
    uvicorn.run(app, host=host, port=port, ws_max_size=limits.max_ws_frame_bytes * 4 // 3 + 4096, log_level="info")
