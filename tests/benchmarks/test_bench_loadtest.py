"""The headless runner: the Locust command it builds, its exit statuses, re-checking earlier results."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from benchmarks.load import loadtest
from benchmarks.load.targets import parse_targets


def scenario(**overrides):
    item = {"name": "s", "users": 4, "run_time": "20s", "mix": {"face": 2, "video": 1}, "video_frames": 8,
            "targets": [{"request": "total", "p95_ms": 100}]}
    item.update(overrides)
    return parse_targets({"scenarios": [item]}).scenarios[0]


def test_locust_command_for_grpc(tmp_path):
    command = loadtest.locust_command(scenario(), "grpc://localhost:8001", tmp_path)
    assert command[-1] == "GrpcTritonUser"
    text = " ".join(command)
    for part in ("--headless", "--host grpc://localhost:8001", "--users 4", "--spawn-rate 4", "--run-time 20s",
                 "--stop-timeout 60s", f"--csv {tmp_path / 'locust'}", f"--html {tmp_path / 'report.html'}",
                 "--exit-code-on-error 0", "--mix face=2,video=1", "--video-frames 8", str(loadtest.LOCUSTFILE)):
        assert part in text
    assert "--processes" not in command


def test_locust_command_for_http_with_overrides(tmp_path):
    command = loadtest.locust_command(scenario(spawn_rate=0.5, processes=3), "http://host:8000", tmp_path,
                                      run_time="5s")
    assert command[-1] == "HttpTritonUser"
    text = " ".join(command)
    assert "--host http://host:8000" in text and "--spawn-rate 0.5" in text and "--run-time 5s" in text
    assert "--processes 3" in text
    # no scheme: gRPC, the SDK's default
    assert loadtest.locust_command(scenario(), "localhost:8001", tmp_path)[-1] == "GrpcTritonUser"


@pytest.mark.parametrize("arguments, message", [
    (["--url", "ftp://x:1"], "unsupported URL scheme"),
    (["--run-time", "soon"], "not a duration"),
    (["--scenario", "other"], "no scenario 'other'"),
])
def test_unusable_arguments_exit_2_with_the_reason(tmp_path, capsys, arguments, message):
    targets = tmp_path / "t.yaml"
    targets.write_text(yaml.safe_dump({"scenarios": [{"name": "s", "users": 1, "run_time": "5s", "mix": {"face": 1},
                                                      "targets": [{"request": "total", "p95_ms": 1}]}]}))
    code = loadtest.main(["--targets", str(targets), "--out", str(tmp_path / "out"), *arguments])
    assert code == loadtest.EXIT_USAGE
    assert message in capsys.readouterr().err


def test_a_bad_targets_file_exits_2(tmp_path, capsys):
    targets = tmp_path / "t.yaml"
    targets.write_text("scenarios: []\n")
    assert loadtest.main(["--targets", str(targets), "--out", str(tmp_path)]) == loadtest.EXIT_USAGE
    assert "non-empty list 'scenarios'" in capsys.readouterr().err


def write_targets(path, **limits):
    path.write_text(yaml.safe_dump({"scenarios": [{
        "name": "s", "users": 1, "run_time": "5s", "mix": {"face": 1},
        "targets": [{"request": "image/face", **limits}, {"request": "total", "max_error_rate": 0.01}]}]}))
    return path


def test_check_only_rechecks_earlier_results(tmp_path, locust_csv, capsys):
    prefix, _ = locust_csv
    out = tmp_path / "out"
    (out / "s").mkdir(parents=True)
    shutil.copy(f"{prefix}_stats.csv", out / "s" / "locust_stats.csv")
    # image/face: 200 requests of 1..200 ms; total: 1 failure in 203
    lax = write_targets(tmp_path / "lax.yaml", p95_ms=1000)
    strict = write_targets(tmp_path / "strict.yaml", p95_ms=100)
    code = loadtest.main(["--targets", str(lax), "--out", str(out), "--check-only"])
    assert code == loadtest.EXIT_PASSED, capsys.readouterr().out
    record = json.loads((out / "checks.json").read_text())
    assert record["passed"] and record["scenarios"]["s"]["stats"]["image/face"]["requests"] == 200
    assert record["scenarios"]["s"]["rejected"] == 0 and "0 rejected as overloaded" in capsys.readouterr().out
    assert loadtest.main(["--targets", str(strict), "--out", str(out), "--check-only"]) == loadtest.EXIT_MISSED
    printed = capsys.readouterr().out
    assert "FAIL" in printed and "1 of 2 checks passed; 1 FAILED" in printed
    assert "| s | image/face | p95_ms | <= 100ms |" in (out / "checks.md").read_text()


def test_check_only_without_results_exits_3(tmp_path, capsys):
    targets = write_targets(tmp_path / "t.yaml", p95_ms=1)
    assert loadtest.main(["--targets", str(targets), "--out", str(tmp_path / "empty"), "--check-only"]) == \
        loadtest.EXIT_NO_RESULTS
    assert "did Locust run" in capsys.readouterr().err
