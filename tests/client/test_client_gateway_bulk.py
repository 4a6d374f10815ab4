"""The gateway's batch on the real SDK (DeepfakeClient over the fake transport): bulk priority,
the SDK's adaptive limit and retries, and answers per item (issue 17). No server, seconds."""

from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest
from client_fakes import FakeTransport, fake_client, one_face, png_pixel
from PIL import Image

from deepfake_client import OverloadedError
from deepfake_client.client import FANOUT_OVERLOADED_ATTEMPTS
from deepfake_client.retry import RetryPolicy
from deepfake_contract import PRIORITY_BULK, PRIORITY_INTERACTIVE

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from deepfake_client.web import create_app  # noqa: E402

FAST_RETRY = RetryPolicy(initial_backoff_s=0.001, max_backoff_s=0.004)
REFUSED = 13  # the image whose red value is this is always refused


def png(red: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((24, 32, 3), red, np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def files(reds) -> list:
    return [("files", (f"{red}.png", png(red), "image/png")) for red in reds]


def server_taking_two(refused: list):
    """A server that takes 2 requests at a time, refuses the rest, and always refuses image REFUSED."""

    def respond(image: bytes):
        if transport.in_flight > 2 or png_pixel(image) == REFUSED:
            refused.append(png_pixel(image))
            raise OverloadedError("the server is overloaded, retry later: Exceeds maximum queue size")
        time.sleep(0.01)
        return one_face(0.9)

    transport = FakeTransport(respond)
    return transport


def test_a_batch_on_a_busy_server_finishes_and_only_the_refused_image_fails():
    refused: list[int] = []
    transport = server_taking_two(refused)
    reds = [10, 11, 12, REFUSED, 14, 15, 16, 17, 18, 19, 20, 21]
    with fake_client(transport, retry=FAST_RETRY, concurrency=8) as client, \
            TestClient(create_app(client, overlay=None)) as web:
        response = web.post("/api/detect/batch", files=files(reds))
    assert response.status_code == 200, response.text
    body = response.json()
    assert [r["filename"] for r in body["results"]] == [f"{red}.png" for red in reds]
    assert body["fake_count"] == 11 and body["error_count"] == 1
    failed = body["results"][3]
    assert failed["status"] == 503 and failed["error"] == "overloaded" and "overloaded" in failed["detail"]
    assert refused.count(REFUSED) == FANOUT_OVERLOADED_ATTEMPTS  # a bounded budget, then its own error
    assert len(refused) > refused.count(REFUSED)  # the others were refused too, and retried until judged
    assert {priority for _, priority in transport.priorities} == {PRIORITY_BULK}


def test_a_streamed_batch_reports_every_item_then_the_summary():
    refused: list[int] = []
    transport = server_taking_two(refused)
    reds = [30, REFUSED, 31, 32, 33, 34]
    with fake_client(transport, retry=FAST_RETRY, concurrency=8) as client, \
            TestClient(create_app(client, overlay=None)) as web:
        response = web.post("/api/detect/batch?stream=true",
                            files=files(reds) + [("files", ("bad.txt", b"not an image", "text/plain"))])
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["type"] for line in lines] == ["progress"] * 7 + ["summary"]
    assert sorted(line["index"] for line in lines[:-1]) == list(range(7))
    by_index = {line["index"]: line["result"] for line in lines[:-1]}
    assert by_index[1]["error"] == "overloaded" and by_index[6]["status"] == 415
    assert lines[-1]["total"] == 7 and lines[-1]["error_count"] == 2 and lines[-1]["fake_count"] == 5


def test_a_single_image_through_the_gateway_is_interactive():
    transport = FakeTransport(lambda _: one_face(0.2))
    with fake_client(transport) as client, TestClient(create_app(client, overlay=None)) as web:
        response = web.post("/api/detect/image", files={"file": ("a.png", png(40), "image/png")})
    assert response.status_code == 200, response.text
    assert transport.priorities == [("deepfake_detector", PRIORITY_INTERACTIVE)]


def test_a_video_on_a_busy_server_is_judged_and_one_refused_for_good_is_a_503_naming_the_frame(tmp_path):
    from test_client_video import frame_index, write_video

    video = write_video(tmp_path / "clip.mp4", 12).read_bytes()
    refused: list[int] = []
    stubborn = {"frame": None}

    def respond(image: bytes):
        if transport.in_flight > 2 or frame_index(image) == stubborn["frame"]:
            refused.append(frame_index(image))
            raise OverloadedError("the server is overloaded, retry later: Exceeds maximum queue size")
        time.sleep(0.01)
        return one_face(0.9)

    transport = FakeTransport(respond)
    with fake_client(transport, retry=FAST_RETRY, concurrency=8) as client, \
            TestClient(create_app(client, overlay=None)) as web:
        response = web.post("/api/video/detect", files={"file": ("clip.mp4", video, "video/mp4")},
                            data={"max_frames": "12"})
        assert response.status_code == 200, response.text
        assert response.json()["processing_info"]["frames_processed"] == 12 and refused  # refusals absorbed
        stubborn["frame"] = 5
        response = web.post("/api/video/detect", files={"file": ("clip.mp4", video, "video/mp4")},
                            data={"max_frames": "12"})
    assert response.status_code == 503 and response.json()["error"] == "overloaded"
    assert "frame 5 of " in response.json()["detail"] and "still refused after" in response.json()["detail"]
    assert {priority for _, priority in transport.priorities} == {PRIORITY_BULK}
