"""The prediction record: one row per verdict (an image, a batch item, a video, a frame, a webcam frame).

Faces are a JSON column, not a child table: a record is written once, read whole and never
joined face by face; the per-model scores a filter needs (disagreement) are columns.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, Float, Integer, LargeBinary, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .kinds import KINDS, VERDICTS  # noqa: F401 - re-exported


class Base(DeclarativeBase):
    pass


class Prediction(Base):
    __tablename__ = "predictions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))  # gateway, cli, sdk
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)  # None for a video's frames
    filename: Mapped[str | None] = mapped_column(String(255))
    size_bytes: Mapped[int | None] = mapped_column(Integer)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    verdict: Mapped[str] = mapped_column(String(8), index=True)
    fake_probability: Mapped[float | None] = mapped_column(Float)  # None: NO_FACE
    num_faces: Mapped[int] = mapped_column(Integer)
    faces: Mapped[list] = mapped_column(JSON)  # [{box, detector_score, fake_probability, model_probabilities}]
    model_probabilities: Mapped[dict] = mapped_column(JSON)  # per model, the image-level score
    disagreement: Mapped[float | None] = mapped_column(Float)  # max - min of model_probabilities
    untrained: Mapped[bool] = mapped_column(Boolean)
    processing_time_s: Mapped[float | None] = mapped_column(Float)
    server_url: Mapped[str | None] = mapped_column(String(512))
    model_fingerprints: Mapped[dict | None] = mapped_column(JSON)
    settings_sha256: Mapped[str | None] = mapped_column(String(64))
    provenance: Mapped[str | None] = mapped_column(String(32))
    group_id: Mapped[str | None] = mapped_column(String(36), index=True)  # a batch, a video, a webcam session
    frame_index: Mapped[int | None] = mapped_column(Integer)
    thumbnail: Mapped[bytes | None] = mapped_column(LargeBinary)  # JPEG, only when opted in


# The columns a listing, an export and the API give (the thumbnail has its own route).
FIELDS = tuple(c.name for c in Prediction.__table__.columns if c.name != "thumbnail")
