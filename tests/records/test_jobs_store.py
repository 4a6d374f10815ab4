"""The job tables on SQLite and PostgreSQL: chunk claims (one owner at a time; a lease that ran out
or an owner process that is gone frees the chunk), items written once, the job finished once and
its webhook claimed once, recovery lists."""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest

pytest.importorskip("sqlalchemy", reason="the records extra (sqlalchemy, alembic) is not installed")

from sqlalchemy import update  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from deepfake_client.jobs.models import JobChunk  # noqa: E402
from deepfake_client.jobs.store import JobStore, now, worker_id  # noqa: E402
from deepfake_client.records.store import RecordStore  # noqa: E402


def new_job(store: JobStore, total: int = 10, chunk_size: int = 4, webhook: bool = False) -> str:
    job_id = str(uuid.uuid4())
    store.create({"id": job_id, "kind": "images", "filename": None, "folder": "/nowhere", "total": total,
                  "chunk_size": chunk_size, "threshold": 0.5, "plan": {"names": [], "paths": []},
                  "webhook_url": "http://127.0.0.1:1/x" if webhook else None, "webhook_state": "pending" if webhook else None})
    return job_id


def dead_owner() -> str:
    process = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                             check=True)
    return f"{socket.gethostname()[:64]}:{process.stdout.strip()}:gone"


def test_claims_leases_and_dead_owners(database_url):
    store = JobStore(RecordStore(database_url).engine)
    job_id = new_job(store)
    assert store.pending_chunks() == [(job_id, 0), (job_id, 1), (job_id, 2)]
    me, other = worker_id(), "elsewhere:1:live"
    assert store.claim(job_id, 0, other) == "claimed"
    assert store.claim(job_id, 0, me) == "busy"  # another live owner, lease running
    assert store.claim(job_id, 0, other) == "claimed"  # its own again (a duplicate delivery)
    with Session(store.engine) as session, session.begin():  # the other's lease runs out
        session.execute(update(JobChunk).where(JobChunk.number == 0).values(lease_until=now() - timedelta(seconds=1)))
    assert store.abandoned_chunks() == [(job_id, 0)]
    assert store.claim(job_id, 0, me) == "claimed"
    assert store.claim(job_id, 1, dead_owner()) == "claimed"
    assert store.claim(job_id, 1, me) == "claimed"  # its owner's process is gone: free at once
    store.finish_chunk(job_id, 0, me)
    assert store.claim(job_id, 0, other) == "done"
    assert (job_id, 0) not in store.pending_chunks()


def test_items_once_job_finished_once_webhook_claimed_once(database_url):
    store = JobStore(RecordStore(database_url).engine)
    job_id = new_job(store, total=2, chunk_size=2, webhook=True)
    assert store.save_item(job_id, 0, "a", {"verdict": "REAL", "fake_probability": 0.1}, name="x.png")
    assert not store.save_item(job_id, 0, "b", {"verdict": "FAKE", "fake_probability": 0.9}, name="x.png")
    assert store.scorers(job_id) == {0: "a"}
    assert store.save_item(job_id, 1, "a", {"error": "InvalidInputError", "detail": "empty"})
    assert store.get(job_id)["progress"] == {"done": 2, "failed": 1, "total": 2, "fraction": 1.0}
    assert store.claim(job_id, 0, "a") == "claimed"
    store.finish_chunk(job_id, 0, "a")
    assert store.all_chunks_done(job_id) and store.unfinished_without_chunks() == [job_id]
    assert store.complete(job_id, {"items": 2}) and not store.complete(job_id, {"items": 2})
    assert not store.cancel(job_id)  # done: nothing to cancel
    assert store.claim_webhook(job_id) and not store.claim_webhook(job_id)
    assert store.unfinished_without_chunks() == []


def test_a_database_of_the_previous_revision_is_migrated_with_its_records_kept(tmp_path):
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine, inspect, text

    from deepfake_client.records.store import MIGRATIONS

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    engine = create_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")  # as the gateway before jobs left it
        connection.execute(text("INSERT INTO predictions (created_at, kind, source, verdict, num_faces, faces, "
                                "model_probabilities, untrained) VALUES ('2026-12-01 10:00:00', 'image', 'gateway', "
                                "'REAL', 1, '[]', '{}', 0)"))
    assert "jobs" not in inspect(engine).get_table_names()
    engine.dispose()
    store = RecordStore(url)
    assert {"jobs", "job_chunks", "job_items"} <= set(inspect(store.engine).get_table_names())
    assert store.count() == 1
    assert JobStore(store.engine).pending_chunks() == []
