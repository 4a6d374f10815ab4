"""The gateway's jobs: the store on the record database, the queue, the embedded workers, the routes."""

from __future__ import annotations

import logging
from typing import Any

from .api import JobSettings, jobs_router
from .queue import JobQueue
from .runner import JobRunner
from .store import JobStore

log = logging.getLogger("deepfake_client.jobs")


class GatewayJobs:
    """workers: embedded worker threads (0: none here, `deepfake job worker` processes consume the queue)."""

    def __init__(self, record_store: Any, queue_url: str, settings: JobSettings, *, workers: int = 2) -> None:
        self.store = JobStore(record_store.engine)  # the records' database, migrated by the record store
        self.record_store = record_store
        self.settings = settings
        self.workers = workers
        self.queue_url = queue_url
        self.client: Any = None
        self.queue = JobQueue(queue_url, self._runner, retry_s=settings.retry_s)

    def _runner(self) -> JobRunner:
        return JobRunner(self.store, self.client, self.settings.webhook)

    def router(self, client: Any, threshold: Any) -> Any:
        self.client = client
        return jobs_router(self.store, self.queue, self.settings, threshold)

    def start(self) -> None:
        """Interrupted jobs are queued again, then (embedded mode) the worker threads start."""
        self.settings.folder.mkdir(parents=True, exist_ok=True)
        self.queue.recover(self.store)
        if self.workers > 0:
            self.queue.start_embedded(self.workers)

    def close(self) -> None:
        self.queue.stop()
