"""What the load tools send: real images and short videos, prepared once, sent through the SDK.

Every load tool (Locust, the closed-loop driver of the baseline comparison and
the capacity sweep) draws requests from one `Workload`, so their figures are for
the same inputs. The media are the project's offline samples
(deepfake_dev.samples): the astronaut (one face), the coffee cup (no face),
the cameraman beside the astronaut (two faces), and a video of the astronaut.

Videos are sent as the SDK sends them (DeepfakeClient.detect_video): frames
sampled uniformly with its helpers, encoded as PNG, scored with at most
`DEFAULT_VIDEO_CONCURRENCY` frames in flight. The frames are decoded and encoded
once, up front, so the load generator spends its CPU on sending, not on OpenCV.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from deepfake_client import DeepfakeClient, OverloadedError
from deepfake_client.images import encode_rgb_array
from deepfake_client.video import probe_video, read_frames, sample_indices
from deepfake_dev import samples

IMAGE_KINDS = ("face", "no_face", "two_faces")
VIDEO_KIND = "video"
KINDS = IMAGE_KINDS + (VIDEO_KIND,)
DEFAULT_VIDEO_FRAMES = 32  # the SDK's default frames per video (DeepfakeBench's)
DEFAULT_VIDEO_CONCURRENCY = 8  # the SDK's default requests in flight per video


class WorkloadError(ValueError):
    """A request mix or workload option that cannot be used."""


class UnexpectedResultError(RuntimeError):
    """The server answered, but not what this input must give (e.g. no face in the face image)."""


@dataclass(frozen=True)
class Request:
    """One thing a user asks for: an image (one request) or a video (one request per frame)."""

    kind: str  # one of KINDS
    name: str  # the name in the stats: "image/face", "video/32_frames"
    payloads: tuple[bytes, ...]  # encoded image files; one per frame for a video
    expected_faces: int  # faces per image, or per frame

    @property
    def size_bytes(self) -> int:
        return sum(len(p) for p in self.payloads)

    @property
    def is_video(self) -> bool:
        return self.kind == VIDEO_KIND

    def send(self, client: DeepfakeClient, video_concurrency: int = DEFAULT_VIDEO_CONCURRENCY) -> None:
        """Send through the SDK and check the answer; raises the SDK's error or UnexpectedResultError."""
        if self.is_video:
            outcomes = client.detect_many(self.payloads, concurrency=video_concurrency)
            for frame, outcome in enumerate(outcomes):
                if isinstance(outcome, Exception):
                    raise outcome  # the SDK fails a video with its first failed frame, as here
                self.check_faces(len(outcome.faces), f"frame {frame}")
        else:
            self.check_faces(len(client.detect(self.payloads[0]).faces), "image")

    def check_faces(self, found: int, what: str) -> None:
        """A wrong face count means a broken pipeline, whatever its speed: fail the request."""
        if found != self.expected_faces:
            raise UnexpectedResultError(f"{self.name}: {found} faces in the {what}, expected {self.expected_faces}")


class RefusalReporter:
    """A transport that tells `on_refusal(seconds)` of every overload refusal before raising it,
    so that a client retrying refusals (the bulk users) still has each one counted."""

    def __init__(self, transport, on_refusal) -> None:
        self.transport = transport
        self.on_refusal = on_refusal

    def infer(self, model: str, image: bytes, priority: int = 0):
        started = time.perf_counter()
        try:
            return self.transport.infer(model, image, priority=priority)
        except OverloadedError:
            self.on_refusal(time.perf_counter() - started)
            raise

    def __getattr__(self, name: str):  # health, configuration, close: as the wrapped transport
        return getattr(self.transport, name)


def image_requests() -> dict[str, Request]:
    """The three sample images as the files users upload (JPEG, quality 95)."""
    images = {
        "face": (samples.face_image(), 1),
        "no_face": (samples.no_face_image(), 0),
        "two_faces": (samples.two_face_image(), 2),
    }
    return {
        kind: Request(kind, f"image/{kind}", (samples.encode_image(pixels),), faces)
        for kind, (pixels, faces) in images.items()
    }


def video_request(num_frames: int = DEFAULT_VIDEO_FRAMES) -> Request:
    """The astronaut video with `num_frames` frames, sampled and encoded as the SDK does."""
    if num_frames < 1:
        raise WorkloadError(f"a video needs at least 1 frame, got {num_frames}")
    with tempfile.TemporaryDirectory(prefix="deepfake-bench-") as folder:
        path = samples.write_video(Path(folder) / "video.mp4", num_frames=num_frames)
        info = probe_video(path)
        frames = read_frames(info, sample_indices(info.frame_count, num_frames))
        payloads = tuple(encode_rgb_array(frame.rgb) for frame in frames)
    return Request(VIDEO_KIND, f"video/{len(payloads)}_frames", payloads, expected_faces=1)


def parse_mix(text: str) -> dict[str, float]:
    """'face=4,no_face=1,video=1' -> {'face': 4.0, ...} (weights of the request kinds)."""
    mix: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        kind, sep, weight = item.partition("=")
        try:
            mix[kind.strip()] = float(weight) if sep else 1.0
        except ValueError:
            raise WorkloadError(f"bad weight in mix item {item!r}: expected kind=number") from None
    return check_mix(mix)


def check_mix(mix: Mapping[str, float]) -> dict[str, float]:
    unknown = set(mix) - set(KINDS)
    if unknown:
        raise WorkloadError(f"unknown request kinds {sorted(unknown)} in the mix; known: {', '.join(KINDS)}")
    if any(not weight >= 0 for weight in mix.values()) or not any(weight > 0 for weight in mix.values()):
        raise WorkloadError(f"mix weights must be >= 0 with at least one > 0, got {dict(mix)}")
    return {kind: float(weight) for kind, weight in mix.items() if weight > 0}


def format_mix(mix: Mapping[str, float]) -> str:
    return ",".join(f"{kind}={weight:g}" for kind, weight in mix.items())


class Workload:
    """The requests of a mix, and a weighted random choice among them."""

    def __init__(self, mix: Mapping[str, float], video_frames: int = DEFAULT_VIDEO_FRAMES) -> None:
        self.mix = check_mix(mix)
        requests = {k: r for k, r in image_requests().items() if k in self.mix}
        if VIDEO_KIND in self.mix:
            requests[VIDEO_KIND] = video_request(video_frames)
        self.requests: dict[str, Request] = requests
        self._kinds = list(self.mix)
        self._weights = [self.mix[k] for k in self._kinds]

    def choose(self, rng: random.Random) -> Request:
        return self.requests[rng.choices(self._kinds, self._weights)[0]]

    def sequence(self, count: int, seed: int = 0) -> list[Request]:
        """`count` requests drawn from the mix, the same for the same seed (to replay inputs)."""
        rng = random.Random(seed)
        return [self.choose(rng) for _ in range(count)]
