"""Live streams: bounded in-flight requests, dropped frames, rolling verdict, clean stops."""

from __future__ import annotations

import itertools
import math
import threading
import time

import cv2
import numpy as np
import pytest
from client_fakes import FakeTransport, ensemble_outputs, fake_client, one_face

from deepfake_client import InvalidImageError, InvalidInputError, Label
from deepfake_client.results import parse_outputs
from deepfake_client.stream import LiveStream
from deepfake_client.video import VideoFrame, stream_frames

PIXELS = np.zeros((8, 8, 3), np.uint8)


def paced_frames(count, interval_s: float = 0.0):
    for index in range(count) if count is not None else itertools.count():
        if interval_s:
            time.sleep(interval_s)
        yield VideoFrame(index=index, timestamp_s=index * interval_s, rgb=PIXELS)


class SlowScorer:
    """Scores frame i as (i % 10) / 10 (no face when i % 7 == 3) after `delay_s`; records concurrency."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()

    def __call__(self, frame: VideoFrame):
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        time.sleep(self.delay_s)
        with self._lock:
            self.in_flight -= 1
        if frame.index % 7 == 3:
            return parse_outputs(ensemble_outputs([]))
        return parse_outputs(one_face((frame.index % 10) / 10))


def test_a_slow_server_makes_the_stream_drop_frames_not_queue_them():
    scorer = SlowScorer(delay_s=0.05)
    live = LiveStream(paced_frames(40, interval_s=0.005), scorer, threshold=0.5, max_in_flight=2)
    updates = list(live)

    assert scorer.max_in_flight <= 2
    assert live.dropped > 0 and live.scored == len(updates) > 0
    assert live.scored + live.dropped == 40  # every frame taken is either scored or counted as dropped
    assert [u.scored for u in updates] == list(range(1, len(updates) + 1))
    assert all(a.dropped <= b.dropped for a, b in itertools.pairwise(updates))


def test_a_fast_server_drops_nothing():
    live = LiveStream(paced_frames(10, interval_s=0.02), SlowScorer(0.0), threshold=0.5, max_in_flight=2)
    assert len(list(live)) == 10 and live.dropped == 0


def test_the_rolling_verdict_covers_the_last_window_scored_frames():
    live = LiveStream(paced_frames(30, 0.003), SlowScorer(0.01), threshold=0.45, window=4, max_in_flight=2)
    seen = []
    for update in live:
        seen.append(update.frame)
        window = [f.fake_probability for f in seen[-4:] if f.result.has_face]
        assert update.window_size == len(window)
        if window:
            assert update.window_probability == pytest.approx(np.mean(window))
            assert update.window_label is (Label.FAKE if np.mean(window) > 0.45 else Label.REAL)
        else:
            assert update.window_label is Label.NO_FACE and math.isnan(update.window_probability)


def test_a_window_of_frames_without_faces_is_no_face():
    live = LiveStream(paced_frames(1), lambda _: parse_outputs(ensemble_outputs([])), threshold=0.5)
    (update,) = list(live)
    assert update.window_label is Label.NO_FACE and update.to_dict()["window_probability"] is None


def test_max_frames_stops_after_that_many_frames_from_the_source():
    live = LiveStream(paced_frames(None, 0.002), SlowScorer(0.02), threshold=0.5, max_in_flight=1, max_frames=15)
    list(live)
    assert live.scored + live.dropped == 15


def test_max_seconds_stops_an_endless_source():
    live = LiveStream(paced_frames(None, 0.01), SlowScorer(0.0), threshold=0.5, max_seconds=0.3)
    started = time.monotonic()
    list(live)
    assert time.monotonic() - started < 2.0 and live.scored > 0


def test_stop_ends_the_stream_after_the_frames_in_flight():
    live = LiveStream(paced_frames(None, 0.005), SlowScorer(0.03), threshold=0.5, max_in_flight=3)
    for update in live:
        if update.scored == 5:
            live.stop()
    assert live.scored >= 5 and live.scored <= 5 + 3


def test_a_failing_frame_ends_the_stream_with_its_error():
    def score(frame: VideoFrame):
        if frame.index == 4:
            raise InvalidImageError("the server rejected the input: too large")
        return parse_outputs(one_face(0.1))

    live = LiveStream(paced_frames(20, 0.01), score, threshold=0.5)
    with pytest.raises(InvalidImageError, match="too large"):
        list(live)


def test_client_stream_replays_a_file_through_the_server(tmp_path):
    path = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (32, 32))
    for _ in range(12):
        writer.write(np.full((32, 32, 3), 128, np.uint8))
    writer.release()

    transport = FakeTransport(lambda _: one_face(0.8))
    with fake_client(transport) as client:
        started = time.monotonic()
        updates = list(client.stream(path, max_in_flight=2, window=5))
        elapsed = time.monotonic() - started
    assert elapsed >= 11 / 25 * 0.9  # replayed at the file's 25 fps
    assert updates and updates[-1].window_label is Label.FAKE
    assert len(updates) + updates[-1].dropped == 12


def test_stream_frames_reads_a_file_unpaced_and_rejects_a_missing_one(tmp_path):
    path = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (32, 32))
    for _ in range(5):
        writer.write(np.zeros((32, 32, 3), np.uint8))
    writer.release()
    frames = list(stream_frames(path, realtime=False))
    assert [f.index for f in frames] == list(range(5))
    assert [f.timestamp_s for f in frames] == pytest.approx([0, 0.1, 0.2, 0.3, 0.4])
    with pytest.raises(InvalidInputError, match="video file not found"):
        list(stream_frames(tmp_path / "nope.mp4"))
