"""The asyncio client: the same calls as DeepfakeClient, awaitable.

    async with AsyncDeepfakeClient("localhost:8001") as client:
        result = await client.detect("photo.jpg")

Encoding and video decoding run in worker threads so they never block the loop.
Requests in flight are awaited, never cancelled, when a batch or video fails:
Triton 2.51 (NGC 24.10) can crash when a gRPC client abandons a request
(triton-inference-server/server#7368, fixed upstream by server PR #7840).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from pathlib import Path

from .aggregation import Aggregation, video_result
from .client import BatchOutcome, ClientBase, Health
from .ensemble import COMBINER_MODEL, EnsembleSettings
from .errors import DeepfakeError, ServerUnavailableError
from .images import ImageInput, encode_image, encode_rgb_array
from .results import DetectionResult, FrameResult, VideoResult, parse_outputs
from .retry import acall_with_retry
from .transport import AsyncGrpcTransport, AsyncHttpTransport
from .video import DEFAULT_NUM_FRAMES, VideoFrame, probe_video, read_frames, sample_indices


class AsyncDeepfakeClient(ClientBase):
    """Asyncio client of the `deepfake_detector` ensemble; arguments as DeepfakeClient.

    Use it from one event loop (tritonclient's aio clients are bound to theirs).
    """

    transport_classes = {"grpc": AsyncGrpcTransport, "http": AsyncHttpTransport}

    async def __aenter__(self) -> AsyncDeepfakeClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._transport.close()

    async def detect(self, image: ImageInput) -> DetectionResult:
        return await self._detect_bytes(await asyncio.to_thread(encode_image, image))

    async def _detect_bytes(self, data: bytes) -> DetectionResult:
        outputs = await acall_with_retry(lambda: self._transport.infer(self.model, data), self.retry)
        return self._checked(parse_outputs(outputs))

    async def detect_many(
        self, images: Iterable[ImageInput], *, concurrency: int | None = None
    ) -> list[BatchOutcome]:
        """Verdicts in input order; an item that fails holds its DeepfakeError instead."""
        slots = asyncio.Semaphore(concurrency or self.concurrency)

        async def one(image: ImageInput) -> BatchOutcome:
            try:
                return await self.detect(image)
            except DeepfakeError as error:
                return error
            finally:
                slots.release()

        tasks = []
        try:
            for image in images:
                await slots.acquire()
                tasks.append(asyncio.create_task(one(image)))
            return list(await asyncio.gather(*tasks))
        finally:
            await asyncio.gather(*tasks, return_exceptions=True)  # requests in flight are never abandoned

    async def detect_video(
        self,
        path: str | Path,
        *,
        num_frames: int = DEFAULT_NUM_FRAMES,
        aggregation: Aggregation | str = Aggregation.MEAN,
        top_k: int = 5,
        threshold: float | None = None,
        concurrency: int | None = None,
    ) -> VideoResult:
        """As DeepfakeClient.detect_video."""
        aggregation = Aggregation(aggregation)
        info = await asyncio.to_thread(probe_video, path)
        indices = sample_indices(info.frame_count, num_frames)
        if threshold is None:
            threshold = (await self.ensemble_settings()).threshold
        slots = asyncio.Semaphore(concurrency or self.concurrency)

        failed = asyncio.Event()

        async def score(frame: VideoFrame) -> FrameResult:
            try:
                data = await asyncio.to_thread(encode_rgb_array, frame.rgb)
                result = await self._detect_bytes(data)
                return FrameResult(index=frame.index, timestamp_s=frame.timestamp_s, result=result)
            except BaseException:
                failed.set()  # no new frames; the first failing frame fails the video
                raise
            finally:
                slots.release()

        frames = read_frames(info, indices)
        tasks = []
        try:
            while not failed.is_set():
                await slots.acquire()
                frame = await asyncio.to_thread(next, frames, None)
                if frame is None:
                    slots.release()
                    break
                tasks.append(asyncio.create_task(score(frame)))
        finally:
            frames.close()
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)  # never abandoned
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if failures:
            raise failures[0]
        return video_result(
            outcomes, frame_count=info.frame_count, fps=info.fps, threshold=threshold, strategy=aggregation, top_k=top_k
        )

    async def ensemble_settings(self) -> EnsembleSettings:
        parameters = await acall_with_retry(lambda: self._transport.model_parameters(COMBINER_MODEL), self.retry)
        return EnsembleSettings.from_parameters(parameters)

    async def health(self) -> Health:
        try:
            live = await self._transport.server_live()
        except ServerUnavailableError:
            return Health(url=self.url, model=self.model, live=False, model_ready=False)
        model_ready = live and await self._transport.model_ready(self.model)
        version = await self._transport.server_version() if live else None
        untrained = (await self.ensemble_settings()).untrained_models if model_ready else None
        return Health(
            url=self.url,
            model=self.model,
            live=live,
            model_ready=model_ready,
            server_version=version,
            untrained_models=untrained,
        )

    async def wait_until_ready(self, timeout_s: float = 120.0, poll_s: float = 0.5) -> Health:
        deadline = time.monotonic() + timeout_s
        while True:
            health = await self.health()
            if health.ready:
                return health
            if time.monotonic() >= deadline:
                raise self._not_ready_error(health, timeout_s)
            await asyncio.sleep(poll_s)
