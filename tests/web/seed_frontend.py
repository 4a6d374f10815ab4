"""The old (seed) frontend's requests and the fields it reads from each answer, by type.

Written from the seed's description (client/deepfake_client/web/seed.py, issue 19), not
copied from its code: the page and its clients sent these six requests, with these
multipart fields and no others, and read these fields. `check` says which read field
is missing or of the wrong type.

Types: a Python type (`float` takes an int too, never a bool), `Nullable(t)`, `[t]`
(a list of t), `{"key": t}` (a mapping with at least those keys), `Each(t)` (a mapping
whose every value is t).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SEED_MODELS = ("xception", "efficientnet_b4", "f3net", "effort")
SEED_VIDEO_FRAMES = 30  # the seed sampled 30 frames when max_frames was not sent
VERDICTS = ("FAKE", "REAL")


@dataclass(frozen=True)
class Nullable:
    type: Any


@dataclass(frozen=True)
class Each:
    type: Any


@dataclass(frozen=True)
class SeedRequest:
    name: str
    method: str  # GET, POST or WS
    path: str
    files: tuple[str, ...] = ()  # multipart file fields: "file" (one upload) or "files" (several)
    form: dict[str, str] = field(default_factory=dict)
    reads: dict[str, Any] = field(default_factory=dict)


MODEL_PREDICTION = {"fake_prob": float, "real_prob": float, "prediction": str}

IMAGE_READS = {
    "filename": str,
    "prediction": str,
    "confidence": float,
    "fake_probability": float,
    "real_probability": float,
    "processing_time": float,
    "face_detection_confidence": float,
    "gradcam": Nullable(str),
    "model_predictions": Each(MODEL_PREDICTION),
    "models_used": [str],
    "total_models": int,
    "device": str,
}

REQUESTS = (
    SeedRequest("service", "GET", "/", reads={"service": str, "version": str, "status": str, "models": [str]}),
    SeedRequest("health", "GET", "/health",
                reads={"status": str, "models_loaded": [str], "total_models": int, "device": str}),
    SeedRequest("image", "POST", "/api/detect/image", files=("file",), form={"generate_gradcam": "false"},
                reads=IMAGE_READS),
    SeedRequest("batch", "POST", "/api/detect/batch", files=("files", "files"),
                reads={"results": [{"filename": str, "prediction": str, "confidence": float}], "total": int,
                       "fake_count": int, "real_count": int, "average_confidence": float}),
    SeedRequest("video", "POST", "/api/video/detect", files=("file",),  # no max_frames: the seed's default
                reads={"filename": str,
                       "frame_results": [{"frame": int, "timestamp": float, "prediction": str, "confidence": float,
                                          "fake_probability": float}],
                       "overall_result": {"prediction": str, "confidence": float, "fake_frame_ratio": float},
                       "processing_info": {"total_frames": int, "frames_processed": int, "processing_time": float,
                                           "processing_fps": float}}),
    SeedRequest("webcam", "WS", "/api/video/webcam",  # a JPEG data URL as text, as the page's canvas gave it
                reads={"prediction": str, "confidence": float, "fake_probability": float, "processing_time": float}),
)


def check(value: Any, expected: Any, where: str = "answer") -> list[str]:
    """Every place where `value` does not have the `expected` type (empty: it reads fine)."""
    if isinstance(expected, Nullable):
        return [] if value is None else check(value, expected.type, where)
    if isinstance(expected, list):
        if not isinstance(value, list):
            return [f"{where}: a list expected, got {value!r}"]
        return [p for i, item in enumerate(value) for p in check(item, expected[0], f"{where}[{i}]")]
    if isinstance(expected, (dict, Each)):
        if not isinstance(value, dict):
            return [f"{where}: an object expected, got {value!r}"]
        if isinstance(expected, Each):
            return [p for key, item in value.items() for p in check(item, expected.type, f"{where}.{key}")]
        return [p for key, kind in expected.items()
                for p in (check(value[key], kind, f"{where}.{key}") if key in value else [f"{where}.{key}: missing"])]
    if expected is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, expected)
    return [] if ok else [f"{where}: {expected.__name__} expected, got {value!r}"]


def replay(http: Any, request: SeedRequest, media: dict[str, tuple[str, bytes, str]]) -> Any:
    """Send one HTTP request as the seed frontend did, with `http` (httpx.Client or FastAPI's TestClient).

    media: an upload per file field ("file" is an image or a video by the request's name; "files" images).
    """
    if request.method == "GET":
        return http.get(request.path)
    upload = media["video" if request.name == "video" else "image"]
    files = [(name, upload) for name in request.files]
    return http.post(request.path, files=files, data=request.form)
