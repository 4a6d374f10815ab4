"""Score a labelled folder (`real/`, `fake/`; images and videos) and measure the ensemble.

Two levels, as DeepfakeBench reports them: frame level (every image and every
sampled video frame with a face) and video level (one sample per file: a video's
frame scores aggregated; an image counts as a one-frame video), each with AUC, EER,
F1 and ECE (metrics.py). Frames and files without a face are counted and left out. The ensemble is measured with the
server's own scores at the server's threshold; each model is measured as if it
were served alone: its most-fake face per frame, fake above 0.5.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .abstention import Abstention, measure
from .aggregation import Aggregation, aggregate, aggregate_columns
from .calibration import Sample
from .client import DeepfakeClient
from .ensemble import EnsembleSettings
from .errors import DeepfakeError, InvalidInputError, ServerError
from .metrics import BinaryMetrics, binary_metrics
from .provenance import summarise
from .results import DetectionResult, json_number
from .score_log import ScoreLog, file_key
from .video import DEFAULT_NUM_FRAMES, VIDEO_EXTENSIONS

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
CLASS_FOLDERS = {"real": 0, "fake": 1}
MODEL_THRESHOLD = 0.5  # a lone classifier's decision: the argmax of its two logits


@dataclass(frozen=True)
class LabelledFile:
    path: Path
    label: int  # 1 fake, 0 real
    is_video: bool


@dataclass(frozen=True)
class ScoredFrame:
    index: int
    fake_probability: float  # the server's image score; NaN without a face
    face_model_probabilities: np.ndarray  # (faces, models)

    @property
    def has_face(self) -> bool:
        return self.face_model_probabilities.shape[0] > 0

    @property
    def model_scores(self) -> np.ndarray:
        """Per model, its most-fake face."""
        return self.face_model_probabilities.max(axis=0)


@dataclass(frozen=True)
class ScoredFile:
    file: LabelledFile
    frames: tuple[ScoredFrame, ...]
    provenance: Mapping[str, Any] | None = None  # an image's C2PA Content Credentials (Provenance.to_dict())

    @property
    def face_frames(self) -> tuple[ScoredFrame, ...]:
        return tuple(f for f in self.frames if f.has_face)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.file.path),
            "label": self.file.label,
            "is_video": self.file.is_video,
            "frames": [
                {
                    "index": f.index,
                    "fake_probability": json_number(f.fake_probability),
                    "face_model_probabilities": f.face_model_probabilities.tolist(),
                }
                for f in self.frames
            ],
            "provenance": None if self.provenance is None else dict(self.provenance),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], num_models: int) -> ScoredFile:
        return cls(
            LabelledFile(Path(data["path"]), int(data["label"]), bool(data["is_video"])),
            tuple(
                ScoredFrame(
                    int(frame["index"]),
                    math.nan if frame["fake_probability"] is None else float(frame["fake_probability"]),
                    np.array(frame["face_model_probabilities"], dtype=np.float64).reshape(-1, num_models),
                )
                for frame in data["frames"]
            ),
            data.get("provenance"),
        )


@dataclass(frozen=True)
class ScoringRun:
    model_names: tuple[str, ...]
    files: tuple[ScoredFile, ...]
    skipped: tuple[tuple[Path, str], ...] = ()  # files rejected as invalid input, with the reason
    untrained_models: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_names": list(self.model_names),
            "untrained_models": list(self.untrained_models),
            "skipped": [{"path": str(path), "error": error} for path, error in self.skipped],
            "files": [s.to_dict() for s in self.files],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScoringRun:
        names = tuple(data["model_names"])
        return cls(
            model_names=names,
            untrained_models=tuple(data.get("untrained_models", ())),
            skipped=tuple((Path(s["path"]), s["error"]) for s in data.get("skipped", ())),
            files=tuple(ScoredFile.from_dict(f, len(names)) for f in data["files"]),
        )


def find_labelled_files(folder: str | Path) -> list[LabelledFile]:
    """Images and videos under `folder`/real and `folder`/fake (recursively), sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidInputError(f"not a folder: {folder}")
    files = []
    for class_name, label in CLASS_FOLDERS.items():
        for path in sorted((folder / class_name).rglob("*")):
            suffix = path.suffix.lower()
            if path.is_file() and suffix in IMAGE_EXTENSIONS + VIDEO_EXTENSIONS:
                files.append(LabelledFile(path=path, label=label, is_video=suffix in VIDEO_EXTENSIONS))
    if not files:
        raise InvalidInputError(
            f"no images or videos under {folder}/real or {folder}/fake "
            f"(images: {', '.join(IMAGE_EXTENSIONS)}; videos: {', '.join(VIDEO_EXTENSIONS)})"
        )
    return files


def _scored_frame(index: int, result: DetectionResult) -> ScoredFrame:
    probabilities = [[face.model_probabilities[n] for n in result.model_names] for face in result.faces]
    matrix = np.array(probabilities, dtype=np.float64).reshape(len(result.faces), len(result.model_names))
    return ScoredFrame(index, result.fake_probability, matrix)


def _file_record(file: LabelledFile, outcome: list[tuple[int, DetectionResult]] | InvalidInputError) -> dict[str, Any]:
    """What the score log keeps of a file: its scores and the server's model names, or why it was skipped."""
    if isinstance(outcome, InvalidInputError):
        return {"path": str(file.path), "skipped": outcome.message}
    results = [r for _, r in outcome]
    return {
        **ScoredFile(file, tuple(_scored_frame(i, r) for i, r in outcome), _provenance(file, results)).to_dict(),
        "model_names": [list(names) for names in sorted({r.model_names for r in results})],  # one, unless it changed
        "untrained_models": next((list(r.untrained_models) for r in results if r.untrained), []),
    }


def _provenance(file: LabelledFile, results: Sequence[DetectionResult]) -> dict[str, Any] | None:
    """An image's Content Credentials, as the SDK read them (videos: not read)."""
    if file.is_video or not results or results[0].provenance is None:
        return None
    return results[0].provenance.to_dict()


def score_files(
    client: DeepfakeClient,
    files: Sequence[LabelledFile],
    *,
    num_frames: int = DEFAULT_NUM_FRAMES,
    concurrency: int | None = None,
    on_file: Callable[[LabelledFile], None] | None = None,
    log: ScoreLog | None = None,
) -> ScoringRun:
    """Run every file through the server (images as one batch, then each video), `concurrency`
    requests in flight (default: the client's), at the SDK's bulk priority.

    Each file's scores go to `log` as they arrive; files `log` already recorded (a resumed
    run) are not scored again. Files the server rejects as invalid are skipped and listed.
    Any other error (unavailable, timeout, overloaded after the retries) aborts, after the
    image batch (every image is tried) or at the failing video; the scores so far stay in
    `log` (metrics over a partial set would mislead).
    """
    records: dict[LabelledFile, dict[str, Any]] = {}
    keys = {f: file_key(f.path, num_frames if f.is_video else None) for f in files}
    errors: list[DeepfakeError] = []

    def settle(file: LabelledFile, outcome: list[tuple[int, DetectionResult]] | DeepfakeError) -> None:
        if isinstance(outcome, DeepfakeError) and not isinstance(outcome, InvalidInputError):
            errors.append(outcome)
        else:
            records[file] = _file_record(file, outcome)
            if log is not None:
                log.append(keys[file], records[file])
        if on_file is not None:
            on_file(file)

    for file in files:
        if log is not None and keys[file] in log.recorded:
            records[file] = log.recorded[keys[file]]
            if on_file is not None:
                on_file(file)
    images = [f for f in files if not f.is_video and f not in records]
    client.detect_many(
        [f.path for f in images], concurrency=concurrency,
        on_result=lambda i, outcome: settle(images[i], outcome if isinstance(outcome, DeepfakeError) else [(0, outcome)]),
    )
    if errors:
        raise errors[0]
    for file in (f for f in files if f.is_video and f not in records):
        try:
            video = client.detect_video(file.path, num_frames=num_frames, concurrency=concurrency)
            settle(file, [(frame.index, frame.result) for frame in video.frames])
        except InvalidInputError as error:
            settle(file, error)
    return _scoring_run([records[f] for f in files if not f.is_video] + [records[f] for f in files if f.is_video])


def _scoring_run(records: Sequence[dict[str, Any]]) -> ScoringRun:
    """The run from its files' records, in the order given."""
    names = {tuple(n) for r in records for n in r.get("model_names", ())}
    if len(names) > 1:
        raise ServerError(f"the server's MODEL_NAMES changed during the evaluation: {sorted(names)}")
    model_names = names.pop() if names else ()
    return ScoringRun(
        model_names=model_names,
        files=tuple(ScoredFile.from_dict(r, len(model_names)) for r in records if "skipped" not in r),
        skipped=tuple((Path(r["path"]), r["skipped"]) for r in records if "skipped" in r),
        untrained_models=next((tuple(r["untrained_models"]) for r in records if r.get("untrained_models")), ()),
    )


def frame_samples(run: ScoringRun) -> list[Sample]:
    """One calibration sample per frame with a face, grouped by file."""
    return [
        Sample(
            name=f"{s.file.path}#{f.index}",
            label=s.file.label,
            frames=(f.face_model_probabilities,),
            group=str(s.file.path),  # a video's frames stay on one side of every split
        )
        for s in run.files
        for f in s.face_frames
    ]


def video_samples(run: ScoringRun) -> list[Sample]:
    """One calibration sample per file with a face in some frame."""
    return [
        Sample(
            name=str(s.file.path), label=s.file.label, frames=tuple(f.face_model_probabilities for f in s.face_frames)
        )
        for s in run.files
        if s.face_frames
    ]


@dataclass(frozen=True)
class LevelReport:
    without_face: int  # frames (or files) left out
    labels: np.ndarray
    ensemble_scores: np.ndarray
    model_scores: dict[str, np.ndarray]
    ensemble: BinaryMetrics | None  # None when no sample had a face
    models: dict[str, BinaryMetrics]
    abstention: Abstention | None = None  # the served uncertain band on these scores; None without samples

    def to_dict(self) -> dict[str, Any]:
        return {
            "samples": int(self.labels.size),
            "without_face": self.without_face,
            "ensemble": None if self.ensemble is None else self.ensemble.to_dict(),
            "models": {name: m.to_dict() for name, m in self.models.items()},
            "abstention": None if self.abstention is None else self.abstention.to_dict(),
        }


def _level_report(
    labels: list[int],
    ensemble: list[float],
    per_model: list[np.ndarray],
    without_face: int,
    model_names: Sequence[str],
    threshold: float,
    band: tuple[float, float] | None = None,
) -> LevelReport:
    y = np.array(labels, dtype=int)
    ensemble_scores = np.array(ensemble, dtype=np.float64)
    matrix = np.array(per_model, dtype=np.float64).reshape(len(per_model), len(model_names))
    model_scores = {name: matrix[:, i] for i, name in enumerate(model_names)}
    measured = y.size > 0
    return LevelReport(
        without_face=without_face,
        labels=y,
        ensemble_scores=ensemble_scores,
        model_scores=model_scores,
        ensemble=binary_metrics(y, ensemble_scores, threshold) if measured else None,
        models={n: binary_metrics(y, s, MODEL_THRESHOLD) for n, s in model_scores.items()} if measured else {},
        abstention=measure(y, ensemble_scores, threshold, band) if measured else None,
    )


def frame_level(run: ScoringRun, threshold: float, band: tuple[float, float] | None = None) -> LevelReport:
    frames = [(s.file.label, f) for s in run.files for f in s.frames]
    judged = [(label, f) for label, f in frames if f.has_face]
    return _level_report(
        [label for label, _ in judged],
        [f.fake_probability for _, f in judged],
        [f.model_scores for _, f in judged],
        len(frames) - len(judged),
        run.model_names,
        threshold,
        band,
    )


def video_level(run: ScoringRun, threshold: float, aggregation: Aggregation | str, top_k: int = 5,
                band: tuple[float, float] | None = None) -> LevelReport:
    judged = [s for s in run.files if s.face_frames]
    return _level_report(
        [s.file.label for s in judged],
        [aggregate([f.fake_probability for f in s.face_frames], aggregation, top_k=top_k) for s in judged],
        [
            aggregate_columns(np.stack([f.model_scores for f in s.face_frames]), aggregation, top_k=top_k)
            for s in judged
        ],
        len(run.files) - len(judged),
        run.model_names,
        threshold,
        band,
    )


@dataclass(frozen=True)
class Evaluation:
    folder: Path
    settings: EnsembleSettings  # the server's, when the files were scored
    aggregation: str
    run: ScoringRun
    frame: LevelReport
    video: LevelReport

    def to_dict(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "server_settings": {
                "weights": self.settings.weights,
                "threshold": self.settings.threshold,
                "image_score": self.settings.image_score,
                "uncertain_band": self.settings.to_band_dict(),
            },
            "aggregation": self.aggregation,
            "frame_level": self.frame.to_dict(),
            "video_level": self.video.to_dict(),
            # Beside the metrics, never in them: what the files' C2PA Content Credentials declare.
            "provenance": summarise((f.provenance for f in self.run.files), (f.file.label for f in self.run.files)),
            "scores": self.run.to_dict(),
        }


def evaluate(
    client: DeepfakeClient,
    folder: str | Path,
    *,
    num_frames: int = DEFAULT_NUM_FRAMES,
    aggregation: Aggregation | str = Aggregation.MEAN,
    top_k: int = 5,
    on_file: Callable[[LabelledFile], None] | None = None,
    concurrency: int | None = None,
    scores: Path | None = None,
    resume: bool = False,
) -> Evaluation:
    """Score the folder and measure. `scores`: the score log to write as scores arrive (and, with
    `resume`, to continue: files it holds are not scored again)."""
    aggregation = Aggregation(aggregation)
    files = find_labelled_files(folder)
    settings = client.ensemble_settings()
    log = None if scores is None else open_score_log(scores, settings, resume)
    try:
        run = score_files(client, files, num_frames=num_frames, concurrency=concurrency, on_file=on_file, log=log)
    finally:
        if log is not None:
            log.close()
    return Evaluation(
        folder=Path(folder),
        settings=settings,
        aggregation=aggregation.value,
        run=run,
        # The served band, applied to the recorded scores (the video score is aggregated here).
        frame=frame_level(run, settings.threshold, settings.uncertain_band),
        video=video_level(run, settings.threshold, aggregation, top_k, settings.uncertain_band),
    )


def open_score_log(path: Path, settings: EnsembleSettings, resume: bool) -> ScoreLog:
    """The score log of a run on a server with these settings (score_log.py)."""
    served = {"weights": settings.weights, "threshold": settings.threshold, "image_score": settings.image_score,
              "untrained_models": list(settings.untrained_models)}
    return ScoreLog.open(path, served, resume)


def load_scores(report_path: str | Path) -> ScoringRun:
    """The scores saved in an evaluation report (report.json), to calibrate without re-inference."""
    try:
        data = json.loads(Path(report_path).read_text())
        return ScoringRun.from_dict(data["scores"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInputError(
            f"{report_path} is not an evaluation report written by `deepfake evaluate`: {exc}"
        ) from exc
