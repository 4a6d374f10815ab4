"""`deepfake history` on a real SQLite file, and its MLflow export read back with MLflow's own client
(local file store and SQLite store)."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "web"))
from web_fakes import face_result, image_bytes, no_face_result  # noqa: E402

from deepfake_client.cli import main  # noqa: E402
from deepfake_client.records.capture import ServerIdentity, detection_record  # noqa: E402
from deepfake_client.records.store import RecordStore  # noqa: E402

DAY = datetime(2026, 3, 2, tzinfo=timezone.utc)


@pytest.fixture
def db(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'records.sqlite'}"
    store = RecordStore(url)
    records = []
    for i in range(6):  # three on one day, three on the next
        result = no_face_result() if i == 4 else face_result(0.2 + 0.1 * i)
        records.append(detection_record(result, kind="image", source="test", data=image_bytes(40 + i, 30),
                                        filename=f"f{i}.png", processing_time_s=0.5 + i,
                                        identity=ServerIdentity("triton:8001", "ab" * 32),
                                        created_at=DAY + timedelta(hours=i * 9)))
    store.add_many(records)
    store.close()
    return url


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_history_lists_with_filters_and_shows_one(db, capsys):
    code, out, _ = run(capsys, "history", "--db", db, "--json")
    assert code == 0 and json.loads(out)["total"] == 6
    code, out, _ = run(capsys, "history", "list", "--db", db, "--verdict", "real", "--json")
    assert {r["verdict"] for r in json.loads(out)["records"]} == {"REAL"} and json.loads(out)["total"] == 4
    code, out, _ = run(capsys, "history", "list", "--db", db, "--until", "2026-03-02T12:00:00Z", "--limit", "1", "--json")
    assert json.loads(out)["total"] == 2 and len(json.loads(out)["records"]) == 1
    code, out, _ = run(capsys, "history", "--db", db)
    assert code == 0 and "f5.png" in out.splitlines()[1]  # a table, newest first
    code, out, _ = run(capsys, "history", "show", "6", "--db", db)
    assert json.loads(out)["filename"] == "f5.png"


def test_history_seen_delete_and_prune(db, capsys, tmp_path):
    photo = tmp_path / "f1.png"
    photo.write_bytes(image_bytes(41, 30))
    code, out, _ = run(capsys, "history", "seen", "--file", str(photo), "--db", db, "--json")
    assert code == 0 and json.loads(out)["count"] == 1 and json.loads(out)["latest"]["filename"] == "f1.png"
    sha = json.loads(out)["sha256"]
    assert run(capsys, "history", "delete", "--sha256", sha, "--db", db, "--json")[1].strip() == '{"deleted": 1}'
    assert run(capsys, "history", "delete", "--id", "1", "--db", db, "--json")[1].strip() == '{"deleted": 1}'
    assert run(capsys, "history", "prune", "--keep", "2", "--db", db, "--json")[1].strip() == '{"deleted": 2}'
    code, out, _ = run(capsys, "history", "seen", "--file", str(photo), "--db", db)
    assert "never seen" in out


@pytest.mark.parametrize("argv, code", [
    (["history", "list", "--since", "last tuesday"], 4),
    (["history", "seen", "--sha256", "xyz"], 4),
    (["history", "show", "999"], 4),
    (["history", "prune"], 4),
    (["history", "export", "--out", "x.xlsx"], 4),
])
def test_bad_history_input_is_a_message_and_an_exit_code(db, capsys, argv, code):
    got, out, err = run(capsys, *argv, "--db", db)
    assert got == code and err.startswith("error: ") and "Traceback" not in err


def test_an_unreachable_database_is_exit_7(capsys):
    code, _, err = run(capsys, "history", "--db", "postgresql://u:secret@127.0.0.1:1/x")
    assert code == 7 and "secret" not in err and "cannot open the record database" in err


def test_export_csv_and_parquet_files(db, capsys, tmp_path):
    import pyarrow.parquet as pq

    assert run(capsys, "history", "export", "--db", db, "--verdict", "FAKE", "--out", str(tmp_path / "h.csv"))[0] == 0
    lines = (tmp_path / "h.csv").read_text().splitlines()
    assert lines[0].startswith("id,created_at,kind") and len(lines) == 1 + 1  # only 0.7 is above 0.5
    assert run(capsys, "history", "export", "--db", db, "--out", str(tmp_path / "h.parquet"))[0] == 0
    assert pq.read_table(tmp_path / "h.parquet").num_rows == 6


@pytest.mark.parametrize("store", ["file", "sqlite"])
def test_mlflow_export_reads_back_with_mlflows_client(db, capsys, tmp_path, monkeypatch, store):
    mlflow = pytest.importorskip("mlflow", reason="the mlflow extra is not installed")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps the file store, in maintenance
    uri = (tmp_path / "mlruns").as_uri() if store == "file" else f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)  # a database store puts artifacts under ./mlruns by default
    code, out, _ = run(capsys, "history", "export", "--db", db, "--mlflow", uri, "--window", "1d", "--json")
    assert code == 0 and json.loads(out)["records"] == 6
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("deepfake-history")
    runs = sorted(client.search_runs([experiment.experiment_id]), key=lambda r: r.data.params["window_start"])
    assert [r.info.run_id for r in runs] == sorted(json.loads(out)["runs"], key=[r.info.run_id for r in runs].index)
    assert [r.data.params["window_start"] for r in runs] == ["2026-03-02T00:00:00+00:00", "2026-03-03T00:00:00+00:00"]
    first = runs[0]
    assert first.data.metrics["records"] == 3 and first.data.metrics["fake_count"] == 0
    history = client.get_metric_history(first.info.run_id, "fake_probability")
    assert [(m.step, round(m.value, 3)) for m in history] == [(1, 0.2), (2, 0.3), (3, 0.4)]
    real = client.get_metric_history(first.info.run_id, "real_probability")
    assert [round(m.value, 3) for m in real] == [0.8, 0.7, 0.6]
    assert [m.value for m in client.get_metric_history(first.info.run_id, "processing_time")] == [0.5, 1.5, 2.5]
    assert len(client.get_metric_history(first.info.run_id, "xception_fake_probability")) == 3
    second = runs[1]
    assert second.data.metrics["no_face_count"] == 1 and second.data.metrics["fake_count"] == 1
    artifacts = {a.path for a in client.list_artifacts(second.info.run_id)}
    assert artifacts == {"records.csv", "records.json"}
    assert second.info.artifact_uri.startswith((tmp_path.as_uri(), str(tmp_path), "mlflow-artifacts"))
    local = client.download_artifacts(second.info.run_id, "records.json", str(tmp_path))
    assert [r["filename"] for r in json.loads(Path(local).read_text())] == ["f3.png", "f4.png", "f5.png"]
