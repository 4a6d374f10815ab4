"""The gateway's side of the records: recording each verdict, and the /api/history routes.

No `from __future__ import annotations`: FastAPI reads the routes' annotations at run time.
"""

import hashlib
import logging
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Counter, Gauge

from ..errors import InvalidInputError
from ..results import DetectionResult, VideoResult
from ..web.limits import GatewayError
from .capture import ServerIdentity, detection_record, video_records
from .export import to_csv, to_parquet
from .models import KINDS, VERDICTS
from .query import MAX_PAGE, HistoryFilter, check_page, make_filter, parse_sha256
from .store import RecordStore, RecordStoreError
from .writer import DEFAULT_CAPACITY, RecordWriter

log = logging.getLogger("deepfake_client.records")

MAX_EXPORT = 100_000  # records per export request; the CLI exports without a cap
SOURCE = "gateway"


def new_group() -> str:
    return str(uuid.uuid4())


class GatewayRecords:
    """Records every verdict the gateway gives; serves the history. One per app."""

    def __init__(
        self,
        store: RecordStore,
        *,
        thumbnails: bool = False,
        capacity: int = DEFAULT_CAPACITY,
        retention: tuple[timedelta | None, int | None] = (None, None),
        repository_json: str | Path | None = None,
    ) -> None:
        self.store = store
        self.thumbnails = thumbnails
        self.repository_json = repository_json
        self.dropped: Counter | None = None
        self.writer = RecordWriter(store, capacity=capacity, on_drop=self._count_drop, retention=retention)
        self._identity: tuple[Any, ServerIdentity] | None = None
        self.router = history_router(store)

    def register_metrics(self, registry: CollectorRegistry) -> None:
        self.dropped = Counter("deepfake_gateway_records_dropped", "prediction records lost (buffer full, database down)",
                               ["reason"], registry=registry)
        for reason in ("buffer_full", "database"):
            self.dropped.labels(reason)  # exported at 0 from the start
        Gauge("deepfake_gateway_records_buffered", "prediction records waiting to be written",
              registry=registry).set_function(lambda: self.writer.buffered)

    def _count_drop(self, reason: str, count: int) -> None:
        if self.dropped is not None:
            self.dropped.labels(reason).inc(count)

    def identity(self, client: Any, settings: Any) -> ServerIdentity:
        """Cached per served settings object (the gateway refreshes those every 30 s)."""
        if self._identity is None or self._identity[0] is not settings:
            try:
                identity = ServerIdentity.from_settings(getattr(client, "url", None), settings, self.repository_json)
            except (OSError, ValueError) as error:
                log.warning("cannot read %s for the model fingerprints: %s", self.repository_json, error)
                identity = ServerIdentity.from_settings(getattr(client, "url", None), settings)
            self._identity = (settings, identity)
        return self._identity[1]

    def image(self, result: DetectionResult, *, kind: str, data: bytes, filename: str | None,
              size: tuple[int, int] | None, elapsed: float, identity: ServerIdentity, group_id: str | None = None) -> None:
        """An image, batch item or webcam frame. Never raises: a record is never worth a failed detection."""
        try:
            record = detection_record(result, kind=kind, source=SOURCE, data=data, filename=filename, size=size,
                                      processing_time_s=elapsed, identity=identity, group_id=group_id)
            if self.thumbnails:
                record["_image"] = data
            self.writer.submit(record)
        except Exception:  # noqa: BLE001
            log.exception("could not build a prediction record")

    def video(self, video: VideoResult, *, data_sha256: str, size_bytes: int, filename: str | None, elapsed: float,
              identity: ServerIdentity) -> None:
        try:
            for record in video_records(video, source=SOURCE, group_id=new_group(), data_sha256=data_sha256,
                                        size_bytes=size_bytes, filename=filename, processing_time_s=elapsed,
                                        identity=identity):
                self.writer.submit(record)
        except Exception:  # noqa: BLE001
            log.exception("could not build the video's prediction records")

    def close(self) -> None:
        self.writer.close()
        self.store.close()


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _checked(work: Any) -> Any:
    """Bad filters are 422, an unreachable database 503: typed JSON errors, never a traceback."""
    try:
        return work()
    except InvalidInputError as error:
        raise GatewayError(422, "invalid_request", error.message) from error
    except RecordStoreError as error:
        raise GatewayError(503, "records_unavailable", error.message, retry_after_s=5) from error


def history_router(store: RecordStore) -> APIRouter:
    """GET /api/history (filters, paging), its CSV/Parquet export, one record, seen-by-sha256, deletes.

    Routes are plain functions: FastAPI runs them on its thread pool, off the event loop.
    """
    router = APIRouter(prefix="/api/history", tags=["history"])

    def filters(
        since: Annotated[str | None, Query(description="ISO 8601 time, or an age: 30m, 12h, 7d")] = None,
        until: Annotated[str | None, Query(description="ISO 8601 time, or an age")] = None,
        verdict: Annotated[str | None, Query(description=" | ".join(VERDICTS))] = None,
        kind: Annotated[str | None, Query(description=" | ".join(KINDS))] = None,
        min_disagreement: Annotated[float | None, Query(description="max - min of the models' p(fake), at least")] = None,
        untrained: Annotated[bool | None, Query(description="served by untrained weights")] = None,
        filename: Annotated[str | None, Query(description="part of the file name")] = None,
        sha256: Annotated[str | None, Query(description="the input's sha256")] = None,
        group_id: Annotated[str | None, Query(description="a batch, video or webcam session")] = None,
    ) -> HistoryFilter:
        return _checked(lambda: make_filter(since=since, until=until, verdict=verdict, kind=kind,
                                            min_disagreement=min_disagreement, untrained=untrained, filename=filename,
                                            sha256=sha256, group_id=group_id))

    Filters = Annotated[HistoryFilter, Depends(filters)]

    @router.get("", summary="Prediction records, newest first, filtered and paged")
    def history(f: Filters, limit: Annotated[int, Query(description=f"1 to {MAX_PAGE}")] = 50,
                offset: Annotated[int, Query()] = 0) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            check_page(limit, offset)
            return {"total": store.count(f), "limit": limit, "offset": offset, "records": store.page(f, limit=limit, offset=offset)}

        return _checked(run)

    @router.get("/export", summary="The filtered records as CSV or Parquet (oldest first)")
    def export(f: Filters, format: Annotated[str, Query(description="csv | parquet")] = "csv") -> Response:
        def run() -> Response:
            if format not in ("csv", "parquet"):
                raise InvalidInputError(f"format must be csv or parquet, got {format!r}")
            if store.count(f) > MAX_EXPORT:
                raise InvalidInputError(f"more than {MAX_EXPORT:,} records match: narrow the filters "
                                        "(or use `deepfake history export`)")
            records = list(store.iterate(f))
            if format == "csv":
                return Response(to_csv(records), media_type="text/csv",
                                headers={"Content-Disposition": 'attachment; filename="history.csv"'})
            return Response(to_parquet(records), media_type="application/vnd.apache.parquet",
                            headers={"Content-Disposition": 'attachment; filename="history.parquet"'})

        return _checked(run)

    @router.get("/seen/{sha256}", summary="Have we judged this input (by its sha256) before?")
    def seen(sha256: str) -> dict[str, Any]:
        return _checked(lambda: store.seen(parse_sha256(sha256)))

    @router.get("/{record_id}", summary="One prediction record")
    def one(record_id: int) -> dict[str, Any]:
        record = _checked(lambda: store.get(record_id))
        if record is None:
            raise GatewayError(404, "not_found", f"no record {record_id}")
        return record

    @router.get("/{record_id}/thumbnail", summary="The record's thumbnail (JPEG), when thumbnails are kept")
    def thumbnail(record_id: int) -> Response:
        data = _checked(lambda: store.thumbnail(record_id))
        if data is None:
            raise GatewayError(404, "not_found", f"no thumbnail for record {record_id}")
        return Response(data, media_type="image/jpeg")

    @router.delete("/{record_id}", summary="Delete one record")
    def delete_one(record_id: int) -> dict[str, int]:
        return {"deleted": _checked(lambda: store.delete(record_id=record_id))}

    @router.delete("", summary="Delete every record of an input, by sha256 (privacy requests)")
    def delete_by_sha256(sha256: Annotated[str, Query(description="the input's sha256")]) -> dict[str, int]:
        return {"deleted": _checked(lambda: store.delete(sha256=parse_sha256(sha256)))}

    return router
