"""The record database: SQLite by default, PostgreSQL by URL; migrated with Alembic on open."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, delete, event, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ..errors import DeepfakeError, InvalidInputError
from .models import FIELDS, Prediction
from .query import HistoryFilter

log = logging.getLogger("deepfake_client.records")

MIGRATIONS = Path(__file__).parent / "migrations"
EXPORT_BATCH = 2000
NO_FILTER = HistoryFilter()


class RecordStoreError(DeepfakeError):
    """The record database cannot be opened, migrated or read."""


def data_dir() -> Path:
    """$DEEPFAKE_DATA_DIR, else $XDG_DATA_HOME/deepfake (~/.local/share/deepfake)."""
    if os.environ.get("DEEPFAKE_DATA_DIR"):
        return Path(os.environ["DEEPFAKE_DATA_DIR"])
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "deepfake"


def default_url() -> str:
    """$DEEPFAKE_RECORD_DB, else a SQLite file in the data folder."""
    return os.environ.get("DEEPFAKE_RECORD_DB") or f"sqlite:///{data_dir() / 'records.sqlite'}"


def normalise_url(url: str) -> str:
    """A path means a SQLite file; postgresql:// uses psycopg 3 (the driver this package pins)."""
    if "://" not in url:
        return f"sqlite:///{url}"
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        database = url.split(":///", 1)[1] if ":///" in url else ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(connection: Any, _: Any) -> None:
            # WAL: the gateway's writer and the history readers do not block each other.
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    connect_args = {"connect_timeout": 5} if url.startswith("postgresql") else {}
    # pre_ping: a database restarted under the gateway is reconnected to, not an error per pooled connection.
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args)


def _apply(statement: Any, f: HistoryFilter) -> Any:
    p = Prediction
    if f.since is not None:
        statement = statement.where(p.created_at >= f.since)
    if f.until is not None:
        statement = statement.where(p.created_at <= f.until)
    if f.verdict is not None:
        statement = statement.where(p.verdict == f.verdict)
    if f.kind is not None:
        statement = statement.where(p.kind == f.kind)
    if f.min_disagreement is not None:
        statement = statement.where(p.disagreement >= f.min_disagreement)
    if f.untrained is not None:
        statement = statement.where(p.untrained == f.untrained)
    if f.filename is not None:
        pattern = f.filename.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        statement = statement.where(func.lower(p.filename).like(f"%{pattern}%", escape="\\"))
    if f.sha256 is not None:
        statement = statement.where(p.sha256 == f.sha256)
    if f.group_id is not None:
        statement = statement.where(p.group_id == f.group_id)
    return statement


def _stamp(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC (SQLite keeps no zone; we always write UTC)."""
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).isoformat()


def as_dict(row: Prediction) -> dict[str, Any]:
    data = {name: getattr(row, name) for name in FIELDS}
    data["created_at"] = _stamp(data["created_at"])
    data["has_thumbnail"] = row.thumbnail is not None
    return data


class RecordStore:
    """Reads and writes prediction records. Thread-safe (one engine, a session per call)."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = normalise_url(url)
        try:
            self.engine = _engine(self.url)
            if migrate:
                self.migrate()
        except SQLAlchemyError as error:
            raise RecordStoreError(f"cannot open the record database {redact(self.url)}: {error.__class__.__name__}: "
                                   f"{str(error).splitlines()[0]}") from error
        except ModuleNotFoundError as error:
            raise RecordStoreError(f"no driver for {redact(self.url)}: {error}") from error

    def migrate(self) -> None:
        """Brings the schema to the newest Alembic revision (a no-op when it is there)."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def close(self) -> None:
        self.engine.dispose()

    # Writes

    def add_many(self, records: Sequence[dict[str, Any]]) -> None:
        """One transaction: all the records or none (SQLAlchemyError on failure)."""
        with Session(self.engine) as session, session.begin():
            session.add_all([Prediction(**r) for r in records])

    def delete(self, *, record_id: int | None = None, sha256: str | None = None) -> int:
        """Deletes by id or by sha256 (a privacy request); how many records went."""
        if (record_id is None) == (sha256 is None):
            raise InvalidInputError("delete takes an id or a sha256")
        where = Prediction.id == record_id if record_id is not None else Prediction.sha256 == sha256
        return self._write(lambda s: s.execute(delete(Prediction).where(where)).rowcount)

    def prune(self, *, older_than: timedelta | None = None, keep: int | None = None) -> int:
        """Retention: deletes records older than `older_than`, then all but the newest `keep`."""
        if keep is not None and keep < 0:
            raise InvalidInputError(f"keep must be 0 or more, got {keep}")

        def run(session: Session) -> int:
            removed = 0
            if older_than is not None:
                cutoff = datetime.now(timezone.utc) - older_than
                removed += session.execute(delete(Prediction).where(Prediction.created_at < cutoff)).rowcount
            if keep is not None:
                newest = select(Prediction.id).order_by(Prediction.id.desc()).offset(keep).limit(1)
                boundary = session.execute(newest).scalar()
                if boundary is not None:
                    removed += session.execute(delete(Prediction).where(Prediction.id <= boundary)).rowcount
            return removed

        return self._write(run)

    def _write(self, work: Any) -> Any:
        try:
            with Session(self.engine) as session, session.begin():
                return work(session)
        except SQLAlchemyError as error:
            raise RecordStoreError(f"record database {redact(self.url)}: {str(error).splitlines()[0]}") from error

    # Reads

    def _read(self, work: Any) -> Any:
        try:
            with Session(self.engine) as session:
                return work(session)
        except SQLAlchemyError as error:
            raise RecordStoreError(f"record database {redact(self.url)}: {str(error).splitlines()[0]}") from error

    def count(self, f: HistoryFilter = NO_FILTER) -> int:
        return self._read(lambda s: s.execute(_apply(select(func.count(Prediction.id)), f)).scalar_one())

    def page(self, f: HistoryFilter = NO_FILTER, *, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        """Newest first."""
        statement = _apply(select(Prediction), f).order_by(Prediction.id.desc()).limit(limit).offset(offset)
        return self._read(lambda s: [as_dict(r) for r in s.execute(statement).scalars()])

    def iterate(self, f: HistoryFilter = NO_FILTER) -> Iterator[dict[str, Any]]:
        """Every matching record, oldest first, read in batches (exports)."""
        last = 0
        while True:
            statement = _apply(select(Prediction), f).where(Prediction.id > last).order_by(Prediction.id).limit(EXPORT_BATCH)
            rows = self._read(lambda s, st=statement: [as_dict(r) for r in s.execute(st).scalars()])
            yield from rows
            if len(rows) < EXPORT_BATCH:
                return
            last = rows[-1]["id"]

    def get(self, record_id: int) -> dict[str, Any] | None:
        return self._read(lambda s: (lambda r: as_dict(r) if r else None)(s.get(Prediction, record_id)))

    def thumbnail(self, record_id: int) -> bytes | None:
        return self._read(lambda s: s.execute(select(Prediction.thumbnail).where(Prediction.id == record_id)).scalar())

    def seen(self, sha256: str) -> dict[str, Any]:
        """Have we judged this input before: how often, when first and last, and the newest record."""

        def run(session: Session) -> dict[str, Any]:
            where = Prediction.sha256 == sha256
            count, first, last = session.execute(
                select(func.count(Prediction.id), func.min(Prediction.created_at), func.max(Prediction.created_at)).where(where)
            ).one()
            newest = session.execute(select(Prediction).where(where).order_by(Prediction.id.desc()).limit(1)).scalar()
            return {"sha256": sha256, "seen": count > 0, "count": count, "first_seen": _stamp(first),
                    "last_seen": _stamp(last), "latest": as_dict(newest) if newest else None}

        return self._read(run)

