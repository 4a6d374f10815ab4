"""Video: uniform frame sampling, reading, and detect_video through a fake server."""

from __future__ import annotations

import asyncio
import math
import time

import cv2
import numpy as np
import pytest
from client_fakes import FakeTransport, ensemble_outputs, fake_client, one_face, png_pixel

from deepfake_client import AsyncDeepfakeClient, InvalidImageError, InvalidInputError, Label, OverloadedError, VideoError
from deepfake_client.client import FANOUT_OVERLOADED_ATTEMPTS
from deepfake_client.retry import RetryPolicy
from deepfake_client.video import probe_video, read_frames, sample_indices

COLOUR_STEP = 8  # frame i is a solid colour with red = 8 * i: the fake server reads the index back


def write_video(path, num_frames: int, fps: float = 10.0):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (64, 48))
    assert writer.isOpened()
    for index in range(num_frames):
        rgb = np.zeros((48, 64, 3), np.uint8)
        rgb[:, :, 0] = COLOUR_STEP * index
        rgb[:, :, 2] = 200
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def frame_index(image: bytes) -> int:
    return round(png_pixel(image) / COLOUR_STEP)


def test_sample_indices_spread_from_first_to_last_frame():
    assert sample_indices(10, 4) == [0, 3, 6, 9]
    assert sample_indices(100, 2) == [0, 99]
    assert sample_indices(1, 32) == [0]
    assert sample_indices(3, 32) == [0, 1, 2]  # a short video gives each frame once
    assert sample_indices(0, 32) == []
    assert len(sample_indices(1000)) == 32  # DeepfakeBench's default


def test_sample_indices_needs_at_least_one_frame():
    with pytest.raises(InvalidInputError, match="at least 1"):
        sample_indices(10, 0)


def test_reading_returns_the_sampled_frames_as_rgb(tmp_path):
    info = probe_video(write_video(tmp_path / "v.mp4", 20))
    assert info.frame_count == 20 and info.fps == pytest.approx(10.0)
    frames = list(read_frames(info, [0, 7, 19]))
    assert [f.index for f in frames] == [0, 7, 19]
    assert [f.timestamp_s for f in frames] == pytest.approx([0.0, 0.7, 1.9])
    for f in frames:
        assert f.rgb.shape == (48, 64, 3) and f.rgb.dtype == np.uint8
        assert abs(int(f.rgb[24, 32, 0]) - COLOUR_STEP * f.index) <= 4  # red where it was written
        assert abs(int(f.rgb[24, 32, 2]) - 200) <= 4  # blue stays blue: not BGR


def test_unreadable_videos_are_video_errors(tmp_path):
    with pytest.raises(InvalidInputError, match="video file not found"):
        probe_video(tmp_path / "missing.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoError):
        probe_video(tmp_path / "empty.mp4")
    (tmp_path / "text.mp4").write_bytes(b"this is not a video\n" * 100)
    with pytest.raises(VideoError):
        probe_video(tmp_path / "text.mp4")


def scores_by_index(image: bytes):
    index = frame_index(image)
    if index % 5 == 4:
        return ensemble_outputs([])  # frames 4, 9, 14...: no face
    return one_face(index / 100)


def test_detect_video_samples_scores_concurrently_and_aggregates(tmp_path):
    path = write_video(tmp_path / "v.mp4", 30)
    transport = FakeTransport(scores_by_index)
    with fake_client(transport, concurrency=3) as client:
        seen = []
        video = client.detect_video(path, num_frames=8, on_frame=seen.append)

    indices = sample_indices(30, 8)  # [0, 4, 8, 12, 16, 20, 24, 29]
    assert [f.index for f in video.frames] == indices and len(seen) == 8
    assert sorted(frame_index(image) for image in transport.calls) == indices
    assert transport.max_in_flight <= 3
    face_indices = [i for i in indices if i % 5 != 4]
    assert video.no_face_frames == tuple(i for i in indices if i % 5 == 4)
    assert video.fake_probability == pytest.approx(np.mean([i / 100 for i in face_indices]), abs=0.01)
    assert video.label is Label.REAL and video.threshold == 0.5  # the server's threshold
    assert video.frame_count == 30 and video.fps == pytest.approx(10.0)


def test_detect_video_uses_the_requested_aggregation_and_threshold(tmp_path):
    path = write_video(tmp_path / "v.mp4", 30)
    with fake_client(FakeTransport(scores_by_index)) as client:
        video = client.detect_video(path, num_frames=8, aggregation="max", threshold=0.15)
    assert video.fake_probability == pytest.approx(0.20, abs=0.01)  # frame 20; 24 and 29 have no face
    assert video.label is Label.FAKE and video.aggregation == "max"


def test_a_video_without_faces_is_no_face(tmp_path):
    path = write_video(tmp_path / "v.mp4", 5)
    with fake_client(FakeTransport(lambda _: ensemble_outputs([]))) as client:
        video = client.detect_video(path)
    assert video.label is Label.NO_FACE and math.isnan(video.fake_probability)
    assert len(video.frames) == 5


def test_a_failing_frame_fails_the_video(tmp_path):
    path = write_video(tmp_path / "v.mp4", 10)

    def respond(image: bytes):
        if frame_index(image) == 6:
            raise InvalidImageError("the server rejected the input: too large")
        return one_face(0.5)

    with fake_client(FakeTransport(respond)) as client, pytest.raises(InvalidImageError, match="too large") as raised:
        client.detect_video(path, num_frames=10)
    assert raised.value.message.startswith(f"frame 6 of {path}: ")


def test_a_frame_refused_after_the_retry_budget_fails_the_video_and_is_named(tmp_path):
    """Refusals are retried (the fan-out's budget); a frame still refused then fails the video
    with a message that names it, rather than a verdict over fewer frames than asked."""
    path = write_video(tmp_path / "v.mp4", 10)
    tries = []

    def respond(image: bytes):
        if frame_index(image) == 6:
            tries.append(6)
            raise OverloadedError("the server is overloaded, retry later: Exceeds maximum queue size")
        return one_face(0.5)

    retry = RetryPolicy(initial_backoff_s=0.001, max_backoff_s=0.002)
    with fake_client(FakeTransport(respond), retry=retry) as client, pytest.raises(OverloadedError) as raised:
        client.detect_video(path, num_frames=10)
    assert len(tries) == FANOUT_OVERLOADED_ATTEMPTS
    assert f"frame 6 of {path}, still refused after {FANOUT_OVERLOADED_ATTEMPTS} tries: the server is overloaded" in str(raised.value)


def test_async_detect_video_matches_the_sync_client(tmp_path):
    path = write_video(tmp_path / "v.mp4", 30)

    async def run():
        transport = FakeTransport(scores_by_index)
        async with AsyncDeepfakeClient("localhost:1", transport=transport, concurrency=2) as client:
            return await client.detect_video(path, num_frames=8), transport

    video, transport = asyncio.run(run())
    with fake_client(FakeTransport(scores_by_index)) as client:
        expected = client.detect_video(path, num_frames=8)
    assert video.to_dict() == expected.to_dict()
    assert transport.max_in_flight <= 2


def test_async_detect_video_fails_with_the_frame_error_after_the_requests_in_flight(tmp_path):
    path = write_video(tmp_path / "v.mp4", 30)

    def respond(image: bytes):
        if frame_index(image) == 4:
            raise InvalidImageError("the server rejected the input: too large")
        time.sleep(0.05)
        return one_face(0.5)

    transport = CountingTransport(respond)

    async def run():
        async with AsyncDeepfakeClient("localhost:1", transport=transport, concurrency=3) as client:
            await client.detect_video(path, num_frames=30)

    with pytest.raises(InvalidImageError, match="too large"):
        asyncio.run(run())
    assert transport.finished == transport.started  # none abandoned: cancelling can crash Triton 24.10
    assert transport.started < 30  # no new frames once one failed


class CountingTransport(FakeTransport):
    """Counts the requests started and finished."""

    def __init__(self, respond) -> None:
        super().__init__(respond)
        self.started = 0
        self.finished = 0

    def infer(self, model: str, image: bytes, priority: int = 0, parameters: dict | None = None):
        with self._lock:
            self.started += 1
        try:
            return super().infer(model, image, priority)
        finally:
            with self._lock:
                self.finished += 1
