"""Recording through the gateway (fake SDK client, real databases): 1,000 detections leave 1,000
records; a database killed mid-run fails no detection and the lost records are counted; the
history API's filters, paging, exports, seen-by-sha256 and deletes; every kind is recorded."""

from __future__ import annotations

import base64
import csv
import io
import re
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).parents[1] / "web"))
from web_fakes import NO_FACE_WIDTH, FakeClient, image_bytes  # noqa: E402

from deepfake_client.records.gateway import GatewayRecords  # noqa: E402
from deepfake_client.records.store import RecordStore  # noqa: E402
from deepfake_client.web import Limits, create_app  # noqa: E402


def gateway(url: str, **options) -> tuple[TestClient, GatewayRecords]:
    records = GatewayRecords(RecordStore(url), **options)
    return TestClient(create_app(FakeClient(), limits=Limits(max_ws_fps=1000), records=records)), records


def upload(name: str, data: bytes) -> dict:
    return {"file": (name, data, "image/png")}


def dropped(web: TestClient, reason: str) -> float:
    text = web.get("/metrics").text
    match = re.search(rf'deepfake_gateway_records_dropped_total{{reason="{reason}"}} (\S+)', text)
    assert match, text
    return float(match[1])


def test_a_thousand_detections_leave_a_thousand_records(database_url):
    web, records = gateway(database_url)
    with web:
        for i in range(1000):
            width = NO_FACE_WIDTH if i % 5 == 0 else 40 + i % 20
            assert web.post("/api/detect/image", files=upload(f"p{i}.png", image_bytes(width, 30))).status_code == 200
        assert records.writer.flush(120)
        answer = web.get("/api/history", params={"limit": 1}).json()
        assert answer["total"] == 1000
        assert web.get("/api/history", params={"verdict": "NO_FACE", "limit": 1}).json()["total"] == 200
        assert dropped(web, "database") == 0 and dropped(web, "buffer_full") == 0


def test_killing_postgresql_mid_run_fails_no_detection_and_counts_the_lost_records(postgres, tmp_path):
    web, records = gateway(postgres.url)
    statuses = []
    try:
        with web:
            for i in range(40):
                statuses.append(web.post("/api/detect/image", files=upload(f"a{i}.png", image_bytes(50, 30))).status_code)
            assert records.writer.flush(60)
            postgres.stop("immediate")  # a crash: connections cut, nothing flushed
            for i in range(40):
                statuses.append(web.post("/api/detect/image", files=upload(f"b{i}.png", image_bytes(50, 30))).status_code)
            assert records.writer.flush(120)
            lost = dropped(web, "database") + dropped(web, "buffer_full")
            assert web.get("/api/history").status_code == 503  # reads say so, typed
            postgres.start()
            for i in range(10):
                statuses.append(web.post("/api/detect/image", files=upload(f"c{i}.png", image_bytes(50, 30))).status_code)
            assert records.writer.flush(60)
            total = web.get("/api/history", params={"limit": 1}).json()["total"]
    finally:
        if not _running(postgres):
            postgres.start()
    assert statuses == [200] * 90  # every detection answered
    assert lost > 0
    assert total + lost == 90  # each record either stored or counted as lost
    assert records.writer.written == total


def _running(postgres) -> bool:
    result = postgres._run(str(postgres.bin / "pg_ctl"), "-D", str(postgres.data), "status", check=False)
    return result.returncode == 0


@pytest.fixture
def filled(tmp_path):
    web, records = gateway(f"sqlite:///{tmp_path / 'r.sqlite'}", thumbnails=True)
    with web:
        for i, width in enumerate([40, 41, NO_FACE_WIDTH, 42]):
            web.post("/api/detect/image", files=upload(f"img{i}.png", image_bytes(width, 30)))
        web.post("/api/detect/batch", files=[("files", (f"b{i}.png", image_bytes(60 + i, 30), "image/png")) for i in range(3)])
        with web.websocket_connect("/api/video/webcam") as socket:
            socket.send_text(base64.b64encode(image_bytes(70, 30)).decode())
            assert socket.receive_json()["prediction"] == "FAKE"
        assert records.writer.flush(30)
        yield web


def test_every_kind_is_recorded_with_its_group(filled):
    records = filled.get("/api/history", params={"limit": 100}).json()["records"]
    kinds = sorted(r["kind"] for r in records)
    assert kinds == ["batch_item"] * 3 + ["image"] * 4 + ["webcam"]
    batch = {r["group_id"] for r in records if r["kind"] == "batch_item"}
    assert len(batch) == 1 and None not in batch
    assert filled.get("/api/history", params={"group_id": batch.pop()}).json()["total"] == 3


def test_history_filters_paging_and_one_record(filled):
    assert filled.get("/api/history", params={"kind": "image", "verdict": "FAKE"}).json()["total"] == 3
    assert filled.get("/api/history", params={"filename": "IMG"}).json()["total"] == 4
    page = filled.get("/api/history", params={"limit": 3, "offset": 3}).json()
    assert page["total"] == 8 and len(page["records"]) == 3 and page["offset"] == 3
    record = page["records"][0]
    assert filled.get(f"/api/history/{record['id']}").json() == record
    assert filled.get(f"/api/history/{record['id']}/thumbnail").headers["content-type"] == "image/jpeg"
    assert filled.get("/api/history/999999").status_code == 404


def test_seen_exports_and_deletes(filled):
    sha = hashlib_sha256(image_bytes(40, 30))
    seen = filled.get(f"/api/history/seen/{sha}").json()
    assert seen["seen"] and seen["count"] == 1 and seen["latest"]["filename"] == "img0.png"
    rows = list(csv.DictReader(io.StringIO(filled.get("/api/history/export", params={"kind": "image"}).text)))
    assert [r["filename"] for r in rows] == ["img0.png", "img1.png", "img2.png", "img3.png"]
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(filled.get("/api/history/export", params={"format": "parquet"}).content))
    assert table.num_rows == 8
    assert filled.request("DELETE", "/api/history", params={"sha256": sha}).json() == {"deleted": 1}
    assert not filled.get(f"/api/history/seen/{sha}").json()["seen"]
    first = filled.get("/api/history", params={"limit": 1}).json()["records"][0]["id"]
    assert filled.delete(f"/api/history/{first}").json() == {"deleted": 1}


@pytest.mark.parametrize("params", [{"verdict": "MAYBE"}, {"since": "yesterday"}, {"limit": 0}, {"limit": 5000},
                                    {"sha256": "xyz"}, {"min_disagreement": 3}])
def test_bad_history_queries_are_422_with_a_sentence(filled, params):
    response = filled.get("/api/history", params=params)
    assert response.status_code == 422 and response.json()["error"] == "invalid_request" and response.json()["detail"]


def test_a_bad_export_format_and_a_bad_sha256_are_422(filled):
    assert filled.get("/api/history/export", params={"format": "xlsx"}).status_code == 422
    assert filled.get("/api/history/seen/nothex").status_code == 422


def test_video_and_its_frames_are_recorded(tmp_path):
    from deepfake_dev import samples

    clip = samples.write_video(tmp_path / "clip.mp4", num_frames=12, fps=6.0)
    web, records = gateway(f"sqlite:///{tmp_path / 'r.sqlite'}")
    with web:
        answer = web.post("/api/video/detect", files={"file": ("clip.mp4", clip.read_bytes(), "video/mp4")},
                          data={"max_frames": 4})
        assert answer.status_code == 200
        assert records.writer.flush(30)
        video = web.get("/api/history", params={"kind": "video"}).json()["records"]
        frames = web.get("/api/history", params={"kind": "frame", "limit": 100}).json()["records"]
    assert len(video) == 1 and video[0]["sha256"] == hashlib_sha256(clip.read_bytes())
    assert video[0]["verdict"] == answer.json()["overall_result"]["prediction"]
    assert len(frames) == 4 and {f["group_id"] for f in frames} == {video[0]["group_id"]}


def test_without_records_there_is_no_history_route():
    with TestClient(create_app(FakeClient())) as web:
        assert web.get("/api/history").status_code == 404


def hashlib_sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()
