"""C2PA provenance through the gateway on the real Triton server: the sample face, signed at test time
(tests/content_credentials.py), is judged by the face models and reported with its own provenance
state, in the API and the page (at desktop and phone size)."""

from __future__ import annotations

import httpx
import pytest
from content_credentials import make_samples
from live_app import serve_app
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from deepfake_dev import samples as media

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

SIZES = ((1100, 1000), (390, 844))
CASES = {"valid": "valid", "untrusted": "untrusted", "tampered": "tampered", "plain": "none"}
WAIT_S = 300  # a CPU Triton judges an image in about 1.2 s; shared machines are slower


@pytest.fixture(scope="module")
def signed(sample_media):
    return make_samples((sample_media / media.FACE_IMAGE).read_bytes())


@pytest.fixture(scope="module")
def trusting_gateway(deepfake_server, signed):
    """The gateway on the real Triton, trusting the test chain's root."""
    from deepfake_client import DeepfakeClient, ProvenanceReader
    from deepfake_client.web import create_app

    client = DeepfakeClient(deepfake_server.grpc_url, timeout_s=300, provenance=None)
    app = create_app(client, close_client=True, provenance=ProvenanceReader(signed.trust_anchor))
    with serve_app(app, start_timeout_s=60) as url:
        yield url


def test_each_signed_face_is_judged_by_the_models_and_gets_its_state(trusting_gateway, signed):
    with httpx.Client(base_url=f"http://{trusting_gateway}", timeout=600) as http:
        answers = {case: http.post("/api/detect/image", files={"file": (f"{case}.jpg", getattr(signed, case), "image/jpeg")})
                   for case in CASES}
    for case, response in answers.items():
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["provenance"]["state"] == CASES[case], case
        # The face models still ran on every one: the face is found and judged.
        assert body["num_faces"] == 1 and body["prediction"] in ("FAKE", "REAL")
    scores = {case: r.json()["fake_probability"] for case, r in answers.items()}
    # Signing adds a manifest, not pixels: the models score the signed face as the plain one.
    assert scores["valid"] == pytest.approx(scores["plain"], abs=1e-4)
    assert answers["valid"].json()["provenance"]["ai"] == "generated"


def test_the_page_shows_provenance_beside_the_verdict_at_desktop_and_phone_size(browser, trusting_gateway, signed, tmp_path):
    photo = tmp_path / "ai-generated-face.jpg"
    photo.write_bytes(signed.valid)
    try:
        for width, height in SIZES:
            browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                    {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 500})
            browser.get(f"http://{trusting_gateway}/")
            browser.find_element(By.ID, "image-file").send_keys(str(photo))
            WebDriverWait(browser, WAIT_S, poll_frequency=0.3).until(
                lambda b: b.find_element(By.ID, "provenance-badge").get_attribute("data-state") == "valid", "no provenance")
            verdict = browser.find_element(By.ID, "image-verdict").text
            badge = browser.find_element(By.ID, "provenance-badge")
            assert verdict in ("FAKE", "REAL") and badge.text == "C2PA: valid · declared AI-generated"
            assert badge.is_displayed() and browser.find_element(By.ID, "image-provenance").is_displayed()
            overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"the page is {overflow} px wider than {width} px"
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
