"""History filters: parsed from strings (API query, CLI options) into a checked `HistoryFilter`."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from datetime import datetime, timedelta, timezone

from ..errors import InvalidInputError
from .kinds import KINDS, VERDICTS

MAX_PAGE = 1000
_SHA256 = re.compile(r"[0-9a-f]{64}")
_AGE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True)
class HistoryFilter:
    since: datetime | None = None
    until: datetime | None = None
    verdict: str | None = None
    kind: str | None = None
    min_disagreement: float | None = None  # max - min of the models' p(fake) at least this
    untrained: bool | None = None
    filename: str | None = None  # a part of the sanitised filename, case-insensitive
    sha256: str | None = None
    group_id: str | None = None

    def active(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


def parse_time(text: str, name: str) -> datetime:
    """ISO 8601 (a time without a zone is UTC), or an age back from now: 30m, 12h, 7d, 2w."""
    text = text.strip()
    age = _AGE.fullmatch(text)
    if age:
        return datetime.now(timezone.utc) - timedelta(seconds=float(age[1]) * _UNITS[age[2]])
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInputError(f"{name}: {text!r} is neither an ISO 8601 time nor an age such as 7d") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def parse_age(text: str, name: str) -> timedelta:
    age = _AGE.fullmatch(text.strip())
    if not age:
        raise InvalidInputError(f"{name}: {text!r} is not an age such as 90d, 12h or 30m")
    return timedelta(seconds=float(age[1]) * _UNITS[age[2]])


def parse_sha256(text: str) -> str:
    value = text.strip().lower()
    if not _SHA256.fullmatch(value):
        raise InvalidInputError(f"sha256: {text!r} is not 64 hexadecimal digits")
    return value


def make_filter(
    *,
    since: str | None = None,
    until: str | None = None,
    verdict: str | None = None,
    kind: str | None = None,
    min_disagreement: float | None = None,
    untrained: bool | None = None,
    filename: str | None = None,
    sha256: str | None = None,
    group_id: str | None = None,
) -> HistoryFilter:
    if verdict is not None and verdict.upper() not in VERDICTS:
        raise InvalidInputError(f"verdict must be one of {', '.join(VERDICTS)}, got {verdict!r}")
    if kind is not None and kind not in KINDS:
        raise InvalidInputError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if min_disagreement is not None and not 0.0 <= min_disagreement <= 1.0:
        raise InvalidInputError(f"min_disagreement must be from 0 to 1, got {min_disagreement}")
    return HistoryFilter(
        since=parse_time(since, "since") if since else None,
        until=parse_time(until, "until") if until else None,
        verdict=verdict.upper() if verdict else None,
        kind=kind,
        min_disagreement=min_disagreement,
        untrained=untrained,
        filename=filename or None,
        sha256=parse_sha256(sha256) if sha256 else None,
        group_id=group_id or None,
    )


def check_page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInputError(f"limit must be from 1 to {MAX_PAGE}, got {limit}")
    if offset < 0:
        raise InvalidInputError(f"offset must be 0 or more, got {offset}")
