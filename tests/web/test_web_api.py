"""The gateway on a fake SDK client: the seed's request shapes and fields, NO_FACE, limits,
typed JSON errors, the WebSocket, NDJSON progress and metrics (no server, seconds)."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.formparsers import MultiPartParser
from starlette.websockets import WebSocketDisconnect
from web_fakes import (
    NO_FACE_WIDTH,
    THRESHOLD,
    WEIGHTS,
    ExplainingClient,
    FakeClient,
    fake_overlay,
    image_bytes,
)

from deepfake_client.errors import (
    DeepfakeError,
    InvalidImageError,
    ModelNotReadyError,
    RequestTimeoutError,
    ServerError,
    ServerUnavailableError,
)
from deepfake_client.web import Limits, create_app

# The seed's response fields (issue 12), which existing clients read.
SEED_IMAGE_FIELDS = {
    "filename", "prediction", "confidence", "fake_probability", "real_probability", "processing_time",
    "face_detection_confidence", "gradcam", "model_predictions", "models_used", "total_models", "device",
}
SEED_BATCH_FIELDS = {"results", "total", "fake_count", "real_count", "average_confidence"}
SEED_VIDEO_FIELDS = {"frame_results", "overall_result", "processing_info"}
SEED_WEBCAM_FIELDS = {"prediction", "confidence", "fake_probability", "processing_time"}


def gateway(client=None, limits: Limits | None = None, overlay=None) -> TestClient:
    return TestClient(create_app(client or FakeClient(), limits=limits or Limits(), overlay=overlay))


def upload(name: str = "photo.png", data: bytes | None = None, content_type: str = "image/png"):
    return {"file": (name, image_bytes() if data is None else data, content_type)}


def test_root_answers_the_seed_fields_as_json_and_the_page_to_a_browser():
    with gateway() as web:
        body = web.get("/").json()
        assert set(body) == {"service", "version", "status", "models"}
        assert body["status"] == "running" and body["models"] == ["xception", "efficientnet_b4", "f3net", "effort"]
        page = web.get("/", headers={"Accept": "text/html,application/xhtml+xml"})
        assert page.headers["content-type"].startswith("text/html") and "/static/app.js" in page.text
        for asset in ("/static/app.js", "/static/style.css"):
            assert web.get(asset).status_code == 200
        assert "/api/detect/image" in web.get("/openapi.json").json()["paths"]


def test_health_has_the_seed_fields_and_says_503_when_not_ready():
    with gateway(FakeClient(untrained=("xception",))) as web:
        response = web.get("/health")
        body = response.json()
        assert response.status_code == 200
        assert {"status", "models_loaded", "total_models", "device"} <= set(body)
        assert body["status"] == "healthy" and len(body["models_loaded"]) == body["total_models"] == 4
        assert body["untrained"] is True and body["untrained_models"] == ["xception"]
    with gateway(FakeClient(ready=False)) as web:
        response = web.get("/health")
        assert response.status_code == 503 and response.json()["status"] == "unhealthy"
        assert response.json()["models_loaded"] == []


def test_image_answer_has_the_seed_fields_and_meanings():
    with gateway() as web:
        response = web.post("/api/detect/image", files=upload(), data={"generate_gradcam": "false"})
    assert response.status_code == 200
    body = response.json()
    assert SEED_IMAGE_FIELDS <= set(body)
    assert body["filename"] == "photo.png" and body["prediction"] == "FAKE"
    assert body["fake_probability"] == pytest.approx(0.8) and body["real_probability"] == pytest.approx(0.2)
    assert body["confidence"] == pytest.approx(0.8)  # the predicted class's probability
    assert body["face_detection_confidence"] == pytest.approx(0.99) and body["gradcam"] is None
    assert body["model_predictions"]["f3net"] == {"fake_prob": 0.6, "real_prob": 0.4, "prediction": "FAKE"}
    assert body["model_predictions"]["xception"]["prediction"] == "FAKE"
    assert set(body["model_predictions"]) == {"xception", "efficientnet_b4", "f3net", "effort"}  # the seed's keys
    assert len(body["models_used"]) == 4 and body["total_models"] == 4 and body["device"] == "triton"
    # New fields.
    assert body["num_faces"] == 1 and body["faces"][0]["box"] == [4.0, 5.0, 30.0, 40.0]
    assert body["faces"][0]["model_probabilities"]["effort_clip"] == pytest.approx(0.95)
    assert body["image_size"] == {"width": 64, "height": 48}
    assert body["ensemble"]["weights"] == WEIGHTS and body["ensemble"]["threshold"] == THRESHOLD
    assert body["untrained"] is False


def test_an_uncertain_image_keeps_the_seed_prediction_and_says_uncertain_beside_it():
    with gateway(FakeClient(band=(0.4, 0.85))) as web:
        body = web.post("/api/detect/image", files=upload()).json()
        batch = web.post("/api/detect/batch", files=[("files", ("a.png", image_bytes(), "image/png"))]).json()
        health = web.get("/health").json()
    assert body["prediction"] == "FAKE" and body["confidence"] == pytest.approx(0.8)  # the seed's, unchanged
    assert body["verdict"] == "UNCERTAIN" and body["faces"][0]["verdict"] == "UNCERTAIN"
    assert body["faces"][0]["prediction"] == "FAKE"
    assert body["flags"] == ["upscaled"] and body["faces"][0]["flags"] == ["small_face"]
    assert body["ensemble"]["uncertain_band"] == {"low": 0.4, "high": 0.85}
    assert health["uncertain_band"] == {"low": 0.4, "high": 0.85}
    assert batch["uncertain_count"] == 1 and batch["fake_count"] == 1  # the seed's count keeps the prediction


def test_without_a_band_the_verdict_is_the_prediction():
    with gateway() as web:
        body = web.post("/api/detect/image", files=upload()).json()
    assert body["verdict"] == body["prediction"] == "FAKE" and body["ensemble"]["uncertain_band"] is None
    assert body["flags"] == [] and body["faces"][0]["flags"] == []


def test_no_face_is_its_own_prediction_with_null_scores():
    with gateway() as web:
        body = web.post("/api/detect/image", files=upload(data=image_bytes(width=NO_FACE_WIDTH))).json()
    assert body["prediction"] == "NO_FACE" and body["num_faces"] == 0 and body["faces"] == []
    for field in ("confidence", "fake_probability", "real_probability", "face_detection_confidence"):
        assert body[field] is None, field
    assert body["model_predictions"] == {} and body["models_used"] == []


def test_gradcam_without_the_explanations_api_is_a_clear_501():
    with gateway(FakeClient(), overlay=fake_overlay) as web:
        response = web.post("/api/detect/image", files=upload(), data={"generate_gradcam": "true"})
    assert response.status_code == 501
    assert response.json()["error"] == "gradcam_unavailable" and response.json()["detail"].startswith("gradcam unavailable")


def test_gradcam_without_an_explainer_on_the_server_is_a_clear_501():
    class NoExplainer(ExplainingClient):
        def explain(self, image):
            raise ModelNotReadyError("model 'deepfake_explainer' is not ready on the server: unknown model")

    with gateway(NoExplainer(), overlay=fake_overlay) as web:
        response = web.post("/api/detect/image", files=upload(), data={"generate_gradcam": "true"})
    assert response.status_code == 501 and "deepfake_explainer" in response.json()["detail"]


@pytest.mark.parametrize("how", ["form", "query"])
def test_gradcam_maps_the_explanation_and_its_overlay(how):
    client = ExplainingClient()
    with gateway(client, overlay=fake_overlay) as web:
        if how == "form":
            response = web.post("/api/detect/image", files=upload(), data={"generate_gradcam": "true"})
        else:
            response = web.post("/api/detect/image?generate_gradcam=true", files=upload())
    assert response.status_code == 200, response.text
    body = response.json()
    assert client.calls == ["explain"]  # one call: the explanation carries the detection
    assert base64.b64decode(body["gradcam"]) == b"\x89PNG overlay of %d bytes" % len(image_bytes())
    assert body["fake_probability"] == pytest.approx(0.9)  # from explanation.detection


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"", 422, "empty"),
        (b"this is not an image at all", 415, "unsupported_media_type"),
        (image_bytes(200, 200), 413, "too_large"),  # over the pixel limit below
    ],
)
def test_bad_images_get_clear_json_errors(data, status, code):
    limits = Limits(max_image_pixels=100 * 100)
    client = FakeClient()
    with gateway(client, limits) as web:
        response = web.post("/api/detect/image", files=upload(data=data))
    assert response.status_code == status and response.json()["error"] == code
    assert response.json()["detail"]
    assert client.calls == []  # refused before Triton


def test_an_upload_over_the_size_limit_is_refused_before_it_is_read():
    limits = Limits(max_image_bytes=10_000)
    with gateway(FakeClient(), limits) as web:
        response = web.post("/api/detect/image", files=upload(data=b"x" * 2_000_000))
    assert response.status_code == 413 and "over the limit" in response.json()["detail"]


def test_a_missing_file_is_a_readable_422():
    with gateway() as web:
        response = web.post("/api/detect/image", data={"generate_gradcam": "false"})
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request" and "file" in response.json()["detail"]


class OverloadedError(ServerUnavailableError):
    """Like the SDK's overload error (the client branch names it; matched by name)."""


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (ServerUnavailableError("connection refused"), 503, "unavailable"),
        (ModelNotReadyError("not ready"), 503, "unavailable"),
        (OverloadedError("queue full"), 503, "overloaded"),
        (ServerError("exceeds maximum queue size", status="StatusCode.RESOURCE_EXHAUSTED"), 503, "overloaded"),
        (InvalidImageError("the server rejected the input: truncated"), 422, "invalid_input"),
        (RequestTimeoutError("no answer"), 504, "timeout"),
        (ServerError("boom"), 502, "server_error"),
    ],
)
def test_sdk_errors_map_to_http_statuses(error: DeepfakeError, status: int, code: str):
    with gateway(FakeClient(error=error)) as web:
        response = web.post("/api/detect/image", files=upload())
    assert response.status_code == status and response.json()["error"] == code
    if status == 503:
        assert int(response.headers["Retry-After"]) > 0
    assert "Traceback" not in response.text


def test_batch_has_the_seed_fields_counts_and_per_file_errors():
    files = [
        ("files", ("a.png", image_bytes(), "image/png")),
        ("files", ("b.png", image_bytes(width=NO_FACE_WIDTH), "image/png")),
        ("files", ("c.txt", b"not an image", "text/plain")),
        ("files", ("d.png", image_bytes(), "image/png")),
    ]
    with gateway() as web:
        body = web.post("/api/detect/batch", files=files).json()
    assert SEED_BATCH_FIELDS <= set(body)
    assert [r["filename"] for r in body["results"]] == ["a.png", "b.png", "c.txt", "d.png"]
    assert body["total"] == 4 and body["fake_count"] == 2 and body["real_count"] == 0
    assert body["no_face_count"] == 1 and body["error_count"] == 1
    assert body["average_confidence"] == pytest.approx(0.8)
    assert body["results"][2]["status"] == 415 and body["results"][0]["prediction"] == "FAKE"


def test_batch_streams_progress_to_the_end_then_the_summary():
    files = [("files", (f"{i}.png", image_bytes(), "image/png")) for i in range(5)]
    with gateway() as web:
        response = web.post("/api/detect/batch?stream=true", files=files)
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert [line["done"] for line in lines[:-1]] == [1, 2, 3, 4, 5] and {line["total"] for line in lines[:-1]} == {5}
    assert lines[-1]["type"] == "summary" and lines[-1]["total"] == 5 and lines[-1]["fake_count"] == 5


def test_batch_limits_and_unavailable_server():
    files = [("files", (f"{i}.png", image_bytes(), "image/png")) for i in range(3)]
    with gateway(limits=Limits(max_batch_files=2)) as web:
        response = web.post("/api/detect/batch", files=files)
    assert response.status_code == 413 and response.json()["error"] == "too_many_files"
    with gateway(FakeClient(error=ServerUnavailableError("down"))) as web:
        assert web.post("/api/detect/batch", files=files).status_code == 503


@pytest.fixture(scope="module")
def video_file(tmp_path_factory) -> Path:
    from deepfake_dev import samples

    return samples.write_video(tmp_path_factory.mktemp("video") / "clip.mp4", num_frames=12, fps=6.0)


def test_video_answer_has_the_seed_fields_and_its_temporary_file_is_removed(video_file):
    client = FakeClient()
    with gateway(client) as web:
        response = web.post("/api/video/detect", files=upload("clip.mp4", video_file.read_bytes(), "video/mp4"),
                            data={"max_frames": "4"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert SEED_VIDEO_FIELDS <= set(body)
    assert {"prediction", "confidence", "fake_frame_ratio"} <= set(body["overall_result"])
    assert {"total_frames", "frames_processed", "processing_time", "processing_fps"} <= set(body["processing_info"])
    assert body["processing_info"]["total_frames"] == 12 and body["processing_info"]["frames_processed"] == 4
    assert [f["frame"] for f in body["frame_results"]] == sorted(f["frame"] for f in body["frame_results"])
    assert all(f["prediction"] in ("FAKE", "REAL") for f in body["frame_results"])
    assert len(client.video_paths) == 1 and not os.path.exists(client.video_paths[0])


def test_video_streams_each_frame_then_the_result(video_file):
    with gateway() as web:
        response = web.post("/api/video/detect?stream=true&max_frames=6",
                            files=upload("clip.mp4", video_file.read_bytes(), "video/mp4"))
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert lines[0]["type"] == "start" and lines[0]["total_frames"] == 12
    progress = [line for line in lines if line["type"] == "progress"]
    assert [p["done"] for p in progress] == list(range(1, 7)) and progress[-1]["total"] == 6
    assert lines[-1]["type"] == "result" and lines[-1]["processing_info"]["frames_processed"] == 6


def test_video_limits_and_bad_videos(video_file, tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))  # where the gateway's temporary copies go
    data = video_file.read_bytes()
    with gateway(limits=Limits(max_video_frames=8, max_video_seconds=1.0)) as web:
        too_many = web.post("/api/video/detect", files=upload("clip.mp4", data, "video/mp4"), data={"max_frames": "9"})
        too_long = web.post("/api/video/detect", files=upload("clip.mp4", data, "video/mp4"), data={"max_frames": "2"})
        not_video = web.post("/api/video/detect", files=upload("clip.mp4", b"garbage" * 100, "video/mp4"),
                             data={"max_frames": "2"})
    assert too_many.status_code == 422 and "max_frames" in too_many.json()["detail"]
    assert too_long.status_code == 413 and "seconds" in too_long.json()["detail"]
    assert not_video.status_code == 415 and not_video.json()["detail"] == (
        "'clip.mp4' cannot be read: not a supported video: only MP4/MOV, WebM/Matroska or AVI files are read")
    assert list(tmp_path.iterdir()) == []  # every temporary copy removed


def test_webcam_answers_seed_fields_for_base64_and_data_urls():
    frame = base64.b64encode(image_bytes(encoding="JPEG")).decode()
    with gateway(limits=Limits(max_ws_fps=100)) as web, web.websocket_connect("/api/video/webcam") as socket:
        socket.send_text(frame)
        first = socket.receive_json()
        socket.send_text("data:image/jpeg;base64," + frame)
        second = socket.receive_json()
        socket.send_text("%%% not base64 %%%")
        bad = socket.receive_json()
        socket.send_text(json.dumps({"frame": frame}))
        after_error = socket.receive_json()
    for answer in (first, second, after_error):
        assert SEED_WEBCAM_FIELDS <= set(answer) and answer["prediction"] == "FAKE"
        assert answer["num_faces"] == 1 and answer["threshold"] == THRESHOLD
    assert bad["error"] == "invalid_frame" and bad["status"] == 422


def test_webcam_frame_rate_and_sessions_are_limited():
    frame = base64.b64encode(image_bytes(encoding="JPEG")).decode()
    limits = Limits(max_ws_fps=0.01, max_ws_sessions=1)  # one frame, then nothing for 100 s
    with gateway(limits=limits) as web, web.websocket_connect("/api/video/webcam") as socket:
        socket.send_text(frame)
        assert socket.receive_json()["prediction"] == "FAKE"
        socket.send_text(frame)
        assert socket.receive_json()["error"] == "rate_limited"
        with web.websocket_connect("/api/video/webcam") as second:
            refused = second.receive_json()
            assert refused["error"] == "too_many_sessions" and refused["status"] == 503
            with pytest.raises(WebSocketDisconnect) as closed:
                second.receive_json()
            assert closed.value.code == 1013
        metrics = web.get("/metrics").text
    assert 'deepfake_gateway_webcam_frames_total{outcome="rate_limited"} 1.0' in metrics
    assert 'deepfake_gateway_webcam_frames_total{outcome="refused_session"} 1.0' in metrics


def test_metrics_count_requests_by_route_and_status():
    with gateway() as web:
        web.post("/api/detect/image", files=upload())
        web.post("/api/detect/image", files=upload(data=b"nope"))
        text = web.get("/metrics").text
    assert 'deepfake_gateway_requests_total{method="POST",route="/api/detect/image",status="200"} 1.0' in text
    assert 'deepfake_gateway_requests_total{method="POST",route="/api/detect/image",status="415"} 1.0' in text
    assert 'deepfake_gateway_predictions_total{prediction="FAKE"} 1.0' in text
    assert "deepfake_gateway_request_duration_seconds_bucket" in text


def test_creating_an_app_changes_no_process_wide_setting():
    """Starlette's spool size is a class attribute, shared by every app in the process."""
    before = MultiPartParser.spool_max_size
    create_app(FakeClient(), limits=Limits(max_video_bytes=512 << 20), overlay=None)
    assert MultiPartParser.spool_max_size == before


def test_an_upload_larger_than_the_spool_size_is_judged():
    with gateway() as web:
        data = upload()["file"][1] + b"\0" * (MultiPartParser.spool_max_size + 1)  # trailing bytes: still the image
        response = web.post("/api/detect/image", files={"file": ("big.png", data, "image/png")})
    assert response.status_code == 200, response.text
