"""Reading frames: uniformly sampled from a video file, or live from a camera or a URL.

Video files are decoded from their own bytes only. The container is identified from
its first bytes (MP4/MOV, WebM/Matroska, AVI; nothing else), and PyAV demuxes it with
that demuxer forced, from a Python file object: FFmpeg never sees a path or a URL, so
a playlist (HLS), a concat list or an image pattern cannot make it open another file or
a network address. The demuxer's nested opens (HLS segments, MP4 data references)
are refused as well, and MP4 data references stay off. Frame count, duration, size and
the decoding work are checked against `VideoLimits` before any frame is decoded.

Live sources (a camera index or a URL the user names) go through OpenCV.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import av
import cv2
import numpy as np

from .errors import InvalidInputError, VideoError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")
SUPPORTED_CONTAINERS = "MP4/MOV, WebM/Matroska or AVI"
DEFAULT_NUM_FRAMES = 32  # DeepfakeBench's test frames per video

StreamSource = int | str | Path

GIB = 1 << 30


@dataclass(frozen=True)
class VideoLimits:
    """What a video may claim before a frame is decoded; anything over is a VideoError."""

    max_bytes: int = 4 * GIB
    max_frames: int = 1_000_000  # about 4.5 hours at 60 fps
    max_seconds: float = 4 * 3600.0
    max_width: int = 8192
    max_height: int = 8192
    # Frames decoded (every frame up to the last one sampled) x width x height x 3:
    # bounds the decoding work (about 20 minutes of 1080p at 30 fps).
    max_decoded_bytes: int = 256 * GIB


DEFAULT_VIDEO_LIMITS = VideoLimits()


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


def sniff_container(head: bytes) -> str | None:
    """The FFmpeg demuxer for a file starting with `head` (its first 12 bytes), or None.

    A magic-number check only: everything else (playlists, concat lists, images,
    MPEG streams ...) is refused before the decoder sees it.
    """
    if head[4:8] == b"ftyp":  # ISO base media: MP4, MOV, M4V, 3GP
        return "mov"
    if head[:4] == b"\x1a\x45\xdf\xa3":  # EBML: Matroska, WebM
        return "matroska"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    return None


# No protocol at all (the bytes come from the file object); MP4 data references stay off.
_DEMUXER_OPTIONS = {
    "mov": {"protocol_whitelist": "none", "enable_drefs": "0"},
    "matroska": {"protocol_whitelist": "none"},
    "avi": {"protocol_whitelist": "none"},
}


def _refuse_nested_open(url: str, flags: int, options: dict) -> None:
    """PyAV's io_open: a demuxer asking for another file or URL gets nothing."""
    raise PermissionError("this decoder opens no other file or URL")


@contextmanager
def _open_container(file: BinaryIO, limits: VideoLimits) -> Iterator[tuple[Any, Any]]:
    """The container and its first video stream, demuxed from `file` alone."""
    head = file.read(12)
    file.seek(0)
    demuxer = sniff_container(head)
    if demuxer is None:
        raise VideoError(f"not a supported video: only {SUPPORTED_CONTAINERS} files are read")
    try:
        container = av.open(
            file,
            format=demuxer,
            container_options=_DEMUXER_OPTIONS[demuxer],
            io_open=_refuse_nested_open,
        )
    except (av.FFmpegError, PermissionError, ValueError, OSError) as exc:
        raise VideoError(f"cannot read the video: not a valid {SUPPORTED_CONTAINERS} file") from exc
    with container:
        if not container.streams.video:
            raise VideoError("the file holds no video stream")
        stream = container.streams.video[0]
        # The decoder itself refuses frames larger than the limit (it checks before allocating).
        stream.codec_context.options = {"max_pixels": str(limits.max_width * limits.max_height)}
        yield container, stream


def _fps(rate: Fraction | None) -> float | None:
    fps = float(rate) if rate else 0.0
    return fps if fps > 0 and np.isfinite(fps) else None


def _claimed_frames(container: Any, stream: Any, fps: float | None) -> int:
    """The frame count the header claims (or implies by its duration); 0 when it says nothing."""
    if stream.frames and stream.frames > 0:
        return int(stream.frames)
    seconds = None
    if stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration:
        seconds = container.duration / av.time_base
    return int(round(seconds * fps)) if seconds and fps else 0


def _count_packets(container: Any, stream: Any, limit: int) -> int:
    """Frames counted from the demuxed packets (nothing decoded), stopping past `limit`."""
    count = 0
    for packet in container.demux(stream):
        if packet.size:
            count += 1
            if count > limit:
                break
    return count


def _check(info: VideoInfo, limits: VideoLimits) -> None:
    if info.frame_count > limits.max_frames:
        raise VideoError(f"the video claims {info.frame_count:,} frames, over the limit of {limits.max_frames:,}")
    if info.fps and info.frame_count / info.fps > limits.max_seconds:
        raise VideoError(f"the video lasts {info.frame_count / info.fps:,.0f} s, over the limit of {limits.max_seconds:,.0f} s")
    if info.width <= 0 or info.height <= 0:
        raise VideoError("the video's frame size is unknown: corrupt, or an unsupported codec")
    if not (info.width <= limits.max_width and 0 < info.height <= limits.max_height):
        raise VideoError(
            f"the video is {info.width}x{info.height} pixels, over the limit of {limits.max_width}x{limits.max_height}"
        )


def _existing_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise InvalidInputError(f"video file not found: {path}")
    if not path.is_file():
        raise InvalidInputError(f"not a file: {path}")
    return path


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    frame_count: int
    fps: float | None
    width: int = 0
    height: int = 0
    limits: VideoLimits = DEFAULT_VIDEO_LIMITS


def probe_video(path: str | Path, limits: VideoLimits = DEFAULT_VIDEO_LIMITS) -> VideoInfo:
    """Frame count, rate and size, checked against `limits`; raises VideoError when the file
    is not a supported video, holds no frame, or claims more than the limits allow."""
    path = _existing_file(path)
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise VideoError(f"the video is {size:,} bytes, over the limit of {limits.max_bytes:,} bytes")
    with open(path, "rb") as file, _open_container(file, limits) as (container, stream):
        fps = _fps(stream.average_rate or stream.guessed_rate)
        width, height = stream.codec_context.width, stream.codec_context.height
        frame_count = _claimed_frames(container, stream, fps)
        info = VideoInfo(path, frame_count, fps, width, height, limits)
        _check(info, limits)  # the header's claims, before anything is read further
        if frame_count <= 0:
            frame_count = _count_packets(container, stream, limits.max_frames)
            info = VideoInfo(path, frame_count, fps, width, height, limits)
            _check(info, limits)
    if frame_count <= 0:
        raise VideoError("the video has no frames")
    return info


def _decoded_frames(file: BinaryIO, limits: VideoLimits) -> Iterator[tuple[int, Any]]:
    """(index, PyAV frame) for every frame of the video in `file`, in order; FFmpeg errors are VideoErrors."""
    with _open_container(file, limits) as (container, stream):
        try:
            for index, frame in enumerate(container.decode(stream)):
                if index >= limits.max_frames:
                    raise VideoError(f"the video holds more than {limits.max_frames:,} frames")
                yield index, frame
        except av.FFmpegError as exc:
            raise VideoError("the video cannot be decoded (corrupt or an unsupported codec)") from exc


def _rgb(frame: Any, limits: VideoLimits) -> np.ndarray:
    if frame.width > limits.max_width or frame.height > limits.max_height:
        raise VideoError(f"a frame is {frame.width}x{frame.height} pixels, over the limit")
    return frame.to_ndarray(format="rgb24")


def read_frames(info: VideoInfo, indices: Sequence[int]) -> Iterator[VideoFrame]:
    """The frames at `indices` (sorted), converted to RGB; the frames between are decoded only.

    Containers sometimes overstate their length: frames past the real end are not
    returned. A video yielding none of them raises VideoError.
    """
    wanted = set(indices)
    last = max(wanted, default=-1)
    limits = info.limits
    work = (last + 1) * max(info.width, 1) * max(info.height, 1) * 3
    if work > limits.max_decoded_bytes:
        raise VideoError(
            f"reading frame {last:,} of a {info.width}x{info.height} video decodes {work:,} bytes, "
            f"over the limit of {limits.max_decoded_bytes:,}"
        )
    yielded = 0
    with open(info.path, "rb") as file, closing(_decoded_frames(file, limits)) as frames:
        for index, frame in frames:
            if index > last:
                break
            if index not in wanted:
                continue
            yielded += 1
            timestamp = index / info.fps if info.fps else None
            yield VideoFrame(index=index, timestamp_s=timestamp, rgb=_rgb(frame, limits))
    if yielded == 0 and wanted:
        raise VideoError("no sampled frame of the video could be decoded")


@contextmanager
def _capture(source: int | str) -> Iterator[cv2.VideoCapture]:
    capture = cv2.VideoCapture(source)
    try:
        if not capture.isOpened():
            raise VideoError(f"cannot open {source!r} as a video stream (unreachable or unsupported)")
        yield capture
    finally:
        capture.release()


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


def _file_frames(path: str, pace: bool, limits: VideoLimits) -> Iterator[VideoFrame]:
    """A video file's frames through the same guarded decoder as detect_video, paced at its rate."""
    info = probe_video(path, limits)
    start = time.monotonic()
    with open(path, "rb") as file, closing(_decoded_frames(file, limits)) as frames:
        for index, frame in frames:
            timestamp = index / info.fps if info.fps else time.monotonic() - start
            if pace and info.fps:
                time.sleep(max(0.0, start + timestamp - time.monotonic()))
            yield VideoFrame(index=index, timestamp_s=timestamp, rgb=_rgb(frame, limits))


def stream_frames(
    source: StreamSource, *, realtime: bool | None = None, limits: VideoLimits = DEFAULT_VIDEO_LIMITS
) -> Iterator[VideoFrame]:
    """Frames as they arrive from a camera, a URL or a file, until the source ends.

    Cameras and network streams pace themselves (OpenCV opens them: the user named them).
    A file is decoded from its own bytes as in `probe_video`, replayed at its own frame
    rate when `realtime` (the default for files), as fast as it decodes otherwise.
    Timestamps are seconds since the start of the stream.
    """
    opened = parse_stream_source(source)
    if isinstance(opened, str) and "://" not in opened:
        yield from _file_frames(opened, realtime is None or realtime, limits)
        return
    with _capture(opened) as capture:
        start = time.monotonic()
        index = 0
        while True:
            ok, bgr = capture.read()
            if not ok:
                return
            timestamp = time.monotonic() - start
            yield VideoFrame(index=index, timestamp_s=timestamp, rgb=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            index += 1
