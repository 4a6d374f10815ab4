"""Latency targets: a YAML file of load scenarios, each with the targets its results must meet.

    description: one H100, tensorrt flavour
    scenarios:
      - name: single_image          # a folder of that name holds the scenario's outputs
        users: 1                    # concurrent Locust users (closed loop)
        spawn_rate: 1               # users started per second (default: all at once)
        run_time: 60s               # Locust's -t (s, m, h)
        stop_timeout: 60s           # requests in flight at the end may finish (default 60s)
        processes: 1                # Locust processes (--processes), for high request rates
        mix: {face: 1}              # request kinds and weights: face, no_face, two_faces, video
        video_frames: 32            # frames per video request
        targets:
          - request: image/face     # a request name of the Locust stats, or "total"
            p50_ms: 15              # maximum p50 / p95 / p99 latency, ms
            max_error_rate: 0       # failed / all requests
            min_throughput_rps: 1   # minimum requests per second (Locust's Requests/s)

Every metric of every target gives one check; a request that was never made
fails all its checks. `check()` returns the checks; `render_table()` prints them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from benchmarks.load.locust_results import REJECTED_PREFIX, TOTAL, RequestStats, rejected_count
from benchmarks.load.workload import DEFAULT_VIDEO_FRAMES, WorkloadError, check_mix, format_mix

# metric key -> (attribute of RequestStats, True when the limit is a maximum, unit)
METRICS: dict[str, tuple[str, bool, str]] = {
    "p50_ms": ("p50_ms", True, "ms"),
    "p95_ms": ("p95_ms", True, "ms"),
    "p99_ms": ("p99_ms", True, "ms"),
    "max_error_rate": ("error_rate", True, ""),  # failures other than overload refusals
    "max_rejected_rate": ("rejected_rate", True, ""),  # overload refusals (rejected/ rows) / all requests
    "min_throughput_rps": ("throughput_rps", False, "/s"),
}
_DURATION = re.compile(r"^(?=\d)(\d+h)?(\d+m)?(\d+s)?$")
_SCENARIO_KEYS = {"name", "users", "spawn_rate", "run_time", "stop_timeout", "processes", "mix", "video_frames",
                  "targets"}


class TargetsError(ValueError):
    """The targets file cannot be used; the message says where and why."""


@dataclass(frozen=True)
class Target:
    request: str
    limits: Mapping[str, float]  # METRICS key -> limit


@dataclass(frozen=True)
class Scenario:
    name: str
    users: int
    run_time: str
    mix: Mapping[str, float]
    targets: tuple[Target, ...]
    spawn_rate: float | None = None  # None: all users at once
    stop_timeout: str = "60s"
    processes: int = 1
    video_frames: int = DEFAULT_VIDEO_FRAMES

    @property
    def mix_argument(self) -> str:
        return format_mix(self.mix)


@dataclass(frozen=True)
class TargetsFile:
    description: str
    scenarios: tuple[Scenario, ...] = field(default_factory=tuple)

    def scenario(self, name: str) -> Scenario:
        for scenario in self.scenarios:
            if scenario.name == name:
                return scenario
        raise TargetsError(f"no scenario {name!r}; the file has {', '.join(s.name for s in self.scenarios)}")


@dataclass(frozen=True)
class Check:
    scenario: str
    request: str
    metric: str
    limit: float
    measured: float | None  # None: the request was never made
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "request": self.request, "metric": self.metric, "limit": self.limit,
                "measured": self.measured, "passed": self.passed}


def load_targets(path: Path) -> TargetsFile:
    try:
        document = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise TargetsError(f"targets file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise TargetsError(f"{path} is not valid YAML: {exc}") from None
    return parse_targets(document, source=str(path))


def parse_targets(document: Any, source: str = "targets") -> TargetsFile:
    if not isinstance(document, dict) or not isinstance(document.get("scenarios"), list) or not document["scenarios"]:
        raise TargetsError(f"{source}: expected a mapping with a non-empty list 'scenarios'")
    unknown = set(document) - {"description", "scenarios"}
    if unknown:
        raise TargetsError(f"{source}: unknown keys {sorted(unknown)} (allowed: description, scenarios)")
    scenarios = tuple(_scenario(item, f"{source}: scenarios[{i}]") for i, item in enumerate(document["scenarios"]))
    names = [s.name for s in scenarios]
    if len(set(names)) != len(names):
        raise TargetsError(f"{source}: scenario names must be unique, got {names}")
    return TargetsFile(str(document.get("description", "")), scenarios)


def _scenario(item: Any, where: str) -> Scenario:
    if not isinstance(item, dict):
        raise TargetsError(f"{where}: expected a mapping")
    unknown = set(item) - _SCENARIO_KEYS
    if unknown:
        raise TargetsError(f"{where}: unknown keys {sorted(unknown)} (allowed: {', '.join(sorted(_SCENARIO_KEYS))})")
    name = item.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise TargetsError(f"{where}: 'name' must be a word of letters, digits, '_', '.', '-' (it names a folder)")
    where = f"{where} ({name})"
    try:
        mix = check_mix(item.get("mix") or {})
    except (WorkloadError, TypeError, AttributeError) as exc:
        raise TargetsError(f"{where}: bad 'mix': {exc}") from None
    targets = item.get("targets")
    if not isinstance(targets, list) or not targets:
        raise TargetsError(f"{where}: 'targets' must be a non-empty list")
    spawn_rate = item.get("spawn_rate")
    return Scenario(
        name=name,
        users=_positive(item.get("users"), "users", where, int),
        run_time=_duration(item.get("run_time"), "run_time", where),
        stop_timeout=_duration(item.get("stop_timeout", "60s"), "stop_timeout", where),
        processes=_positive(item.get("processes", 1), "processes", where, int),
        spawn_rate=None if spawn_rate is None else _positive(spawn_rate, "spawn_rate", where, float),
        video_frames=_positive(item.get("video_frames", DEFAULT_VIDEO_FRAMES), "video_frames", where, int),
        mix=mix,
        targets=tuple(_target(t, f"{where}: targets[{i}]") for i, t in enumerate(targets)),
    )


def _target(item: Any, where: str) -> Target:
    if not isinstance(item, dict) or not isinstance(item.get("request"), str):
        raise TargetsError(f"{where}: expected a mapping with 'request' (a request name or '{TOTAL}')")
    limits = {key: value for key, value in item.items() if key != "request"}
    unknown = set(limits) - set(METRICS)
    if unknown:
        raise TargetsError(f"{where}: unknown metrics {sorted(unknown)} (allowed: {', '.join(METRICS)})")
    if not limits:
        raise TargetsError(f"{where}: no metric to check for {item['request']!r}")
    for key, value in limits.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise TargetsError(f"{where}: {key} must be a number >= 0, got {value!r}")
    return Target(item["request"], {key: float(value) for key, value in limits.items()})


def _positive(value: Any, key: str, where: str, kind: type) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0 or (kind is int and value != int(value)):
        raise TargetsError(f"{where}: {key!r} must be a positive {kind.__name__}, got {value!r}")
    return kind(value)


def duration_seconds(text: str) -> int:
    """Seconds of a Locust duration such as 90s, 5m or 1h30m."""
    match = _DURATION.match(text)
    if not match:
        raise TargetsError(f"not a duration: {text!r} (use e.g. 30s, 5m or 1h30m)")
    hours, minutes, seconds = (int(group[:-1]) if group else 0 for group in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def _duration(value: Any, key: str, where: str) -> str:
    if not isinstance(value, str) or not _DURATION.match(value):
        raise TargetsError(f"{where}: {key!r} must be a duration such as 30s, 5m or 1h30m, got {value!r}")
    return value


@dataclass(frozen=True)
class _Rates:
    error_rate: float
    rejected_rate: float


def _rates(request: str, row: RequestStats, stats: Mapping[str, RequestStats]) -> _Rates:
    """Error and rejection rates of a row. An overload refusal is the server's documented answer
    to too much load, counted in its own rejected/ row: the error rate leaves it out."""
    if request == TOTAL:  # the total row already counts the refusals, as failures
        rejected = rejected_count(stats)
        return _Rates(error_rate=(row.failures - rejected) / row.requests, rejected_rate=rejected / row.requests)
    rejected_row = stats.get(REJECTED_PREFIX + request)
    rejected = rejected_row.requests if rejected_row is not None else 0
    requests = row.requests + rejected
    return _Rates(error_rate=row.failures / requests, rejected_rate=rejected / requests)


def check(scenario: Scenario, stats: Mapping[str, RequestStats]) -> list[Check]:
    checks = []
    for target in scenario.targets:
        row = stats.get(target.request)
        made = row is not None and row.requests > 0
        for metric, limit in target.limits.items():
            attribute, is_maximum, _ = METRICS[metric]
            rates = attribute in ("error_rate", "rejected_rate")
            measured = getattr(_rates(target.request, row, stats) if rates else row, attribute) if made else None
            passed = measured is not None and not math.isnan(measured) and (
                measured <= limit if is_maximum else measured >= limit)
            checks.append(Check(scenario.name, target.request, metric, limit, measured, passed))
    return checks


def _rows(checks: Sequence[Check]) -> list[tuple[str, ...]]:
    return [(c.scenario, c.request, c.metric, _format_limit(c.metric, c.limit), _format_measured(c),
             "pass" if c.passed else "FAIL") for c in checks]


_HEADER = ("scenario", "request", "metric", "target", "measured", "result")


def _verdict(checks: Sequence[Check]) -> str:
    failed = sum(not c.passed for c in checks)
    return f"{len(checks) - failed} of {len(checks)} checks passed" + (f"; {failed} FAILED" if failed else "")


def render_table(checks: Sequence[Check]) -> str:
    """A fixed-width table, one line per check, then the verdict."""
    rows = [_HEADER, *_rows(checks)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADER))]
    lines = ["  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines + [_verdict(checks)])


def render_markdown(checks: Sequence[Check]) -> str:
    rows = [_HEADER, ("---",) * len(_HEADER), *_rows(checks)]
    return "\n".join("| " + " | ".join(row) + " |" for row in rows) + f"\n\n{_verdict(checks)}\n"


def _format_limit(metric: str, limit: float) -> str:
    _, is_maximum, unit = METRICS[metric]
    value = f"{limit:,.0f}" if unit == "ms" and limit >= 1 else f"{limit:g}"
    return f"{'<=' if is_maximum else '>='} {value}{unit}"


def _format_measured(c: Check) -> str:
    if c.measured is None:
        return "no requests"
    unit = METRICS[c.metric][2]
    return f"{c.measured:,.0f}{unit}" if unit == "ms" else f"{c.measured:.4g}{unit}"
