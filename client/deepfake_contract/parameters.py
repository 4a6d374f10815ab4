"""The one codec of the python models' config `parameters` (config.pbtxt string values).

Every value is written as JSON text, whatever its type: a number `0.5`, a string
`"max"`, a list `["xception", "f3net"]`. The repository assembly writes them with
`encode`/`to_parameters`, the models and the client read them with
`decode`/`from_parameters`; nothing else parses parameter strings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")
_REQUIRED = object()


class ParameterError(ValueError):
    """A config parameter is missing or is not the JSON value it must be."""


def encode(value: Any) -> str:
    if isinstance(value, (set, frozenset)):
        value = sorted(value)
    elif isinstance(value, tuple):
        value = list(value)
    return json.dumps(value)


def decode(params: Mapping[str, str], key: str, default: Any = _REQUIRED, kind: type | tuple[type, ...] | None = None):
    """The value of parameter `key`; `default` when absent (absent and no default: an error)."""
    if key not in params:
        if default is _REQUIRED:
            raise ParameterError(f"parameter {key!r} is missing")
        return default
    try:
        value = json.loads(params[key])
    except json.JSONDecodeError as exc:
        raise ParameterError(f"parameter {key!r} is not valid JSON ({params[key]!r}): {exc}") from None
    if kind is not None and not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ParameterError(f"parameter {key!r} must be a JSON {names}, got {value!r}")
    return value


def to_parameters(settings: Any, exclude: Sequence[str] = ()) -> dict[str, str]:
    """A settings dataclass as config parameters, one per field."""
    return {f.name: encode(getattr(settings, f.name)) for f in fields(settings) if f.name not in exclude}


def from_parameters(cls: type[T], params: Mapping[str, str], **overrides: Any) -> T:
    """The settings dataclass `cls` from config parameters; absent fields keep their defaults."""
    values = {f.name: decode(params, f.name) for f in fields(cls) if f.name in params}
    return cls(**{**values, **overrides})
