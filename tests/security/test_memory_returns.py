"""Memory that comes back (issue 18, item 2), on the real Triton server and the gateway served by
`deepfake web`'s own `serve()` in a process of its own (real uvicorn on 127.0.0.1), so that each
process's resident memory is its own.

- 200 uploads of 19 MiB that Triton refuses (a PNG whose header claims 20,000 x 1 pixels: the
  gateway's header check lets it through, face_detector's size check refuses it, whatever model
  runs in front of face_detector): the gateway's RSS, and Triton's (tritonserver + its python
  stubs), end within a few percent of their level after the first 10.
- 8 uploads that stall mid-body hold memory until the body timeout cuts them off (408); then
  that memory is given back.

Issue 18 measured, before the fixes: gateway 104 -> 1,180 MiB over the 200 uploads, and 476 MiB
held by 8 stalled uploads until their clients hung up.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import pytest
from loopback import LOOPBACK, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

MIB = 1 << 20
UPLOADS = 200
WARM_UP = 10
UPLOAD_BYTES = 19 * MIB
# Bounds on what each loop may take: a slow machine fails the test instead of running on.
UPLOADS_TIMEOUT_S = 600
STALLED = 8
STALLED_BYTES = 48 * MIB  # sent of each stalled video upload before it stops
BODY_IDLE_TIMEOUT_S = 3.0
# Within 5% of the level after the first uploads (issue 18), and at least this many bytes:
# RSS moves by a few MiB with nothing kept (interpreter caches, allocator rounding), which is
# 5% of nothing on a small process.
TOLERANCE = 0.05
SLACK = 8 * MIB

GATEWAY = textwrap.dedent("""
    import sys
    from deepfake_client import DeepfakeClient
    from deepfake_client.web import Limits
    from deepfake_client.web.server import serve
    limits = Limits(body_idle_timeout_s=float(sys.argv[3]), body_timeout_s=60.0)
    serve(DeepfakeClient(sys.argv[1], timeout_s=120), port=int(sys.argv[2]), limits=limits)
""")


def rss(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:"))


def png_claiming(width: int, height: int, size: int) -> bytes:
    """A PNG whose header says width x height, padded with IDAT bytes to `size` bytes in all."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    head = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    end = chunk(b"IEND", b"")
    filler = size - len(head) - len(end) - 12
    return head + chunk(b"IDAT", os.urandom(filler)) + end


def multipart(field: str, filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = "deepfake-memory-test"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def post(address: str, path: str, body: bytes, content_type: str) -> tuple[int, bytes]:
    """One request on its own connection; (status, body)."""
    import http.client

    host, port = address.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=120)
    try:
        connection.request("POST", path, body=body, headers={"Content-Type": content_type})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.fixture(scope="module")
def gateway(deepfake_server):
    """`deepfake web`'s serve() in its own process on the real Triton; yields (process, address)."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", GATEWAY, deepfake_server.grpc_url, str(port), str(BODY_IDLE_TIMEOUT_S)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, process.stderr.read().decode(errors="replace")[-3000:]
        assert time.monotonic() < deadline, "the gateway did not start"
        try:
            socket.create_connection((LOOPBACK, port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    try:
        yield process, f"{LOOPBACK}:{port}"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def within(after: int, before: int) -> bool:
    return after <= before + max(before * TOLERANCE, SLACK)


def test_200_uploads_that_triton_refuses_leave_gateway_and_triton_memory_where_they_were(gateway, deepfake_server):
    process, address = gateway
    body, content_type = multipart("file", "wide.png", png_claiming(20_000, 1, UPLOAD_BYTES))
    started = time.monotonic()
    levels = {}
    for number in range(1, UPLOADS + 1):
        assert time.monotonic() - started < UPLOADS_TIMEOUT_S, f"only {number - 1} uploads in {UPLOADS_TIMEOUT_S} s"
        status, answer = post(address, "/api/detect/image", body, content_type)
        # Refused by Triton (face_detector's size check), not by the gateway, and without a traceback.
        assert status == 422 and b"longest side" in answer and b"Traceback" not in answer, (status, answer[:300])
        if number in (WARM_UP, UPLOADS // 2, UPLOADS):
            levels[number] = rss(process.pid), deepfake_server.footprint()[0]
    (gateway_then, triton_then), (gateway_now, triton_now) = levels[WARM_UP], levels[UPLOADS]
    print(f"\ngateway RSS after {WARM_UP}/{UPLOADS // 2}/{UPLOADS} refused 19 MiB uploads: "
          + " / ".join(f"{g / MIB:.0f}" for g, _ in levels.values()) + " MiB; Triton (server + stubs): "
          + " / ".join(f"{t / MIB:.0f}" for _, t in levels.values()) + f" MiB; {time.monotonic() - started:.0f} s")
    assert within(gateway_now, gateway_then), f"gateway {gateway_then / MIB:.0f} -> {gateway_now / MIB:.0f} MiB"
    assert within(triton_now, triton_then), f"Triton {triton_then / MIB:.0f} -> {triton_now / MIB:.0f} MiB"


def stall(address: str, length: int, sent: int) -> socket.socket:
    """A video upload that declares `length` bytes, sends `sent` of them, then stops."""
    head, content_type = multipart("file", "clip.mp4", b"")
    prefix = head[: head.index(b"\r\n--deepfake-memory-test--")]
    host, port = address.split(":")
    connection = socket.create_connection((host, int(port)), timeout=30)
    connection.sendall((f"POST /api/video/detect HTTP/1.1\r\nHost: {address}\r\nContent-Type: {content_type}\r\n"
                        f"Content-Length: {length}\r\n\r\n").encode() + prefix)
    block = os.urandom(MIB)
    for _ in range(sent // MIB):
        connection.sendall(block)
    return connection


def read_until_closed(connection: socket.socket) -> bytes:
    """What the gateway answers until it closes the connection (a timeout error if it never does)."""
    answer = b""
    for _ in range(64):  # an error answer is a few kB
        chunk = connection.recv(65536)
        if not chunk:
            return answer
        answer += chunk
    raise AssertionError(f"the gateway kept the connection open after {len(answer)} bytes")


def test_stalled_uploads_are_cut_off_by_the_body_timeout_and_their_memory_returns(gateway):
    process, address = gateway
    before = rss(process.pid)
    connections = [stall(address, 90 * MIB, STALLED_BYTES) for _ in range(STALLED)]
    try:
        time.sleep(0.5)
        held = rss(process.pid)
        # The measurement sees the stalled bodies: most of 8 x 48 MiB is held while they stall.
        assert held - before > STALLED * STALLED_BYTES // 2, f"{before / MIB:.0f} -> {held / MIB:.0f} MiB while stalled"
        answers = []
        for connection in connections:  # each is answered 408 and closed by the gateway, not by us
            connection.settimeout(BODY_IDLE_TIMEOUT_S + 30)
            answers.append(read_until_closed(connection))
        assert all(a.startswith(b"HTTP/1.1 408") and b"body_timeout" in a for a in answers), answers
        deadline = time.monotonic() + 10  # the event loop frees them as it finishes each request
        while not within(rss(process.pid), before) and time.monotonic() < deadline:
            time.sleep(0.2)
        after = rss(process.pid)
        print(f"\ngateway RSS {before / MIB:.0f} MiB, {held / MIB:.0f} MiB with {STALLED} stalled uploads, "
              f"{after / MIB:.0f} MiB after the body timeout cut them off")
        assert within(after, before), f"{before / MIB:.0f} -> {after / MIB:.0f} MiB after the stalled uploads were cut off"
    finally:
        for connection in connections:
            connection.close()
