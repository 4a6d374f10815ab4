"""The gateway on the real Triton server: a seed-style client (plain HTTP multipart and a
WebSocket) gets seed-shaped answers, and the page does its four jobs in headless Chromium."""

from __future__ import annotations

import base64
import json
import math

import httpx
import pytest

from deepfake_dev import samples

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

SEED_IMAGE_FIELDS = {
    "filename", "prediction", "confidence", "fake_probability", "real_probability", "processing_time",
    "face_detection_confidence", "gradcam", "model_predictions", "models_used", "total_models", "device",
}
MODELS = {"xception", "efficientnet_b4", "f3net", "effort"}  # the seed's keys
VERDICTS = {"FAKE", "REAL"}


@pytest.fixture(scope="module")
def http(gateway_url):
    with httpx.Client(base_url=f"http://{gateway_url}", timeout=600) as client:
        yield client


def test_seed_client_image_answers(http, sample_media):
    face = (sample_media / samples.FACE_IMAGE).read_bytes()
    response = http.post("/api/detect/image", files={"file": ("face.jpg", face, "image/jpeg")},
                         data={"generate_gradcam": "false"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert SEED_IMAGE_FIELDS <= set(body) and body["prediction"] in VERDICTS
    assert set(body["model_predictions"]) == MODELS and body["total_models"] == 4 and len(body["models_used"]) == 4
    assert math.isclose(body["fake_probability"] + body["real_probability"], 1.0, abs_tol=1e-5)
    assert body["num_faces"] == 1 and body["untrained"] is True  # the tests serve demo weights
    # The astronaut's face, where the sample set puts it (within a few pixels).
    box = body["faces"][0]["box"]
    assert all(abs(a - b) < 25 for a, b in zip(box, samples.ASTRONAUT_FACE_BOX))

    no_face = http.post("/api/detect/image", files={"file": ("none.jpg", (sample_media / samples.NO_FACE_IMAGE).read_bytes())})
    assert no_face.json()["prediction"] == "NO_FACE" and no_face.json()["fake_probability"] is None

    invalid = http.post("/api/detect/image", files={"file": ("x.jpg", b"\xff\xd8\xff truncated jpeg")})
    assert invalid.status_code in (415, 422) and invalid.json()["detail"]


def test_seed_client_batch_video_and_webcam(http, gateway_url, sample_media):
    two = (sample_media / samples.TWO_FACES_IMAGE).read_bytes()
    face = (sample_media / samples.FACE_IMAGE).read_bytes()
    batch = http.post("/api/detect/batch", files=[("files", ("two.jpg", two)), ("files", ("face.jpg", face))]).json()
    assert {"results", "total", "fake_count", "real_count", "average_confidence"} <= set(batch)
    assert batch["total"] == 2 and batch["fake_count"] + batch["real_count"] == 2
    assert [r["num_faces"] for r in batch["results"]] == [2, 1]

    video = (sample_media / samples.FACE_VIDEO).read_bytes()
    answer = http.post("/api/video/detect", files={"file": ("face.mp4", video, "video/mp4")}, data={"max_frames": "3"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["processing_info"]["frames_processed"] == 3 and len(body["frame_results"]) == 3
    assert body["overall_result"]["prediction"] in VERDICTS and 0 <= body["overall_result"]["fake_frame_ratio"] <= 1

    from websockets.sync.client import connect

    with connect(f"ws://{gateway_url}/api/video/webcam", open_timeout=30) as socket:
        socket.send(base64.b64encode(face).decode())
        frame = json.loads(socket.recv(timeout=600))
    assert {"prediction", "confidence", "fake_probability", "processing_time"} <= set(frame)
    assert frame["prediction"] in VERDICTS and frame["num_faces"] == 1


def test_a_batch_of_twelve_is_judged_item_by_item(http, sample_media):
    """Issue 17: a 12-image batch failed as a whole at the first refusal; it now goes through the
    SDK's fan-out (adaptive limit, jittered retries) and answers each image."""
    names = [samples.FACE_IMAGE, samples.NO_FACE_IMAGE, samples.TWO_FACES_IMAGE] * 4
    files = [("files", (f"{i}-{name}", (sample_media / name).read_bytes())) for i, name in enumerate(names)]
    response = http.post("/api/detect/batch", files=files)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == 12 and body["error_count"] == 0, [r.get("detail") for r in body["results"]]
    assert [r["num_faces"] for r in body["results"]] == [1, 0, 2] * 4


def test_health_and_metrics(http):
    health = http.get("/health").json()
    assert health["status"] == "healthy" and len(health["models_loaded"]) == 4 and health["untrained"] is True
    assert "deepfake_gateway_requests_total" in http.get("/metrics").text


# The page in headless Chromium.


def _open(browser, gateway_url, tab: str):
    from selenium.webdriver.common.by import By

    browser.get(f"http://{gateway_url}/")
    browser.find_element(By.CSS_SELECTOR, f'nav button[data-tab="{tab}"]').click()
    return By


def _wait(browser, condition, message: str, timeout_s: float = 300):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout_s, poll_frequency=0.2).until(condition, message)


def _canvas_pixel(browser, x: int, y: int) -> list[int]:
    script = "const c = document.getElementById('image-canvas').getContext('2d');" \
             "return Array.from(c.getImageData(arguments[0], arguments[1], 1, 1).data)"
    return browser.execute_script(script, x, y)


def test_page_image_shows_the_verdict_and_the_face_box(browser, gateway_url, sample_media):
    by = _open(browser, gateway_url, "image")
    browser.find_element(by.ID, "image-file").send_keys(str(sample_media / samples.FACE_IMAGE))
    _wait(browser, lambda b: b.find_element(by.ID, "image-verdict").text in VERDICTS, "no verdict shown")
    assert browser.find_element(by.ID, "image-verdict").is_displayed()
    assert browser.find_element(by.ID, "image-canvas").get_attribute("data-faces") == "1"
    # The box is drawn in the verdict's colour on the face's edge, not the photo's pixel.
    x1, y1, x2, y2 = samples.ASTRONAUT_FACE_BOX
    rows = browser.find_elements(by.CSS_SELECTOR, "#consensus tr")
    assert len(rows) == 1 + 4 + 1  # header, the four models, the ensemble
    box_pixels = [_canvas_pixel(browser, int(x), int((y1 + y2) / 2)) for x in range(int(x1) - 25, int(x1) + 25)]
    colours = {(201, 42, 42), (43, 138, 62)}  # FAKE red, REAL green
    assert any(tuple(p[:3]) in colours for p in box_pixels), "no face box drawn on the canvas"
    assert "threshold" in browser.find_element(by.ID, "consensus-note").text


def test_gradcam_through_the_explainer(explaining_gateway_url, sample_media):
    face = (sample_media / samples.FACE_IMAGE).read_bytes()
    with httpx.Client(base_url=f"http://{explaining_gateway_url}", timeout=900) as http:
        response = http.post("/api/detect/image", files={"file": ("face.jpg", face)}, data={"generate_gradcam": "true"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert base64.b64decode(body["gradcam"]).startswith(b"\x89PNG") and body["num_faces"] == 1
    assert body["prediction"] in VERDICTS and set(body["model_predictions"]) == MODELS


def test_page_image_heatmap_overlay(browser, explaining_gateway_url, sample_media):
    by = _open(browser, explaining_gateway_url, "image")
    browser.find_element(by.ID, "image-gradcam").click()
    browser.find_element(by.ID, "image-file").send_keys(str(sample_media / samples.FACE_IMAGE))
    _wait(browser, lambda b: b.find_element(by.ID, "heatmap-controls").is_displayed(), "no heatmap controls shown", 900)
    assert browser.find_element(by.CSS_SELECTOR, ".legend").is_displayed()
    assert browser.find_element(by.ID, "heatmap-toggle").is_selected()  # the overlay is shown first
    overlay_width = browser.execute_script("return document.getElementById('image-canvas').width")
    browser.find_element(by.ID, "heatmap-toggle").click()  # back to the photo with the boxes
    photo_width = browser.execute_script("return document.getElementById('image-canvas').width")
    assert photo_width == 512 and overlay_width > 0


def test_page_batch_progress_reaches_the_end(browser, gateway_url, sample_media):
    by = _open(browser, gateway_url, "batch")
    names = [samples.FACE_IMAGE, samples.NO_FACE_IMAGE, samples.TWO_FACES_IMAGE]
    browser.find_element(by.ID, "batch-files").send_keys("\n".join(str(sample_media / n) for n in names))
    _wait(browser, lambda b: b.find_element(by.ID, "batch-progress").get_attribute("value") == "1"
          and b.find_elements(by.CSS_SELECTOR, "#batch-stats dd"), "the batch did not finish")
    assert browser.find_element(by.ID, "batch-count").text == "3 / 3"
    stats = dict(zip([e.text for e in browser.find_elements(by.CSS_SELECTOR, "#batch-stats dt")],
                     [e.text for e in browser.find_elements(by.CSS_SELECTOR, "#batch-stats dd")]))
    assert stats["images"] == "3" and stats["no face"] == "1" and int(stats["fake"]) + int(stats["real"]) == 2
    assert len(browser.find_elements(by.CSS_SELECTOR, "#batch-results tr")) == 4


def test_page_video_draws_the_timeline(browser, gateway_url, sample_media):
    by = _open(browser, gateway_url, "video")
    frames = browser.find_element(by.ID, "video-frames")
    frames.clear()
    frames.send_keys("4")
    browser.find_element(by.ID, "video-file").send_keys(str(sample_media / samples.FACE_VIDEO))
    _wait(browser, lambda b: b.find_element(by.ID, "video-verdict").text in VERDICTS, "no video verdict")
    assert browser.find_element(by.ID, "video-verdict-line").is_displayed()
    assert len(browser.find_elements(by.CSS_SELECTOR, "#timeline circle.point")) == 4
    assert browser.find_element(by.ID, "video-verdict").text in VERDICTS
    assert browser.find_element(by.ID, "video-count").text == "4 / 4 frames"


def test_page_webcam_results_arrive(browser, gateway_url):
    by = _open(browser, gateway_url, "webcam")
    browser.find_element(by.ID, "webcam-start").click()
    try:
        _wait(browser, lambda b: b.find_elements(by.CSS_SELECTOR, "#webcam-chart circle.point")
              and len(b.find_elements(by.CSS_SELECTOR, "#webcam-chart circle.point")) >= 2, "no live results")
        assert browser.find_element(by.ID, "webcam-verdict").text in VERDICTS | {"NO FACE"}
        assert "frames" in browser.find_element(by.ID, "webcam-summary").text
        assert not browser.find_element(by.ID, "webcam-error").is_displayed()
    finally:
        browser.find_element(by.ID, "webcam-stop").click()


def test_page_fits_a_phone_screen(browser, gateway_url, sample_media):
    size = browser.get_window_size()
    browser.set_window_size(390, 844)
    try:
        by = _open(browser, gateway_url, "image")
        browser.find_element(by.ID, "image-file").send_keys(str(sample_media / samples.FACE_IMAGE))
        _wait(browser, lambda b: b.find_element(by.ID, "image-verdict").text in VERDICTS, "no verdict shown")
        for tab in ("image", "batch", "video", "webcam"):
            browser.find_element(by.CSS_SELECTOR, f'nav button[data-tab="{tab}"]').click()
            overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"the {tab} tab is {overflow} px wider than a phone's screen"
    finally:
        browser.set_window_size(size["width"], size["height"])


@pytest.mark.parametrize("name", ["service", "health", "image", "batch"])
def test_seed_frontend_requests_read_fine_from_the_real_server(http, sample_media, name):
    from seed_frontend import REQUESTS, check, replay

    request = next(r for r in REQUESTS if r.name == name)
    media = {"image": ("face.jpg", (sample_media / samples.FACE_IMAGE).read_bytes(), "image/jpeg")}
    response = replay(http, request, media)
    assert response.status_code == 200, response.text
    assert check(response.json(), request.reads) == []
