"""A fake SDK client for the gateway's unit tests: the DeepfakeClient methods the gateway
calls, answering from the image's size, or raising a chosen error.

(A plain module with a unique name, imported by the tests: pytest puts this folder on sys.path.)"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass, replace

from PIL import Image

from deepfake_client import DeepfakeError, DetectionResult, Face, FrameResult, Health, Label
from deepfake_client.aggregation import video_result
from deepfake_client.ensemble import EnsembleSettings
from deepfake_client.video import probe_video, sample_indices

MODELS = ("xception", "efficientnet_b4", "f3net", "effort_clip")
WEIGHTS = {"xception": 0.2, "efficientnet_b4": 0.3, "f3net": 0.2, "effort_clip": 0.3}
THRESHOLD = 0.5
NO_FACE_WIDTH = 32  # images this wide have no face; others have one fake face


def image_bytes(width: int = 64, height: int = 48, encoding: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 90)).save(buffer, encoding)
    return buffer.getvalue()


def face_result(fake: float = 0.8, untrained: tuple[str, ...] = ()) -> DetectionResult:
    per_model = {"xception": 0.9, "efficientnet_b4": 0.7, "f3net": 0.6, "effort_clip": 0.95}
    return DetectionResult(
        label=Label.FAKE if fake > THRESHOLD else Label.REAL,
        fake_probability=fake,
        faces=(Face(box=(4.0, 5.0, 30.0, 40.0), detector_score=0.99, fake_probability=fake, model_probabilities=per_model),),
        model_names=MODELS,
        untrained_models=untrained,
    )


def no_face_result() -> DetectionResult:
    return DetectionResult(label=Label.NO_FACE, fake_probability=float("nan"), faces=(), model_names=MODELS)


@dataclass
class FakeExplanation:
    detection: DetectionResult
    heatmaps: tuple = ()


class FakeClient:
    """Plays DeepfakeClient: detect, detect_video, ensemble_settings, health (and explain when given)."""

    def __init__(self, *, error: Exception | None = None, ready: bool = True, untrained: tuple[str, ...] = (),
                 band: tuple[float, float] | None = None) -> None:
        self.band = band  # a served uncertain band: the fake face (0.8) inside it is UNCERTAIN, and flagged
        self.error = error
        self.ready = ready
        self.untrained = untrained
        self.calls: list[str] = []
        self.video_paths: list[str] = []
        self.lock = threading.Lock()

    def _judge(self, data: bytes) -> DetectionResult:
        with self.lock:
            self.calls.append("detect")
        if self.error is not None:
            raise self.error
        if hasattr(data, "shape"):  # a video frame (RGB array), as a job sends it
            width = data.shape[1]
        else:
            with Image.open(io.BytesIO(data)) as image:
                width = image.size[0]
        if width == NO_FACE_WIDTH:
            return no_face_result()
        result = face_result(untrained=self.untrained)
        if self.band is not None and self.band[0] <= result.fake_probability <= self.band[1]:
            face = replace(result.faces[0], verdict=Label.UNCERTAIN, flags=("small_face",))
            result = replace(result, verdict=Label.UNCERTAIN, faces=(face,), flags=("upscaled",))
        return result

    def detect(self, image: bytes) -> DetectionResult:
        return self._judge(image)

    def detect_many(self, images, *, on_result=None, **_) -> list:
        """As DeepfakeClient.detect_many: each item its result or its DeepfakeError."""
        outcomes = []
        for position, image in enumerate(images):
            try:
                outcomes.append(self._judge(image))
            except DeepfakeError as error:
                outcomes.append(error)
            if on_result is not None:
                on_result(position, outcomes[-1])
        return outcomes

    def detect_video(self, path, *, num_frames, threshold=None, on_frame=None, **_) -> object:
        self.video_paths.append(str(path))
        info = probe_video(path)
        frames = []
        for index in sample_indices(info.frame_count, num_frames):
            if self.error is not None:
                raise self.error
            frame = FrameResult(index=index, timestamp_s=index / info.fps, result=face_result(0.2 + 0.04 * index))
            frames.append(frame)
            if on_frame is not None:
                on_frame(frame)
        return video_result(frames, frame_count=info.frame_count, fps=info.fps, threshold=threshold, strategy="mean", top_k=5)

    def ensemble_settings(self) -> EnsembleSettings:
        if self.error is not None:
            raise self.error
        return EnsembleSettings(weights=dict(WEIGHTS), threshold=THRESHOLD, untrained_models=self.untrained,
                                uncertain_band=self.band)

    def health(self) -> Health:
        return Health(url="fake:8001", model="deepfake_detector", live=True, model_ready=self.ready,
                      server_version="2.51.0", untrained_models=self.untrained if self.ready else None)

    def close(self) -> None:
        pass


class ExplainingClient(FakeClient):
    """A FakeClient with the explanations API (DeepfakeClient.explain, from the explanations issue)."""

    def explain(self, image: bytes) -> FakeExplanation:
        with self.lock:
            self.calls.append("explain")
        return FakeExplanation(detection=face_result(0.9))


def fake_overlay(image: bytes, explanation: FakeExplanation) -> bytes:
    """Stands in for deepfake_client.explain.render_overlay: a PNG that says what it was given."""
    assert isinstance(explanation, FakeExplanation)
    return b"\x89PNG overlay of %d bytes" % len(image)
