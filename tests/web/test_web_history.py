"""The History tab in headless Chromium: the four charts and the table drawn from a real SQLite
record database behind the gateway (a fake SDK client: no Triton), click-through to a record.
Saves docs/images/web-history.png."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from web_fakes import FakeClient, face_result, image_bytes, no_face_result

pytest.importorskip("sqlalchemy", reason="the records extra (sqlalchemy, alembic) is not installed")

from live_app import serve_app  # noqa: E402

from deepfake_client import Face  # noqa: E402
from deepfake_client.records.capture import ServerIdentity, detection_record  # noqa: E402
from deepfake_client.records.gateway import GatewayRecords  # noqa: E402
from deepfake_client.records.store import RecordStore  # noqa: E402
from deepfake_client.web import create_app  # noqa: E402

SCREENSHOT = Path(__file__).parents[2] / "docs" / "images" / "web-history.png"
RECORDS = 120


def varied_records() -> list[dict]:
    """Two days of verdicts with spread scores, so every chart has something to draw."""
    rng = random.Random(20)
    start = datetime.now(timezone.utc) - timedelta(days=2)
    records = []
    for i in range(RECORDS):
        if i % 9 == 0:
            result = no_face_result()
        else:
            base = rng.random()
            per_model = {m: min(1.0, max(0.0, base + rng.uniform(-0.25, 0.25)))
                         for m in ("xception", "efficientnet_b4", "f3net", "effort_clip")}
            score = sum(per_model.values()) / 4
            result = face_result(score)
            result = type(result)(label=result.label, fake_probability=score, model_names=result.model_names,
                                  faces=(Face(box=(10.0, 12.0, 60.0, 80.0), detector_score=0.99, fake_probability=score,
                                              model_probabilities=per_model),))
        records.append(detection_record(result, kind="image" if i % 4 else "batch_item", source="gateway",
                                        data=image_bytes(40 + i, 30), filename=f"photo_{i:03d}.jpg", size=(40 + i, 30),
                                        processing_time_s=0.8 + rng.random() * 0.6 + (0.5 if i > 80 else 0),
                                        identity=ServerIdentity("localhost:8001", "ab" * 32),
                                        created_at=start + timedelta(minutes=24 * i)))
    return records


@pytest.fixture
def history_gateway(tmp_path):
    store = RecordStore(f"sqlite:///{tmp_path / 'records.sqlite'}")
    store.add_many(varied_records())
    with serve_app(create_app(FakeClient(), records=GatewayRecords(store))) as url:
        yield url


def test_history_tab_draws_the_four_charts_and_the_table(browser, history_gateway):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"http://{history_gateway}/")
    browser.find_element(By.CSS_SELECTOR, 'nav button[data-tab="history"]').click()
    wait = WebDriverWait(browser, 30)
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#hist-table tbody tr")) == 25)
    assert browser.find_element(By.ID, "hist-page").text == f"1–25 of {RECORDS}"
    face_records = RECORDS - len(range(0, RECORDS, 9))
    # p(fake) over time: one dot per record with a face; processing time: one per record.
    assert len(browser.find_elements(By.CSS_SELECTOR, "#hist-chart-time circle")) == face_records
    assert len(browser.find_elements(By.CSS_SELECTOR, "#hist-chart-speed circle")) == RECORDS
    # The distribution: the ensemble and the four models; each model against the ensemble: 4 dots a record.
    assert len(browser.find_elements(By.CSS_SELECTOR, "#hist-chart-dist path")) == 5
    assert len(browser.find_elements(By.CSS_SELECTOR, "#hist-chart-models circle")) == 4 * face_records
    assert not browser.find_element(By.ID, "hist-error").is_displayed()

    first = browser.find_element(By.CSS_SELECTOR, "#hist-table tbody tr")
    record_id = first.get_attribute("data-id")
    assert record_id == str(RECORDS)  # newest first
    browser.save_screenshot(str(SCREENSHOT))  # before the click-through: charts and table
    first.click()
    wait.until(lambda b: b.find_element(By.ID, "hist-detail").is_displayed())
    assert f"Record {record_id}" in browser.find_element(By.ID, "hist-detail").text
    assert "photo_119.jpg" in browser.find_element(By.ID, "hist-detail").text

    # A filter redraws the table: only the records without a face.
    from selenium.webdriver.support.select import Select

    Select(browser.find_element(By.ID, "hist-verdict")).select_by_visible_text("NO_FACE")
    browser.find_element(By.CSS_SELECTOR, "#hist-filters button[type=submit]").click()
    wait.until(lambda b: b.find_element(By.ID, "hist-page").text == f"1–{RECORDS - face_records} of {RECORDS - face_records}")
    tags = {e.text for e in browser.find_elements(By.CSS_SELECTOR, "#hist-table tbody td.tag")}
    assert tags == {"NO_FACE"}
