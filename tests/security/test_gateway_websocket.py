"""The webcam socket: other origins refused, floods and bad frames answered in JSON with the
socket kept open, proper close codes (real uvicorn and a real WebSocket client on 127.0.0.1)."""

from __future__ import annotations

import base64
import json
import time

import pytest
from loopback import serve_app
from web_fakes import FakeClient, image_bytes
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from deepfake_client.web import Limits, create_app

FRAME = base64.b64encode(image_bytes(encoding="JPEG")).decode()
RECV_TIMEOUT_S = 10


class SlowClient(FakeClient):
    """Judges slower than the rate allows frames (as a CPU Triton does): half a second a frame."""

    def detect(self, image: bytes):
        time.sleep(0.5)
        return super().detect(image)


def socket_url(address: str) -> str:
    return f"ws://{address}/api/video/webcam"


def answers(socket, count: int) -> list[dict]:
    return [json.loads(socket.recv(timeout=RECV_TIMEOUT_S)) for _ in range(count)]


def test_an_upgrade_from_another_origin_is_refused():
    app = create_app(FakeClient(), allowed_origins=["https://console.example.org"])
    with serve_app(app) as address:
        for origin in ("http://evil.example", f"http://{address}.evil.example", "null"):
            with pytest.raises(InvalidStatus) as refused:
                connect(socket_url(address), origin=origin, open_timeout=10)
            assert refused.value.response.status_code == 403
        for origin in (f"http://{address}", "https://console.example.org", None):  # own, listed, a script
            with connect(socket_url(address), origin=origin, open_timeout=10) as socket:
                socket.send(FRAME)
                assert answers(socket, 1)[0]["prediction"] == "FAKE"


def test_a_flood_gets_rate_limit_messages_and_the_socket_stays_open():
    with serve_app(create_app(SlowClient(), limits=Limits(max_ws_fps=4))) as address:
        with connect(socket_url(address), open_timeout=10) as socket:
            started = time.monotonic()
            for _ in range(40):
                socket.send(FRAME)
            flood = answers(socket, 40)
            # Answered as they come (not queued behind the judging): 40 frames judged would take 20 s.
            assert time.monotonic() - started < 4
            limited = [a for a in flood if a.get("error") == "rate_limited"]
            assert len(limited) >= 36 and all(a["status"] == 429 for a in limited)
            assert sorted(a["frame"] for a in flood) == list(range(1, 41))  # every frame answered once
            time.sleep(1.1)  # the bucket refills
            socket.send(FRAME)
            assert answers(socket, 1)[0]["prediction"] == "FAKE"  # still open and judging


def test_bad_frames_get_json_errors_and_the_socket_stays_open():
    with serve_app(create_app(FakeClient(), limits=Limits(max_ws_fps=1000))) as address:
        with connect(socket_url(address), open_timeout=10) as socket:
            bad = ['{"frame": 123}', '{"frame": null}', "[1, 2]", '{"frame": "%%%"}', "{not json", b"\x00garbage"]
            for message in bad:
                socket.send(message)
                answer = answers(socket, 1)[0]
                assert answer["status"] in (415, 422) and answer["error"] in ("invalid_frame", "unsupported_media_type")
                assert "Traceback" not in answer["detail"]
            socket.send(json.dumps({"frame": FRAME}))
            assert answers(socket, 1)[0]["prediction"] == "FAKE"


def test_close_codes_1009_for_a_huge_message_and_1013_when_full():
    limits = Limits(max_ws_sessions=1, max_ws_fps=1000)
    with serve_app(create_app(FakeClient(), limits=limits), ws_max_size=64 * 1024) as address:
        with connect(socket_url(address), open_timeout=10) as first:
            with connect(socket_url(address), open_timeout=10) as second:
                assert answers(second, 1)[0]["error"] == "too_many_sessions"
                with pytest.raises(ConnectionClosed) as closed:
                    second.recv(timeout=RECV_TIMEOUT_S)
                assert closed.value.rcvd.code == 1013
            first.send("A" * 100_000)
            with pytest.raises(ConnectionClosed) as closed:
                first.recv(timeout=RECV_TIMEOUT_S)
            assert closed.value.rcvd.code == 1009
