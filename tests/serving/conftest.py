"""Shared fixtures for the face pipeline tests (MTCNN weights ship in facenet-pytorch)."""

from __future__ import annotations

import numpy as np
import pytest

from deepfake_dev import samples
from deepfake_serving.faces import Face, FaceDetector


@pytest.fixture(scope="session")
def detector() -> FaceDetector:
    return FaceDetector()


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    return samples.face_image()


@pytest.fixture(scope="session")
def astronaut_face(detector: FaceDetector, astronaut: np.ndarray) -> Face:
    (faces,) = detector.detect([astronaut])
    assert len(faces) == 1
    return faces[0]
