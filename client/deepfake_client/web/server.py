"""`deepfake web`: the gateway served by uvicorn."""

from __future__ import annotations

from typing import Any

import uvicorn

from .app import create_app
from .limits import DEFAULT_LIMITS, Limits

DEFAULT_HOST = "127.0.0.1"  # loopback unless asked: put a TLS proxy in front for other hosts
DEFAULT_PORT = 8080


def serve(client: Any, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, limits: Limits = DEFAULT_LIMITS,
          records: Any = None) -> None:
    app = create_app(client, limits=limits, records=records)
    # A base64 webcam frame is 4/3 of its bytes; larger messages close the socket (1009).
    uvicorn.run(app, host=host, port=port, ws_max_size=limits.max_ws_frame_bytes * 4 // 3 + 4096, log_level="info")
