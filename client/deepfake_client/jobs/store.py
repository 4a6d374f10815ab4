"""Reads and writes of the job tables. Every state change is one conditional UPDATE, so several
workers (threads, processes, hosts) on one database never both claim a chunk, finish a job or send
its webhook."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from ..errors import DeepfakeError
from .models import FINISHED, Job, JobChunk, JobItem

LEASE = timedelta(seconds=30)  # a chunk's claim; renewed at every scored item
MAX_ITEMS_PAGE = 1000


class JobStoreError(DeepfakeError):
    """The job tables cannot be read or written."""


def now() -> datetime:
    return datetime.now(timezone.utc)


def _utc(moment: datetime | None) -> datetime | None:
    """SQLite keeps no zone; we always write UTC."""
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def worker_id() -> str:
    """This process, as a chunk's owner: host, pid and a token (a reused pid is another owner)."""
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{_TOKEN}"


_TOKEN = uuid.uuid4().hex[:12]


def _owner_is_dead_here(owner: str) -> bool:
    """An owner on this host whose process is gone (a killed gateway): its leases are void now."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname()[:64] or not pid.isdigit() or owner == worker_id():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def job_dict(job: Job, done: int, failed: int) -> dict[str, Any]:
    return {
        "id": job.id, "kind": job.kind, "state": job.state, "filename": job.filename,
        "created_at": _utc(job.created_at).isoformat(), "updated_at": _utc(job.updated_at).isoformat(),
        "progress": {"done": done, "failed": failed, "total": job.total,
                     "fraction": round(done / job.total, 4) if job.total else 1.0},
        "result": job.result, "error": job.error,
        "webhook": None if job.webhook_url is None else {"state": job.webhook_state, "detail": job.webhook_detail},
    }


def item_dict(item: JobItem) -> dict[str, Any]:
    return {"position": item.position, "frame_index": item.frame_index, "name": item.name,
            "scored_at": _utc(item.scored_at).isoformat(), **item.result}


class JobStore:
    """On the record store's engine: jobs live in the same database as the records."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _run(self, work: Callable[[Session], Any], write: bool = True) -> Any:
        try:
            with Session(self.engine) as session:
                if not write:
                    return work(session)
                with session.begin():
                    return work(session)
        except SQLAlchemyError as error:
            raise JobStoreError(f"job database: {str(error).splitlines()[0]}") from error

    # Creating and reading

    def create(self, job: dict[str, Any]) -> None:
        """A new job (the Job columns) and its chunks, in one transaction."""
        def run(session: Session) -> None:
            stamp = now()
            row = Job(created_at=stamp, updated_at=stamp, state="queued", **job)
            session.add(row)
            session.flush()
            for number, start in enumerate(range(0, row.total, row.chunk_size)):
                session.add(JobChunk(job_id=row.id, number=number, start=start,
                                     end=min(start + row.chunk_size, row.total), state="pending", retries=0))
        self._run(run)

    def job_row(self, job_id: str) -> Job | None:
        return self._run(lambda s: s.get(Job, job_id), write=False)

    def get(self, job_id: str) -> dict[str, Any] | None:
        def run(session: Session) -> dict[str, Any] | None:
            job = session.get(Job, job_id)
            if job is None:
                return None
            done = session.execute(select(func.count(JobItem.id)).where(JobItem.job_id == job_id)).scalar_one()
            failed = session.execute(select(func.count(JobItem.id)).where(
                JobItem.job_id == job_id, JobItem.result["error"].as_string().is_not(None))).scalar_one()
            return job_dict(job, done, failed)
        return self._run(run, write=False)

    def items(self, job_id: str, *, offset: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        statement = (select(JobItem).where(JobItem.job_id == job_id).order_by(JobItem.position)
                     .offset(offset).limit(min(limit, MAX_ITEMS_PAGE)))
        return self._run(lambda s: [item_dict(i) for i in s.execute(statement).scalars()], write=False)

    def all_items(self, job_id: str) -> list[dict[str, Any]]:
        statement = select(JobItem).where(JobItem.job_id == job_id).order_by(JobItem.position)
        return self._run(lambda s: [item_dict(i) for i in s.execute(statement).scalars()], write=False)

    def scorers(self, job_id: str) -> dict[int, str]:
        """position -> the worker that scored it (what the tests check: scored once, kept across restarts)."""
        statement = select(JobItem.position, JobItem.scored_by).where(JobItem.job_id == job_id)
        return self._run(lambda s: dict(s.execute(statement).all()), write=False)

    # State changes

    def _set_state(self, session: Session, job_id: str, state: str, where: Sequence[str], **values: Any) -> bool:
        statement = (update(Job).where(Job.id == job_id, Job.state.in_(where))
                     .values(state=state, updated_at=now(), **values))
        return session.execute(statement).rowcount == 1

    def cancel(self, job_id: str) -> bool:
        """True when the job was queued or running and is now cancelled."""
        return self._run(lambda s: self._set_state(s, job_id, "cancelled", ("queued", "running")))

    def fail(self, job_id: str, message: str) -> bool:
        return self._run(lambda s: self._set_state(s, job_id, "failed", ("queued", "running"), error=message[:1024]))

    def mark_running(self, job_id: str) -> None:
        self._run(lambda s: self._set_state(s, job_id, "running", ("queued",)))

    def state(self, job_id: str) -> str | None:
        return self._run(lambda s: s.execute(select(Job.state).where(Job.id == job_id)).scalar(), write=False)

    # Chunks

    def claim(self, job_id: str, number: int, owner: str) -> str:
        """'claimed' (now ours until the lease ends), 'done', or 'busy' (another live owner has it)."""
        def run(session: Session) -> str:
            chunk = session.get(JobChunk, (job_id, number))
            if chunk is None or chunk.state == "done":
                return "done"
            stamp = now()
            free = (JobChunk.owner.is_(None) | (JobChunk.lease_until < stamp) | (JobChunk.owner == owner))
            if chunk.owner is not None and _owner_is_dead_here(chunk.owner):
                free = free | (JobChunk.owner == chunk.owner)
            # synchronize_session=False: the condition is the database's to evaluate (SQLite hands back
            # naive datetimes, which Python cannot compare with aware ones).
            claimed = session.execute(
                update(JobChunk).where(JobChunk.job_id == job_id, JobChunk.number == number,
                                       JobChunk.state == "pending", free)
                .values(owner=owner, lease_until=stamp + LEASE)
                .execution_options(synchronize_session=False)).rowcount
            return "claimed" if claimed == 1 else "busy"
        return self._run(run)

    def chunk_range(self, job_id: str, number: int) -> tuple[int, int, int]:
        """(start, end, retries so far)."""
        chunk = self._run(lambda s: s.get(JobChunk, (job_id, number)), write=False)
        return chunk.start, chunk.end, chunk.retries or 0

    def count_retry(self, job_id: str, number: int) -> None:
        self._run(lambda s: s.execute(update(JobChunk).where(JobChunk.job_id == job_id, JobChunk.number == number)
                                      .values(retries=JobChunk.retries + 1)))

    def renew(self, job_id: str, number: int, owner: str) -> None:
        self._run(lambda s: s.execute(update(JobChunk).where(
            JobChunk.job_id == job_id, JobChunk.number == number, JobChunk.owner == owner)
            .values(lease_until=now() + LEASE)))

    def finish_chunk(self, job_id: str, number: int, owner: str) -> None:
        self._run(lambda s: s.execute(update(JobChunk).where(
            JobChunk.job_id == job_id, JobChunk.number == number, JobChunk.owner == owner)
            .values(state="done", lease_until=None)))

    def release(self, job_id: str, number: int, owner: str) -> None:
        """Gives a chunk back unfinished (a worker stopping): another may take it at once."""
        self._run(lambda s: s.execute(update(JobChunk).where(
            JobChunk.job_id == job_id, JobChunk.number == number, JobChunk.owner == owner)
            .values(owner=None, lease_until=None)))

    def done_positions(self, job_id: str, start: int, end: int) -> set[int]:
        statement = select(JobItem.position).where(JobItem.job_id == job_id, JobItem.position >= start,
                                                   JobItem.position < end)
        return self._run(lambda s: set(s.execute(statement).scalars()), write=False)

    def save_item(self, job_id: str, position: int, owner: str, result: dict[str, Any], *,
                  frame_index: int | None = None, name: str | None = None) -> bool:
        """False when the item was already there (never written twice: a unique constraint)."""
        try:
            self._run(lambda s: s.add(JobItem(job_id=job_id, position=position, frame_index=frame_index, name=name,
                                              scored_at=now(), scored_by=owner, result=result)))
        except JobStoreError as error:
            if isinstance(error.__cause__, IntegrityError):
                return False
            raise
        return True

    def pending_chunks(self) -> list[tuple[str, int]]:
        """(job, chunk) of every unfinished job's unfinished chunks, oldest job first (recovery)."""
        statement = (select(JobChunk.job_id, JobChunk.number).join(Job, Job.id == JobChunk.job_id)
                     .where(Job.state.in_(("queued", "running")), JobChunk.state == "pending")
                     .order_by(Job.created_at, JobChunk.number))
        return self._run(lambda s: [tuple(r) for r in s.execute(statement).all()], write=False)

    def abandoned_chunks(self) -> list[tuple[str, int]]:
        """Pending chunks of unfinished jobs whose owner's lease ran out (the worker died)."""
        statement = (select(JobChunk.job_id, JobChunk.number).join(Job, Job.id == JobChunk.job_id)
                     .where(Job.state.in_(("queued", "running")), JobChunk.state == "pending",
                            JobChunk.owner.is_not(None), JobChunk.lease_until < now()))
        return self._run(lambda s: [tuple(r) for r in s.execute(statement).all()], write=False)

    def unfinished_without_chunks(self) -> list[str]:
        """Running jobs whose chunks are all done (a worker died between the last chunk and the end)."""
        pending = select(JobChunk.job_id).where(JobChunk.state == "pending")
        statement = select(Job.id).where(Job.state.in_(("queued", "running")), Job.id.not_in(pending))
        return self._run(lambda s: list(s.execute(statement).scalars()), write=False)

    def all_chunks_done(self, job_id: str) -> bool:
        statement = select(func.count()).where(JobChunk.job_id == job_id, JobChunk.state != "done")
        return self._run(lambda s: s.execute(statement).scalar_one() == 0, write=False)

    def complete(self, job_id: str, result: dict[str, Any]) -> bool:
        """Running -> done with its result; True for the one caller that made the change."""
        return self._run(lambda s: self._set_state(s, job_id, "done", ("queued", "running"), result=result))

    # The webhook: sent at most once

    def claim_webhook(self, job_id: str) -> bool:
        return self._run(lambda s: s.execute(update(Job).where(Job.id == job_id, Job.webhook_state == "pending")
                                              .values(webhook_state="sending")).rowcount == 1)

    def webhook_done(self, job_id: str, state: str, detail: str) -> None:
        self._run(lambda s: s.execute(update(Job).where(Job.id == job_id)
                                      .values(webhook_state=state, webhook_detail=detail[:512])))

    def is_finished(self, job_id: str) -> bool:
        return self.state(job_id) in FINISHED
