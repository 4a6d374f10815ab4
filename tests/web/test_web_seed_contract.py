"""The old frontend's requests, replayed on the gateway: every field it reads is there, with the
seed's type and meaning (lists of model names, the `effort` key, `filename`, 30 frames,
confidence = max(p, 1 - p)). The gateway runs on the fake SDK client (no server, seconds)."""

from __future__ import annotations

import base64
import dataclasses

import pytest
from fastapi.testclient import TestClient
from seed_frontend import REQUESTS, SEED_MODELS, SEED_VIDEO_FRAMES, VERDICTS, Nullable, check, replay
from web_fakes import FakeClient, face_result, image_bytes

from deepfake_client import Label
from deepfake_client.ensemble import EnsembleSettings
from deepfake_client.web import Limits, create_app, seed

BY_NAME = {request.name: request for request in REQUESTS}


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    from deepfake_dev import samples

    video = samples.write_video(tmp_path_factory.mktemp("seed") / "clip.mp4", num_frames=40, fps=10.0)
    return {"image": ("photo.jpg", image_bytes(encoding="JPEG"), "image/jpeg"),
            "video": ("clip.mp4", video.read_bytes(), "video/mp4")}


@pytest.fixture(scope="module")
def web():
    with TestClient(create_app(FakeClient(), limits=Limits(max_ws_fps=100), overlay=None)) as client:
        yield client


@pytest.mark.parametrize("name", [r.name for r in REQUESTS if r.method != "WS"])
def test_every_field_the_seed_frontend_reads_has_its_type(web, media, name):
    request = BY_NAME[name]
    response = replay(web, request, media)
    assert response.status_code == 200, response.text
    assert check(response.json(), request.reads) == []


def test_webcam_frames_sent_as_the_seed_page_sent_them(web, media):
    frame = "data:image/jpeg;base64," + base64.b64encode(media["image"][1]).decode()
    with web.websocket_connect(BY_NAME["webcam"].path) as socket:
        socket.send_text(frame)
        answer = socket.receive_json()
    assert check(answer, BY_NAME["webcam"].reads) == []
    assert answer["confidence"] == pytest.approx(max(answer["fake_probability"], 1 - answer["fake_probability"]))


def test_model_names_are_the_seeds(web, media):
    health = replay(web, BY_NAME["health"], media).json()
    image = replay(web, BY_NAME["image"], media).json()
    assert health["models_loaded"] == list(SEED_MODELS) and health["total_models"] == len(SEED_MODELS)
    assert replay(web, BY_NAME["service"], media).json()["models"] == list(SEED_MODELS)
    assert image["models_used"] == list(SEED_MODELS) and set(image["model_predictions"]) == set(SEED_MODELS)
    # New fields keep the served names, and say which seed key is which.
    assert "effort_clip" in image["faces"][0]["model_probabilities"]
    assert image["ensemble"]["seed_keys"]["effort"] == "effort_clip"


def test_the_answers_mean_what_the_seed_meant(web, media):
    image = replay(web, BY_NAME["image"], media).json()
    assert image["filename"] == "photo.jpg" and image["prediction"] in VERDICTS
    assert image["confidence"] == pytest.approx(max(image["fake_probability"], image["real_probability"]))
    batch = replay(web, BY_NAME["batch"], media).json()
    assert batch["total"] == len(BY_NAME["batch"].files) == batch["fake_count"] + batch["real_count"]
    video = replay(web, BY_NAME["video"], media).json()
    assert video["filename"] == "clip.mp4"
    assert video["processing_info"]["frames_processed"] == SEED_VIDEO_FRAMES == len(video["frame_results"])
    overall = video["overall_result"]
    assert overall["prediction"] in VERDICTS
    assert overall["confidence"] == pytest.approx(max(overall["fake_probability"], 1 - overall["fake_probability"]))


def test_confidence_is_the_distance_from_undecided_not_the_predicted_class_probability():
    """With a calibrated threshold of 0.3, p(fake) 0.4 is FAKE; the seed's confidence is 0.6, not 0.4."""
    settings = EnsembleSettings(weights={"xception": 1.0, "effort_clip": 1.0}, threshold=0.3)
    fake = dataclasses.replace(face_result(0.4), label=Label.FAKE)  # as the combiner labels it at 0.3
    answer = seed.image_response("a.jpg", fake, settings, processing_time=0.1, device="triton")
    assert answer["prediction"] == "FAKE" and answer["fake_probability"] == pytest.approx(0.4)
    assert answer["confidence"] == pytest.approx(0.6)


def test_the_checker_names_what_an_old_client_would_trip_on():
    reads = BY_NAME["health"].reads
    assert check({"status": "healthy", "models_loaded": ["xception"], "total_models": 1, "device": "cpu"}, reads) == []
    problems = check({"status": "healthy", "models_loaded": 4, "total_models": True}, reads)
    assert problems == ["answer.models_loaded: a list expected, got 4", "answer.total_models: int expected, got True",
                        "answer.device: missing"]
    assert check(None, Nullable(float)) == [] and check("x", Nullable(float)) != []
