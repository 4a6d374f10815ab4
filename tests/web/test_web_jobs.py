"""The page's batch and video tabs send large inputs as jobs (headless Chromium; fake SDK client,
real SQLite database and huey queue): the batch is zipped in the page, the video uploaded with a
stride, and both show the job's progress and results."""

from __future__ import annotations

import pytest
from web_fakes import NO_FACE_WIDTH, FakeClient, image_bytes

pytest.importorskip("huey", reason="the jobs extra (huey) is not installed")

from live_app import serve_app  # noqa: E402

from deepfake_client.jobs.api import JobSettings  # noqa: E402
from deepfake_client.jobs.service import GatewayJobs  # noqa: E402
from deepfake_client.records.store import RecordStore  # noqa: E402
from deepfake_client.web import Limits, create_app  # noqa: E402


@pytest.fixture
def jobs_gateway(tmp_path):
    jobs = GatewayJobs(RecordStore(str(tmp_path / "db.sqlite")), f"sqlite:///{tmp_path / 'q.sqlite'}",
                       JobSettings(folder=tmp_path / "jobs", chunk_size=3), workers=2)
    limits = Limits(max_batch_files=2, job_video_bytes=1)  # 3 photos and any video become jobs
    with serve_app(create_app(FakeClient(), limits=limits, jobs=jobs)) as address:
        yield address


def test_a_large_batch_is_zipped_in_the_page_and_runs_as_a_job(browser, jobs_gateway, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    names = []
    for i, width in enumerate((50, NO_FACE_WIDTH, 60)):
        path = tmp_path / f"photo {i}.png"
        path.write_bytes(image_bytes(width, 30))
        names.append(path)
    browser.get(f"http://{jobs_gateway}/")
    browser.find_element(By.CSS_SELECTOR, 'nav button[data-tab="batch"]').click()
    browser.find_element(By.ID, "batch-files").send_keys("\n".join(str(p) for p in names))
    wait = WebDriverWait(browser, 120)
    wait.until(lambda b: b.find_element(By.ID, "batch-stats").text or b.find_element(By.ID, "batch-error").is_displayed())
    assert not browser.find_element(By.ID, "batch-error").is_displayed(), browser.find_element(By.ID, "batch-error").text
    rows = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#batch-results tr")[1:]]
    assert [r.split(" FAKE")[0].split(" NO_FACE")[0] for r in rows] == [p.name for p in names]
    assert "NO_FACE" in rows[1] and "FAKE" in rows[0] and "FAKE" in rows[2]
    assert "job: 3 / 3 (done)" in browser.find_element(By.ID, "batch-count").text


def test_a_large_video_runs_as_a_job_with_its_timeline(browser, jobs_gateway, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from deepfake_dev.samples import write_video

    video = write_video(tmp_path / "clip.mp4", num_frames=20)
    browser.get(f"http://{jobs_gateway}/")
    browser.find_element(By.CSS_SELECTOR, 'nav button[data-tab="video"]').click()
    WebDriverWait(browser, 30).until(lambda b: b.find_element(By.ID, "video-stride-label").is_displayed())
    stride = browser.find_element(By.ID, "video-stride")
    stride.clear()
    stride.send_keys("4")
    browser.find_element(By.ID, "video-file").send_keys(str(video))
    wait = WebDriverWait(browser, 120)
    wait.until(lambda b: b.find_element(By.ID, "video-verdict-line").is_displayed()
               or b.find_element(By.ID, "video-error").is_displayed())
    assert not browser.find_element(By.ID, "video-error").is_displayed(), browser.find_element(By.ID, "video-error").text
    assert browser.find_element(By.ID, "video-verdict").text == "FAKE"
    assert "5 of 20 frames (every 4th)" in browser.find_element(By.ID, "video-summary").text
    assert len(browser.find_elements(By.CSS_SELECTOR, "#timeline circle")) == 5
