"""A FastAPI app served by uvicorn on a free loopback port, in a thread: the one harness of the
gateway tests (tests/web, tests/security)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


@contextmanager
def serve_app(app, start_timeout_s: float = 30.0, **config) -> Iterator[str]:
    """`app` on uvicorn (`config`: more uvicorn.Config options); yields "127.0.0.1:port"."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host=LOOPBACK, port=port, log_level="warning", **config))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the gateway did not start"
        time.sleep(0.02)
    try:
        yield f"{LOOPBACK}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=start_timeout_s)
