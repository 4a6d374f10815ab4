"""Scores one chunk of a job through the SDK (detect_many: bulk priority, the adaptive concurrency
limit and the fan-out's overload retries, so a busy server slows a job down instead of failing it),
writing each item as it is scored; finishes the job and sends its webhook when the last chunk ends."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..aggregation import verdict
from ..errors import DeepfakeError, ModelNotReadyError, OverloadedError, RequestTimeoutError, ServerUnavailableError
from ..records.capture import detection_record
from ..video import VideoFrame, probe_video, read_frames
from .inputs import inside
from .store import JobStore, JobStoreError, worker_id
from .webhook import WebhookConfig, send

log = logging.getLogger("deepfake_client.jobs")

MAX_IMAGE_BYTES = 20 << 20
# Outcomes that say nothing about the item (a busy or unavailable server, a timeout on a busy one): the
# item is left unscored and its chunk tried again later, MAX_RETRIES times; after that it is an item error.
TRANSIENT = (OverloadedError, ServerUnavailableError, ModelNotReadyError, RequestTimeoutError)
MAX_RETRIES = 20
ITEM_FIELDS = ("verdict", "fake_probability", "num_faces", "faces", "model_probabilities", "disagreement", "untrained")


def item_result(outcome: Any) -> dict[str, Any]:
    if isinstance(outcome, DeepfakeError):
        return {"error": type(outcome).__name__, "detail": outcome.message[:500]}
    record = detection_record(outcome, kind="batch_item", source="job")
    return {k: record[k] for k in ITEM_FIELDS}


def _read_capped(path: Path) -> bytes:
    """The file's bytes, or b'' (an item error) when it cannot be read or is over the image limit."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_IMAGE_BYTES + 1)
    except OSError:
        return b""
    return b"" if len(data) > MAX_IMAGE_BYTES else data


class JobRunner:
    """What a queue task calls. client: a DeepfakeClient (or anything with detect_many)."""

    def __init__(self, store: JobStore, client: Any, webhook: WebhookConfig | None = None, *,
                 concurrency: int | None = None) -> None:
        self.store = store
        self.client = client
        self.webhook = webhook or WebhookConfig()
        self.concurrency = concurrency
        self.owner = worker_id()
        self.stopping = threading.Event()  # set when the process shuts down

    def run_chunk(self, job_id: str, number: int) -> str:
        """'done'; 'busy' (another worker holds it) or 'retry' (the server was unavailable): try later;
        'cancelled', 'stopped' (this process is stopping; recovery queues it again) or 'gone'."""
        job = self.store.job_row(job_id)
        if job is None or job.state not in ("queued", "running"):
            return "gone"
        claim = self.store.claim(job_id, number, self.owner)
        if claim != "claimed":
            if claim == "done":
                self.finish_if_complete(job_id)
            return claim
        self.store.mark_running(job_id)
        start, end, retries = self.store.chunk_range(job_id, number)
        todo = sorted(set(range(start, end)) - self.store.done_positions(job_id, start, end))
        try:
            outcome = self._score(job, number, todo, last_try=retries >= MAX_RETRIES) if todo else "done"
            if outcome != "done":
                if outcome == "retry":
                    self.store.count_retry(job_id, number)
                self.store.release(job_id, number, self.owner)
                return outcome
        except JobStoreError:
            raise  # the database: the queue retries the task; the lease runs out meanwhile
        except DeepfakeError as error:  # the input itself is unreadable (a video that will not decode)
            self.store.fail(job_id, f"{type(error).__name__}: {error.message}")
            return "done"
        except BaseException:
            self.store.release(job_id, number, self.owner)  # another worker may take it at once
            raise
        self.store.finish_chunk(job_id, number, self.owner)
        self.finish_if_complete(job_id)
        return "done"

    def _score(self, job: Any, number: int, todo: list[int], last_try: bool = False) -> str:
        """Scores `todo` (positions): 'done', 'cancelled', 'stopped' or 'retry'."""
        sent: list[tuple[int, int | None, str | None]] = []  # (position, frame index, name) in sending order
        outcome = "done"

        def inputs() -> Iterator[Any]:
            nonlocal outcome
            for position, frame_index, name, image in self._inputs(job, todo):
                if self.stopping.is_set():
                    outcome = "stopped"
                    return
                if self.store.state(job.id) != "running":
                    outcome = "cancelled"
                    return
                sent.append((position, frame_index, name))
                yield image

        def on_result(i: int, result: Any) -> None:
            nonlocal outcome
            position, frame_index, name = sent[i]
            if isinstance(result, TRANSIENT) and not last_try:  # not the item's fault: left for the retry
                outcome = "retry" if outcome == "done" else outcome
                return
            self.store.save_item(job.id, position, self.owner, item_result(result), frame_index=frame_index, name=name)
            self.store.renew(job.id, number, self.owner)

        self.client.detect_many(inputs(), on_result=on_result, concurrency=self.concurrency)
        return outcome

    def _inputs(self, job: Any, todo: list[int]) -> Iterator[tuple[int, int | None, str | None, Any]]:
        plan = job.plan
        if job.kind == "video":
            stride = plan["stride"]
            by_frame = {p * stride: p for p in todo}
            info = probe_video(Path(plan["video"]))
            frame: VideoFrame
            for frame in read_frames(info, sorted(by_frame)):
                yield by_frame[frame.index], frame.index, None, frame.rgb
            return
        root = Path(plan["root"]) if plan.get("root") else None
        for position in todo:
            path = Path(plan["paths"][position])
            if root is not None:  # server-side paths: checked again now (a link may have changed since)
                try:
                    path = inside(root, path)
                except DeepfakeError:
                    yield position, None, plan["names"][position], b""
                    continue
            yield position, None, plan["names"][position], _read_capped(path)

    def finish_if_complete(self, job_id: str) -> None:
        if not self.store.all_chunks_done(job_id):
            return
        job = self.store.job_row(job_id)
        if job is None or job.state not in ("queued", "running"):
            return
        if self.store.complete(job_id, summarise(job, self.store.all_items(job_id))):
            self.send_webhook(job_id)

    def send_webhook(self, job_id: str) -> None:
        job = self.store.job_row(job_id)
        if job is None or not job.webhook_url or not self.store.claim_webhook(job_id):
            return
        payload = self.store.get(job_id)
        outcome = send(job.webhook_url, payload, self.webhook)
        self.store.webhook_done(job_id, "sent" if outcome.startswith("sent") else "failed", outcome)
        log.info("job %s webhook: %s", job_id, outcome)


def summarise(job: Any, items: list[dict[str, Any]]) -> dict[str, Any]:
    """The job's result: a video's verdict (mean over the frames with a face, as the SDK's videos),
    or counts per verdict for images."""
    counts: dict[str, int] = {}
    for item in items:
        key = item.get("verdict") or "ERROR"
        counts[key] = counts.get(key, 0) + 1
    summary: dict[str, Any] = {"items": len(items), "counts": counts}
    if job.kind == "video":
        scores = [i["fake_probability"] for i in items if i.get("fake_probability") is not None]
        label, probability = verdict(scores, job.threshold if job.threshold is not None else 0.5)
        summary.update({"verdict": label.value, "fake_probability": None if math.isnan(probability) else probability,
                        "aggregation": "mean", "threshold": job.threshold, "frames_scored": len(items),
                        "frames_with_face": len(scores), "stride": job.plan["stride"],
                        "frame_count": job.plan["frame_count"]})
    return summary
