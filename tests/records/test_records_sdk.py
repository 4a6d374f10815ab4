"""`--record` for SDK users and the CLI (RecordingClient on a fake SDK client, a real SQLite file), and
`deepfake web`'s record options."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "web"))
from web_fakes import NO_FACE_WIDTH, FakeClient, image_bytes  # noqa: E402

from deepfake_client.cli import build_parser  # noqa: E402
from deepfake_client.records.cli import gateway_records  # noqa: E402
from deepfake_client.records.sdk import RecordingClient  # noqa: E402
from deepfake_client.records.store import RecordStore  # noqa: E402


class NamedFakeClient(FakeClient):
    url = "triton:8001"

    def close(self) -> None:
        self.closed = True

    def detect(self, image):  # the SDK reads paths; the gateway's fake takes bytes
        return super().detect(Path(image).read_bytes() if isinstance(image, str) else image)

    def detect_many(self, images, **_):
        return [self.detect(i) for i in images]


def test_recording_client_records_images_batches_and_videos(tmp_path):
    from deepfake_dev import samples

    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    photo = tmp_path / "photo.png"
    photo.write_bytes(image_bytes(50, 40))
    clip = samples.write_video(tmp_path / "clip.mp4", num_frames=12, fps=6.0)
    inner = NamedFakeClient()
    with RecordingClient(inner, RecordStore(url), source="cli") as client:
        assert client.detect(str(photo)).label.value == "FAKE"
        outcomes = client.detect_many([image_bytes(60, 40), image_bytes(NO_FACE_WIDTH, 40)])
        assert len(outcomes) == 2
        client.detect_video(str(clip), num_frames=3, threshold=0.5)
    assert inner.closed
    store = RecordStore(url)
    records = {r["kind"]: r for r in store.page(limit=100)}
    assert store.count() == 1 + 2 + 1 + 3
    image = records["image"]
    assert image["filename"] == "photo.png" and (image["width"], image["height"]) == (50, 40)
    assert image["source"] == "cli" and image["server_url"] == "triton:8001" and len(image["settings_sha256"]) == 64
    assert image["processing_time_s"] is not None
    assert sorted(r["verdict"] for r in store.page(limit=100) if r["kind"] == "batch_item") == ["FAKE", "NO_FACE"]
    assert records["video"]["filename"] == "clip.mp4" and records["video"]["size_bytes"] == clip.stat().st_size
    store.close()


def test_web_record_options(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFAKE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DEEPFAKE_RECORD_DB", raising=False)
    parser = build_parser()
    assert gateway_records(parser.parse_args(["web", "--no-record"])) is None
    default = gateway_records(parser.parse_args(["web", "--record-keep", "10", "--record-thumbnails"]))
    try:
        assert default.store.url == f"sqlite:///{tmp_path / 'data' / 'records.sqlite'}"
        assert (tmp_path / "data" / "records.sqlite").exists()
        assert default.thumbnails and default.writer.retention == (None, 10)
    finally:
        default.close()
    chosen = gateway_records(parser.parse_args(["web", "--record-db", str(tmp_path / "other.sqlite")]))
    chosen.close()
    assert chosen.store.url == f"sqlite:///{tmp_path / 'other.sqlite'}"
