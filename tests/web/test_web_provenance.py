"""C2PA provenance in the gateway's answer, its records and the page (headless Chromium), on the fake
SDK client: images signed at test time (tests/content_credentials.py) come back valid, untrusted,
tampered, none or unreadable, beside a verdict they never change. Saves docs/images/web-provenance.png
(desktop) and docs/images/web-provenance-phone.png (390x844)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from content_credentials import make_samples
from fastapi.testclient import TestClient
from live_app import serve_app
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from web_fakes import FakeClient

from deepfake_client import ProvenanceReader
from deepfake_client.records.gateway import GatewayRecords
from deepfake_client.records.store import RecordStore
from deepfake_client.web import create_app

IMAGES = Path(__file__).parents[2] / "docs" / "images"
SCREENSHOTS = {"web-provenance.png": (1100, 1000), "web-provenance-phone.png": (390, 844)}
CASES = {"valid": "valid", "untrusted": "untrusted", "tampered": "tampered", "plain": "none", "unreadable": "unreadable"}


@pytest.fixture(scope="module")
def samples():
    return make_samples()


def app(samples, **options):
    return create_app(FakeClient(), provenance=ProvenanceReader(samples.trust_anchor), **options)


def upload(name: str, data: bytes) -> dict:
    return {"file": (f"{name}.jpg", data, "image/jpeg")}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_case_gets_its_state_beside_an_unchanged_verdict(samples, case):
    with TestClient(app(samples)) as web:
        body = web.post("/api/detect/image", files=upload(case, getattr(samples, case))).json()
    provenance = body["provenance"]
    assert provenance["state"] == CASES[case]
    assert body["prediction"] == "FAKE" and body["fake_probability"] == pytest.approx(0.8)  # the models' alone
    if case == "valid":
        assert provenance["signer"] == samples.trusted_signer and provenance["claim_generator"] == "test-generator 1.0"
        assert provenance["ai"] == "generated" and provenance["ai_generated"] is True
        assert provenance["summary"].startswith("Declared AI-generated")
    elif case == "untrusted":
        assert provenance["ai"] == "edited" and provenance["signer"] == "Unknown Test Signer"
    elif case == "tampered":
        assert "dataHash.mismatch" in provenance["detail"]
    elif case == "unreadable":  # the library's error is a state with its reason, never a 500
        assert "JUMB" in provenance["detail"] and provenance["signer"] is None
    else:
        assert provenance["signer"] is None and provenance["ai"] is None


def test_batch_items_carry_their_own_state(samples):
    files = [("files", (f"{name}.jpg", getattr(samples, name), "image/jpeg")) for name in ("valid", "tampered", "plain")]
    with TestClient(app(samples)) as web:
        body = web.post("/api/detect/batch", files=files).json()
    assert [r["provenance"]["state"] for r in body["results"]] == ["valid", "tampered", "none"]


def test_the_gateway_without_provenance_answers_null(samples):
    with TestClient(create_app(FakeClient(), provenance=None)) as web:
        body = web.post("/api/detect/image", files=upload("valid", samples.valid)).json()
    assert body["provenance"] is None and body["prediction"] == "FAKE"


def test_records_hold_the_state(samples, tmp_path):
    records = GatewayRecords(RecordStore(f"sqlite:///{tmp_path / 'r.sqlite'}"))
    with TestClient(app(samples, records=records)) as web:
        for case in CASES:
            assert web.post("/api/detect/image", files=upload(case, getattr(samples, case))).status_code == 200
        assert records.writer.flush(30)
        listed = web.get("/api/history", params={"limit": 10}).json()["records"]
    assert sorted(r["provenance"] for r in listed) == sorted(CASES.values())


# The page


def wait(browser, condition, message, timeout_s=30):
    return WebDriverWait(browser, timeout_s, poll_frequency=0.1).until(condition, message)


@pytest.fixture(scope="module")
def sample_files(samples, tmp_path_factory):
    return samples.write(tmp_path_factory.mktemp("provenance"))


def test_the_page_shows_each_state_beside_the_verdict(browser, samples, sample_files):
    seen = {}
    with serve_app(app(samples), start_timeout_s=60) as url:
        browser.get(f"http://{url}/")
        for case, path in sample_files.items():
            browser.find_element(By.ID, "image-file").send_keys(str(path))
            wait(browser, lambda b, c=CASES[case]: b.find_element(By.ID, "provenance-badge").get_attribute("data-state") == c,
                 f"no provenance state for {case}")
            seen[case] = {
                "verdict": browser.find_element(By.ID, "image-verdict").text,
                "badge": browser.find_element(By.ID, "provenance-badge").text,
                "summary": browser.find_element(By.ID, "provenance-summary").text,
                "fields": browser.find_element(By.ID, "provenance-fields").text,
            }
            browser.find_element(By.ID, "image-file").clear()
    assert {c: s["verdict"] for c, s in seen.items()} == {c: "FAKE" for c in CASES}  # the models' verdict, unchanged
    assert seen["valid"]["badge"] == "C2PA: valid · declared AI-generated"
    assert seen["valid"]["summary"].startswith("Declared AI-generated") and samples.trusted_signer in seen["valid"]["fields"]
    assert seen["untrusted"]["badge"] == "C2PA: untrusted signer · declared AI-edited"
    assert seen["tampered"]["badge"].startswith("C2PA: tampered") and "dataHash.mismatch" in seen["tampered"]["fields"]
    assert seen["plain"]["badge"] == "C2PA: none" and seen["plain"]["summary"] == "No Content Credentials in this file."
    assert seen["unreadable"]["badge"] == "C2PA: unreadable" and "JUMB" in seen["unreadable"]["fields"]


class AstronautClient(FakeClient):
    """The fake verdict, with the face box where the sample face is (for the screenshots)."""

    def _judge(self, data):
        from deepfake_dev import samples as media

        result = super()._judge(data)
        return dataclasses.replace(result, faces=(dataclasses.replace(result.faces[0], box=media.ASTRONAUT_FACE_BOX),))


def test_screenshots_of_provenance_beside_the_verdict_at_desktop_and_phone_size(browser, tmp_path):
    from deepfake_dev import samples as media

    media.write_samples(tmp_path)
    signed = make_samples((tmp_path / media.FACE_IMAGE).read_bytes())
    photo = tmp_path / "ai-generated-face.jpg"
    photo.write_bytes(signed.valid)
    app = create_app(AstronautClient(), provenance=ProvenanceReader(signed.trust_anchor))
    try:
        with serve_app(app, start_timeout_s=60) as url:
            for name, (width, height) in SCREENSHOTS.items():
                browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 500})
                browser.get(f"http://{url}/")
                browser.find_element(By.ID, "image-file").send_keys(str(photo))
                wait(browser, lambda b: b.find_element(By.ID, "provenance-badge").get_attribute("data-state") == "valid",
                     "no provenance")
                badge = browser.find_element(By.ID, "provenance-badge")
                assert badge.text == "C2PA: valid · declared AI-generated" and badge.is_displayed()
                assert browser.find_element(By.ID, "image-provenance").is_displayed()
                # Beside the verdict: on the verdict's line, at both sizes.
                verdict = browser.find_element(By.ID, "image-verdict")
                assert verdict.text == "FAKE" and abs(badge.location["y"] - verdict.location["y"]) < 60
                overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
                assert overflow <= 0, f"the page is {overflow} px wider than {width} px"
                browser.save_screenshot(str(IMAGES / name))
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
