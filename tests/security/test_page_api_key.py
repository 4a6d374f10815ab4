"""The page on a gateway that requires API keys, in headless Chromium (real uvicorn on 127.0.0.1,
an SDK-shaped fake client): it asks for the key once, keeps it for the tab, sends it as X-API-Key
and as the webcam socket's ?api_key=, and asks again when the gateway refuses the key."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from loopback import serve_app
from web_fakes import FakeClient, image_bytes

from deepfake_client.web import create_app

CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT_S = 30
KEY = "page-test-key-" + "7" * 20


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver

    if not (Path(CHROMEDRIVER).exists() and shutil.which("chromium")):
        pytest.fail("needs Debian's chromium and chromium-driver: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,1600",
                 "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"):  # Chromium's test pattern as the camera
        options.add_argument(flag)
    options.binary_location = shutil.which("chromium")
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(WAIT_S)
    yield driver
    driver.quit()


def wait_for(condition, what: str):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"after {WAIT_S} s: {what}")


def test_the_page_asks_for_the_key_once_and_sends_it_with_every_call(browser, tmp_path):
    from selenium.webdriver.common.by import By

    photos = [tmp_path / "first.png", tmp_path / "second.png"]  # a file input fires no change for the same file twice
    for photo in photos:
        photo.write_bytes(image_bytes())
    client = FakeClient()
    find = lambda element_id: browser.find_element(By.ID, element_id)  # noqa: E731
    stored = lambda: browser.execute_script("return sessionStorage.getItem('deepfake-api-key')")  # noqa: E731

    def use_key(key: str) -> None:
        find("key-input").send_keys(key)
        find("key-form").find_element(By.CSS_SELECTOR, "button").click()
        wait_for(lambda: not find("key-form").is_displayed(), "the key form closes")

    with serve_app(create_app(client, api_keys=[KEY], key_rate=50)) as address:
        browser.get(f"http://{address}/")
        wait_for(lambda: find("key-form").is_displayed(), "the page asks for the key")

        # A wrong key: the upload is refused (401), the key forgotten and asked for again.
        use_key("wrong-key-" + "0" * 20)
        find("image-file").send_keys(str(photos[0]))
        wait_for(lambda: find("key-form").is_displayed(), "the page asks again after a refused key")
        assert "refused the API key" in find("key-error").text and stored() is None
        # The gateway's 401 detail, said once (the page no longer repeats the status word).
        assert "API key" in find("image-error").text
        assert client.calls == []

        # The right key: the upload is judged (the header went with it) and the key is kept for the tab.
        use_key(KEY)
        find("image-file").send_keys(str(photos[1]))
        wait_for(lambda: find("image-verdict").text == "FAKE", "a verdict with the right key")
        assert stored() == KEY and client.calls == ["detect"]

        # Asked once: a reload keeps it (sessionStorage), and the form stays closed.
        browser.refresh()
        wait_for(lambda: "ready" in find("health").text, "the page loads again")
        assert not find("key-form").is_displayed() and stored() == KEY

        # The webcam socket carries the key as ?api_key= (the gateway refuses a socket without one).
        find("tab-webcam")  # the section exists
        browser.find_element(By.CSS_SELECTOR, 'nav button[data-tab="webcam"]').click()
        find("webcam-start").click()
        wait_for(lambda: find("webcam-verdict").text in ("FAKE", "REAL", "NO_FACE"), "a webcam verdict")
        find("webcam-stop").click()
        assert client.calls.count("detect") >= 2
