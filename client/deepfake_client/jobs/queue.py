"""The job queue on huey: SqliteHuey (a file in the data folder, consumed by threads inside the
gateway) by default, RedisHuey (consumed by `deepfake job worker` processes, on any host that
shares the database and the jobs folder) with a redis:// URL.

A queue task is one chunk of a job. huey delivers it to one worker; the chunk's claim in the
database (owner, lease) makes a duplicate delivery (recovery after a restart enqueues every
unfinished chunk again) a no-op, and the items' unique key means an item is never written twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from huey import RedisHuey, SqliteHuey, crontab
from huey.api import Huey
from huey.consumer import Consumer

from .runner import JobRunner
from .store import LEASE, JobStore

log = logging.getLogger("deepfake_client.jobs")

NAME = "deepfake-jobs"
RETRY_S = int(LEASE.total_seconds() // 2)  # a chunk held by another worker is looked at again after this


def default_queue_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'jobs-queue.sqlite'}"


def make_huey(url: str) -> Huey:
    """redis://host:port/db, or sqlite:///path (or a bare path)."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisHuey(NAME, url=url)
    path = url.split(":///", 1)[1] if url.startswith("sqlite:///") else url
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(NAME, filename=path)


class _EmbeddedConsumer(Consumer):
    def _set_signal_handlers(self) -> None:
        pass  # the gateway's server owns the process's signals


class JobQueue:
    """The queue and its tasks. runner: made on first use (a worker process connects lazily)."""

    def __init__(self, url: str, runner: Callable[[], JobRunner], *, retry_s: int = RETRY_S) -> None:
        self.url = url
        self.huey = make_huey(url)
        self._runner_factory = runner
        self._runner: JobRunner | None = None
        self._lock = threading.Lock()
        self._consumer: Consumer | None = None

        @self.huey.task(name="deepfake.run_chunk", retries=5, retry_delay=10)
        def run_chunk(job_id: str, number: int) -> str:
            outcome = self.runner().run_chunk(job_id, number)
            if outcome in ("busy", "retry"):
                self._task.schedule((job_id, number), delay=retry_s)
            return outcome

        @self.huey.periodic_task(crontab(minute="*"), name="deepfake.recover_abandoned")
        def recover_abandoned() -> int:
            """Chunks whose worker died (lease over): queued again, by whichever worker runs this."""
            chunks = self.runner().store.abandoned_chunks()
            for job_id, number in chunks:
                self._task(job_id, number)
            return len(chunks)

        self._task = run_chunk

    def runner(self) -> JobRunner:
        with self._lock:
            if self._runner is None:
                self._runner = self._runner_factory()
            return self._runner

    @property
    def distributed(self) -> bool:
        return isinstance(self.huey, RedisHuey)

    def enqueue(self, job_id: str, chunks: int) -> None:
        for number in range(chunks):
            self._task(job_id, number)

    def recover(self, store: JobStore) -> int:
        """At start: every unfinished chunk of every unfinished job queued again (an interrupted job
        goes on where it stopped: its scored items are kept), and jobs whose chunks all ended finished."""
        pending = store.pending_chunks()
        for job_id, number in pending:
            self._task(job_id, number)
        for job_id in store.unfinished_without_chunks():
            self._task(job_id, 0)
        if pending:
            log.info("jobs: %d unfinished chunks queued again", len(pending))
        return len(pending)

    def start_embedded(self, workers: int) -> None:
        """Worker threads in this process (the gateway's embedded mode)."""
        self._consumer = _EmbeddedConsumer(self.huey, workers=workers, worker_type="thread", periodic=False,
                                           check_worker_health=False)
        self._consumer.start()

    def consumer(self, workers: int) -> Consumer:
        """A worker process's consumer (`deepfake job worker`): run() blocks and handles signals."""
        return Consumer(self.huey, workers=workers, worker_type="thread", periodic=True)

    def stop(self) -> None:
        if self._runner is not None:
            self._runner.stopping.set()  # chunks being scored stop at the next item and are given back
        if self._consumer is not None:
            self._consumer.stop(graceful=True)
            self._consumer = None
