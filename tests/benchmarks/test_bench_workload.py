"""The workload: real sample media, the SDK's video sampling, mixes, and answer checks."""

from __future__ import annotations

import io
import random
from dataclasses import dataclass

import numpy as np
import pytest
from PIL import Image

from benchmarks.load.workload import (
    RefusalReporter,
    UnexpectedResultError,
    Workload,
    WorkloadError,
    image_requests,
    parse_mix,
    video_request,
)
from deepfake_client import InvalidImageError, OverloadedError


def test_images_are_the_samples_as_jpeg_files_with_their_face_counts():
    requests = image_requests()
    assert {k: (r.name, r.expected_faces) for k, r in requests.items()} == {
        "face": ("image/face", 1), "no_face": ("image/no_face", 0), "two_faces": ("image/two_faces", 2)}
    sizes = {k: Image.open(io.BytesIO(r.payloads[0])).size for k, r in requests.items()}
    assert sizes == {"face": (512, 512), "no_face": (600, 400), "two_faces": (1024, 512)}
    assert all(Image.open(io.BytesIO(r.payloads[0])).format == "JPEG" for r in requests.values())


def test_a_video_is_its_frames_sampled_and_png_encoded_as_the_sdk_does():
    video = video_request(4)
    assert (video.name, video.kind, video.expected_faces, len(video.payloads)) == ("video/4_frames", "video", 1, 4)
    frames = [np.asarray(Image.open(io.BytesIO(p))) for p in video.payloads]
    assert all(Image.open(io.BytesIO(p)).format == "PNG" for p in video.payloads)
    assert all(f.shape == (512, 512, 3) for f in frames)
    assert not np.array_equal(frames[0], frames[-1])  # the astronaut moves between frames
    assert video.size_bytes == sum(len(p) for p in video.payloads)
    with pytest.raises(WorkloadError):
        video_request(0)


def test_mixes():
    assert parse_mix("face=4, no_face=1,video") == {"face": 4.0, "no_face": 1.0, "video": 1.0}
    assert parse_mix("face=1,two_faces=0") == {"face": 1.0}
    for bad, fragment in (("selfie=1", "unknown request kinds"), ("face=x", "bad weight"),
                          ("face=0", "at least one > 0"), ("face=-1", ">= 0")):
        with pytest.raises(WorkloadError, match=fragment):
            parse_mix(bad)


def test_a_workload_draws_its_kinds_by_weight_and_replays_a_sequence():
    workload = Workload({"face": 3, "two_faces": 1})
    assert sorted(r.name for r in workload.requests.values()) == ["image/face", "image/two_faces"]
    draws = [r.kind for r in workload.sequence(4000, seed=1)]
    assert 0.72 < draws.count("face") / len(draws) < 0.78
    assert [r.name for r in workload.sequence(50, seed=7)] == [r.name for r in workload.sequence(50, seed=7)]
    assert workload.choose(random.Random(0)).kind in ("face", "two_faces")


@dataclass
class FakeResult:
    faces: tuple


class FakeClient:
    """The two SDK calls the workload makes."""

    def __init__(self, faces: int, fail_frame: int | None = None) -> None:
        self.faces, self.fail_frame, self.concurrency = faces, fail_frame, None

    def detect(self, image: bytes) -> FakeResult:
        return FakeResult((object(),) * self.faces)

    def detect_many(self, images, concurrency: int):
        self.concurrency = concurrency
        return [InvalidImageError("bad frame") if i == self.fail_frame else self.detect(image)
                for i, image in enumerate(images)]


def test_send_checks_the_face_count():
    face = image_requests()["face"]
    face.send(FakeClient(faces=1))
    with pytest.raises(UnexpectedResultError, match="image/face: 0 faces in the image, expected 1"):
        face.send(FakeClient(faces=0))


def test_a_video_is_sent_with_the_sdk_concurrency_and_fails_with_its_first_failed_frame():
    video = video_request(3)
    client = FakeClient(faces=1)
    video.send(client, video_concurrency=5)
    assert client.concurrency == 5
    with pytest.raises(InvalidImageError, match="bad frame"):
        video.send(FakeClient(faces=1, fail_frame=1))
    with pytest.raises(UnexpectedResultError, match="frame 0"):
        video.send(FakeClient(faces=2))


class ScriptedTransport:
    """Answers each infer with the next of `answers` (an exception is raised)."""

    def __init__(self, *answers) -> None:
        self.answers = list(answers)
        self.priorities: list[int] = []
        self.closed = False

    def infer(self, model: str, image: bytes, priority: int = 0):
        self.priorities.append(priority)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def close(self) -> None:
        self.closed = True


def test_the_refusal_reporter_counts_refusals_only_and_passes_the_rest_through():
    refusals: list[float] = []
    inner = ScriptedTransport(OverloadedError("queue full"), {"LABEL": "ok"}, InvalidImageError("bad"))
    reporter = RefusalReporter(inner, refusals.append)
    with pytest.raises(OverloadedError):
        reporter.infer("deepfake_detector", b"x", priority=2)
    assert reporter.infer("deepfake_detector", b"x", priority=2) == {"LABEL": "ok"}
    with pytest.raises(InvalidImageError):
        reporter.infer("deepfake_detector", b"x")
    assert len(refusals) == 1 and refusals[0] >= 0
    assert inner.priorities == [2, 2, 0]
    reporter.close()
    assert inner.closed
