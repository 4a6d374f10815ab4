"""Small helpers shared by the python-backend models (no Triton import here)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence

import numpy as np


def model_parameters(args: Mapping[str, str]) -> dict[str, str]:
    """The raw `parameters` of the model's config.pbtxt, from TritonPythonModel.initialize args
    (values are decoded with deepfake_contract.parameters)."""
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
