"""Grouped folds and bootstrap: a video's frames never sit on both sides of a split."""

from __future__ import annotations

import numpy as np
import pytest

from deepfake_client import InvalidInputError
from deepfake_client.resampling import bootstrap_resamples, grouped_folds


def frames_of_videos(sizes, seed=0):
    rng = np.random.default_rng(seed)
    video_labels = rng.permutation(np.arange(len(sizes)) % 2)
    groups = np.repeat([f"video{i}" for i in range(len(sizes))], sizes)
    labels = np.repeat(video_labels, sizes)
    return labels, groups


def test_grouping_keeps_a_videos_frames_in_one_fold():
    sizes = np.random.default_rng(1).integers(1, 40, 60)
    labels, groups = frames_of_videos(sizes)
    fold_of = grouped_folds(labels, groups, 5)
    for group in np.unique(groups):
        assert np.unique(fold_of[groups == group]).size == 1, group
    assert set(fold_of) == set(range(5))
    for fold in range(5):  # balanced: each fold holds both classes and about a fifth of the frames
        assert set(labels[fold_of == fold]) == {0, 1}
        assert abs(np.sum(fold_of == fold) - labels.size / 5) < sizes.max()


def test_fewer_groups_than_folds_means_fewer_folds():
    labels, groups = frames_of_videos([3] * 6)  # 3 real and 3 fake videos
    assert grouped_folds(labels, groups, 5).max() + 1 == 3
    with pytest.raises(InvalidInputError, match="at least 2 real and 2 fake"):
        grouped_folds([0, 1, 1], ["a", "b", "c"], 5)


def test_a_group_holding_both_classes_is_refused():
    with pytest.raises(InvalidInputError, match="both real and fake"):
        grouped_folds([0, 1, 0, 1], ["a", "a", "b", "c"], 2)


def test_bootstrap_draws_whole_groups_of_each_class():
    labels, groups = frames_of_videos([2, 3, 4, 5, 6, 7])
    for draw in bootstrap_resamples(labels, groups, 50, seed=2):
        drawn = groups[draw]
        for group in np.unique(drawn):
            assert np.sum(drawn == group) % np.sum(groups == group) == 0  # whole videos, possibly repeated
        assert set(labels[draw]) == {0, 1}
        assert len({g for g in drawn if labels[groups == g][0] == 1}) <= 3
