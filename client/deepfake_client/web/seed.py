"""SDK results in the seed system's JSON shapes (its field names and meanings), plus new fields.

Seed fields are kept exactly; what the seed lacked comes in new fields beside them.

`NO_FACE`: an image without a face is answered with HTTP 200 and
`prediction: "NO_FACE"`, and `confidence`, `fake_probability`,
`real_probability` and `face_detection_confidence` set to null: nothing was
judged, so it is neither REAL nor FAKE. A seed-era client that tests
`prediction == "FAKE"` keeps working; one that tests `== "REAL"` no longer takes
a photo without a face for a real one.

`confidence` is the seed's: max(fake_probability, 1 - fake_probability), how far
the score is from undecided, whatever the threshold (with a calibrated threshold
below 0.5 a FAKE can have fake_probability 0.4 and confidence 0.6). A model's
`prediction` in `model_predictions` uses the ensemble's threshold.

Seed types and names: `/health` `models_loaded` and the image answer's
`models_used` are lists of model names; `model_predictions` is keyed by the
seed's names (`effort`, not the served `effort_clip`: `SEED_MODEL_KEYS`); the
video answer has `filename`; a video samples 30 frames unless told otherwise.
New fields (`faces`, `ensemble.weights` ...) use the served names.

`verdict` (new, beside `prediction`) is `prediction` or `UNCERTAIN` when the served uncertain
band holds the score; `prediction` stays FAKE/REAL/NO_FACE as the seed's clients expect.
`flags` (image and each face) lists what lies outside what the models were trained on
(deepfake_client.scope).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..ensemble import EnsembleSettings
from ..results import DetectionResult, Label, VideoResult

# The seed's key for a served model name, where they differ.
SEED_MODEL_KEYS = {"effort_clip": "effort"}


def seed_key(name: str) -> str:
    return SEED_MODEL_KEYS.get(name, name)


def seed_names(names: Sequence[str]) -> list[str]:
    return [seed_key(name) for name in names]


def _number(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 6)


def confidence(label: Label, fake_probability: float) -> float | None:
    if label is Label.NO_FACE or math.isnan(fake_probability):
        return None
    return _number(max(fake_probability, 1.0 - fake_probability))


def verdict(fake_probability: float, threshold: float) -> str:
    return Label.FAKE.value if fake_probability > threshold else Label.REAL.value


def detection_fields(result: DetectionResult, settings: EnsembleSettings) -> dict[str, Any]:
    """The fields shared by an image answer, a webcam frame and a video frame."""
    fake = result.fake_probability
    has_face = result.has_face
    return {
        "prediction": result.label.value,
        "confidence": confidence(result.label, fake),
        "fake_probability": _number(fake) if has_face else None,
        "real_probability": _number(1.0 - fake) if has_face else None,
        # New: the verdict with UNCERTAIN, the out-of-scope flags, and every face, with its box
        # (x1, y1, x2, y2 in image pixels) and scores.
        "verdict": result.verdict.value,
        "flags": list(result.flags),
        "num_faces": len(result.faces),
        "faces": [
            {
                "box": [round(v, 2) for v in face.box],
                "detector_score": _number(face.detector_score),
                "fake_probability": _number(face.fake_probability),
                "prediction": verdict(face.fake_probability, settings.threshold),
                "verdict": face.verdict.value if face.verdict else verdict(face.fake_probability, settings.threshold),
                "model_probabilities": {name: _number(p) for name, p in face.model_probabilities.items()},
                "flags": list(face.flags),
            }
            for face in result.faces
        ],
        "untrained": result.untrained,
        "untrained_models": list(result.untrained_models),
    }


def image_response(
    filename: str,
    result: DetectionResult,
    settings: EnsembleSettings,
    *,
    processing_time: float,
    device: str,
    image_size: tuple[int, int] | None = None,
    gradcam: str | None = None,
) -> dict[str, Any]:
    """POST /api/detect/image: the seed's fields, then the new ones."""
    fields = detection_fields(result, settings)
    best_face = max(result.faces, key=lambda f: f.fake_probability, default=None)
    per_model = result.model_probabilities  # each model's most-fake face, as the image score takes the max
    used = [name for name in result.model_names if settings.weights.get(name, 0.0) > 0]
    return {
        "filename": filename,
        "prediction": fields["prediction"],
        "confidence": fields["confidence"],
        "fake_probability": fields["fake_probability"],
        "real_probability": fields["real_probability"],
        "processing_time": round(processing_time, 4),
        "face_detection_confidence": None if best_face is None else _number(best_face.detector_score),
        "gradcam": gradcam,  # base64 PNG (no data: prefix) when generate_gradcam was asked for
        "model_predictions": {
            seed_key(name): {"fake_prob": _number(p), "real_prob": _number(1.0 - p), "prediction": verdict(p, settings.threshold)}
            for name, p in per_model.items()
        },
        "models_used": seed_names(used) if result.has_face else [],
        "total_models": len(result.model_names),
        "device": device,
        # New fields.
        **{k: fields[k] for k in ("verdict", "flags", "num_faces", "faces", "untrained", "untrained_models")},
        "image_size": None if image_size is None else {"width": image_size[0], "height": image_size[1]},
        "ensemble": {
            "threshold": settings.threshold,
            "image_score": settings.image_score,
            "weights": dict(settings.weights),
            "calibrated": settings.calibrated,  # fake_probability is a calibrated probability, model scores are raw
            "uncertain_band": settings.to_band_dict(),  # null: no band served, no UNCERTAIN verdict
            "seed_keys": {seed_key(name): name for name in result.model_names},  # model_predictions key -> served name
        },
        # New: the file's C2PA Content Credentials, a separate signal that never changes `prediction`
        # (null when not read). docs/provenance.md.
        "provenance": None if result.provenance is None else result.provenance.to_dict(),
    }


def batch_response(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """POST /api/detect/batch: per-file answers (or errors) and the aggregate statistics.

    average_confidence is over the judged files (FAKE or REAL); null when none was.
    """
    judged = [r for r in results if r.get("prediction") in (Label.FAKE.value, Label.REAL.value)]
    return {
        "results": list(results),
        "total": len(results),
        "fake_count": sum(r["prediction"] == Label.FAKE.value for r in judged),
        "real_count": sum(r["prediction"] == Label.REAL.value for r in judged),
        "average_confidence": _number(sum(r["confidence"] for r in judged) / len(judged)) if judged else None,
        # New.
        "no_face_count": sum(r.get("prediction") == Label.NO_FACE.value for r in results),
        "uncertain_count": sum(r.get("verdict") == Label.UNCERTAIN.value for r in results),
        "error_count": sum("error" in r for r in results),
    }


def frame_entry(index: int, timestamp_s: float | None, result: DetectionResult, settings: EnsembleSettings) -> dict[str, Any]:
    fields = detection_fields(result, settings)
    return {"frame": index, "timestamp": _number(timestamp_s), **{k: v for k, v in fields.items() if k != "untrained_models"}}


def video_response(filename: str, video: VideoResult, settings: EnsembleSettings, *, processing_time: float) -> dict[str, Any]:
    """POST /api/video/detect. overall_result.confidence is that of the aggregated score."""
    frames = [frame_entry(f.index, f.timestamp_s, f.result, settings) for f in video.frames]
    return {
        "filename": filename,
        "frame_results": frames,
        "overall_result": {
            "prediction": video.label.value,
            "confidence": confidence(video.label, video.fake_probability),
            "fake_frame_ratio": _number(video.fake_frame_ratio),
            # New.
            "fake_probability": _number(video.fake_probability),
            "aggregation": video.aggregation,
            "threshold": video.threshold,
            "no_face_frames": len(video.no_face_frames),
        },
        "processing_info": {
            "total_frames": video.frame_count,
            "frames_processed": len(frames),
            "processing_time": round(processing_time, 4),
            "processing_fps": round(len(frames) / processing_time, 3) if processing_time > 0 else None,
            # New.
            "video_fps": video.fps,
        },
        "untrained": bool(video.untrained_models),
        "untrained_models": list(video.untrained_models),
    }
