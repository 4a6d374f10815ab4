"""A closed-loop load generator: N workers, each sending its next request as soon as the last returns.

Used where exact per-request latencies matter (the baseline comparison, the
capacity sweep); Locust (locustfile.py) is the load test users run against SLOs.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator

from benchmarks.common.latency import Timing
from benchmarks.load.workload import Request

Send = Callable[[Request], None]


def run_closed_loop(
    send: Send, requests: Iterable[Request], concurrency: int, duration_s: float | None = None
) -> list[Timing]:
    """Send `requests` with `concurrency` in flight until they run out or `duration_s` has passed
    (requests in flight then still complete and count). A request that raises is timed and
    recorded with its error; the run goes on."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    if duration_s is not None and not duration_s > 0:
        raise ValueError(f"duration_s must be positive, got {duration_s}")
    source: Iterator[Request] = iter(requests)
    lock = threading.Lock()
    timings: list[Timing] = []
    deadline = None if duration_s is None else time.monotonic() + duration_s

    def next_request() -> Request | None:
        with lock:
            if deadline is not None and time.monotonic() >= deadline:
                return None
            return next(source, None)

    def worker() -> None:
        while (request := next_request()) is not None:
            start = time.monotonic()
            error = None
            try:
                send(request)
            except Exception as exc:  # noqa: BLE001 - a failed request is a measurement, not a crash
                error = f"{type(exc).__name__}: {exc}"
            timing = Timing(request.name, start, time.monotonic() - start, error)
            with lock:
                timings.append(timing)

    workers = [threading.Thread(target=worker, name=f"load-{i}", daemon=True) for i in range(concurrency)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    return sorted(timings, key=lambda t: t.start_s)


def repeat(requests: Iterable[Request]) -> Iterator[Request]:
    """An endless cycle over a request sequence (for runs bounded by duration)."""
    return itertools.cycle(list(requests))


def parse_levels(text: str, what: str = "concurrency levels") -> list[int]:
    """'1,2,16' -> [1, 2, 16]: positive integers, comma-separated."""
    try:
        levels = [int(x) for x in text.split(",")]
    except ValueError:
        raise ValueError(f"{what} must be comma-separated integers, got {text!r}") from None
    if not levels or min(levels) < 1:
        raise ValueError(f"{what} must be at least 1, got {text!r}")
    return levels
