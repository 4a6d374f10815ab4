"""Typed results, and the parsing of the ensemble's output tensors into them.

The tensor layout is the fixed `deepfake_detector` contract (docs/design.md §3)
plus the optional extras FACE_LANDMARKS, MODEL_UNTRAINED, NUM_FACES_FOUND, VERDICT and
FACE_VERDICT (a server without the last two serves no uncertain band: the verdict is the label).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ServerError

if TYPE_CHECKING:
    from .provenance import Provenance

Box = tuple[float, float, float, float]
Point = tuple[float, float]


class Label(str, Enum):
    FAKE = "FAKE"
    REAL = "REAL"
    NO_FACE = "NO_FACE"  # nothing was judged: never to be read as REAL
    # Only in `verdict`: the calibrated score lies in the served uncertain band around the
    # threshold (`label` still says which side of the threshold it fell on).
    UNCERTAIN = "UNCERTAIN"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Face:
    box: Box  # x1, y1, x2, y2 in original image pixels
    detector_score: float  # face detector confidence
    fake_probability: float  # ensemble score of this face
    model_probabilities: dict[str, float]  # per classifier, keyed by model name
    landmarks: tuple[Point, ...] | None = None  # eyes, nose, mouth corners (when served)
    verdict: Label | None = None  # FAKE, REAL or UNCERTAIN, as the server decided (None: an older server)
    flags: tuple[str, ...] = ()  # out-of-scope flags of this face (deepfake_client.scope)

    def to_dict(self) -> dict[str, Any]:
        return {
            "box": list(self.box),
            "detector_score": self.detector_score,
            "fake_probability": self.fake_probability,
            "verdict": None if self.verdict is None else self.verdict.value,
            "model_probabilities": dict(self.model_probabilities),
            "landmarks": None if self.landmarks is None else [list(p) for p in self.landmarks],
            "flags": list(self.flags),
        }


@dataclass(frozen=True)
class DetectionResult:
    """The verdict on one image (or one video frame)."""

    label: Label
    fake_probability: float  # image score (the server's most-fake face by default); NaN for NO_FACE
    faces: tuple[Face, ...]
    model_names: tuple[str, ...]
    untrained_models: tuple[str, ...] = ()  # models serving untrained demo weights
    # Faces the server found before its max_faces cut (None: a server without NUM_FACES_FOUND).
    faces_found: int | None = None
    # The file's C2PA Content Credentials, read by the SDK or gateway (None: not read). A separate
    # signal: it never changes label or fake_probability, which are the face models' alone.
    provenance: Provenance | None = None
    # The label, or UNCERTAIN when the server's uncertain band holds the image score (VERDICT).
    verdict: Label | None = None
    # Out-of-scope flags of the whole image (deepfake_client.scope); reported, never acted on.
    flags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.verdict is None:
            object.__setattr__(self, "verdict", self.label)

    @property
    def is_uncertain(self) -> bool:
        return self.verdict is Label.UNCERTAIN

    @property
    def faces_left_out(self) -> int:
        """Faces found but not judged because the server's max_faces was reached."""
        return 0 if self.faces_found is None else max(self.faces_found - len(self.faces), 0)

    @property
    def is_fake(self) -> bool:
        return self.label is Label.FAKE

    @property
    def has_face(self) -> bool:
        return self.label is not Label.NO_FACE

    @property
    def untrained(self) -> bool:
        return bool(self.untrained_models)

    @property
    def model_probabilities(self) -> dict[str, float]:
        """Per model, its most-fake face: the score that model alone would give the image.

        Empty when no face was found.
        """
        return {
            name: max(face.model_probabilities[name] for face in self.faces) for name in self.model_names if self.faces
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label.value,
            "verdict": self.verdict.value,
            "fake_probability": json_number(self.fake_probability),
            "flags": list(self.flags),
            "num_faces": len(self.faces),
            "num_faces_found": self.faces_found,
            "faces": [face.to_dict() for face in self.faces],
            "model_probabilities": self.model_probabilities,
            "untrained_models": list(self.untrained_models),
            "provenance": None if self.provenance is None else self.provenance.to_dict(),
        }


def json_number(value: float | None) -> float | None:
    """JSON has no NaN: a missing score is null."""
    return None if value is None or math.isnan(value) else value


def parse_outputs(outputs: Mapping[str, np.ndarray | None]) -> DetectionResult:
    """Build a result from the ensemble's output arrays, checking they agree with each other."""
    try:
        return _parse(outputs)
    except (KeyError, ValueError, IndexError, TypeError) as exc:
        raise ServerError(f"the server's answer does not follow the deepfake_detector contract: {exc}") from exc


def _required(outputs: Mapping[str, np.ndarray | None], name: str) -> np.ndarray:
    array = outputs.get(name)
    if array is None:
        raise KeyError(f"output {name} is missing")
    return np.asarray(array)


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _parse(outputs: Mapping[str, np.ndarray | None]) -> DetectionResult:
    label = Label(_text(_required(outputs, "LABEL").reshape(-1)[0]))
    if label is Label.UNCERTAIN:
        raise ValueError("LABEL is FAKE, REAL or NO_FACE; UNCERTAIN comes in VERDICT")
    probability = float(_required(outputs, "FAKE_PROBABILITY").reshape(-1)[0])
    num_faces = int(_required(outputs, "NUM_FACES").reshape(-1)[0])
    model_names = tuple(_text(n) for n in _required(outputs, "MODEL_NAMES").reshape(-1))

    boxes = _required(outputs, "FACE_BOXES").reshape(-1, 4)
    detector_scores = _required(outputs, "FACE_SCORES").reshape(-1)
    face_probabilities = _required(outputs, "FACE_FAKE_PROBABILITY").reshape(-1)
    model_probabilities = _required(outputs, "MODEL_FAKE_PROBABILITY").reshape(-1, len(model_names))
    landmarks = outputs.get("FACE_LANDMARKS")
    landmarks = None if landmarks is None else np.asarray(landmarks).reshape(-1, 5, 2)

    per_face = [boxes, detector_scores, face_probabilities, model_probabilities]
    if landmarks is not None:
        per_face.append(landmarks)
    rows = {len(array) for array in per_face}
    if rows != {num_faces}:
        raise ValueError(f"NUM_FACES is {num_faces} but the per-face outputs have {sorted(rows)} rows")
    if (label is Label.NO_FACE) != (num_faces == 0):
        raise ValueError(f"label {label.value} with {num_faces} faces")

    found = outputs.get("NUM_FACES_FOUND")
    faces_found = None if found is None else int(np.asarray(found).reshape(-1)[0])
    if faces_found is not None and faces_found < num_faces:
        raise ValueError(f"NUM_FACES_FOUND is {faces_found} but NUM_FACES is {num_faces}")
    untrained_flags = outputs.get("MODEL_UNTRAINED")
    untrained = (
        ()
        if untrained_flags is None
        else tuple(
            name for name, flag in zip(model_names, np.asarray(untrained_flags).reshape(-1), strict=True) if flag
        )
    )
    verdict = outputs.get("VERDICT")
    verdict = label if verdict is None else Label(_text(np.asarray(verdict).reshape(-1)[0]))
    if (verdict is Label.NO_FACE) != (label is Label.NO_FACE) or (
            verdict not in (label, Label.UNCERTAIN)):
        raise ValueError(f"VERDICT {verdict.value} with LABEL {label.value}")
    face_verdicts = outputs.get("FACE_VERDICT")
    if face_verdicts is not None:
        face_verdicts = [Label(_text(v)) for v in np.asarray(face_verdicts).reshape(-1)]
        if len(face_verdicts) != num_faces or not set(face_verdicts) <= {Label.FAKE, Label.REAL, Label.UNCERTAIN}:
            raise ValueError(f"FACE_VERDICT {[v.value for v in face_verdicts]} for {num_faces} faces")
    faces = tuple(
        Face(
            box=tuple(float(v) for v in boxes[i]),
            detector_score=float(detector_scores[i]),
            fake_probability=float(face_probabilities[i]),
            model_probabilities={name: float(p) for name, p in zip(model_names, model_probabilities[i], strict=True)},
            landmarks=None if landmarks is None else tuple((float(x), float(y)) for x, y in landmarks[i]),
            verdict=None if face_verdicts is None else face_verdicts[i],
        )
        for i in range(num_faces)
    )
    return DetectionResult(
        label=label,
        fake_probability=probability,
        faces=faces,
        model_names=model_names,
        untrained_models=untrained,
        faces_found=faces_found,
        verdict=verdict,
    )


@dataclass(frozen=True)
class FrameResult:
    """One sampled video frame and the server's verdict on it."""

    index: int  # frame number in the video, from 0
    timestamp_s: float | None  # None when the container reports no frame rate
    result: DetectionResult

    @property
    def label(self) -> Label:
        return self.result.label

    @property
    def fake_probability(self) -> float:
        return self.result.fake_probability

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "timestamp_s": self.timestamp_s, **self.result.to_dict()}


@dataclass(frozen=True)
class VideoResult:
    """The verdict on a video: frame scores aggregated over the frames with a face."""

    label: Label  # NO_FACE when no sampled frame had a face
    fake_probability: float  # aggregated score; NaN for NO_FACE
    aggregation: str
    threshold: float  # FAKE when fake_probability > threshold
    frames: tuple[FrameResult, ...]  # the timeline, in frame order
    frame_count: int  # frames in the whole video
    fps: float | None

    @property
    def is_fake(self) -> bool:
        return self.label is Label.FAKE

    @property
    def face_frames(self) -> tuple[FrameResult, ...]:
        return tuple(f for f in self.frames if f.result.has_face)

    @property
    def no_face_frames(self) -> tuple[int, ...]:
        """Indices of sampled frames without a face: not counted, and never as real."""
        return tuple(f.index for f in self.frames if not f.result.has_face)

    @property
    def fake_frame_ratio(self) -> float:
        """Share of the frames with a face that the server judged FAKE; NaN without faces."""
        judged = self.face_frames
        if not judged:
            return math.nan
        return sum(f.result.is_fake for f in judged) / len(judged)

    @property
    def untrained_models(self) -> tuple[str, ...]:
        return self.frames[0].result.untrained_models if self.frames else ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label.value,
            "fake_probability": json_number(self.fake_probability),
            "aggregation": self.aggregation,
            "threshold": self.threshold,
            "frame_count": self.frame_count,
            "fps": self.fps,
            "sampled_frames": len(self.frames),
            "fake_frame_ratio": json_number(self.fake_frame_ratio),
            "no_face_frames": list(self.no_face_frames),
            "untrained_models": list(self.untrained_models),
            "timeline": [frame.to_dict() for frame in self.frames],
        }
