"""The record store and its buffered writer on SQLite and on a real PostgreSQL server:
migrations, 1,000 records through the writer, filters, paging, seen, delete, retention, exports."""

from __future__ import annotations

import csv
import dataclasses
import io
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

sys.path.insert(0, str(Path(__file__).parents[1] / "web"))
from web_fakes import face_result, image_bytes, no_face_result  # noqa: E402

from deepfake_client.errors import InvalidInputError  # noqa: E402
from deepfake_client.records.capture import ServerIdentity, detection_record, sanitise_filename  # noqa: E402
from deepfake_client.records.export import to_csv, to_parquet  # noqa: E402
from deepfake_client.records.query import make_filter  # noqa: E402
from deepfake_client.records.store import RecordStore, RecordStoreError  # noqa: E402
from deepfake_client.records.writer import RecordWriter  # noqa: E402

IDENTITY = ServerIdentity("triton:8001", "ab" * 32, {"xception": {"source_sha256": "cd" * 32}})


def record(i: int, *, fake: float | None = 0.8, when: datetime | None = None, untrained: bool = False) -> dict:
    result = no_face_result() if fake is None else face_result(fake)
    result = dataclasses.replace(result, untrained_models=("f3net",) if untrained else ())
    return detection_record(result, kind="image", source="test", data=image_bytes(40 + i, 30), filename=f"dir/photo_{i}.png",
                            size=(40 + i, 30), processing_time_s=0.01 * i, identity=IDENTITY, created_at=when)


def test_the_migration_makes_the_table_and_is_idempotent(database_url):
    store = RecordStore(database_url)
    RecordStore(database_url).close()  # a second open (a second replica) finds the schema there
    tables = inspect(store.engine).get_table_names()
    assert {"predictions", "jobs", "job_chunks", "job_items", "alembic_version"} <= set(tables)
    with store.engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0002"
    store.close()


def test_a_thousand_records_through_the_writer_all_land(database_url):
    store = RecordStore(database_url)
    writer = RecordWriter(store, capacity=2000, batch_size=128)
    for i in range(1000):
        assert writer.submit(record(i % 50, fake=None if i % 10 == 0 else 0.2 + (i % 7) / 10))
    assert writer.flush(120)
    writer.close()
    assert writer.written == 1000 and writer.dropped == {"buffer_full": 0, "database": 0}
    assert store.count() == 1000
    assert store.count(make_filter(verdict="NO_FACE")) == 100
    ids = [r["id"] for r in store.page(limit=1000)]
    assert len(set(ids)) == 1000
    store.close()


def test_a_full_buffer_drops_and_counts_instead_of_blocking(tmp_path):
    import sqlite3

    store = RecordStore(f"sqlite:///{tmp_path / 'r.sqlite'}")
    drops = []
    writer = RecordWriter(store, capacity=5, on_drop=lambda reason, n: drops.append((reason, n)))
    lock = sqlite3.connect(tmp_path / "r.sqlite", isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # another process holds the database: the writer waits (busy timeout 30 s)
    records = [record(i) for i in range(200)]
    started = time.perf_counter()
    accepted = sum(writer.submit(r) for r in records)
    assert time.perf_counter() - started < 5  # submit never waits for the database
    lock.execute("ROLLBACK")
    lock.close()
    writer.close()
    # At most the 5 buffered and the batch the blocked writer holds (one or a few, as the thread woke).
    assert accepted < 50 and writer.dropped["buffer_full"] == 200 - accepted
    assert writer.dropped["buffer_full"] == sum(n for reason, n in drops if reason == "buffer_full")
    assert store.count() == writer.written == accepted
    store.close()


def test_fields_of_a_record(database_url):
    store = RecordStore(database_url)
    store.add_many([record(3, untrained=True)])
    stored = store.page()[0]
    assert stored["sha256"] == __import__("hashlib").sha256(image_bytes(43, 30)).hexdigest()
    assert stored["filename"] == "photo_3.png" and stored["size_bytes"] == len(image_bytes(43, 30))
    assert (stored["width"], stored["height"]) == (43, 30)
    assert stored["verdict"] == "FAKE" and stored["fake_probability"] == pytest.approx(0.8)
    assert stored["faces"][0]["box"] == [4.0, 5.0, 30.0, 40.0]
    assert stored["faces"][0]["model_probabilities"]["effort_clip"] == pytest.approx(0.95)
    assert stored["model_probabilities"] == pytest.approx({"xception": 0.9, "efficientnet_b4": 0.7, "f3net": 0.6,
                                                          "effort_clip": 0.95})
    assert stored["disagreement"] == pytest.approx(0.35)
    assert stored["untrained"] is True and stored["server_url"] == "triton:8001"
    assert stored["settings_sha256"] == "ab" * 32 and stored["model_fingerprints"]["xception"]["source_sha256"] == "cd" * 32
    assert datetime.fromisoformat(stored["created_at"]).tzinfo is not None
    assert store.get(stored["id"]) == stored and store.get(10**9) is None
    store.close()


def test_filters_and_paging(database_url):
    store = RecordStore(database_url)
    now = datetime.now(timezone.utc)
    rows = [record(i, fake=[0.9, 0.1, None][i % 3], when=now - timedelta(days=i), untrained=i % 4 == 0) for i in range(30)]
    store.add_many(rows)
    assert store.count() == 30
    assert store.count(make_filter(verdict="FAKE")) == 10
    assert store.count(make_filter(verdict="no_face")) == 10
    assert store.count(make_filter(since="10d")) == 10  # days 0..9 (day 10 is just outside)
    assert store.count(make_filter(until=(now - timedelta(days=20)).isoformat())) == 10
    assert store.count(make_filter(untrained=True)) == 8 and store.count(make_filter(untrained=False)) == 22
    assert store.count(make_filter(filename="PHOTO_1")) == 11  # photo_1, photo_10..19
    assert store.count(make_filter(filename="%")) == 0  # a LIKE wildcard is matched literally
    assert store.count(make_filter(min_disagreement=0.3)) == 20  # the fake-face rows spread 0.35; NO_FACE has none
    sha = rows[5]["sha256"]
    assert [r["id"] for r in store.page(make_filter(sha256=sha))] == [6]
    first, second = store.page(limit=12), store.page(limit=12, offset=12)
    assert len(first) == 12 and len(second) == 12 and not {r["id"] for r in first} & {r["id"] for r in second}
    assert [r["id"] for r in first] == sorted((r["id"] for r in first), reverse=True)  # newest first
    assert len(list(store.iterate(make_filter(verdict="REAL")))) == 10
    store.close()


def test_seen_delete_and_retention(database_url):
    store = RecordStore(database_url)
    now = datetime.now(timezone.utc)
    store.add_many([record(1, when=now - timedelta(days=3)), record(1, when=now), record(2, when=now - timedelta(days=40))])
    sha1 = store.page(make_filter(filename="photo_1"))[0]["sha256"]
    seen = store.seen(sha1)
    assert seen["seen"] and seen["count"] == 2 and seen["latest"]["id"] == 2
    assert datetime.fromisoformat(seen["first_seen"]) < datetime.fromisoformat(seen["last_seen"])
    assert store.seen("0" * 64) == {"sha256": "0" * 64, "seen": False, "count": 0, "first_seen": None, "last_seen": None,
                                    "latest": None}
    assert store.prune(older_than=timedelta(days=30)) == 1 and store.count() == 2
    assert store.delete(sha256=sha1) == 2 and store.count() == 0
    store.add_many([record(i) for i in range(5)])
    assert store.prune(keep=2) == 3
    assert [r["filename"] for r in store.page()] == ["photo_4.png", "photo_3.png"]
    kept = store.page()[0]["id"]
    assert store.delete(record_id=kept) == 1 and store.delete(record_id=kept) == 0
    with pytest.raises(InvalidInputError):
        store.delete()
    store.close()


def test_csv_and_parquet_exports_read_back(tmp_path):
    import pyarrow.parquet as pq

    store = RecordStore(f"sqlite:///{tmp_path / 'r.sqlite'}")
    store.add_many([record(i, fake=None if i == 2 else 0.3) for i in range(4)])
    records = list(store.iterate())
    rows = list(csv.DictReader(io.StringIO(to_csv(records))))
    assert [int(r["id"]) for r in rows] == [1, 2, 3, 4]
    assert rows[0]["p_f3net"] == "0.6" and rows[2]["verdict"] == "NO_FACE" and rows[2]["p_f3net"] == ""
    assert rows[1]["filename"] == "photo_1.png" and "thumbnail" not in rows[0]
    table = pq.read_table(io.BytesIO(to_parquet(records)))
    assert table.num_rows == 4
    assert table.column("fake_probability").to_pylist() == [0.3, 0.3, None, 0.3]
    assert table.column("p_effort_clip").to_pylist()[0] == pytest.approx(0.95)
    store.close()


@pytest.mark.parametrize("bad", [dict(verdict="MAYBE"), dict(kind="gif"), dict(since="last week"), dict(sha256="abc"),
                                 dict(min_disagreement=2.0)])
def test_bad_filters_are_typed_errors(bad):
    with pytest.raises(InvalidInputError):
        make_filter(**bad)


def test_an_unreachable_database_is_a_typed_error():
    with pytest.raises(RecordStoreError, match="cannot open the record database.*\\*\\*\\*"):
        RecordStore("postgresql://user:secret@127.0.0.1:1/none")


def test_filenames_are_sanitised():
    assert sanitise_filename("../../etc/pass\x00wd") == "pass_wd"
    assert sanitise_filename("C:\\Users\\me\\photo.jpg") == "photo.jpg"
    assert len(sanitise_filename("a" * 1000)) == 255
    assert sanitise_filename("") is None and sanitise_filename("dir/") is None
