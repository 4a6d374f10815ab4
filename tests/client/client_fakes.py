"""Helpers for the client's unit tests: ensemble outputs shaped as tritonclient returns
them, and an in-memory transport that plays the server.

(A plain module with a unique name, imported by the tests: pytest puts this folder on sys.path.)"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from deepfake_client import DeepfakeClient
from deepfake_client.retry import RetryPolicy
from deepfake_contract.parameters import encode

MODEL_NAMES = ("xception", "efficientnet_b4", "f3net", "effort_clip")
UNIFORM_WEIGHTS = {name: 0.25 for name in MODEL_NAMES}


def ensemble_outputs(
    face_model_probabilities: Sequence[Sequence[float]],
    *,
    weights: Sequence[float] = (1, 1, 1, 1),
    threshold: float = 0.5,
    untrained: Sequence[bool] = (False, False, False, False),
    with_landmarks: bool = True,
    faces_found: int | None = None,
    band: tuple[float, float] | None = None,
) -> dict[str, np.ndarray]:
    """The deepfake_detector outputs for faces with these per-model probabilities,
    with tritonclient's dtypes: BYTES as object arrays of bytes, BOOL as bool."""
    per_model = np.array(face_model_probabilities, dtype=np.float32).reshape(-1, len(MODEL_NAMES))
    n = per_model.shape[0]
    w = np.array(weights, dtype=np.float64)
    per_face = (per_model.astype(np.float64) @ (w / w.sum())).astype(np.float32)
    score = float(per_face.max()) if n else float("nan")
    label = b"NO_FACE" if n == 0 else (b"FAKE" if score > threshold else b"REAL")
    boxes = np.array([[10 + 100 * i, 20, 90 + 100 * i, 120] for i in range(n)], dtype=np.float32).reshape(n, 4)
    outputs = {
        "LABEL": np.array([label], dtype=np.object_),
        "FAKE_PROBABILITY": np.array([score], dtype=np.float32),
        "NUM_FACES": np.array([n], dtype=np.int32),
        "FACE_BOXES": boxes,
        "FACE_SCORES": np.linspace(0.999, 0.95, n, dtype=np.float32),
        "FACE_FAKE_PROBABILITY": per_face,
        "MODEL_FAKE_PROBABILITY": per_model,
        "MODEL_NAMES": np.array([m.encode() for m in MODEL_NAMES], dtype=np.object_),
        "MODEL_UNTRAINED": np.array(untrained, dtype=bool),
    }
    if band is not None:  # a server that serves an uncertain band (low, high)
        def verdict(p: float) -> bytes:
            return b"UNCERTAIN" if band[0] <= p <= band[1] else (b"FAKE" if p > threshold else b"REAL")
        outputs["VERDICT"] = np.array([label if n == 0 else verdict(score)], dtype=np.object_)
        outputs["FACE_VERDICT"] = np.array([verdict(float(p)) for p in per_face], dtype=np.object_)
    if faces_found is not None:
        outputs["NUM_FACES_FOUND"] = np.array([faces_found], dtype=np.int32)
    if with_landmarks:
        outputs["FACE_LANDMARKS"] = np.arange(n * 10, dtype=np.float32).reshape(n, 5, 2)
    return outputs


def png_pixel(data: bytes) -> int:
    """The red value of the top-left pixel of an encoded image (how fake servers read inputs)."""
    return int(np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))[0, 0, 0])


class FakeTransport:
    """Plays the server: `respond(image_bytes)` returns outputs or raises an SDK error."""

    def __init__(
        self,
        respond: Callable[[bytes], dict[str, np.ndarray]],
        *,
        parameters: dict[str, str] | None = None,
        live: bool = True,
        model_ready: bool = True,
    ) -> None:
        self.respond = respond
        self.parameters = parameters or {
            "weights": encode(UNIFORM_WEIGHTS),
            "threshold": encode(0.5),
            "image_score": encode("max"),
            "untrained_models": encode([]),
        }
        self.live = live
        self.ready = model_ready
        self.unready_models: set[str] = set()  # models of the ensemble that report not ready
        self.calls: list[bytes] = []
        self.priorities: list[tuple[str, int]] = []  # (model, priority) of each infer call
        self.request_parameters: list[dict | None] = []  # request parameters of each infer call
        self.in_flight = 0
        self.max_in_flight = 0
        self.closed = False
        self._lock = threading.Lock()

    def infer(self, model: str, image: bytes, priority: int = 0, parameters: dict | None = None) -> dict[str, np.ndarray]:
        with self._lock:
            self.calls.append(image)
            self.priorities.append((model, priority))
            self.request_parameters.append(parameters)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return self.respond(image)
        finally:
            with self._lock:
                self.in_flight -= 1

    def server_live(self) -> bool:
        return self.live

    def model_ready(self, model: str) -> bool:
        return self.ready and model not in self.unready_models

    def model_config(self, model: str) -> dict:
        """The ensemble's configuration as Triton serves it (JSON), with its steps."""
        steps = ["face_detector", *MODEL_NAMES, "weighted_average"]
        return {"name": model, "ensemble_scheduling": {"step": [{"model_name": name} for name in steps]}}

    def server_version(self) -> str:
        return "2.51.0"

    def model_parameters(self, model: str) -> dict[str, str]:
        return self.parameters

    def close(self) -> None:
        self.closed = True


def fake_client(transport: FakeTransport, **options) -> DeepfakeClient:
    options.setdefault("retry", RetryPolicy(max_attempts=3, initial_backoff_s=0.001, max_backoff_s=0.01))
    return DeepfakeClient("localhost:1", transport=transport, **options)


def one_face(probability: float) -> dict[str, np.ndarray]:
    """Outputs for one face that every model scores `probability`."""
    return ensemble_outputs([[probability] * len(MODEL_NAMES)])


def sleepy(seconds: float, respond: Callable[[bytes], dict[str, np.ndarray]]):
    def slow(image: bytes) -> dict[str, np.ndarray]:
        time.sleep(seconds)
        return respond(image)

    return slow


def random_rgb(height: int = 48, width: int = 64, seed: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
