"""Read the `<prefix>_stats.csv` Locust writes with `--csv <prefix>`."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from deepfake_client import OverloadedError

TOTAL = "total"  # our name for Locust's "Aggregated" row
# Requests the server refused as overloaded (queue full or queue timeout; OverloadedError) are
# reported under this prefix + their request name, so that the other rows hold accepted requests only.
REJECTED_PREFIX = "rejected/"
# Refusals a bulk request (a video) absorbed by retrying are each reported under
# REJECTED_PREFIX + its name + this suffix, its time that of the refusal; they count as rejections.
RETRIED_SUFFIX = "/retried"
_LOCUST_TOTAL = "Aggregated"


class LocustResultsError(RuntimeError):
    """The Locust output is missing or not in the expected format."""


@dataclass(frozen=True)
class RequestStats:
    name: str  # request name, or TOTAL
    requests: int
    failures: int
    throughput_rps: float  # all requests (Locust's "Requests/s")
    p50_ms: float  # NaN when there was no request
    p95_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


def three_significant_digits(response_time_ms: float) -> int:
    """The response-time bucket Locust records (locust.stats.bucket_response_time): whole ms below
    1 s, then three significant digits (Locust's own keeps two: 2,345 ms would become 2,300)."""
    if response_time_ms < 1000:
        return round(response_time_ms)
    digits = math.floor(math.log10(response_time_ms)) + 1
    return int(round(response_time_ms, 3 - digits))


def stats_csv(prefix: Path) -> Path:
    return Path(f"{prefix}_stats.csv")


def read_stats(path: Path) -> dict[str, RequestStats]:
    """Rows of a Locust stats CSV by request name ("total" for the aggregate)."""
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError:
        raise LocustResultsError(f"no Locust statistics at {path}: did Locust run?") from None
    needed = {"Name", "Request Count", "Failure Count", "Requests/s", "50%", "95%", "99%",
              "Average Response Time", "Max Response Time"}
    if not rows or not needed <= set(rows[0]):
        raise LocustResultsError(f"{path} is not a Locust stats CSV (columns {sorted(needed)} expected)")
    stats = {}
    for row in rows:
        name = TOTAL if row["Name"] == _LOCUST_TOTAL and not row.get("Type") else row["Name"]
        stats[name] = RequestStats(
            name=name,
            requests=int(row["Request Count"]),
            failures=int(row["Failure Count"]),
            throughput_rps=_number(row["Requests/s"]),
            p50_ms=_number(row["50%"]),
            p95_ms=_number(row["95%"]),
            p99_ms=_number(row["99%"]),
            mean_ms=_number(row["Average Response Time"]),
            max_ms=_number(row["Max Response Time"]),
        )
    if TOTAL not in stats:
        raise LocustResultsError(f"{path} has no {_LOCUST_TOTAL!r} row")
    return stats


def reported_name(name: str, exception: BaseException | None) -> str:
    """The statistics row of a request: its own, or the rejected one when the server refused it."""
    return REJECTED_PREFIX + name if isinstance(exception, OverloadedError) else name


def rejected_count(stats: dict[str, RequestStats]) -> int:
    """Requests the server refused as overloaded, over all request kinds (counted in TOTAL's failures too)."""
    return sum(row.requests for name, row in stats.items() if name.startswith(REJECTED_PREFIX))


def _number(text: str) -> float:
    return math.nan if text in ("", "N/A") else float(text)
