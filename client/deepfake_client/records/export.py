"""History exports: CSV and Parquet tables, and MLflow runs (one per time window)."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from ..errors import DeepfakeError, InvalidInputError
from .models import FIELDS

JSON_FIELDS = ("faces", "model_probabilities", "model_fingerprints")
MLFLOW_BATCH = 1000  # MLflow accepts at most 1000 metrics per log_batch


def model_names(records: Sequence[dict[str, Any]]) -> list[str]:
    return sorted({name for r in records for name in (r.get("model_probabilities") or {})})


def flat_rows(records: Sequence[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """One flat row per record: the fields, p_<model> per model, nested fields as JSON text."""
    names = model_names(records)
    columns = [*FIELDS, *(f"p_{n}" for n in names)]
    rows = []
    for r in records:
        row = {f: (json.dumps(r[f]) if f in JSON_FIELDS and r[f] is not None else r[f]) for f in FIELDS}
        row.update({f"p_{n}": (r["model_probabilities"] or {}).get(n) for n in names})
        rows.append(row)
    return columns, rows


def to_csv(records: Sequence[dict[str, Any]]) -> str:
    columns, rows = flat_rows(records)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def to_parquet(records: Sequence[dict[str, Any]]) -> bytes:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as error:
        raise InvalidInputError(f"Parquet needs pyarrow (the client's `records` extra): {error}") from error
    columns, rows = flat_rows(records)
    types = {"id": pa.int64(), "size_bytes": pa.int64(), "width": pa.int32(), "height": pa.int32(),
             "num_faces": pa.int32(), "frame_index": pa.int32(), "untrained": pa.bool_(),
             "fake_probability": pa.float64(), "disagreement": pa.float64(), "processing_time_s": pa.float64()}
    schema = pa.schema([(c, types.get(c, pa.float64() if c.startswith("p_") else pa.string())) for c in columns])
    table = pa.Table.from_pylist(rows, schema=schema)
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


# MLflow


def _parse_created(record: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(record["created_at"])


def windows(records: Iterable[dict[str, Any]], width: timedelta) -> list[tuple[datetime, list[dict[str, Any]]]]:
    """Records grouped into windows of `width` aligned on the epoch (so re-exports give the same windows)."""
    seconds = width.total_seconds()
    groups: dict[datetime, list[dict[str, Any]]] = {}
    for r in records:
        start = int(_parse_created(r).timestamp() // seconds * seconds)
        groups.setdefault(datetime.fromtimestamp(start, timezone.utc), []).append(r)
    return sorted(groups.items(), key=lambda item: item[0])


def _metrics(record: dict[str, Any], step: int, entity: Any) -> list[Any]:
    """The old system's per-prediction metrics, at step = the record's id."""
    stamp = int(_parse_created(record).timestamp() * 1000)
    values = {"processing_time": record["processing_time_s"]}
    if record["fake_probability"] is not None:
        values["fake_probability"] = record["fake_probability"]
        values["real_probability"] = 1.0 - record["fake_probability"]
    values.update({f"{n}_fake_probability": p for n, p in (record["model_probabilities"] or {}).items()})
    return [entity(k, float(v), stamp, step) for k, v in values.items() if v is not None]


def export_mlflow(
    records: Sequence[dict[str, Any]],
    tracking_uri: str,
    *,
    experiment: str = "deepfake-history",
    window: timedelta = timedelta(days=1),
) -> list[str]:
    """One MLflow run per time window: per-record metrics, summary metrics and params, and the records
    as artifacts (records.csv, records.json). Returns the run ids."""
    try:
        from mlflow.exceptions import MlflowException
    except ImportError as error:
        raise InvalidInputError(f"--mlflow needs MLflow (the client's `mlflow` extra): {error}") from error
    try:
        return _export_mlflow(records, tracking_uri, experiment, window)
    except MlflowException as error:
        raise DeepfakeError(f"MLflow at {tracking_uri}: {str(error).splitlines()[0]}") from error


def _export_mlflow(records: Sequence[dict[str, Any]], tracking_uri: str, experiment: str, window: timedelta) -> list[str]:
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    run_ids = []
    for start, group in windows(records, window):
        end = start + window
        run = client.create_run(experiment_id, run_name=f"history {start.isoformat()}",
                                tags={"deepfake.window_start": start.isoformat()})
        run_id = run.info.run_id
        verdicts = [r["verdict"] for r in group]
        scored = [r["fake_probability"] for r in group if r["fake_probability"] is not None]
        params = {
            "window_start": start.isoformat(), "window_end": end.isoformat(),
            "kinds": ",".join(sorted({r["kind"] for r in group})),
            "server_urls": ",".join(sorted({r["server_url"] or "-" for r in group}))[:500],
            "settings_sha256": ",".join(sorted({r["settings_sha256"] or "-" for r in group}))[:500],
            "untrained": str(any(r["untrained"] for r in group)),
            "models": ",".join(model_names(group)),
        }
        summary = {"records": len(group), "fake_count": verdicts.count("FAKE"), "real_count": verdicts.count("REAL"),
                   "no_face_count": verdicts.count("NO_FACE")}
        if scored:
            summary["mean_fake_probability"] = sum(scored) / len(scored)
        stamp = int(end.timestamp() * 1000)
        metrics = [Metric(k, float(v), stamp, 0) for k, v in summary.items()]
        for r in group:
            metrics += _metrics(r, r["id"], Metric)
        for i in range(0, len(metrics), MLFLOW_BATCH):
            client.log_batch(run_id, metrics=metrics[i:i + MLFLOW_BATCH],
                             params=[Param(k, v) for k, v in params.items()] if i == 0 else [],
                             tags=[RunTag("deepfake.records", str(len(group)))] if i == 0 else [])
        with tempfile.TemporaryDirectory() as folder:
            Path(folder, "records.csv").write_text(to_csv(group))
            Path(folder, "records.json").write_text(json.dumps(group, indent=1))
            client.log_artifacts(run_id, folder)
        client.set_terminated(run_id)
        run_ids.append(run_id)
    return run_ids
