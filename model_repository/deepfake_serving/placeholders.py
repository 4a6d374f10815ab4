"""Skipping the detector's no-face placeholder rows in the python classifiers.

An image without a face still sends one black crop row through the ensemble
(a classifier needs a batch >= 1); the detector marks it in FACE_PRESENT and
the python classifiers answer it with zero logits without running the model.
The combiner never reads those rows (NUM_FACES is 0).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .runtime import run_in_one_batch


def infer_present_rows(
    faces: np.ndarray, present: np.ndarray | None, infer: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """`infer` on the rows marked present only; the other rows get zero logits.

    present: bool (N, 1) or (N,), or None (every row is a face)."""
    if present is None:
        return infer(faces)
    keep = np.asarray(present, dtype=bool).reshape(-1)
    if len(keep) != len(faces):
        raise ValueError(f"FACE_PRESENT has {len(keep)} rows for {len(faces)} crops")
    if keep.all():
        return infer(faces)
    logits = np.zeros((len(faces), 2), np.float32)
    if keep.any():
        logits[keep] = infer(faces[keep])
    return logits


def run_faces_in_one_batch(
    crops: Sequence[np.ndarray], present: Sequence[np.ndarray | None], infer: Callable[[np.ndarray], np.ndarray]
) -> list[np.ndarray]:
    """run_in_one_batch over several requests' crops, skipping their placeholder rows.

    present[i] is request i's FACE_PRESENT, or None when the request did not send it."""
    marks = [np.ones((len(c), 1), bool) if p is None else np.asarray(p, bool).reshape(-1, 1)
             for c, p in zip(crops, present, strict=True)]
    mask = marks[0] if len(marks) == 1 else np.concatenate(marks)
    return run_in_one_batch(crops, lambda faces: infer_present_rows(faces, mask, infer))
