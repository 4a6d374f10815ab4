"""Recording for SDK users and the CLI (`--record`): a client wrapper that records each verdict.

    with RecordingClient(DeepfakeClient(url), RecordStore(url_of_db)) as client:
        client.detect("photo.jpg")          # judged as usual, and recorded

Records are written by a background thread; leaving the `with` block (or `close()`) waits for them.
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
import uuid
from pathlib import Path
from typing import Any

from ..results import DetectionResult
from .capture import ServerIdentity, detection_record, video_records
from .store import RecordStore
from .writer import RecordWriter

log = logging.getLogger("deepfake_client.records")
SOURCE = "sdk"


def _describe(image: Any) -> tuple[bytes | None, str | None, tuple[int, int] | None]:
    """The encoded bytes (for sha256 and size), a file name and the dimensions of an SDK image input."""
    data, name = None, None
    if isinstance(image, (str, Path)):
        name = str(image)
        try:
            data = Path(image).read_bytes()
        except OSError:
            return None, name, None
    elif isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
    elif hasattr(image, "shape"):  # an HxWx3 array: no encoded bytes to hash
        return None, None, (int(image.shape[1]), int(image.shape[0]))
    elif hasattr(image, "size"):  # a PIL image
        return None, None, tuple(image.size)
    if data is None:
        return None, name, None
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as opened:  # reads the header only
            size = opened.size
    except Exception:  # noqa: BLE001 - dimensions are optional
        size = None
    return data, name, size


class RecordingClient:
    """Wraps a DeepfakeClient: detect, detect_many and detect_video are recorded; the rest is delegated."""

    def __init__(self, client: Any, store: RecordStore, *, source: str = SOURCE) -> None:
        self._client = client
        self.store = store
        self.source = source
        self.writer = RecordWriter(store)
        self._identity: ServerIdentity | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def __enter__(self) -> RecordingClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._client.close()
        finally:
            self.writer.close()
            self.store.close()

    def identity(self) -> ServerIdentity:
        if self._identity is None:
            try:
                settings = self._client.ensemble_settings()
            except Exception as error:  # noqa: BLE001 - the record keeps the URL without the settings digest
                log.warning("no ensemble settings for the records: %s", error)
                settings = None
            self._identity = ServerIdentity.from_settings(getattr(self._client, "url", None), settings)
        return self._identity

    def _record(self, image: Any, result: DetectionResult, kind: str, elapsed: float | None, group: str | None) -> None:
        data, name, size = _describe(image)
        self.writer.submit(detection_record(result, kind=kind, source=self.source, data=data, filename=name, size=size,
                                            processing_time_s=elapsed, identity=self.identity(), group_id=group))

    def detect(self, image: Any, *args: Any, **kwargs: Any) -> DetectionResult:
        started = time.perf_counter()
        result = self._client.detect(image, *args, **kwargs)
        self._record(image, result, "image", time.perf_counter() - started, None)
        return result

    def detect_many(self, images: Any, *args: Any, **kwargs: Any) -> list[Any]:
        images = list(images)
        outcomes = self._client.detect_many(images, *args, **kwargs)
        group = str(uuid.uuid4())
        for image, outcome in zip(images, outcomes, strict=True):
            if isinstance(outcome, DetectionResult):  # failed items are errors, not verdicts
                self._record(image, outcome, "batch_item", None, group)
        return outcomes

    def detect_video(self, path: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        video = self._client.detect_video(path, *args, **kwargs)
        elapsed = time.perf_counter() - started
        digest, size = None, None
        if isinstance(path, (str, Path)):
            digest, size = _file_sha256(Path(path))
        for record in video_records(video, source=self.source, group_id=str(uuid.uuid4()), data_sha256=digest,
                                    size_bytes=size, filename=str(path), processing_time_s=elapsed,
                                    identity=self.identity()):
            self.writer.submit(record)
        return video


def _file_sha256(path: Path) -> tuple[str | None, int | None]:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest(), path.stat().st_size
    except OSError:
        return None, None
