"""`deepfake job submit/status/wait/cancel` against a gateway served by uvicorn (fake SDK client,
real SQLite database and huey queue)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from jobs_helpers import zip_of

sys.path.insert(0, str(Path(__file__).parents[1] / "web"))
from live_app import serve_app  # noqa: E402
from web_fakes import FakeClient, image_bytes  # noqa: E402

from deepfake_client.cli import main  # noqa: E402
from deepfake_client.jobs.api import JobSettings  # noqa: E402
from deepfake_client.jobs.service import GatewayJobs  # noqa: E402
from deepfake_client.records.store import RecordStore  # noqa: E402
from deepfake_client.web import create_app  # noqa: E402

pytest.importorskip("huey", reason="the jobs extra (huey) is not installed")


def serve(tmp_path: Path, workers: int):
    jobs = GatewayJobs(RecordStore(str(tmp_path / "db.sqlite")), f"sqlite:///{tmp_path / 'q.sqlite'}",
                       JobSettings(folder=tmp_path / "jobs"), workers=workers)
    return serve_app(create_app(FakeClient(), jobs=jobs))


def run(argv, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_submit_wait_status_and_cancel(tmp_path, capsys):
    archive = tmp_path / "photos.zip"
    archive.write_bytes(zip_of({f"{i}.png": image_bytes(50, 30) for i in range(6)}))
    with serve(tmp_path, workers=2) as address:
        gateway = ["--gateway", f"http://{address}"]
        code, out, _ = run(["job", "submit", archive, *gateway, "--wait", "--json", "--timeout", "300"], capsys)
        job = json.loads(out)
        assert code == 1 and job["state"] == "done" and job["result"]["counts"] == {"FAKE": 6}  # exit 1: FAKE found
        code, out, _ = run(["job", "status", job["id"], *gateway, "--items", "2"], capsys)
        assert code == 0 and f"{job['id']}  images  done  6/6" in out
        assert "  0.png  FAKE  0.8\n  1.png  FAKE  0.8\n" in out and "2.png" not in out
        code, _, err = run(["job", "cancel", job["id"], *gateway], capsys)
        assert code == 4 and "already done" in err
        code, _, err = run(["job", "submit", tmp_path / "missing.mp4", *gateway], capsys)
        assert code == 4 and "is not a file" in err
    with serve(tmp_path, workers=0) as address:  # nothing consumes the queue: the job waits
        gateway = ["--gateway", f"http://{address}"]
        code, out, _ = run(["job", "submit", archive, *gateway], capsys)
        job_id = out.strip()
        code, _, err = run(["job", "wait", job_id, *gateway, "--timeout", "0.5"], capsys)
        assert code == 6 and "did not end" in err
        code, out, _ = run(["job", "cancel", job_id, *gateway], capsys)
        assert code == 0 and "cancelled" in out
    code, _, err = run(["job", "status", job_id, "--gateway", "http://127.0.0.1:9"], capsys)
    assert code == 3 and "cannot reach the gateway" in err
