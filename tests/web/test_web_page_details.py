"""The page's first-hour rough edges (issue 19) in headless Chromium, on a gateway over the fake SDK
client (no Triton): calibrated labels, an honest heatmap legend, errors said once, the batch counter
after a failure, seconds on the video axis, tap to enlarge on a phone; and upload limits in MiB."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import serve_client
from fastapi.testclient import TestClient
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from web_fakes import FakeClient, image_bytes

from deepfake_client.errors import ServerUnavailableError
from deepfake_client.web import Limits, create_app
from deepfake_client.web.limits import MIB


class CalibratedClient(FakeClient):
    def ensemble_settings(self):
        return dataclasses.replace(super().ensemble_settings(), threshold=0.3, calibrated=True)


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("page") / "photo.png"
    path.write_bytes(image_bytes(64, 48))
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from deepfake_dev import samples

    return samples.write_video(tmp_path_factory.mktemp("page") / "clip.mp4", num_frames=12, fps=6.0)


def wait(browser, condition, message, timeout_s=30):
    return WebDriverWait(browser, timeout_s, poll_frequency=0.1).until(condition, message)


def open_tab(browser, url, tab):
    browser.get(f"http://{url}/")
    browser.find_element(By.CSS_SELECTOR, f'nav button[data-tab="{tab}"]').click()


def judge_photo(browser, url, photo):
    open_tab(browser, url, "image")
    browser.find_element(By.ID, "image-file").send_keys(str(photo))
    wait(browser, lambda b: b.find_element(By.ID, "image-verdict").text == "FAKE", "no verdict")


@pytest.mark.parametrize("calibrated", [False, True])
def test_consensus_names_a_calibrated_probability_and_leaves_raw_scores_uncoloured(browser, photo, calibrated):
    with serve_client(CalibratedClient() if calibrated else FakeClient()) as url:
        judge_photo(browser, url, photo)
        ensemble = browser.find_element(By.CSS_SELECTOR, "#consensus tr.ensemble td").text
        model_ticks = browser.find_elements(By.CSS_SELECTOR, "#consensus tr:not(.ensemble) .bar s")
        model_colours = {b.value_of_css_property("background-color")
                         for b in browser.find_elements(By.CSS_SELECTOR, "#consensus tr:not(.ensemble) .bar b")}
        note = browser.find_element(By.ID, "consensus-note").text
    if calibrated:
        assert ensemble == "calibrated probability" and "calibrated probability" in note
        assert model_ticks == [] and model_colours == {"rgba(92, 124, 250, 1)"}  # neutral: raw scores
    else:
        assert ensemble == "ensemble" and "weighted mean" in note
        assert len(model_ticks) == 4 and model_colours == {"rgba(201, 42, 42, 1)"}  # FAKE against the threshold


def test_the_heatmap_legend_says_what_the_map_shows(browser):
    with serve_client(FakeClient()) as url:
        browser.get(f"http://{url}/")
        legend = browser.execute_script("return document.querySelector('.legend').textContent")
    assert "decided" not in legend and "not a score" in legend and "evidence for FAKE" in legend


def test_an_error_is_said_once_and_the_batch_counter_says_it_failed(browser, photo):
    with serve_client(FakeClient(error=ServerUnavailableError("cannot reach Triton"))) as url:
        open_tab(browser, url, "image")
        browser.find_element(By.ID, "image-file").send_keys(str(photo))
        wait(browser, lambda b: b.find_element(By.ID, "image-error").text, "no error shown")
        message = browser.find_element(By.ID, "image-error").text
        open_tab(browser, url, "batch")
        browser.find_element(By.ID, "batch-files").send_keys(f"{photo}\n{photo}")
        wait(browser, lambda b: b.find_element(By.ID, "batch-error").text, "no batch error shown")
        count = browser.find_element(By.ID, "batch-count").text
    assert message == "the detector is unavailable: cannot reach Triton"  # no second wording of it
    assert "uploading" not in count and count.startswith("failed")


def test_the_video_axis_is_in_seconds(browser, clip):
    with serve_client(FakeClient()) as url:
        open_tab(browser, url, "video")
        frames = browser.find_element(By.ID, "video-frames")
        frames.clear()
        frames.send_keys("4")
        browser.find_element(By.ID, "video-file").send_keys(str(clip))
        wait(browser, lambda b: b.find_element(By.ID, "video-verdict-line").is_displayed(), "no video verdict")
        labels = [t.text for t in browser.find_elements(By.CSS_SELECTOR, "#timeline text")]
    assert "1.8 s" in labels  # 12 frames at 6 fps: the last frame at 11/6 s


def test_a_tap_enlarges_the_image_on_a_phone_and_another_closes_it(browser, photo):
    size = browser.get_window_size()
    browser.set_window_size(390, 844)
    try:
        with serve_client(FakeClient()) as url:
            judge_photo(browser, url, photo)
            canvas = browser.find_element(By.ID, "image-canvas")
            width = lambda: browser.execute_script("return arguments[0].getBoundingClientRect().width", canvas)  # noqa: E731
            screen = browser.execute_script("return window.innerWidth")
            before = width()
            canvas.click()
            enlarged = width()
            browser.execute_script("arguments[0].click()", canvas)
            after = width()
    finally:
        browser.set_window_size(size["width"], size["height"])
    assert enlarged == screen and before < screen and after == before


def test_upload_limits_are_stated_in_mib_as_documented():
    assert Limits().max_image_bytes == 20 * MIB  # README: "over 20 MiB"
    with TestClient(create_app(FakeClient(), limits=Limits(max_image_bytes=MIB))) as web:
        response = web.post("/api/detect/image", files={"file": ("big.png", b"\0" * (3 * MIB), "image/png")})
    assert response.status_code == 413
    assert response.json()["detail"].endswith("MiB, over the limit of 1 MiB")


def test_the_served_calibration_is_read_from_the_combiner_parameters():
    from deepfake_client.ensemble import EnsembleSettings

    base = {"weights": '{"xception": 1, "f3net": 1}', "threshold": "0.3"}
    assert EnsembleSettings.from_parameters(base).calibrated is False
    assert EnsembleSettings.from_parameters(base | {"calibration": "null"}).calibrated is False
    assert EnsembleSettings.from_parameters(base | {"calibration": '{"method": "platt", "a": 1.2, "b": -0.1}'}).calibrated
