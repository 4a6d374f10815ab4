"""Retries with backoff: for an unavailable server, and (if asked) for an overloaded one.

`ServerUnavailableError` (cannot connect, or UNAVAILABLE) is retried with
exponential backoff: the server is restarting or not up yet. `OverloadedError`
(the server refused the request: queue full or queue timeout) is NOT retried by
default: retrying at once only adds to the queue that refused it. With
`overloaded_attempts` > 1 it is retried with "full jitter" (a wait drawn
uniformly between 0 and the backoff), so refused clients spread out instead of
returning together. Nothing else is retried: a rejected image stays rejected, a
missing model stays missing, and a timed-out request may still be running on
the server, so resending it would only add load.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from .errors import InvalidInputError, OverloadedError, ServerUnavailableError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4  # tries in all when the server is unavailable, the first included; 1 disables retries
    initial_backoff_s: float = 0.25
    multiplier: float = 2.0
    max_backoff_s: float = 4.0
    overloaded_attempts: int = 1  # tries in all when the server is overloaded; 1 (default): not retried

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.overloaded_attempts < 1:
            raise InvalidInputError(
                f"max_attempts and overloaded_attempts must be at least 1, got {self.max_attempts}, "
                f"{self.overloaded_attempts}"
            )
        if self.initial_backoff_s < 0 or self.max_backoff_s < 0 or self.multiplier < 1:
            raise InvalidInputError("backoffs must be >= 0 and the multiplier >= 1")

    def backoffs(self, attempts: int | None = None) -> Iterator[float]:
        """The waits before the 2nd, 3rd, ... attempt (of `attempts`, default max_attempts)."""
        delay = self.initial_backoff_s
        for _ in range((self.max_attempts if attempts is None else attempts) - 1):
            yield min(delay, self.max_backoff_s)
            delay *= self.multiplier


DEFAULT_RETRY = RetryPolicy()
NO_RETRY = RetryPolicy(max_attempts=1)


def call_with_retry(
    call: Callable[[], T],
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
    jitter: Callable[[float], float] = lambda backoff: random.uniform(0.0, backoff),
) -> T:
    """call() until it succeeds or the policy's budget for the error it raises is spent."""
    unavailable = policy.backoffs()
    overloaded = policy.backoffs(policy.overloaded_attempts)
    while True:
        try:
            return call()
        except OverloadedError:
            backoff = next(overloaded, None)
            if backoff is None:
                raise
            sleep(jitter(backoff))
        except ServerUnavailableError:
            backoff = next(unavailable, None)
            if backoff is None:
                raise
            sleep(backoff)
