"""Synthetic labelled score sets with known answers (no server involved)."""

from __future__ import annotations

import numpy as np

from deepfake_client.calibration import Sample

MODEL_NAMES = ("xception", "efficientnet_b4", "f3net", "effort_clip")


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def video_set(videos: int, frames: int, strengths, seed: int = 0):
    """(samples, labels, per-model scores): `videos` videos of `frames` one-face frames each.

    Model m's logit is strengths[m] * (+1 fake / -1 real) + a per-video offset + frame noise;
    strength 0 is a model that is pure noise.
    """
    rng = np.random.default_rng(seed)
    labels = np.repeat(rng.permutation(np.arange(videos) % 2), frames)
    video = np.repeat(np.arange(videos), frames)
    offsets = rng.normal(0, 0.5, (videos, len(strengths)))[video]
    logits = np.asarray(strengths) * (2 * labels[:, None] - 1) + offsets + rng.normal(0, 1.0, (labels.size, len(strengths)))
    scores = sigmoid(logits)
    samples = [
        Sample(f"v{video[i]}#{i}", int(labels[i]), (scores[i][None, :],), group=f"v{video[i]}") for i in range(labels.size)
    ]
    return samples, labels, scores


def image_set(labels, scores):
    return [Sample(f"img{i}", int(y), (row[None, :],)) for i, (y, row) in enumerate(zip(labels, scores, strict=True))]
