"""Latency percentiles and throughput of a set of timed requests (one definition for every tool)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

PERCENTILES = (50, 95, 99)


@dataclass(frozen=True)
class Timing:
    """One request: its name, when it started (s, any monotonic clock), how long it took, and its error."""

    name: str
    start_s: float
    latency_s: float
    error: str | None = None

    @property
    def end_s(self) -> float:
        return self.start_s + self.latency_s


@dataclass(frozen=True)
class Summary:
    requests: int  # completed, successful or not
    failures: int
    wall_s: float  # first start to last end
    throughput_rps: float  # successful requests per second of wall time
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "error_rate": self.error_rate}


def summarize(timings: Sequence[Timing]) -> Summary:
    """Percentiles over successful requests (nearest rank: a value that was really measured)."""
    if not timings:
        raise ValueError("no requests to summarise")
    ok = np.array([t.latency_s for t in timings if t.error is None], dtype=np.float64) * 1e3
    wall = max(t.end_s for t in timings) - min(t.start_s for t in timings)
    if ok.size:
        p50, p95, p99 = np.percentile(ok, PERCENTILES, method="inverted_cdf")
        mean = float(ok.mean())
    else:
        p50 = p95 = p99 = mean = float("nan")
    return Summary(
        requests=len(timings),
        failures=len(timings) - int(ok.size),
        wall_s=wall,
        throughput_rps=ok.size / wall if wall > 0 else float("nan"),
        p50_ms=float(p50),
        p95_ms=float(p95),
        p99_ms=float(p99),
        mean_ms=mean,
    )


def summarize_by_name(timings: Sequence[Timing]) -> dict[str, Summary]:
    """One summary per request name, plus "total" over all of them (throughput over the shared wall time)."""
    names = sorted({t.name for t in timings})
    summaries = {name: summarize([t for t in timings if t.name == name]) for name in names}
    total = summarize(timings)
    # Per-name throughput counts only that name's requests, but over the whole run's wall time.
    for name, summary in summaries.items():
        ok = summary.requests - summary.failures
        summaries[name] = replace(summary, throughput_rps=ok / total.wall_s if total.wall_s > 0 else float("nan"))
    summaries["total"] = total
    return summaries
