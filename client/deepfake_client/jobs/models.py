"""The job tables: a job, its chunks (the unit of work a queue task claims) and its per-item results.

On the records' declarative base, so one Alembic history migrates the whole database.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..records.models import Base

STATES = ("queued", "running", "done", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled")
JOB_KINDS = ("video", "images")


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(String(8))  # video: frames of one video; images: files
    state: Mapped[str] = mapped_column(String(12), index=True)
    filename: Mapped[str | None] = mapped_column(String(255))
    folder: Mapped[str] = mapped_column(String(1024))  # the job's files (a video, extracted images)
    # video: {"frame_count", "fps", "stride", "indices": n}; images: {"names": [...], "paths": [...]}
    plan: Mapped[dict] = mapped_column(JSON)
    total: Mapped[int] = mapped_column(Integer)
    chunk_size: Mapped[int] = mapped_column(Integer)
    threshold: Mapped[float | None] = mapped_column()
    result: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(String(1024))
    webhook_url: Mapped[str | None] = mapped_column(String(2048))
    webhook_state: Mapped[str | None] = mapped_column(String(8))  # pending, sending, sent, failed
    webhook_detail: Mapped[str | None] = mapped_column(String(512))


class JobChunk(Base):
    """Items [start, end) of a job; claimed by one worker at a time (owner, lease)."""

    __tablename__ = "job_chunks"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    start: Mapped[int] = mapped_column(Integer)
    end: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(8))  # pending, done
    owner: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    retries: Mapped[int] = mapped_column(Integer, default=0)  # tries given up for a busy or unavailable server


class JobItem(Base):
    """One scored item (a frame, an image); written once, when it is scored."""

    __tablename__ = "job_items"
    __table_args__ = (UniqueConstraint("job_id", "position", name="uq_job_items_position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)  # in the job's plan
    frame_index: Mapped[int | None] = mapped_column(Integer)
    name: Mapped[str | None] = mapped_column(String(255))
    scored_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    scored_by: Mapped[str] = mapped_column(String(128))  # the worker (host:pid:token)
    result: Mapped[dict] = mapped_column(JSON)  # verdict, p(fake), faces, per-model p(fake); or error
