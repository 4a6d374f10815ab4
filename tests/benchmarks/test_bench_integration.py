"""The load tools against the real Triton server (cpu flavour): a CI smoke run of the Locust runner,
its failure on an impossible target (over HTTP), and one level of the capacity sweep."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from benchmarks.common.server import Endpoint
from benchmarks.load.locust_results import REJECTED_PREFIX, RETRIED_SUFFIX, read_stats, rejected_count
from benchmarks.load.sweep import run_sweep, write_sweep_report
from benchmarks.load.workload import Workload
from deepfake_models import CLASSIFIER_NAMES

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

REPO_ROOT = Path(__file__).resolve().parents[2]
SMOKE_TARGETS = REPO_ROOT / "benchmarks" / "load" / "targets" / "smoke.yaml"


def run_loadtest(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmarks.load.loadtest", *arguments], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=1500)


def test_smoke_run_writes_every_output_and_meets_the_lax_targets(deepfake_server, tmp_path):
    out = tmp_path / "smoke"
    done = run_loadtest("--url", f"grpc://{deepfake_server.grpc_url}", "--targets", str(SMOKE_TARGETS),
                        "--out", str(out), "--run-time", "8s")
    assert done.returncode == 0, done.stdout + done.stderr + (out / "smoke" / "locust.log").read_text()
    folder = out / "smoke"
    for name in ("locust_stats.csv", "locust_failures.csv", "locust_stats_history.csv", "report.html", "locust.log"):
        assert (folder / name).stat().st_size > 0, name
    stats = read_stats(folder / "locust_stats.csv")
    # Every failure is an overload refusal of the 2-core cpu flavour, in its own rejected/ row.
    assert stats["total"].requests > 0 and stats["total"].failures == rejected_count(stats)
    kinds = {"image/face", "image/no_face", "image/two_faces", "video/4_frames"}
    # Videos are bulk work: the refusals they absorbed by retrying have their own rows too.
    assert set(stats) - {"total"} <= kinds | {REJECTED_PREFIX + kind for kind in kinds} \
        | {REJECTED_PREFIX + "video/4_frames" + RETRIED_SUFFIX}
    record = json.loads((out / "checks.json").read_text())
    assert record["passed"] and all(c["passed"] for c in record["scenarios"]["smoke"]["checks"])
    assert "3 of 3 checks passed" in done.stdout


def test_an_impossible_target_fails_the_run_over_http(deepfake_server, tmp_path):
    targets = tmp_path / "impossible.yaml"
    targets.write_text(yaml.safe_dump({"scenarios": [{
        "name": "impossible", "users": 1, "run_time": "3s", "stop_timeout": "300s", "mix": {"face": 1},
        "targets": [{"request": "image/face", "p50_ms": 0.001, "max_error_rate": 0}]}]}))
    out = tmp_path / "impossible"
    done = run_loadtest("--url", f"http://{deepfake_server.http_url}", "--targets", str(targets), "--out", str(out))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "HttpTritonUser" in (out / "impossible" / "locust.log").read_text()
    lines = {line.split()[2]: line.split()[-1] for line in done.stdout.splitlines() if line.startswith("impossible")}
    assert lines == {"p50_ms": "FAIL", "max_error_rate": "pass"}  # it ran without errors, just not in 1 µs
    assert json.loads((out / "checks.json").read_text())["passed"] is False


def test_one_sweep_level_reads_the_queue_and_compute_time_of_every_model(deepfake_server, tmp_path):
    endpoint = Endpoint(f"grpc://{deepfake_server.grpc_url}", deepfake_server.metrics_url)
    (level,) = run_sweep(endpoint, Workload({"face": 1}), levels=[2], duration_s=5.0, warmup_s=0.0)
    assert level.summary.requests >= 1 and level.summary.failures == 0
    ensemble = level.models["deepfake_detector"]
    assert ensemble.requests == level.summary.requests  # the server saw exactly what the client sent
    assert level.rows_per_image == pytest.approx(1.0)  # one face per astronaut
    for name in ("face_detector", *CLASSIFIER_NAMES):
        model = level.models[name]
        assert model.requests == ensemble.requests
        assert model.compute_ms > 0 and model.queue_ms >= 0 and model.average_batch >= 1 and model.busy_fraction > 0
    for name in CLASSIFIER_NAMES:  # one instance each: it cannot compute for longer than the interval
        assert level.models[name].busy_fraction <= 1.02
    assert not math.isnan(level.classifiers_ms_per_row) and level.classifiers_ms_per_row > 0
    write_sweep_report(tmp_path, "Sweep", {"machine_description": "ci", "url": endpoint.url, "mix": "face=1",
                                           "duration_s": 5.0, "warmup_s": 0.0, "slo_p95_ms": 1e9},
                       [level], level, None)
    assert (tmp_path / "capacity.md").exists() and (tmp_path / "time_per_model.png").exists()
