"""`deepfake`: the command line of the SDK.

Exit codes (also in client/README.md):
  0  done; everything judged was REAL (evaluate, calibrate, health: success)
  1  at least one input judged FAKE
  2  usage error (bad arguments)
  3  server unavailable (a failed TLS handshake included), or the model is not ready
  4  invalid input (missing file, undecodable image, unreadable video)
  5  no input was FAKE, but some had no face (not judged, so not called real)
  9  no input was FAKE, but some were UNCERTAIN (inside the served uncertain band)
  6  timeout
  7  server error (failed request, or an answer outside the contract)
  8  server overloaded: it refused a request (queue full or queue timeout); retry later
130 interrupted (a second Ctrl-C; the first one stops `stream` cleanly)
A FAKE verdict wins over errors on other inputs (1); otherwise the first of 3, 8, 6, 7, 4 that
occurred; then 9, then 5.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import signal
import sys
import warnings
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from enum import IntEnum
from pathlib import Path
from typing import Any

from tqdm import tqdm

from deepfake_contract import settings as contract_settings

from . import probability
from .abstention import band_for_coverage, band_from_interval
from .aggregation import Aggregation
from .calibration import DEFAULT_BOOTSTRAP, DEFAULT_FOLDS, MIN_PER_CLASS, OBJECTIVES, calibrate
from .calibration_report import JSON_FILE, MARKDOWN_FILE, build_report, data_digests, model_aucs, write_calibration_report
from .client import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_MODEL,
    DEFAULT_TIMEOUT_S,
    DEFAULT_TOP_K,
    DEFAULT_WINDOW,
    DeepfakeClient,
    UntrainedModelsWarning,
    untrained_message,
)
from .errors import (
    DeepfakeError,
    InvalidInputError,
    ModelNotReadyError,
    OverloadedError,
    RequestTimeoutError,
    ServerUnavailableError,
    TlsError,
)
from .evaluation import (
    IMAGE_EXTENSIONS,
    evaluate,
    find_labelled_files,
    frame_samples,
    load_scores,
    open_score_log,
    score_files,
    video_samples,
)
from .jobs import cli as jobs_cli
from .priority import NAMES as PRIORITY_NAMES
from .provenance import ProvenanceReader, ProvenanceState
from .records import cli as records_cli
from .report import write_report
from .results import DetectionResult, Label, json_number
from .score_log import SCORES_FILE
from .stream import StreamUpdate
from .tls import TlsConfig
from .transport import PROTOCOLS
from .video import DEFAULT_NUM_FRAMES, VIDEO_EXTENSIONS


class ExitCode(IntEnum):
    REAL = 0
    FAKE = 1
    USAGE = 2
    UNAVAILABLE = 3
    INVALID_INPUT = 4
    NO_FACE = 5
    TIMEOUT = 6
    SERVER_ERROR = 7
    OVERLOADED = 8
    UNCERTAIN = 9


INTERRUPTED = 128 + signal.SIGINT  # the shell's convention
# Grad-CAM runs the four networks backwards: seconds per face on a CPU server. (Not a parser
# default of its own: set_defaults on one subparser changes the --timeout shared by all of them.)
EXPLAIN_TIMEOUT_S = 300.0

_ERROR_PRECEDENCE = (ExitCode.UNAVAILABLE, ExitCode.OVERLOADED, ExitCode.TIMEOUT, ExitCode.SERVER_ERROR, ExitCode.INVALID_INPUT)


def exit_code_for_error(error: DeepfakeError) -> ExitCode:
    if isinstance(error, OverloadedError):  # before its base class, ServerUnavailableError
        return ExitCode.OVERLOADED
    if isinstance(error, (ServerUnavailableError, ModelNotReadyError, TlsError)):
        return ExitCode.UNAVAILABLE
    if isinstance(error, InvalidInputError):
        return ExitCode.INVALID_INPUT
    if isinstance(error, RequestTimeoutError):
        return ExitCode.TIMEOUT
    return ExitCode.SERVER_ERROR


def verdict_exit_code(labels: Iterable[Label], errors: Iterable[DeepfakeError] = ()) -> ExitCode:
    """`labels`: the verdicts (UNCERTAIN where the served band holds the score)."""
    labels = set(labels)
    if Label.FAKE in labels:
        return ExitCode.FAKE
    codes = {exit_code_for_error(e) for e in errors}
    for code in _ERROR_PRECEDENCE:
        if code in codes:
            return code
    if Label.UNCERTAIN in labels:
        return ExitCode.UNCERTAIN
    return ExitCode.NO_FACE if Label.NO_FACE in labels or not labels else ExitCode.REAL


# Output


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [list(headers)] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def _warn_untrained(models: Sequence[str]) -> None:
    if models:
        line = "!" * 78
        print(f"{line}\n!! WARNING: {untrained_message(models)}\n{line}", file=sys.stderr)


def _error_dict(error: DeepfakeError) -> dict[str, str]:
    return {"type": type(error).__name__, "message": error.message}


def _progress(args: argparse.Namespace, total: int | None, unit: str) -> tqdm:
    # disable=None: shown on a terminal only, so pipes and logs stay clean.
    return tqdm(total=total, unit=unit, file=sys.stderr, disable=True if args.no_progress else None, leave=False)


# Commands


def provenance_cell(result: DetectionResult) -> str | None:
    """The provenance column: the C2PA state, and any AI declaration ("valid, AI-generated")."""
    provenance = result.provenance
    if provenance is None:
        return None
    return provenance.state.value + ("" if provenance.ai is None else f", AI-{provenance.ai.value}")


def _result_row(name: str, outcome: Any, model_names: Sequence[str]) -> list[Any]:
    if isinstance(outcome, DeepfakeError):
        return [name, "ERROR", None, None] + [None] * len(model_names) + [None, outcome.message]
    per_model = outcome.model_probabilities
    return (
        [name, outcome.verdict.value, outcome.fake_probability, len(outcome.faces)]
        + [per_model.get(m) for m in model_names]
        + [provenance_cell(outcome), ""]
    )


def provenance_line(name: str, result: DetectionResult) -> str | None:
    """A sentence for an image with Content Credentials, the AI declaration said plainly, apart from the
    models' verdict (which it does not change)."""
    provenance = result.provenance
    if provenance is None or provenance.state is ProvenanceState.NONE:
        return None
    generator = f" (made with {provenance.claim_generator})" if provenance.claim_generator else ""
    detail = f" [{provenance.detail}]" if provenance.detail else ""
    return f"{name}: provenance: {provenance.summary}{generator}{detail} The face models' verdict is separate: {result.label.value}."


def _report_results(names: Sequence[str], outcomes: Sequence[Any], args: argparse.Namespace) -> ExitCode:
    results = [o for o in outcomes if isinstance(o, DetectionResult)]
    errors = [o for o in outcomes if isinstance(o, DeepfakeError)]
    _warn_untrained(next((r.untrained_models for r in results if r.untrained), ()))
    if args.json:
        items = [
            {"input": name, "error": _error_dict(o)} if isinstance(o, DeepfakeError) else {"input": name, **o.to_dict()}
            for name, o in zip(names, outcomes, strict=True)
        ]
        _print_json(items[0] if args.command == "image" else items)
    else:
        model_names = results[0].model_names if results else ()
        headers = ["input", "verdict", "p(fake)", "faces", *model_names, "provenance", "error"]
        print(format_table(headers, [_result_row(n, o, model_names) for n, o in zip(names, outcomes, strict=True)]))
        for name, outcome in zip(names, outcomes, strict=True):
            line = provenance_line(name, outcome) if isinstance(outcome, DetectionResult) else None
            if line:
                print(line)
            if isinstance(outcome, DetectionResult) and outcome.faces_left_out:
                print(f"{name}: {outcome.faces_found} faces found, only the {len(outcome.faces)} most confident "
                      "were judged (the server's max_faces)")
            if isinstance(outcome, DetectionResult):
                _print_flags(name, outcome)
    return verdict_exit_code((r.verdict for r in results), errors)


def _print_flags(name: str, result: DetectionResult) -> None:
    """Out-of-scope flags, one line per input that has any (deepfake_client.scope)."""
    parts = list(result.flags) + [f"face {i + 1}: {', '.join(face.flags)}"
                                  for i, face in enumerate(result.faces) if face.flags]
    if parts:
        print(f"{name}: outside what the models were trained on: {'; '.join(parts)}")


def local_path(text: str) -> Path:
    """A file argument as a path; a URL is refused with what to do instead (it would be read as a path)."""
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text):
        raise InvalidInputError(f"URLs are not supported: {text} (download the file first, then give its path)")
    return Path(text)


def image_path(text: str) -> Path:
    """`deepfake image`'s argument: a folder or a video gets the command that takes it."""
    path = local_path(text)
    if path.is_dir():
        raise InvalidInputError(f"{text} is a folder: use `deepfake folder {text}`")
    if path.suffix.lower() in VIDEO_EXTENSIONS:
        raise InvalidInputError(f"{text} is a video: use `deepfake video {text}`")
    return path


def run_image(client: DeepfakeClient, args: argparse.Namespace) -> ExitCode:
    try:
        outcome: Any = client.detect(image_path(args.path))
    except DeepfakeError as error:
        if not isinstance(error, InvalidInputError):
            raise
        outcome = error
    return _report_results([args.path], [outcome], args)


def run_explain(client: DeepfakeClient, args: argparse.Namespace) -> ExitCode:
    """`deepfake explain photo.jpg --out overlay.png`: verdict + heatmaps, drawn."""
    from .images import read_image_file
    from .overlay import render_overlay

    data = read_image_file(image_path(args.path))
    explanation = client.explain(data)
    _warn_untrained(explanation.detection.untrained_models)
    if args.out:
        Path(args.out).write_bytes(render_overlay(data, explanation))
    if args.json:
        _print_json({"input": args.path, **explanation.to_dict(heatmaps=args.heatmaps), "overlay": args.out})
    else:
        model_names = explanation.detection.model_names
        headers = ["input", "verdict", "p(fake)", "faces", *model_names, "provenance", "error"]
        print(format_table(headers, [_result_row(args.path, explanation.detection, model_names)]))
        _print_flags(args.path, explanation.detection)
        if args.out:
            print(f"overlay: {args.out} ({len(explanation.faces)} face(s) explained)")
    return verdict_exit_code([explanation.detection.verdict], [])


def find_images(folder: Path, recursive: bool, extensions: Sequence[str]) -> list[Path]:
    if not folder.is_dir():
        raise InvalidInputError(f"not a folder: {folder}")
    pattern = folder.rglob("*") if recursive else folder.glob("*")
    images = sorted(p for p in pattern if p.is_file() and p.suffix.lower() in extensions)
    if not images:
        where = "under" if recursive else "in"
        raise InvalidInputError(f"no images ({', '.join(extensions)}) {where} {folder}")
    return images


def run_folder(client: DeepfakeClient, args: argparse.Namespace) -> ExitCode:
    images = find_images(local_path(args.folder), args.recursive, args.extensions)
    with _progress(args, len(images), "image") as bar:
        outcomes = client.detect_many(images, concurrency=args.concurrency, on_result=lambda *_: bar.update())
    return _report_results([str(p) for p in images], outcomes, args)


def run_video(client: DeepfakeClient, args: argparse.Namespace) -> ExitCode:
    with _progress(args, args.frames, "frame") as bar:
        video = client.detect_video(
            local_path(args.path),
            num_frames=args.frames,
            aggregation=args.aggregation,
            top_k=args.top_k,
            threshold=args.threshold,
            concurrency=args.concurrency,
            on_frame=lambda _: bar.update(),
        )
    _warn_untrained(video.untrained_models)
    if args.json:
        _print_json({"input": args.path, **video.to_dict()})
    else:
        rows = [[f.index, f.timestamp_s, f.label.value, f.fake_probability, len(f.result.faces)] for f in video.frames]
        print(format_table(["frame", "time (s)", "label", "p(fake)", "faces"], rows))
        print(
            f"\n{args.path}: {video.label.value}  p(fake)={_fmt(video.fake_probability)} "
            f"({video.aggregation} of {len(video.face_frames)} frames with a face, threshold {video.threshold:g}); "
            f"fake frames {_fmt(video.fake_frame_ratio)}; frames without a face: {len(video.no_face_frames)}"
        )
    return verdict_exit_code([video.label])


def _stream_line(update: StreamUpdate) -> str:
    frame = update.frame
    return (
        f"frame {frame.index:>6}  t={_fmt(frame.timestamp_s)}s  {frame.label.value:<7} p={_fmt(frame.fake_probability)}"
        f"  | window {update.window_label.value:<7} p={_fmt(update.window_probability)} ({update.window_size} frames)"
        f"  scored={update.scored} dropped={update.dropped}"
    )


def run_stream(client: DeepfakeClient, args: argparse.Namespace) -> ExitCode:
    live = client.stream(
        args.source,
        max_in_flight=args.max_in_flight,
        window=args.window,
        aggregation=args.aggregation,
        top_k=args.top_k,
        threshold=args.threshold,
        max_frames=args.max_frames,
        max_seconds=args.max_seconds,
        realtime=False if args.no_realtime else None,
    )
    previous = signal.getsignal(signal.SIGINT)

    def stop_cleanly(*_: object) -> None:
        # First Ctrl-C: report the frames in flight, then stop; a second one interrupts at once.
        live.stop()
        signal.signal(signal.SIGINT, previous)

    signal.signal(signal.SIGINT, stop_cleanly)
    warned = False
    try:
        for update in live:
            if not warned and update.frame.result.untrained:
                _warn_untrained(update.frame.result.untrained_models)
                warned = True
            print(json.dumps(update.to_dict()) if args.json else _stream_line(update), flush=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    last = live.last_update
    summary = {
        "scored": live.scored,
        "dropped": live.dropped,
        "window_label": None if last is None else last.window_label.value,
        "window_probability": None if last is None else json_number(last.window_probability),
    }
    print(json.dumps({"summary": summary}) if args.json else f"stream ended: {summary}", file=sys.stderr)
    return verdict_exit_code([] if last is None else [last.window_label])


def run_web(client: DeepfakeClient, args: argparse.Namespace) -> ExitCode:
    try:
        from .web.security import read_api_keys
        from .web.server import check_exposure, serve  # the `web` extra: FastAPI, uvicorn
    except ImportError as error:
        print(f"error: `deepfake web` needs the web extra (pip install 'deepfake-client[web]'): {error}", file=sys.stderr)
        return ExitCode.USAGE
    try:
        keys = read_api_keys(args.keys_file)  # a file or the environment, never the command line
        check_exposure(args.host, keys, args.insecure_no_auth)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return ExitCode.USAGE
    try:
        records = records_cli.gateway_records(args)
    except ImportError as error:
        print(f"error: recording needs the records extra (pip install 'deepfake-client[records]'), "
              f"or run with --no-record: {error}", file=sys.stderr)
        return ExitCode.USAGE
    try:
        jobs = jobs_cli.gateway_jobs(args, records)
    except ImportError as error:
        print(f"error: jobs need the records and jobs extras (huey; redis for --jobs-queue redis://), "
              f"or run with --no-jobs: {error}", file=sys.stderr)
        return ExitCode.USAGE
    serve(client, host=args.host, port=args.port, allowed_origins=args.allow_origin, api_keys=keys, key_rate=args.key_rate,
          records=records, provenance=provenance_reader(args), jobs=jobs)
    return ExitCode.REAL


def health_reason(health: Any) -> str:
    """One sentence: ready, or the first thing that keeps the server from serving."""
    if not health.live:
        return f"the server at {health.url} is not live"
    if not health.model_ready:
        return f"the model {health.model} is not ready (not loaded, loading or failed)"
    if health.not_ready_models:
        return f"these models cannot serve: {', '.join(health.not_ready_models)}"
    if health.inference_error is not None:
        return f"a probe inference failed: {health.inference_error}"
    return "ready"


def run_health(client: DeepfakeClient, args: argparse.Namespace) -> ExitCode:
    health = client.health()
    if health.untrained_models:
        _warn_untrained(health.untrained_models)
    if args.json:
        _print_json(health.to_dict() | {"reason": health_reason(health)})
    else:
        print(format_table(["field", "value"], [["reason", health_reason(health)], *health.to_dict().items()]))
    return ExitCode.REAL if health.ready else ExitCode.UNAVAILABLE


def _metrics_rows(level_name: str, level: Any) -> list[list[Any]]:
    if level.ensemble is None:
        return [[level_name, "(no sample with a face)"] + [None] * 8]
    named = [("ENSEMBLE", level.ensemble)] + list(level.models.items())
    return [
        [level_name, name, m.count, m.accuracy, m.precision, m.recall, m.f1, m.roc_auc, m.eer, m.ece]
        for name, m in named
    ]


def run_evaluate(client: DeepfakeClient, args: argparse.Namespace) -> ExitCode:
    files = find_labelled_files(args.folder)
    with _progress(args, len(files), "file") as bar:
        evaluation = evaluate(
            client,
            args.folder,
            num_frames=args.frames,
            aggregation=args.aggregation,
            top_k=args.top_k,
            on_file=lambda _: bar.update(),
            concurrency=args.concurrency,
            scores=Path(args.out) / SCORES_FILE,
            resume=args.resume,
        )
    _warn_untrained(evaluation.run.untrained_models)
    written, note = write_report(evaluation, Path(args.out))
    for path, error in evaluation.run.skipped:
        print(f"warning: skipped {path}: {error}", file=sys.stderr)
    if note:
        print(f"warning: {note}", file=sys.stderr)
    if args.json:
        _print_json(
            {k: v for k, v in evaluation.to_dict().items() if k != "scores"} | {"written": [str(p) for p in written]}
        )
    else:
        rows = _metrics_rows("frame", evaluation.frame) + _metrics_rows("video", evaluation.video)
        headers = ["level", "model", "n", "accuracy", "precision", "recall", "f1", "roc_auc", "eer", "ece"]
        print(format_table(headers, rows))
        for side, counts in evaluation.to_dict()["provenance"].items():
            states = ", ".join(f"{k} {v}" for k, v in sorted(counts["states"].items()))
            ai = ", ".join(f"AI-{k} {v}" for k, v in sorted(counts["ai"].items())) or "no AI declared"
            print(f"provenance of the {side} files ({counts['files']}): {states}; {ai}")
        for level_name, level in (("frame", evaluation.frame), ("video", evaluation.video)):
            if level.abstention is not None:
                print(_abstention_line(level_name, level.abstention))
        print(f"\nreport: {', '.join(str(p) for p in written)}")
    return ExitCode.REAL


def _abstention_line(level_name: str, a: Any) -> str:
    line = f"{level_name}: without abstention coverage 1.000, error rate {_fmt(a.error_rate)}"
    if a.band is None:
        return line + "; no uncertain band served (risk-coverage curve in the report)"
    return (line + f"; with the served band [{a.band[0]:.3f}, {a.band[1]:.3f}] coverage {_fmt(a.coverage)}, "
            f"error rate {_fmt(a.covered_error_rate)} ({a.samples - a.covered} UNCERTAIN)")


def run_calibrate(client: DeepfakeClient, args: argparse.Namespace) -> ExitCode:
    """Cross-validated weights, calibration and threshold; a report folder; the settings file."""
    method = None if args.calibration == "none" else args.calibration
    if args.level == "video" and method is not None:
        print("error: --level video needs --calibration none: the server calibrates frame scores", file=sys.stderr)
        return ExitCode.USAGE
    data = Path(args.data)
    if data.is_file():
        run = load_scores(data)
        data_files = [data] + [s.file.path for s in run.files]
    else:
        files = find_labelled_files(data)
        log = open_score_log(Path(args.out) / SCORES_FILE, client.ensemble_settings(), args.resume)
        try:
            with _progress(args, len(files), "file") as bar:
                run = score_files(client, files, num_frames=args.frames, concurrency=args.concurrency,
                                  on_file=lambda _: bar.update(), log=log)
        finally:
            log.close()
        data_files = [s.file.path for s in run.files]
    _warn_untrained(run.untrained_models)
    samples = frame_samples(run) if args.level == "frame" else video_samples(run)
    with _progress(args, None, "step") as bar:

        def step(description: str, total: int) -> None:
            bar.total = total
            bar.set_description(description)
            bar.update()

        result = calibrate(
            samples,
            run.model_names,
            image_score=args.image_score,
            objective=args.objective,
            method=method,
            step=args.step,
            folds=args.folds,
            resamples=args.bootstrap,
            aggregation=args.aggregation,
            top_k=args.top_k,
            seed=args.seed,
            progress=step,
        )
    write = not args.dry_run and (result.sufficient or args.force)
    if args.dry_run:
        reason = "dry run"
    elif not result.sufficient:
        reason = "forced below the minimum sample size" if args.force else "too few samples (use --force to write anyway)"
    else:
        reason = "enough samples"
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    digests = data_digests(data_files)
    band = uncertain_band(result, args.uncertain, args.coverage)
    settings = contract_settings.EnsembleSettings(
        weights=result.weights,
        threshold=result.threshold,
        image_score=args.image_score,
        calibration=result.calibration,
        uncertain_band=band,
        provenance={
            "data": str(data),
            "data_sha256": hashlib.sha256(json.dumps(digests).encode()).hexdigest(),
            "objective": f"{args.objective}, {args.level} level, {result.folds}-fold grouped cross-validation",
            "report": str(Path(args.out) / JSON_FILE),
            "created": created,
        },
    )
    if write:
        contract_settings.dump(settings, args.settings)
    report = build_report(
        result,
        model_auc=model_aucs(result, samples, args.aggregation, args.top_k),
        data={"source": str(data), "level": args.level, "created": created, "files": digests},
        settings={"path": str(args.settings), "written": write, "reason": reason, "content": settings.to_dict()},
    )
    written, note = write_calibration_report(report, result, samples, Path(args.out), args.aggregation, args.top_k)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if note:
        print(f"warning: {note}", file=sys.stderr)
    if args.json:
        _print_json({"settings": str(args.settings), "written": write, "report": [str(p) for p in written],
                     **result.to_dict()})
    else:
        ranges = result.weight_ranges()
        rows = [[name, result.weights[name], f"{ranges[name]['min']:.2f}-{ranges[name]['max']:.2f}"]
                for name in result.model_names]
        print(format_table(["model", "weight", "searched per fold"], rows))
        print(f"\ncross-validated AUC: equal weights {result.auc_equal}, searched weights {result.auc_searched}")
        print(f"\nadopted: {'searched' if result.adopted else 'equal'} weights; "
              f"calibration: {result.method or 'none'}, ECE {result.ece_before} -> {result.ece_after}; "
              f"threshold {result.threshold_interval}")
        print("uncertain band: " + ("none (every face FAKE or REAL)" if band is None else
                                    f"[{band['low']:.3f}, {band['high']:.3f}] ({band['source']})"))
        print(f"report: {Path(args.out) / MARKDOWN_FILE}")
        if write:
            print(f"wrote {args.settings}: reassemble the repository from it and restart the server to serve it "
                  "(`make serve` reads ensemble-settings.json; docker: DEEPFAKE_SETTINGS)")
        else:
            print(f"settings not written ({reason})")
    return ExitCode.REAL if write or args.dry_run else ExitCode.INVALID_INPUT


# Arguments


def uncertain_band(result: Any, how: str, coverage: float | None) -> dict[str, Any] | None:
    """The band to serve: the threshold's bootstrap interval, or the band that leaves `coverage` of
    the out-of-fold calibrated scores decided, or none."""
    if how == "none":
        return None
    if how == "coverage":
        return band_for_coverage(result.calibrated_scores, result.threshold, coverage,
                                 f"coverage {coverage:g} of the out-of-fold calibrated scores")
    interval = result.threshold_interval
    return band_from_interval(result.threshold, interval.low, interval.high, "95% bootstrap interval of the threshold")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {value}")
    return value


def _extensions(text: str) -> list[str]:
    return ["." + e.strip().lower().lstrip(".") for e in text.split(",") if e.strip()]


EXPLAIN_TIMEOUT_S = 300.0  # Grad-CAM runs the four networks backwards: seconds per face on a CPU server

# One example per subcommand, shown at the end of its --help.
EXAMPLES = {
    "image": "deepfake image photo.jpg --url localhost:8001",
    "folder": "deepfake folder photos/ -r --extensions jpg,png --json > verdicts.json",
    "video": "deepfake video clip.mp4 --frames 32 --aggregation topk --top-k 5",
    "stream": "deepfake stream 0 --max-seconds 30          (webcam 0; or rtsp://camera/live, or clip.mp4)",
    "explain": "deepfake explain photo.jpg --out overlay.png",
    "health": "deepfake health --url triton.example.com:8001",
    "web": "deepfake web --url localhost:8001 --port 8080   (then open http://127.0.0.1:8080)",
    "evaluate": "deepfake evaluate labelled/ --out deepfake-report   (labelled/real/..., labelled/fake/...)",
    "calibrate": "deepfake calibrate deepfake-report/report.json --settings ensemble-settings.json",
    "job": "deepfake job submit long-clip.mp4 --stride 5 && deepfake job wait ID",
    "history": "deepfake history list --verdict FAKE --since 2026-12-01 --json",
}


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    server = common.add_argument_group("server")
    server.add_argument(
        "--url",
        help="host:port (or grpc://, http://; grpcs://, https:// for TLS); default $DEEPFAKE_URL, "
        "else localhost:8001 (gRPC) / :8000 (HTTP)",
    )
    server.add_argument("--protocol", choices=PROTOCOLS, help="default grpc")
    server.add_argument(
        "--timeout", type=_positive_float, default=None,
        help=f"seconds per request (default {DEFAULT_TIMEOUT_S:g}, the SDK's; explain: {EXPLAIN_TIMEOUT_S:g})",
    )
    server.add_argument("--model", default=DEFAULT_MODEL, help="ensemble name (default %(default)s)")
    tls = common.add_argument_group("TLS (any of these turns TLS on, as a grpcs:// or https:// URL does)")
    tls.add_argument("--tls-ca", metavar="PEM", help="CA certificate(s) to trust (default: the system's roots)")
    tls.add_argument("--tls-cert", metavar="PEM", help="client certificate, for mutual TLS (with --tls-key)")
    tls.add_argument("--tls-key", metavar="PEM", help="client private key, unencrypted (with --tls-cert)")
    output = common.add_argument_group("output")
    output.add_argument("--json", action="store_true", help="print JSON instead of a table")
    output.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")

    concurrency = argparse.ArgumentParser(add_help=False)
    concurrency.add_argument(
        "--concurrency", type=_positive_int, default=DEFAULT_CONCURRENCY,
        help="most requests in flight; fewer while the server refuses some (default %(default)s)",
    )

    priority = argparse.ArgumentParser(add_help=False)
    priority.add_argument(
        "--priority", choices=list(PRIORITY_NAMES),
        help="request priority on the server (default: interactive for one image, an explanation or a stream; "
             "bulk for folders, videos, evaluate and calibrate)",
    )

    scores = argparse.ArgumentParser(add_help=False)
    scores.add_argument(
        "--resume", action="store_true",
        help=f"continue an interrupted run: files already in OUT/{SCORES_FILE} (path, size, mtime) are not scored "
             "again (without it, that file is started afresh)",
    )

    aggregation = argparse.ArgumentParser(add_help=False)
    aggregation.add_argument(
        "--aggregation",
        choices=[a.value for a in Aggregation],
        default=Aggregation.MEAN.value,
        help="frame scores -> verdict (default %(default)s)",
    )
    aggregation.add_argument(
        "--top-k", type=_positive_int, default=DEFAULT_TOP_K, help="frames averaged by --aggregation topk"
    )

    frames = argparse.ArgumentParser(add_help=False)
    frames.add_argument(
        "--frames", type=_positive_int, default=DEFAULT_NUM_FRAMES, help="frames sampled per video (default %(default)s)"
    )

    provenance = argparse.ArgumentParser(add_help=False)
    c2pa = provenance.add_argument_group("provenance (C2PA Content Credentials, read from each image file)")
    c2pa.add_argument("--c2pa-trust", metavar="PEM", default=os.environ.get(TRUST_ENV),
                      help=f"trust anchors for C2PA signers (default ${TRUST_ENV}; none: every signer is untrusted)")
    c2pa.add_argument("--no-provenance", action="store_true", help="do not read Content Credentials")

    threshold = argparse.ArgumentParser(add_help=False)
    threshold.add_argument("--threshold", type=_probability, help="FAKE above this score (default: the server's)")

    parser = argparse.ArgumentParser(
        prog="deepfake",
        description="Face-deepfake detection with the Triton deepfake_detector ensemble.",
        epilog=__doc__.split("\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="command")

    class _Commands:
        """add_parser with the subcommand's example as its epilog."""

        @staticmethod
        def add_parser(name: str, **kwargs: Any) -> argparse.ArgumentParser:
            return subparsers.add_parser(name, epilog=f"example:\n  {EXAMPLES[name]}",
                                         formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)

    commands = _Commands()

    record = records_cli.record_option()
    p = commands.add_parser("image", parents=[common, priority, record, provenance], help="judge one image")
    p.add_argument("path")
    p.set_defaults(handler=run_image)

    p = commands.add_parser("folder", parents=[common, concurrency, priority, record, provenance],
                            help="judge every image in a folder")
    p.add_argument("folder")
    p.add_argument("--recursive", "-r", action="store_true", help="include sub-folders")
    p.add_argument(
        "--extensions", type=_extensions, default=list(IMAGE_EXTENSIONS), help="comma-separated (default %(default)s)"
    )
    p.set_defaults(handler=run_folder)

    p = commands.add_parser(
        "video", parents=[common, concurrency, frames, aggregation, threshold, priority, record], help="judge a video"
    )
    p.add_argument("path")
    p.set_defaults(handler=run_video)

    p = commands.add_parser(
        "stream",
        parents=[common, aggregation, threshold, priority],
        help="judge a webcam (index), RTSP/HTTP URL or video file live; Ctrl-C stops",
    )
    p.add_argument("source", help="webcam index (0), URL, or video file")
    p.add_argument(
        "--max-in-flight",
        type=_positive_int,
        default=DEFAULT_MAX_IN_FLIGHT,
        help="frames scored at once; more are dropped (default %(default)s)",
    )
    p.add_argument(
        "--window", type=_positive_int, default=DEFAULT_WINDOW, help="frames in the rolling verdict (default %(default)s)"
    )
    p.add_argument("--max-frames", type=_positive_int, help="stop after this many frames from the source")
    p.add_argument("--max-seconds", type=_positive_float, help="stop after this many seconds")
    p.add_argument(
        "--no-realtime", action="store_true", help="read a file as fast as it decodes, not at its frame rate"
    )
    p.set_defaults(handler=run_stream)

    p = commands.add_parser("explain", parents=[common, priority],
                            help="judge one image and draw where the models looked")
    p.add_argument("path")
    p.add_argument("--out", help="write the overlay PNG here")
    p.add_argument("--heatmaps", action="store_true", help="with --json: include the heatmap arrays")
    # Grad-CAM runs the four networks backwards: seconds per face on a CPU server.
    # Not `timeout=`: the --timeout action is shared by every subcommand, and set_defaults would change it for all.
    p.set_defaults(handler=run_explain, default_timeout=EXPLAIN_TIMEOUT_S)

    p = commands.add_parser("health", parents=[common], help="is the server live and the model ready?")
    p.set_defaults(handler=run_health)

    p = commands.add_parser("web", parents=[common, provenance], help="serve the web console and the seed's REST/WebSocket API")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s: this machine only)")
    p.add_argument("--port", type=int, default=8080, help="default %(default)s")
    p.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="a page (https://host:port) besides the gateway's own that may open the webcam socket (repeatable)")
    p.add_argument("--keys-file", help="API keys, one a line (also $DEEPFAKE_WEB_API_KEY_FILE or "
                   "$DEEPFAKE_WEB_API_KEYS, comma-separated); required beyond loopback")
    p.add_argument("--key-rate", type=float, default=10.0, help="requests a second per API key (default %(default)s)")
    p.add_argument("--insecure-no-auth", action="store_true", help="serve beyond loopback without API keys")
    records_cli.add_web_options(p)
    jobs_cli.add_web_options(p)
    p.set_defaults(handler=run_web)
    records_cli.add_history_parser(commands)
    jobs_cli.add_job_parser(commands, common)

    p = commands.add_parser(
        "evaluate", parents=[common, concurrency, priority, scores, frames, aggregation, provenance],
        help="metrics over a labelled folder (real/, fake/)",
    )
    p.add_argument("folder")
    p.add_argument("--out", default="deepfake-report",
                   help=f"report folder (default %(default)s); {SCORES_FILE} there gets each score as it arrives")
    p.set_defaults(handler=run_evaluate)

    p = commands.add_parser(
        "calibrate",
        parents=[common, concurrency, priority, scores, frames, aggregation],
        help="cross-validated ensemble weights, calibrated probability and threshold -> a settings file and a report",
    )
    p.add_argument("data", help="labelled folder (real/, fake/) or the report.json of `deepfake evaluate`")
    p.add_argument(
        "--settings", default=contract_settings.DEFAULT_PATH, help="settings file to write (default %(default)s)"
    )
    p.add_argument("--out", default="deepfake-calibration",
                   help=f"report folder (default %(default)s); scoring a folder writes each score to {SCORES_FILE} there")
    p.add_argument("--objective", choices=OBJECTIVES, default="auc", help="maximised (default %(default)s)")
    p.add_argument(
        "--calibration",
        choices=[*probability.METHODS, "none"],
        default=probability.DEFAULT_METHOD,
        help="probability calibration (default %(default)s; isotonic wants thousands of samples)",
    )
    p.add_argument(
        "--level", choices=("frame", "video"), default="frame", help="samples to calibrate on (default %(default)s)"
    )
    p.add_argument("--image-score", choices=contract_settings.IMAGE_SCORES, default=contract_settings.DEFAULT_IMAGE_SCORE,
                   help="faces -> image score, as the server will be set (default %(default)s)")
    p.add_argument("--step", type=_probability, default=0.1, help="weight grid step (default %(default)s)")
    p.add_argument("--folds", type=_positive_int, default=DEFAULT_FOLDS, help="cross-validation folds (default %(default)s)")
    p.add_argument("--bootstrap", type=_positive_int, default=DEFAULT_BOOTSTRAP,
                   help="bootstrap resamples for the intervals (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="folds and resamples (default %(default)s)")
    p.add_argument("--force", action="store_true",
                   help=f"write the settings below the minimum of {MIN_PER_CLASS} independent samples per class")
    p.add_argument("--uncertain", choices=("interval", "coverage", "none"), default="interval",
                   help="uncertain band to serve: the threshold's 95%% interval (default), the band that keeps "
                        "--coverage of the samples decided, or none (every face FAKE or REAL)")
    p.add_argument("--coverage", type=_probability, default=0.9,
                   help="share of samples decided with --uncertain coverage (default %(default)s)")
    p.add_argument("--dry-run", action="store_true", help="write the report only, not the settings")
    p.set_defaults(handler=run_calibrate)
    return parser


def tls_config(args: argparse.Namespace) -> TlsConfig | None:
    """The --tls-* options, or None (TLS then depends on the URL's scheme)."""
    if args.tls_ca is None and args.tls_cert is None and args.tls_key is None:
        return None
    return TlsConfig(ca=args.tls_ca, cert=args.tls_cert, key=args.tls_key)


TRUST_ENV = "DEEPFAKE_C2PA_TRUST"


def provenance_reader(args: argparse.Namespace) -> ProvenanceReader | None:
    """--c2pa-trust / --no-provenance (commands without them read no provenance)."""
    if not hasattr(args, "no_provenance") or args.no_provenance:
        return None
    try:
        return ProvenanceReader.from_file(args.c2pa_trust)
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise InvalidInputError(f"--c2pa-trust {args.c2pa_trust}: {error}") from error


def open_client(args: argparse.Namespace) -> DeepfakeClient:
    # `web` reads provenance in the gateway, with the same trust anchors, not in its client.
    return DeepfakeClient(
        args.url,
        protocol=args.protocol,
        model=args.model,
        timeout_s=args.timeout if args.timeout is not None else getattr(args, "default_timeout", DEFAULT_TIMEOUT_S),
        concurrency=getattr(args, "concurrency", DEFAULT_CONCURRENCY),
        tls=tls_config(args),
        priority=getattr(args, "priority", None),
        provenance=None if args.command == "web" else provenance_reader(args),
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # exits 2 on usage errors
    warnings.simplefilter("ignore", UntrainedModelsWarning)  # the CLI shows its own banner
    if getattr(args, "offline", False):  # `deepfake history`: the record database, no server
        return records_cli.run_history(args)
    try:
        if getattr(args, "job_run", None) is not None:  # `deepfake job submit ...`: the gateway, over HTTP
            return int(args.job_run(args))
        with records_cli.recording(open_client(args), args) as client:
            return int(args.handler(client, args))
    except DeepfakeError as error:
        print(f"error: {error}{_resume_hint(args)}", file=sys.stderr)
        return int(exit_code_for_error(error))
    except KeyboardInterrupt:
        print(f"interrupted{_resume_hint(args)}", file=sys.stderr)
        return INTERRUPTED


def _resume_hint(args: argparse.Namespace) -> str:
    """For a run that records its scores: where they are, and how to go on from there."""
    scores = Path(getattr(args, "out", None) or ".") / SCORES_FILE
    if not hasattr(args, "resume") or not scores.exists():
        return ""
    return f"\nthe scores so far are in {scores}: the same command with --resume scores only the rest"


if __name__ == "__main__":
    sys.exit(main())
