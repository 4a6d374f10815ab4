"""Exponential backoff for requests the server answered UNAVAILABLE (or never received).

Only `ServerUnavailableError` is retried: a rejected image stays rejected, a
missing model stays missing, and a timed-out request may still be running on
the server, so resending it would only add load.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from .errors import InvalidInputError, ServerUnavailableError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4  # tries in all, the first included; 1 disables retries
    initial_backoff_s: float = 0.25
    multiplier: float = 2.0
    max_backoff_s: float = 4.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise InvalidInputError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.initial_backoff_s < 0 or self.max_backoff_s < 0 or self.multiplier < 1:
            raise InvalidInputError("backoffs must be >= 0 and the multiplier >= 1")

    def backoffs(self) -> Iterator[float]:
        """The waits before the 2nd, 3rd, ... attempt."""
        delay = self.initial_backoff_s
        for _ in range(self.max_attempts - 1):
            yield min(delay, self.max_backoff_s)
            delay *= self.multiplier


DEFAULT_RETRY = RetryPolicy()
NO_RETRY = RetryPolicy(max_attempts=1)


def call_with_retry(call: Callable[[], T], policy: RetryPolicy, sleep: Callable[[float], None] = time.sleep) -> T:
    for backoff in policy.backoffs():
        try:
            return call()
        except ServerUnavailableError:
            sleep(backoff)
    return call()


async def acall_with_retry(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    for backoff in policy.backoffs():
        try:
            return await call()
        except ServerUnavailableError:
            await sleep(backoff)
    return await call()
