"""Request priority by call kind: people waiting on one answer go ahead of bulk work.

Triton serves a model's queue by priority level (1 first) where the model has
priority levels; a model without them ignores the priority. The SDK sends
`INTERACTIVE` for a single image, an explanation and a live stream's frames, and
`BULK` for batches, videos, folders, evaluation and calibration. A caller can
override it per call (`priority=`) or per client (`DeepfakeClient(priority=...)`).
"""

from __future__ import annotations

from deepfake_contract import PRIORITY_BULK, PRIORITY_INTERACTIVE, PRIORITY_LEVELS

from .errors import InvalidInputError

INTERACTIVE = PRIORITY_INTERACTIVE
BULK = PRIORITY_BULK
NAMES = {"interactive": INTERACTIVE, "bulk": BULK}

Priority = int | str  # a level (0: the model's default, 1 .. PRIORITY_LEVELS) or a name in NAMES


def parse_priority(priority: Priority | None) -> int | None:
    """The Triton level of a priority given by level or name; None stays None (not given)."""
    if priority is None:
        return None
    if isinstance(priority, str):
        if priority.lower() not in NAMES:
            raise InvalidInputError(f"priority must be one of {', '.join(NAMES)} or a level, got {priority!r}")
        return NAMES[priority.lower()]
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= PRIORITY_LEVELS:
        raise InvalidInputError(f"priority must be a level from 0 to {PRIORITY_LEVELS} or a name, got {priority!r}")
    return priority


def choose(call: Priority | None, client: int | None, kind: int) -> int:
    """The priority a request is sent with: the call's, else the client's, else its kind's."""
    for given in (parse_priority(call), client):
        if given is not None:
            return given
    return kind
