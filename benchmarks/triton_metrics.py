"""Triton's Prometheus counters, per model, and what they mean between two scrapes.

Triton's latency counters are cumulative microseconds summed over requests;
for a batching model every request of a batch is charged the whole batch's
compute time. So between two scrapes, per model:

    requests/s          Δ nv_inference_request_success / seconds
    average batch       Δ nv_inference_count / Δ nv_inference_exec_count   (rows per execution)
    queue ms/request    Δ nv_inference_queue_duration_us / Δ success / 1000
    compute ms/request  Δ (compute_input + compute_infer + compute_output) / Δ success / 1000
    busy fraction       Δ compute µs × (Δ exec_count / Δ success) / interval µs
                        (share of the interval the model computed: each batch counted once;
                        exact when every execution holds the same number of requests)

An ensemble's own durations are the sums over its steps, so read its steps.
"""

from __future__ import annotations

import re
import urllib.request
from dataclasses import dataclass, fields
from typing import Mapping

_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$")
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')

Labels = frozenset  # of (name, value) pairs


class MetricsError(RuntimeError):
    """The metrics endpoint cannot be read, or its counters make no sense."""


def parse_prometheus(text: str) -> dict[tuple[str, Labels], float]:
    """Every sample of a Prometheus text exposition: (metric name, labels) -> value."""
    samples = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if not match:
            raise MetricsError(f"line {number} is not a Prometheus sample: {line!r}")
        name, labels, value = match.groups()
        samples[(name, frozenset(_LABEL.findall(labels or "")))] = float(value)
    return samples


@dataclass(frozen=True)
class ModelCounters:
    """The cumulative per-model counters (summed over versions and failure reasons)."""

    success: float = 0.0
    failure: float = 0.0
    inferences: float = 0.0  # nv_inference_count: rows (faces) for a batching model
    executions: float = 0.0
    request_us: float = 0.0
    queue_us: float = 0.0
    compute_input_us: float = 0.0
    compute_infer_us: float = 0.0
    compute_output_us: float = 0.0

    def minus(self, earlier: "ModelCounters") -> "ModelCounters":
        return ModelCounters(**{f.name: getattr(self, f.name) - getattr(earlier, f.name) for f in fields(self)})


_COUNTERS = {
    "nv_inference_request_success": "success",
    "nv_inference_request_failure": "failure",
    "nv_inference_count": "inferences",
    "nv_inference_exec_count": "executions",
    "nv_inference_request_duration_us": "request_us",
    "nv_inference_queue_duration_us": "queue_us",
    "nv_inference_compute_input_duration_us": "compute_input_us",
    "nv_inference_compute_infer_duration_us": "compute_infer_us",
    "nv_inference_compute_output_duration_us": "compute_output_us",
}


def model_counters(samples: Mapping[tuple[str, Labels], float]) -> dict[str, ModelCounters]:
    totals: dict[str, dict[str, float]] = {}
    for (name, labels), value in samples.items():
        field_name = _COUNTERS.get(name)
        model = dict(labels).get("model")
        if field_name is None or model is None:
            continue
        model_totals = totals.setdefault(model, {})
        model_totals[field_name] = model_totals.get(field_name, 0.0) + value
    return {model: ModelCounters(**values) for model, values in totals.items()}


def scrape(metrics_url: str, timeout_s: float = 10.0) -> dict[str, ModelCounters]:
    try:
        with urllib.request.urlopen(metrics_url, timeout=timeout_s) as response:
            text = response.read().decode()
    except OSError as exc:
        raise MetricsError(f"cannot read Triton's metrics at {metrics_url}: {exc}") from None
    return model_counters(parse_prometheus(text))


@dataclass(frozen=True)
class ModelActivity:
    """What one model did between two scrapes."""

    requests: float
    failures: float
    inferences: float
    executions: float
    requests_per_s: float
    average_batch: float  # rows per execution
    queue_ms: float  # per request
    compute_ms: float  # per request (input + infer + output, the whole batch it ran in)
    busy_fraction: float  # share of the interval an instance was computing (can exceed 1 with several instances)
    busy_ms_per_inference: float  # compute time per row (face), each batch counted once

    def to_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("nan")


def activity(before: Mapping[str, ModelCounters], after: Mapping[str, ModelCounters],
             seconds: float) -> dict[str, ModelActivity]:
    """Per model, what happened between two scrapes `seconds` apart."""
    if seconds <= 0:
        raise ValueError(f"the interval must be positive, got {seconds}")
    result = {}
    for model, counters in after.items():
        delta = counters.minus(before.get(model, ModelCounters()))
        if any(getattr(delta, f.name) < 0 for f in fields(delta)):
            raise MetricsError(f"{model}: counters went backwards between scrapes (did the server restart?)")
        compute_us = delta.compute_input_us + delta.compute_infer_us + delta.compute_output_us
        # Every request of a batch is charged the whole batch: count each execution once.
        busy_us = compute_us * _ratio(delta.executions, delta.success) if delta.success else 0.0
        result[model] = ModelActivity(
            requests=delta.success,
            failures=delta.failure,
            inferences=delta.inferences,
            executions=delta.executions,
            requests_per_s=delta.success / seconds,
            average_batch=_ratio(delta.inferences, delta.executions),
            queue_ms=_ratio(delta.queue_us, delta.success) / 1e3,
            compute_ms=_ratio(compute_us, delta.success) / 1e3,
            busy_fraction=busy_us / (seconds * 1e6),
            busy_ms_per_inference=_ratio(busy_us, delta.inferences) / 1e3,
        )
    return result
