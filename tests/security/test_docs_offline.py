"""/docs renders offline in headless Chromium: Swagger UI from the installed swagger-ui-py
assets, under the gateway's CSP, with no request leaving 127.0.0.1."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from loopback import serve_app
from web_fakes import FakeClient

from deepfake_client.web import create_app

CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT_S = 60


@pytest.fixture(scope="module")
def offline_browser():
    from selenium import webdriver

    if not (Path(CHROMEDRIVER).exists() and shutil.which("chromium")):
        pytest.fail("needs Debian's chromium and chromium-driver: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 # Offline: every host but the loopback gateway resolves nowhere.
                 "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):
        options.add_argument(flag)
    options.binary_location = shutil.which("chromium")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(WAIT_S)
    yield driver
    driver.quit()


def test_docs_render_offline_from_installed_assets_under_the_csp(offline_browser):
    from selenium.webdriver.common.by import By

    with serve_app(create_app(FakeClient())) as address:
        offline_browser.get(f"http://{address}/docs")
        deadline = time.monotonic() + WAIT_S
        operations = []
        while not operations and time.monotonic() < deadline:
            operations = offline_browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
            time.sleep(0.2)
        paths = {element.text.replace("\u200b", "") for element in operations}
        assert {"/api/detect/image", "/api/video/detect", "/health"} <= paths
        resources = offline_browser.execute_script("return performance.getEntriesByType('resource').map(r => r.name)")
        assert resources and all(url.startswith(f"http://{address}/") for url in resources), resources
        violations = [e["message"] for e in offline_browser.get_log("browser") if "Content Security Policy" in e["message"]]
        assert violations == []
