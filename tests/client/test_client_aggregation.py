"""Video aggregation strategies, including the confident strategy's edges."""

from __future__ import annotations

import math

import numpy as np
import pytest
from client_fakes import ensemble_outputs, one_face

from deepfake_client import Aggregation, InvalidInputError, Label, aggregate
from deepfake_client.aggregation import aggregate_columns, video_result
from deepfake_client.results import FrameResult, parse_outputs


def test_mean_max_and_top_k():
    scores = [0.1, 0.9, 0.4, 0.6]
    assert aggregate(scores, "mean") == pytest.approx(0.5)
    assert aggregate(scores, "max") == pytest.approx(0.9)
    assert aggregate(scores, "topk", top_k=2) == pytest.approx(0.75)
    assert aggregate(scores, "topk", top_k=10) == pytest.approx(0.5)  # k beyond n: all frames


def test_confident_fakes_win_when_they_are_many():
    # 13 of 32 frames above 0.8: 13 > floor(32 / 2.5) = 12 and 13 > 11.
    scores = [0.95] * 13 + [0.1] * 19
    assert aggregate(scores, "confident") == pytest.approx(0.95)
    assert aggregate(scores, "mean") == pytest.approx((13 * 0.95 + 19 * 0.1) / 32)


def test_confident_fakes_must_outnumber_n_over_2_5():
    # Exactly 12 of 32 is not more than floor(32 / 2.5) = 12: plain mean.
    scores = [0.95] * 12 + [0.1] * 20
    assert aggregate(scores, "confident") == pytest.approx((12 * 0.95 + 20 * 0.1) / 32)


def test_confident_fakes_must_be_more_than_eleven():
    # 11 of 20 beat floor(20 / 2.5) = 8 but not 11: plain mean; 12 of 20 are enough.
    assert aggregate([0.9] * 11 + [0.1] * 9, "confident") == pytest.approx((11 * 0.9 + 9 * 0.1) / 20)
    assert aggregate([0.9] * 12 + [0.1] * 8, "confident") == pytest.approx(0.9)


def test_confident_strategy_never_calls_few_frames_confidently_fake():
    # With 8 frames (Effort's DeepfakeBench setting) the fake branch cannot fire.
    assert aggregate([0.99] * 7 + [0.5], "confident") == pytest.approx((7 * 0.99 + 0.5) / 8)


def test_confident_reals_need_more_than_ninety_percent():
    # 29 of 32 below 0.2 is > 28.8: their mean; 28 of 32 is not: plain mean.
    assert aggregate([0.1] * 29 + [0.5] * 3, "confident") == pytest.approx(0.1)
    assert aggregate([0.1] * 28 + [0.5] * 4, "confident") == pytest.approx((28 * 0.1 + 4 * 0.5) / 32)


def test_confident_thresholds_are_strict():
    # 0.8 is not above 0.8, and 0.2 is not below 0.2.
    assert aggregate([0.8] * 32, "confident") == pytest.approx(0.8)
    assert aggregate([0.2] * 31 + [0.9], "confident") == pytest.approx((31 * 0.2 + 0.9) / 32)


def test_columns_are_aggregated_independently():
    columns = np.array([[0.95] * 13 + [0.1] * 19, [0.1] * 29 + [0.5] * 3]).T  # (32 frames, 2)
    np.testing.assert_allclose(aggregate_columns(columns, "confident"), [0.95, 0.1])
    np.testing.assert_allclose(aggregate_columns(columns, "max"), [0.95, 0.5])


@pytest.mark.parametrize("scores, message", [([], "zero frame scores"), ([0.5, math.nan], "NaN")])
def test_nothing_to_aggregate_is_an_error(scores, message):
    with pytest.raises(InvalidInputError, match=message):
        aggregate(scores)


def test_top_k_needs_a_positive_k():
    with pytest.raises(InvalidInputError, match="top_k"):
        aggregate([0.5], Aggregation.TOP_K, top_k=0)


def frame(index: int, outputs) -> FrameResult:
    return FrameResult(index=index, timestamp_s=index / 10, result=parse_outputs(outputs))


def test_video_verdict_ignores_frames_without_a_face():
    frames = [frame(9, one_face(0.9)), frame(0, one_face(0.7)), frame(3, ensemble_outputs([])), frame(6, one_face(0.2))]
    video = video_result(frames, frame_count=10, fps=10.0, threshold=0.5)
    assert [f.index for f in video.frames] == [0, 3, 6, 9]  # timeline in frame order
    assert video.fake_probability == pytest.approx((0.7 + 0.2 + 0.9) / 3)
    assert video.label is Label.FAKE
    assert video.no_face_frames == (3,)
    assert video.fake_frame_ratio == pytest.approx(2 / 3)
    assert video.to_dict()["timeline"][1]["label"] == "NO_FACE"


def test_video_threshold_is_strict_like_the_server():
    video = video_result([frame(0, one_face(0.5))], frame_count=1, fps=None, threshold=0.5)
    assert video.label is Label.REAL


def test_a_video_without_any_face_is_no_face_not_real():
    frames = [frame(i, ensemble_outputs([])) for i in range(4)]
    video = video_result(frames, frame_count=4, fps=None, threshold=0.5, strategy="max")
    assert video.label is Label.NO_FACE and math.isnan(video.fake_probability)
    assert math.isnan(video.fake_frame_ratio) and video.no_face_frames == (0, 1, 2, 3)
    assert video.to_dict()["fake_probability"] is None
