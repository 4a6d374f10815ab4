"""Verdicts -> record dicts (the columns of `models.Prediction`), and what identifies the server.

Built on the request path, so only cheap work here: the sha256 of the input and a few fields.
Thumbnails are made by the writer thread (`writer.RecordWriter`), off that path.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..results import DetectionResult, VideoResult
from .kinds import KINDS

MAX_FILENAME = 255
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]")


@dataclass(frozen=True)
class ServerIdentity:
    """Which server and which models gave a verdict."""

    url: str | None = None
    settings_sha256: str | None = None  # of the served settings (weights, threshold, face pooling)
    model_fingerprints: Mapping[str, Any] | None = None  # repository.json's models, when it can be read

    @classmethod
    def from_settings(cls, url: str | None, settings: Any, repository_json: str | Path | None = None) -> ServerIdentity:
        """settings: an `EnsembleSettings`. repository_json: the served repository's summary, when this
        process can read it (a gateway beside its Triton); it is the only source of model fingerprints,
        since Triton does not serve that file."""
        fingerprints = None
        if repository_json is not None:
            summary = json.loads(Path(repository_json).read_text())
            fingerprints = summary.get("models")
            if summary.get("settings") is not None:
                return cls(url, canonical_sha256(summary["settings"]), fingerprints)
        served = None if settings is None else {
            "weights": dict(settings.weights), "threshold": settings.threshold, "image_score": settings.image_score,
        }
        return cls(url, None if served is None else canonical_sha256(served), fingerprints)


def canonical_sha256(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def sanitise_filename(name: str | None) -> str | None:
    """The last path component, without control characters or separators, at most 255 characters."""
    if not name:
        return None
    base = re.split(r"[/\\]", name)[-1]
    base = _UNSAFE.sub("_", unicodedata.normalize("NFC", base)).strip()
    return base[:MAX_FILENAME] or None


def _number(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _disagreement(per_model: Mapping[str, float]) -> float | None:
    values = [v for v in per_model.values() if v is not None]
    return max(values) - min(values) if len(values) >= 2 else None


def detection_record(
    result: DetectionResult,
    *,
    kind: str,
    source: str,
    data: bytes | None = None,
    filename: str | None = None,
    size: tuple[int, int] | None = None,
    processing_time_s: float | None = None,
    identity: ServerIdentity | None = None,
    group_id: str | None = None,
    frame_index: int | None = None,
    created_at: datetime | None = None,
) -> dict[str, Any]:
    """One image's (or frame's) verdict as a record. data: the encoded input, for its sha256 and size."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    per_model = {name: float(p) for name, p in result.model_probabilities.items()}
    faces = [
        {
            "box": [round(float(v), 1) for v in face.box],
            "detector_score": _number(face.detector_score),
            "fake_probability": _number(face.fake_probability),
            "model_probabilities": {k: _number(v) for k, v in face.model_probabilities.items()},
        }
        for face in result.faces
    ]
    identity = identity or ServerIdentity()
    return {
        "created_at": created_at or datetime.now(timezone.utc),
        "kind": kind,
        "source": source,
        "sha256": hashlib.sha256(data).hexdigest() if data is not None else None,
        "filename": sanitise_filename(filename),
        "size_bytes": len(data) if data is not None else None,
        "width": size[0] if size else None,
        "height": size[1] if size else None,
        "verdict": result.label.value,
        "fake_probability": _number(result.fake_probability),
        "num_faces": len(result.faces),
        "faces": faces,
        "model_probabilities": per_model,
        "disagreement": _disagreement(per_model),
        "untrained": bool(result.untrained_models),
        "processing_time_s": processing_time_s,
        "server_url": identity.url,
        "model_fingerprints": dict(identity.model_fingerprints) if identity.model_fingerprints else None,
        "settings_sha256": identity.settings_sha256,
        # The C2PA state (valid, untrusted, tampered, none, unreadable); None when it was not read.
        "provenance": None if result.provenance is None else result.provenance.state.value,
        "group_id": group_id,
        "frame_index": frame_index,
    }


def video_records(
    video: VideoResult,
    *,
    source: str,
    group_id: str,
    data_sha256: str | None = None,
    size_bytes: int | None = None,
    filename: str | None = None,
    processing_time_s: float | None = None,
    identity: ServerIdentity | None = None,
) -> list[dict[str, Any]]:
    """The video's record (per-model scores: their mean over the frames with a face), then one per frame."""
    frames = [
        detection_record(f.result, kind="frame", source=source, filename=filename, identity=identity,
                         group_id=group_id, frame_index=f.index)
        for f in video.frames
    ]
    judged = [f for f in frames if f["model_probabilities"]]
    names: Sequence[str] = sorted({name for f in judged for name in f["model_probabilities"]})
    per_model = {n: sum(f["model_probabilities"][n] for f in judged) / len(judged) for n in names}
    identity = identity or ServerIdentity()
    record = {
        "created_at": datetime.now(timezone.utc), "kind": "video", "source": source, "sha256": data_sha256,
        "filename": sanitise_filename(filename), "size_bytes": size_bytes, "width": None, "height": None,
        "verdict": video.label.value, "fake_probability": _number(video.fake_probability),
        "num_faces": max((f["num_faces"] for f in frames), default=0), "faces": [],
        "model_probabilities": per_model, "disagreement": _disagreement(per_model),
        "untrained": bool(video.untrained_models), "processing_time_s": processing_time_s,
        "server_url": identity.url, "settings_sha256": identity.settings_sha256,
        "model_fingerprints": dict(identity.model_fingerprints) if identity.model_fingerprints else None,
        "provenance": None, "group_id": group_id, "frame_index": None,
    }
    return [record, *frames]
