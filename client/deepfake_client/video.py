"""Reading frames with OpenCV: uniformly sampled from a file, or live from a stream."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import InvalidInputError, VideoError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")
DEFAULT_NUM_FRAMES = 32  # DeepfakeBench's test frames per video

StreamSource = int | str | Path


@dataclass(frozen=True)
class VideoFrame:
    index: int  # frame number in the video, from 0
    timestamp_s: float | None
    rgb: np.ndarray  # HxWx3 uint8


def sample_indices(frame_count: int, num_frames: int = DEFAULT_NUM_FRAMES) -> list[int]:
    """`num_frames` indices spread evenly from the first to the last frame (as DeepfakeBench).

    Short videos give each frame once rather than repeats.
    """
    if num_frames < 1:
        raise InvalidInputError(f"the number of frames to sample must be at least 1, got {num_frames}")
    if frame_count < 1:
        return []
    return sorted(set(np.linspace(0, frame_count - 1, num_frames, dtype=int).tolist()))


@contextmanager
def _capture(source: int | str) -> Iterator[cv2.VideoCapture]:
    capture = cv2.VideoCapture(source)
    try:
        if not capture.isOpened():
            raise VideoError(f"cannot open {source!r} as a video (unreadable, empty or unsupported)")
        yield capture
    finally:
        capture.release()


def _fps(capture: cv2.VideoCapture) -> float | None:
    fps = capture.get(cv2.CAP_PROP_FPS)
    return float(fps) if fps and fps > 0 and np.isfinite(fps) else None


def _existing_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise InvalidInputError(f"video file not found: {path}")
    if not path.is_file():
        raise InvalidInputError(f"not a file: {path}")
    return path


def _count_frames(path: Path) -> int:
    """Decode-free count for containers that do not report their length."""
    with _capture(str(path)) as capture:
        count = 0
        while capture.grab():
            count += 1
        return count


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    frame_count: int
    fps: float | None


def probe_video(path: str | Path) -> VideoInfo:
    """Frame count and rate; raises VideoError when the file holds no frame."""
    path = _existing_file(path)
    with _capture(str(path)) as capture:
        frame_count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = _fps(capture)
    if frame_count <= 0:
        frame_count = _count_frames(path)
    if frame_count <= 0:
        raise VideoError(f"the video has no frames: {path}")
    return VideoInfo(path=path, frame_count=frame_count, fps=fps)


def read_frames(info: VideoInfo, indices: Sequence[int]) -> Iterator[VideoFrame]:
    """The frames at `indices` (sorted), decoding only those; grabbing skips the rest.

    Containers sometimes overstate their length: frames past the real end are not
    returned. A video yielding none of them raises VideoError.
    """
    wanted = set(indices)
    last = max(wanted, default=-1)
    yielded = 0
    with _capture(str(info.path)) as capture:
        for index in range(last + 1):
            if not capture.grab():
                break
            if index not in wanted:
                continue
            ok, bgr = capture.retrieve()
            if not ok:
                continue
            yielded += 1
            timestamp = index / info.fps if info.fps else None
            yield VideoFrame(index=index, timestamp_s=timestamp, rgb=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    if yielded == 0 and wanted:
        raise VideoError(f"no frame of {info.path} could be decoded")


def parse_stream_source(source: StreamSource) -> int | str:
    """A webcam index ("0"), a URL (rtsp://, http://...) or an existing video file."""
    if isinstance(source, int):
        return source
    text = str(source)
    if text.isdigit():
        return int(text)
    if "://" in text:
        return text
    return str(_existing_file(text))


def stream_frames(source: StreamSource, *, realtime: bool | None = None) -> Iterator[VideoFrame]:
    """Frames as they arrive from a camera, a URL or a file, until the source ends.

    Cameras and network streams pace themselves. A file is replayed at its own
    frame rate when `realtime` (the default for files), as fast as it decodes otherwise.
    Timestamps are seconds since the start of the stream.
    """
    opened = parse_stream_source(source)
    is_file = isinstance(opened, str) and "://" not in opened
    pace = is_file if realtime is None else realtime
    with _capture(opened) as capture:
        fps = _fps(capture)
        start = time.monotonic()
        index = 0
        while True:
            ok, bgr = capture.read()
            if not ok:
                return
            if is_file and fps:
                timestamp = index / fps
                if pace:
                    time.sleep(max(0.0, start + timestamp - time.monotonic()))
            else:
                timestamp = time.monotonic() - start
            yield VideoFrame(index=index, timestamp_s=timestamp, rgb=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            index += 1
