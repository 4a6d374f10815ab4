"""Writes records off the request path: a bounded buffer drained by one thread, in batches.

`submit` never blocks and never raises: when the buffer is full, or a batch cannot be
written (the database is down), the records are dropped and counted, and the detection
that made them is untouched.
"""

from __future__ import annotations

import io
import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from .store import RecordStore

log = logging.getLogger("deepfake_client.records")

DEFAULT_CAPACITY = 10_000
DEFAULT_BATCH = 256
THUMBNAIL_PX = 128
RETRY_PAUSE_S = (0.5, 5.0)  # after a failed batch, first and longest pause before the next try


def make_thumbnail(data: bytes) -> bytes | None:
    """A JPEG at most 128 px on a side, or None when the bytes are not an image PIL reads."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
            out = io.BytesIO()
            image.convert("RGB").save(out, "JPEG", quality=80)
            return out.getvalue()
    except Exception:  # noqa: BLE001 - a thumbnail is optional; the record is kept without one
        return None


class RecordWriter:
    def __init__(
        self,
        store: RecordStore,
        *,
        capacity: int = DEFAULT_CAPACITY,
        batch_size: int = DEFAULT_BATCH,
        on_drop: Callable[[str, int], None] | None = None,
        retention: tuple[timedelta | None, int | None] = (None, None),
        prune_every_s: float = 3600.0,
    ) -> None:
        self.store = store
        self.batch_size = batch_size
        self.on_drop = on_drop
        self.retention = retention
        self.prune_every_s = prune_every_s
        self.written = 0
        self.dropped: dict[str, int] = {"buffer_full": 0, "database": 0}
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=capacity)
        self._lock = threading.Lock()
        self._pause = RETRY_PAUSE_S[0]
        self._pruned_at = 0.0
        self._thread = threading.Thread(target=self._run, name="deepfake-records", daemon=True)
        self._thread.start()

    def submit(self, record: dict[str, Any]) -> bool:
        """Queues a record (with an optional `_image` bytes for its thumbnail); False when dropped."""
        try:
            self._queue.put_nowait(record)
            return True
        except queue.Full:
            self._drop("buffer_full", 1)
            return False

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Waits until every record submitted so far is written or dropped; False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._queue.all_tasks_done.wait(left)
        return True

    def close(self, timeout_s: float = 30.0) -> None:
        """Writes what is buffered (for at most timeout_s), then stops the thread."""
        self.flush(timeout_s)
        try:
            self._queue.put(None, timeout=1.0)
        except queue.Full:
            pass
        self._thread.join(timeout=5.0)

    @property
    def buffered(self) -> int:
        return self._queue.qsize()

    def _drop(self, reason: str, count: int) -> None:
        with self._lock:
            self.dropped[reason] += count
        if self.on_drop is not None:
            self.on_drop(reason, count)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            batch = [first]
            while first is not None and len(batch) < self.batch_size:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            records = [r for r in batch if r is not None]
            try:
                if records:
                    self._write(records)
                self._maybe_prune()
            finally:
                for _ in batch:
                    self._queue.task_done()
            if len(records) < len(batch):  # the stop sentinel
                return

    def _write(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            image = record.pop("_image", None)
            if image is not None:
                record["thumbnail"] = make_thumbnail(image)
        try:
            self.store.add_many(records)
        except Exception as error:  # noqa: BLE001 - any database failure: count the loss, keep serving
            self._drop("database", len(records))
            log.warning("record database unavailable, %d records dropped: %s", len(records), str(error).splitlines()[0])
            time.sleep(self._pause)  # the buffer absorbs (or counts) what arrives meanwhile
            self._pause = min(self._pause * 2, RETRY_PAUSE_S[1])
            return
        self._pause = RETRY_PAUSE_S[0]
        with self._lock:
            self.written += len(records)

    def _maybe_prune(self) -> None:
        older_than, keep = self.retention
        if (older_than is None and keep is None) or time.monotonic() - self._pruned_at < self.prune_every_s:
            return
        self._pruned_at = time.monotonic()
        try:
            removed = self.store.prune(older_than=older_than, keep=keep)
        except Exception as error:  # noqa: BLE001 - retention retries at the next interval
            log.warning("record retention failed: %s", error)
            return
        if removed:
            log.info("record retention removed %d records", removed)
