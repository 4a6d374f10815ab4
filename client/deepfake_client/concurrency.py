"""Run a function over many items on a thread pool, with a bounded number in flight, and
the SDK's own congestion control for that fan-out (AdaptiveLimit)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

from .errors import DeepfakeError, InvalidInputError, OverloadedError

T = TypeVar("T")
R = TypeVar("R")

Outcome = R | DeepfakeError


def bounded_map(fn: Callable[[T], R], items: Iterable[T], concurrency: int) -> Iterator[tuple[int, Outcome]]:
    """Yield (position, result or DeepfakeError) as calls complete.

    Items are pulled from `items` only when a slot frees up, so a long or lazy
    iterable (a video's frames, a folder of images) is never held in memory at
    once. A DeepfakeError is yielded in place of its item's result; any other
    exception is a bug and propagates.
    """
    if concurrency < 1:
        raise InvalidInputError(f"concurrency must be at least 1, got {concurrency}")
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="deepfake") as pool:
        pending: dict[Future, int] = {}
        iterator = iter(enumerate(items))
        try:
            while True:
                for position, item in iterator:
                    pending[pool.submit(fn, item)] = position
                    if len(pending) >= concurrency:
                        break
                if not pending:
                    return
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield pending.pop(future), _outcome(future)
        finally:
            for future in pending:
                future.cancel()


def _outcome(future: Future) -> Outcome:
    try:
        return future.result()
    except DeepfakeError as error:
        return error


class AdaptiveLimit:
    """How many of a fan-out's requests may be on the server at once, between 1 and `maximum`.

    The server refuses what it cannot serve within its queue timeout (OverloadedError). A
    refusal halves the limit; `limit` successes in a row raise it by one (additive increase,
    multiplicative decrease, as TCP does). So a batch or a video on a small server slows to
    what the server can take instead of spending its retries on refusals; on a big one it
    stays at `maximum`.
    """

    def __init__(self, maximum: int) -> None:
        if maximum < 1:
            raise InvalidInputError(f"concurrency must be at least 1, got {maximum}")
        self.maximum = self.limit = maximum
        self._in_flight = self._successes = 0
        self._changed = threading.Condition()

    def call(self, fn: Callable[[], R]) -> R:
        """fn() once a slot is free; its outcome adjusts the limit."""
        with self._changed:
            self._changed.wait_for(lambda: self._in_flight < self.limit)
            self._in_flight += 1
        try:
            result = fn()
        except OverloadedError:
            self._release(overloaded=True)
            raise
        except BaseException:
            self._release(overloaded=False, succeeded=False)
            raise
        self._release(overloaded=False)
        return result

    def _release(self, overloaded: bool, succeeded: bool = True) -> None:
        with self._changed:
            self._in_flight -= 1
            if overloaded:
                self.limit, self._successes = max(1, self.limit // 2), 0
            elif succeeded:
                self._successes += 1
                if self._successes >= self.limit and self.limit < self.maximum:
                    self.limit, self._successes = self.limit + 1, 0
            self._changed.notify_all()
