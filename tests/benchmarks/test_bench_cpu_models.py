"""The per-model CPU benchmark on a real exported model (the smallest, EfficientNet-B4)."""

from __future__ import annotations

import math

import pytest
import torch

from benchmarks.comparison.cpu_models import measure_model
from deepfake_models.classifiers.efficientnet_b4 import EFFICIENTNET_B4
from export.artifacts import BuildArtifacts


@pytest.mark.slow
def test_every_runtime_and_batch_gets_a_time_per_face(export_artifacts):
    row = measure_model(EFFICIENTNET_B4, BuildArtifacts(export_artifacts), batch=2, min_seconds=0.0)
    assert set(row) == {f"pytorch eager, {torch.get_num_threads()} threads, batch 1",
                        "onnxruntime, 1 thread, batch 1", "onnxruntime, 1 thread, batch 2",
                        "onnxruntime, all cores, batch 1", "onnxruntime, all cores, batch 2"}
    assert all(math.isfinite(ms) and 1 < ms < 60_000 for ms in row.values())
