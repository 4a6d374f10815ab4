"""Run a function over many items on a thread pool, with a bounded number in flight."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

from .errors import DeepfakeError, InvalidInputError

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
