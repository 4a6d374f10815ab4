"""Live scoring of a frame stream with a bounded number of requests in flight.

A live source does not wait for the server: when `max_in_flight` frames are
already being scored, the new frame is dropped (and counted) instead of queued,
so a slow server costs frame rate, never memory or ever-growing latency.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from .aggregation import Aggregation, verdict
from .errors import InvalidInputError
from .results import DetectionResult, FrameResult, Label, json_number
from .video import VideoFrame


@dataclass(frozen=True)
class StreamUpdate:
    """A newly scored frame and the verdict over the last `window` scored frames."""

    frame: FrameResult
    window_label: Label  # NO_FACE while no frame in the window has a face
    window_probability: float  # NaN for NO_FACE
    window_size: int  # frames with a face in the window
    scored: int  # frames scored so far
    dropped: int  # frames dropped so far because max_in_flight were pending

    def to_dict(self) -> dict:
        return {
            "frame": self.frame.to_dict(),
            "window_label": self.window_label.value,
            "window_probability": json_number(self.window_probability),
            "window_size": self.window_size,
            "scored": self.scored,
            "dropped": self.dropped,
        }


class LiveStream:
    """Iterate to score the frames; `stop()` (e.g. from a signal handler) ends it cleanly.

    It ends at the end of the source, after `max_frames` frames taken from the
    source (scored or dropped), after `max_seconds`, or on `stop()`; frames
    already in flight are still scored and reported. A frame whose scoring fails
    ends the stream with that error.
    """

    def __init__(
        self,
        frames: Iterable[VideoFrame],
        score: Callable[[VideoFrame], DetectionResult],
        *,
        threshold: float,
        max_in_flight: int = 4,
        window: int = 16,
        aggregation: Aggregation | str = Aggregation.MEAN,
        top_k: int = 5,
        max_frames: int | None = None,
        max_seconds: float | None = None,
    ) -> None:
        if max_in_flight < 1 or window < 1:
            raise InvalidInputError("max_in_flight and window must be at least 1")
        self._frames = frames
        self._score = score
        self.threshold = threshold
        self.max_in_flight = max_in_flight
        self.aggregation = Aggregation(aggregation)
        self.top_k = top_k
        self.max_frames = max_frames
        self.max_seconds = max_seconds
        self._window: deque[FrameResult] = deque(maxlen=window)
        self._stop = threading.Event()
        self.scored = 0
        self.dropped = 0
        self.last_update: StreamUpdate | None = None

    def stop(self) -> None:
        self._stop.set()

    def __iter__(self) -> Iterator[StreamUpdate]:
        iterator = iter(self._frames)
        pending: set[Future] = set()
        pool = ThreadPoolExecutor(max_workers=self.max_in_flight, thread_name_prefix="deepfake-stream")
        started = time.monotonic()
        taken = 0
        try:
            for frame in iterator:
                if self._should_stop(taken, started):
                    break
                taken += 1
                yield from self._collect(pending, block=False)
                if len(pending) < self.max_in_flight:
                    pending.add(pool.submit(self._score_frame, frame))
                else:
                    self.dropped += 1
            while pending:
                yield from self._collect(pending, block=True)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    def _should_stop(self, taken: int, started: float) -> bool:
        return (
            self._stop.is_set()
            or (self.max_frames is not None and taken >= self.max_frames)
            or (self.max_seconds is not None and time.monotonic() - started >= self.max_seconds)
        )

    def _score_frame(self, frame: VideoFrame) -> FrameResult:
        return FrameResult(index=frame.index, timestamp_s=frame.timestamp_s, result=self._score(frame))

    def _collect(self, pending: set[Future], *, block: bool) -> Iterator[StreamUpdate]:
        done, _ = wait(pending, timeout=None if block else 0, return_when=FIRST_COMPLETED)
        pending.difference_update(done)
        # result() re-raises a failed frame's error, which ends the stream.
        for frame in sorted((future.result() for future in done), key=lambda f: f.index):
            yield self._update(frame)

    def _update(self, frame: FrameResult) -> StreamUpdate:
        self.scored += 1
        self._window.append(frame)
        scores = [f.fake_probability for f in self._window if f.result.has_face]
        label, probability = verdict(scores, self.threshold, self.aggregation, top_k=self.top_k)
        self.last_update = StreamUpdate(
            frame=frame,
            window_label=label,
            window_probability=probability,
            window_size=len(scores),
            scored=self.scored,
            dropped=self.dropped,
        )
        return self.last_update
