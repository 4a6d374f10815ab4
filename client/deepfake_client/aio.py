"""The asyncio client: DeepfakeClient's calls, awaitable.

    async with AsyncDeepfakeClient("localhost:8001") as client:
        result = await client.detect("photo.jpg")

It is a thin layer over DeepfakeClient: each call runs the synchronous one in a
worker thread (asyncio.to_thread), so both clients share one implementation,
one set of transports and the same results, errors and retries. Cancelling an
awaiting task stops the wait, never the request: it finishes on the server and
its answer is dropped (Triton 2.51 can crash when a request is cancelled,
triton-inference-server/server#7368). Callbacks (on_result, on_frame) run on
the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from .aggregation import Aggregation
from .client import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_MODEL,
    DEFAULT_TIMEOUT_S,
    DEFAULT_TOP_K,
    DEFAULT_WINDOW,
    BatchOutcome,
    DeepfakeClient,
    Health,
)
from .ensemble import EnsembleSettings
from .images import ImageInput
from .priority import Priority
from .provenance import ProvenanceReader
from .results import DetectionResult, FrameResult, VideoResult
from .retry import DEFAULT_RETRY, RetryPolicy
from .stream import LiveStream, StreamUpdate
from .tls import TlsConfig
from .video import DEFAULT_NUM_FRAMES, StreamSource

T = TypeVar("T")


def _on_loop(callback: Callable[..., None] | None) -> Callable[..., None] | None:
    """The callback, called on the running event loop whichever thread calls it."""
    if callback is None:
        return None
    loop = asyncio.get_running_loop()
    return lambda *args: loop.call_soon_threadsafe(callback, *args)


class AsyncDeepfakeClient:
    """Asyncio client of the `deepfake_detector` ensemble; arguments, results and errors as DeepfakeClient."""

    def __init__(
        self,
        url: str | None = None,
        *,
        protocol: str | None = None,
        model: str = DEFAULT_MODEL,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy = DEFAULT_RETRY,
        concurrency: int = DEFAULT_CONCURRENCY,
        tls: TlsConfig | bool | None = None,
        priority: Priority | None = None,
        transport: Any | None = None,  # advanced: a custom Transport (see transport.py), e.g. in tests
        provenance: ProvenanceReader | bool | None = True,
    ) -> None:
        self.sync = DeepfakeClient(
            url,
            protocol=protocol,
            model=model,
            timeout_s=timeout_s,
            retry=retry,
            concurrency=concurrency,
            tls=tls,
            priority=priority,
            transport=transport,
            provenance=provenance,
        )

    # The options, as the synchronous client resolved them
    url = property(lambda self: self.sync.url)
    protocol = property(lambda self: self.sync.protocol)
    scheme = property(lambda self: self.sync.scheme)
    tls = property(lambda self: self.sync.tls)
    model = property(lambda self: self.sync.model)
    timeout_s = property(lambda self: self.sync.timeout_s)
    retry = property(lambda self: self.sync.retry)
    concurrency = property(lambda self: self.sync.concurrency)
    priority = property(lambda self: self.sync.priority)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.scheme}://{self.url}, model={self.model!r})"

    async def __aenter__(self) -> AsyncDeepfakeClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        await asyncio.to_thread(self.sync.close)

    async def detect(self, image: ImageInput, *, priority: Priority | None = None) -> DetectionResult:
        return await asyncio.to_thread(self.sync.detect, image, priority=priority)

    async def detect_many(
        self,
        images: Iterable[ImageInput],
        *,
        concurrency: int | None = None,
        on_result: Callable[[int, BatchOutcome], None] | None = None,
        priority: Priority | None = None,
    ) -> list[BatchOutcome]:
        """Verdicts in input order; an item that fails holds its DeepfakeError instead."""
        return await asyncio.to_thread(
            self.sync.detect_many, images, concurrency=concurrency, on_result=_on_loop(on_result), priority=priority
        )

    async def detect_video(
        self,
        path: str | Path,
        *,
        num_frames: int = DEFAULT_NUM_FRAMES,
        aggregation: Aggregation | str = Aggregation.MEAN,
        top_k: int = DEFAULT_TOP_K,
        threshold: float | None = None,
        concurrency: int | None = None,
        on_frame: Callable[[FrameResult], None] | None = None,
        priority: Priority | None = None,
    ) -> VideoResult:
        """As DeepfakeClient.detect_video."""
        return await asyncio.to_thread(
            self.sync.detect_video,
            path,
            num_frames=num_frames,
            aggregation=aggregation,
            top_k=top_k,
            threshold=threshold,
            concurrency=concurrency,
            on_frame=_on_loop(on_frame),
            priority=priority,
        )

    async def stream(
        self,
        source: StreamSource,
        *,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        window: int = DEFAULT_WINDOW,
        aggregation: Aggregation | str = Aggregation.MEAN,
        top_k: int = DEFAULT_TOP_K,
        threshold: float | None = None,
        max_frames: int | None = None,
        max_seconds: float | None = None,
        realtime: bool | None = None,
        priority: Priority | None = None,
    ) -> AsyncLiveStream:
        """As DeepfakeClient.stream; iterate the result with `async for`."""
        live = await asyncio.to_thread(
            self.sync.stream,
            source,
            max_in_flight=max_in_flight,
            window=window,
            aggregation=aggregation,
            top_k=top_k,
            threshold=threshold,
            max_frames=max_frames,
            max_seconds=max_seconds,
            realtime=realtime,
            priority=priority,
        )
        return AsyncLiveStream(live)

    async def ensemble_settings(self) -> EnsembleSettings:
        return await asyncio.to_thread(self.sync.ensemble_settings)

    async def health(self) -> Health:
        return await asyncio.to_thread(self.sync.health)

    async def wait_until_ready(self, timeout_s: float = 120.0, poll_s: float = 0.5) -> Health:
        return await asyncio.to_thread(self.sync.wait_until_ready, timeout_s, poll_s)


class AsyncLiveStream:
    """A LiveStream iterated with `async for`; `stop()` ends it cleanly."""

    def __init__(self, live: LiveStream) -> None:
        self.live = live
        self._updates = iter(live)

    def stop(self) -> None:
        self.live.stop()

    def __aiter__(self) -> AsyncIterator[StreamUpdate]:
        return self

    async def __anext__(self) -> StreamUpdate:
        update = await asyncio.to_thread(next, self._updates, None)
        if update is None:
            raise StopAsyncIteration
        return update

    scored = property(lambda self: self.live.scored)
    dropped = property(lambda self: self.live.dropped)
    last_update = property(lambda self: self.live.last_update)
