"""From a concurrency sweep to a number of GPUs.

The sizing model (small on purpose, every input measured):

1. Per-GPU capacity X* (images/s) is the highest throughput of the sweep whose
   p95 latency meets the SLO without errors, measured at r0 classifier rows per
   image (faces; an image without a face still sends one placeholder row).
2. All stages share the GPU, so an image costs the device t_det + r × t_row,
   where t_det is the detector's compute per image and t_row the four
   classifiers' compute per row at the batch sizes the sweep formed (Triton
   metrics). At another mean rows-per-image r the capacity scales as
       X(r) = X* × (t_det + r0 × t_row) / (t_det + r × t_row).
3. Keep headroom for bursts and a failed GPU: plan each GPU at a utilisation
   U < 1 of that capacity (default 0.7), so
       GPUs = ceil(target images/s / (U × X(r))).

Headroom also keeps latency away from the SLO: at U × X* queues are shorter
than at X*, where the SLO was still met. The sweep is a closed loop; bursty
open-loop traffic needs the headroom (check with a Locust run at the planned rate).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import deepfake_contract as contract
from benchmarks.common.latency import Summary
from benchmarks.common.triton_metrics import ModelActivity
from deepfake_models import CLASSIFIER_NAMES

DEFAULT_UTILISATION = 0.7


@dataclass(frozen=True)
class Level:
    """One concurrency of the sweep: the client's view and Triton's, over the same interval."""

    concurrency: int
    summary: Summary  # all requests of the level
    models: Mapping[str, ModelActivity]

    @property
    def rows_per_image(self) -> float:
        """Classifier rows (faces, or the no-face placeholder) per ensemble request."""
        images = self.models[contract.ENSEMBLE_NAME].requests
        return self.models[CLASSIFIER_NAMES[0]].inferences / images if images else float("nan")

    @property
    def detector_ms_per_image(self) -> float:
        return self.models[contract.FACE_DETECTOR_NAME].busy_ms_per_inference

    @property
    def classifiers_ms_per_row(self) -> float:
        return sum(self.models[name].busy_ms_per_inference for name in CLASSIFIER_NAMES)


def best_under_slo(levels: Sequence[Level], slo_p95_ms: float, max_error_rate: float = 0.0) -> Level | None:
    """The level with the highest throughput whose p95 meets the SLO (None when none does)."""
    eligible = [lvl for lvl in levels
                if lvl.summary.p95_ms <= slo_p95_ms and lvl.summary.error_rate <= max_error_rate]
    return max(eligible, key=lambda lvl: lvl.summary.throughput_rps, default=None)


@dataclass(frozen=True)
class Sizing:
    target_rps: float
    rows_per_image: float
    utilisation: float
    capacity_rps: float  # per GPU at rows_per_image, before headroom
    planned_rps_per_gpu: float  # capacity x utilisation
    gpus: int

    def to_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


def capacity_at(level: Level, rows_per_image: float) -> float:
    """Images/s one device sustains at `rows_per_image`, scaled from the measured level."""
    if not rows_per_image >= 1:
        raise ValueError(f"rows per image must be >= 1 (a no-face image still runs one row), got {rows_per_image}")
    measured_cost = level.detector_ms_per_image + level.rows_per_image * level.classifiers_ms_per_row
    cost = level.detector_ms_per_image + rows_per_image * level.classifiers_ms_per_row
    return level.summary.throughput_rps * measured_cost / cost


def size(level: Level, target_rps: float, rows_per_image: float,
         utilisation: float = DEFAULT_UTILISATION) -> Sizing:
    if not target_rps > 0:
        raise ValueError(f"the target request rate must be positive, got {target_rps}")
    if not 0 < utilisation <= 1:
        raise ValueError(f"utilisation must be in (0, 1], got {utilisation}")
    capacity = capacity_at(level, rows_per_image)
    planned = capacity * utilisation
    return Sizing(target_rps, rows_per_image, utilisation, capacity, planned, math.ceil(target_rps / planned))
