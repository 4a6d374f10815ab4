"""Video-level scores from frame scores (docs/design.md §10).

A frame's score is the server's image score: its most-fake face. Frames without
a face carry no score; they are left out, never counted as real.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import Enum

import numpy as np

from .errors import InvalidInputError
from .results import FrameResult, Label, VideoResult

# The DFDC winner's "confident strategy" (docs/design.md §10), tuned there for
# 32 frames: trust a clear majority of confident frames over the plain mean.
CONFIDENT_FAKE = 0.8  # a frame this fake counts as confidently fake
CONFIDENT_REAL = 0.2  # a frame below this counts as confidently real
CONFIDENT_FAKE_DIVISOR = 2.5  # confident fakes must outnumber floor(n / 2.5)...
CONFIDENT_FAKE_MIN_COUNT = 11  # ... and 11 (so with fewer than 12 frames this branch never fires)
CONFIDENT_REAL_SHARE = 0.9  # confident reals must be more than 90% of the frames


class Aggregation(str, Enum):
    MEAN = "mean"  # DeepfakeBench's video score; the safe default
    MAX = "max"  # any manipulated frame
    TOP_K = "topk"  # mean of the k most fake frames: a manipulated segment
    CONFIDENT = "confident"  # DFDC winner's rule

    def __str__(self) -> str:
        return self.value


def aggregate(scores: Sequence[float], strategy: Aggregation | str = Aggregation.MEAN, *, top_k: int = 5) -> float:
    """One video score from frame scores (each in [0, 1])."""
    return float(aggregate_columns(np.asarray(scores, dtype=np.float64).reshape(-1, 1), strategy, top_k=top_k)[0])


def aggregate_columns(
    scores: np.ndarray, strategy: Aggregation | str = Aggregation.MEAN, *, top_k: int = 5
) -> np.ndarray:
    """Aggregate each column of (frames, K) scores: K candidate scorings of one video at once."""
    strategy = Aggregation(strategy)
    if scores.ndim != 2 or scores.shape[0] == 0:
        raise InvalidInputError("cannot aggregate zero frame scores")
    if np.isnan(scores).any():
        raise InvalidInputError("frame scores contain NaN: leave frames without a face out")
    if strategy is Aggregation.MEAN:
        return scores.mean(axis=0)
    if strategy is Aggregation.MAX:
        return scores.max(axis=0)
    if strategy is Aggregation.TOP_K:
        if top_k < 1:
            raise InvalidInputError(f"top_k must be at least 1, got {top_k}")
        return np.sort(scores, axis=0)[-top_k:].mean(axis=0)
    return _confident_strategy(scores)


def _masked_mean(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.where(mask, scores, 0.0).sum(axis=0) / np.maximum(mask.sum(axis=0), 1)


def _confident_strategy(scores: np.ndarray) -> np.ndarray:
    n = scores.shape[0]
    fake = scores > CONFIDENT_FAKE
    real = scores < CONFIDENT_REAL
    fake_count = fake.sum(axis=0)
    confidently_fake = (fake_count > math.floor(n / CONFIDENT_FAKE_DIVISOR)) & (fake_count > CONFIDENT_FAKE_MIN_COUNT)
    confidently_real = real.sum(axis=0) > CONFIDENT_REAL_SHARE * n
    return np.where(
        confidently_fake,
        _masked_mean(scores, fake),
        np.where(confidently_real, _masked_mean(scores, real), scores.mean(axis=0)),
    )


def verdict(
    scores: Sequence[float], threshold: float, strategy: Aggregation | str = Aggregation.MEAN, *, top_k: int = 5
) -> tuple[Label, float]:
    """(label, score) over the scores of frames with a face; NO_FACE when there are none."""
    if not scores:
        return Label.NO_FACE, math.nan
    probability = aggregate(scores, strategy, top_k=top_k)
    return (Label.FAKE if probability > threshold else Label.REAL), probability


def video_result(
    frames: Sequence[FrameResult],
    *,
    frame_count: int,
    fps: float | None,
    threshold: float,
    strategy: Aggregation | str = Aggregation.MEAN,
    top_k: int = 5,
) -> VideoResult:
    """Aggregate scored frames (any order) into the video verdict."""
    strategy = Aggregation(strategy)
    timeline = tuple(sorted(frames, key=lambda f: f.index))
    scores = [f.fake_probability for f in timeline if f.result.has_face]
    label, probability = verdict(scores, threshold, strategy, top_k=top_k)
    return VideoResult(
        label=label,
        fake_probability=probability,
        aggregation=strategy.value,
        threshold=threshold,
        frames=timeline,
        frame_count=frame_count,
        fps=fps,
    )
