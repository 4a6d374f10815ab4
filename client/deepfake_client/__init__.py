"""Client SDK for the Triton `deepfake_detector` ensemble.

Usage:

    from deepfake_client import DeepfakeClient
    with DeepfakeClient("localhost:8001") as client:
        print(client.detect("photo.jpg").label, client.detect_video("clip.mp4").label)
"""

from .aggregation import Aggregation, aggregate
from .aio import AsyncDeepfakeClient
from .client import DeepfakeClient, Health, UntrainedModelsWarning
from .ensemble import EnsembleSettings
from .errors import (
    DeepfakeError,
    InvalidImageError,
    InvalidInputError,
    ModelNotReadyError,
    OverloadedError,
    RequestTimeoutError,
    ServerError,
    ServerUnavailableError,
    TlsError,
    VideoError,
)
from .provenance import AiDeclaration, Provenance, ProvenanceReader, ProvenanceState
from .results import DetectionResult, Face, FrameResult, Label, VideoResult
from .retry import NO_RETRY, RetryPolicy
from .stream import LiveStream, StreamUpdate
from .tls import TlsConfig

__all__ = [
    "AiDeclaration",
    "Aggregation",
    "AsyncDeepfakeClient",
    "DeepfakeClient",
    "DeepfakeError",
    "DetectionResult",
    "EnsembleSettings",
    "Face",
    "FrameResult",
    "Health",
    "InvalidImageError",
    "InvalidInputError",
    "Label",
    "LiveStream",
    "ModelNotReadyError",
    "NO_RETRY",
    "OverloadedError",
    "Provenance",
    "ProvenanceReader",
    "ProvenanceState",
    "RequestTimeoutError",
    "RetryPolicy",
    "ServerError",
    "ServerUnavailableError",
    "StreamUpdate",
    "TlsConfig",
    "TlsError",
    "UntrainedModelsWarning",
    "VideoError",
    "VideoResult",
    "aggregate",
]
