"""Triton's cumulative counters, per model, and what they mean between two snapshots.

From the Prometheus endpoint (latencies are microseconds summed over requests;
every request of a batch is charged the whole batch's compute time):

    requests/s          Δ nv_inference_request_success / seconds
    average batch       Δ nv_inference_count / Δ nv_inference_exec_count   (rows per execution)
    queue ms/request    Δ nv_inference_queue_duration_us / Δ success / 1000
    compute ms/request  Δ (compute_input + compute_infer + compute_output) / Δ success / 1000

The time a model computed, each batch counted once, cannot be recovered from
those sums when batches differ in size, so it comes from the statistics
extension's per-batch-size execution totals (`batch_stats`):

    busy fraction       Δ Σ batch compute / interval (above 1 only with several instances)
    busy ms/row         Δ Σ batch compute / Δ nv_inference_count

An ensemble's own durations are the sums over its steps, so read its steps.
"""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from tritonclient.utils import InferenceServerException

from deepfake_client.transport import split_url

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
    busy_us: float = 0.0  # Σ compute of executions, each batch once (statistics extension)

    def minus(self, earlier: ModelCounters) -> ModelCounters:
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


def busy_time_us(statistics: Mapping[str, Any]) -> dict[str, float]:
    """Per model, the compute time of all its executions (each batch once), in µs, from a
    statistics-extension response (`get_inference_statistics(as_json=True)`; numbers may be strings)."""
    busy = {}
    for model in statistics.get("model_stats", []):
        total_ns = sum(int(batch.get(phase, {}).get("ns", 0)) for batch in model.get("batch_stats", [])
                       for phase in ("compute_input", "compute_infer", "compute_output"))
        busy[model["name"]] = busy.get(model["name"], 0.0) + total_ns / 1e3
    return busy


def _statistics(url: str, timeout_s: float) -> dict[str, Any]:
    """The statistics extension's answer for every model (`url`: grpc://... or http://...)."""
    host, protocol = split_url(url, None)
    if protocol == "grpc":
        import tritonclient.grpc as grpc_client

        client = grpc_client.InferenceServerClient(host)
        read = lambda: client.get_inference_statistics(as_json=True, client_timeout=timeout_s)  # noqa: E731
    else:
        import tritonclient.http as http_client

        client = http_client.InferenceServerClient(host, connection_timeout=timeout_s, network_timeout=timeout_s)
        read = client.get_inference_statistics
    try:
        return read()
    except (InferenceServerException, OSError) as exc:
        raise MetricsError(f"cannot read Triton's statistics at {url}: {exc}") from None
    finally:
        client.close()


def snapshot(url: str, metrics_url: str, timeout_s: float = 10.0) -> dict[str, ModelCounters]:
    """Every model's cumulative counters: the Prometheus scrape plus the exact busy time."""
    try:
        with urllib.request.urlopen(metrics_url, timeout=timeout_s) as response:
            text = response.read().decode()
    except OSError as exc:
        raise MetricsError(f"cannot read Triton's metrics at {metrics_url}: {exc}") from None
    counters = model_counters(parse_prometheus(text))
    busy = busy_time_us(_statistics(url, timeout_s))
    return {model: replace(c, busy_us=busy.get(model, 0.0)) for model, c in counters.items()}


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
        result[model] = ModelActivity(
            requests=delta.success,
            failures=delta.failure,
            inferences=delta.inferences,
            executions=delta.executions,
            requests_per_s=delta.success / seconds,
            average_batch=_ratio(delta.inferences, delta.executions),
            queue_ms=_ratio(delta.queue_us, delta.success) / 1e3,
            compute_ms=_ratio(compute_us, delta.success) / 1e3,
            busy_fraction=delta.busy_us / (seconds * 1e6),
            busy_ms_per_inference=_ratio(delta.busy_us, delta.inferences) / 1e3,
        )
    return result
