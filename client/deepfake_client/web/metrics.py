"""Prometheus metrics of the gateway's own requests (Triton exports its own on :8002)."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Detections take 0.05 s on a GPU to seconds on a CPU; videos and batches longer.
_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


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
            "deepfake_gateway_predictions", "images and webcam frames judged, by verdict", ["prediction"], registry=self.registry
        )
        self.webcam_sessions = Gauge("deepfake_gateway_webcam_sessions", "open webcam WebSockets", registry=self.registry)
        self.webcam_frames = Counter(
            "deepfake_gateway_webcam_frames", "webcam frames received, by outcome", ["outcome"], registry=self.registry
        )

    def count_prediction(self, label: str) -> None:
        self.predictions.labels(label).inc()

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
