"""Small helpers shared by the python-backend models (no Triton import here)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def model_parameters(args: Mapping[str, str]) -> dict[str, str]:
    """The `parameters` of the model's config.pbtxt, from TritonPythonModel.initialize args."""
    config = json.loads(args["model_config"])
    return {key: value["string_value"] for key, value in config.get("parameters", {}).items()}


def run_in_one_batch(
    batches: Sequence[np.ndarray], infer: Callable[[np.ndarray], np.ndarray]
) -> list[np.ndarray]:
    """Run `infer` once on the rows of all requests, then split the result back per request."""
    sizes = [len(b) for b in batches]
    merged = batches[0] if len(batches) == 1 else np.concatenate(batches)
    result = infer(merged)
    if len(result) != len(merged):
        raise RuntimeError(f"model returned {len(result)} rows for {len(merged)} inputs")
    return np.split(result, np.cumsum(sizes)[:-1])


def to_parameters(settings, exclude: Sequence[str] = ()) -> dict[str, str]:
    """A settings dataclass as Triton config parameters (JSON-encoded values)."""
    return {f.name: json.dumps(getattr(settings, f.name)) for f in fields(settings) if f.name not in exclude}


def from_parameters(cls: type[T], params: Mapping[str, str], **overrides) -> T:
    """The settings dataclass `cls` from config parameters; absent fields keep their defaults."""
    values = {f.name: json.loads(params[f.name]) for f in fields(cls) if f.name in params}
    return cls(**{**values, **overrides})
