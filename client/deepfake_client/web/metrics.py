"""Prometheus metrics of the gateway's own requests (Triton exports its own on :8002)."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Detections take 0.05 s on a GPU to seconds on a CPU; videos and batches longer.
_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
# Drift (issue 20): probabilities in twentieths, so a quantile is read to 0.05 and a shift of the
# distribution moves whole buckets; faces per image and face sizes (the shorter side of the box, px).
PROBABILITY_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))
FACE_COUNT_BUCKETS = (0, 1, 2, 3, 4, 6, 8, 16, 64)
FACE_SIZE_BUCKETS = (16, 32, 48, 64, 96, 128, 192, 256, 384, 512, 1024, 2048, 4096)
ENSEMBLE = "ensemble"  # the `model` label of the ensemble's own score
MAX_MODEL_LABELS = 16  # model names come from the server; more than this is "other" (bounded series)


class GatewayMetrics:
    """One registry per app, so several apps (tests) never share counters."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "deepfake_gateway_requests", "HTTP requests answered", ["route", "method", "status"], registry=self.registry
        )
        self.duration = Histogram(
            "deepfake_gateway_request_duration_seconds", "HTTP request time, to the last byte", ["route"],
            buckets=_BUCKETS, registry=self.registry,
        )
        self.in_flight = Gauge("deepfake_gateway_requests_in_flight", "HTTP requests being served", registry=self.registry)
        self.predictions = Counter(
            "deepfake_gateway_predictions", "images, batch items, video frames and webcam frames judged, by verdict",
            ["prediction"], registry=self.registry
        )
        self.webcam_sessions = Gauge("deepfake_gateway_webcam_sessions", "open webcam WebSockets", registry=self.registry)
        self.webcam_frames = Counter(
            "deepfake_gateway_webcam_frames", "webcam frames received, by outcome", ["outcome"], registry=self.registry
        )

        self.fake_probability = Histogram(
            "deepfake_gateway_fake_probability", "p(fake) of each judged face, per model and for the ensemble",
            ["model"], buckets=PROBABILITY_BUCKETS, registry=self.registry,
        )
        self.disagreement = Histogram(
            "deepfake_gateway_model_disagreement", "per judged face: the models' p(fake) spread (max - min)",
            buckets=PROBABILITY_BUCKETS, registry=self.registry,
        )
        self.faces = Histogram("deepfake_gateway_faces_per_image", "faces found per judged image",
                               buckets=FACE_COUNT_BUCKETS, registry=self.registry)
        self.face_size = Histogram("deepfake_gateway_face_size_pixels", "the shorter side of each face's box",
                                   buckets=FACE_SIZE_BUCKETS, registry=self.registry)
        self._models: set[str] = set()

    def count_prediction(self, label: str) -> None:
        self.predictions.labels(label).inc()

    def _model_label(self, name: str) -> str:
        if name not in self._models and len(self._models) >= MAX_MODEL_LABELS:
            return "other"
        self._models.add(name)
        return name

    def observe(self, result: Any) -> None:
        """A judged image or frame (a DetectionResult): its verdict and the drift histograms."""
        self.count_prediction(result.label.value)
        self.faces.observe(len(result.faces))
        for face in result.faces:
            x1, y1, x2, y2 = face.box
            self.face_size.observe(max(0.0, min(x2 - x1, y2 - y1)))
            if face.fake_probability == face.fake_probability:  # not NaN
                self.fake_probability.labels(ENSEMBLE).observe(face.fake_probability)
            scores = [p for p in face.model_probabilities.values() if p == p]
            for name, p in face.model_probabilities.items():
                if p == p:
                    self.fake_probability.labels(self._model_label(name)).observe(p)
            if len(scores) >= 2:
                self.disagreement.observe(max(scores) - min(scores))

    def webcam_frame(self, outcome: str) -> None:
        self.webcam_frames.labels(outcome).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


# Label values are a fixed set: anything else a client sends is "other" (bounded series).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class MetricsMiddleware:
    """Counts and times every HTTP request by route template (never by raw path: bounded labels)."""

    def __init__(self, app: Any, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status = 500
        started = time.perf_counter()

        async def send_and_note(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_and_note)
        finally:
            self.metrics.in_flight.dec()
            route = scope.get("route")
            template = getattr(route, "path", None) or ("/static" if scope["path"].startswith("/static/") else "other")
            method = scope["method"] if scope["method"] in METHODS else "other"
            self.metrics.requests.labels(template, method, str(status)).inc()
            self.metrics.duration.labels(template).observe(time.perf_counter() - started)
