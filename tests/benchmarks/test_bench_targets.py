"""Targets files: parsing with clear errors, checking, the pass/fail table."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from benchmarks.load.locust_results import RequestStats
from benchmarks.load.targets import (
    TargetsError,
    check,
    duration_seconds,
    load_targets,
    parse_targets,
    render_markdown,
    render_table,
)

TARGETS_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "load" / "targets"


def document(**scenario_overrides) -> dict:
    scenario = {"name": "s1", "users": 2, "run_time": "30s", "mix": {"face": 1},
                "targets": [{"request": "total", "p95_ms": 100, "max_error_rate": 0.01}]}
    scenario.update(scenario_overrides)
    return {"description": "test", "scenarios": [scenario]}


def stats(name: str = "total", requests: int = 100, failures: int = 0, rps: float = 10.0,
          p50: float = 50.0, p95: float = 90.0, p99: float = 120.0) -> RequestStats:
    return RequestStats(name, requests, failures, rps, p50, p95, p99, mean_ms=60.0, max_ms=200.0)


def test_a_scenario_gets_its_fields_and_the_documented_defaults():
    (scenario,) = parse_targets(document()).scenarios
    assert (scenario.name, scenario.users, scenario.run_time) == ("s1", 2, "30s")
    assert scenario.mix == {"face": 1.0}
    assert scenario.spawn_rate is None and scenario.processes == 1
    assert scenario.stop_timeout == "60s" and scenario.video_frames == 32
    assert scenario.targets[0].request == "total"
    assert scenario.targets[0].limits == {"p95_ms": 100.0, "max_error_rate": 0.01}
    assert scenario.mix_argument == "face=1"


@pytest.mark.parametrize("overrides, fragment", [
    ({"usres": 3}, "unknown keys ['usres']"),
    ({"users": 0}, "'users' must be a positive int"),
    ({"users": 1.5}, "'users' must be a positive int"),
    ({"run_time": "30 seconds"}, "'run_time' must be a duration"),
    ({"mix": {"selfie": 1}}, "unknown request kinds ['selfie']"),
    ({"mix": {"face": 0}}, "at least one > 0"),
    ({"targets": []}, "'targets' must be a non-empty list"),
    ({"targets": [{"request": "total", "p95": 10}]}, "unknown metrics ['p95']"),
    ({"targets": [{"request": "total", "p95_ms": -1}]}, "p95_ms must be a number >= 0"),
    ({"targets": [{"request": "total", "p95_ms": "fast"}]}, "p95_ms must be a number >= 0"),
    ({"targets": [{"request": "total"}]}, "no metric to check"),
    ({"targets": [{"p95_ms": 10}]}, "expected a mapping with 'request'"),
    ({"name": "has space"}, "'name' must be a word"),
])
def test_bad_scenarios_are_refused_with_where_and_why(overrides, fragment):
    with pytest.raises(TargetsError, match="scenarios\\[0\\]") as error:
        parse_targets(document(**overrides), source="t.yaml")
    assert fragment in str(error.value)


def test_file_level_errors():
    with pytest.raises(TargetsError, match="non-empty list 'scenarios'"):
        parse_targets({"description": "x"})
    with pytest.raises(TargetsError, match="unknown keys"):
        parse_targets({**document(), "extra": 1})
    twice = document()
    twice["scenarios"] *= 2
    with pytest.raises(TargetsError, match="unique"):
        parse_targets(twice)


def test_load_targets_reports_missing_and_invalid_files(tmp_path):
    with pytest.raises(TargetsError, match="not found"):
        load_targets(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("scenarios: [unclosed\n")
    with pytest.raises(TargetsError, match="not valid YAML"):
        load_targets(broken)


def test_durations_in_seconds():
    assert duration_seconds("90s") == 90
    assert duration_seconds("5m") == 300
    assert duration_seconds("1h30m") == 5400
    assert duration_seconds("2m5s") == 125
    for bad in ("", "5", "m", "1.5m", "5 m"):
        with pytest.raises(TargetsError):
            duration_seconds(bad)


def test_maxima_and_minima_pass_at_the_limit_and_fail_beyond_it():
    scenario = parse_targets(document(targets=[
        {"request": "total", "p50_ms": 50, "p95_ms": 89, "p99_ms": 120, "max_error_rate": 0.0,
         "min_throughput_rps": 10}])).scenarios[0]
    checks = {c.metric: c for c in check(scenario, {"total": stats()})}
    assert {m: c.passed for m, c in checks.items()} == {
        "p50_ms": True, "p95_ms": False, "p99_ms": True, "max_error_rate": True, "min_throughput_rps": True}
    assert checks["p95_ms"].measured == 90.0


def test_error_rate_and_throughput_can_fail():
    scenario = parse_targets(document(targets=[
        {"request": "image/face", "max_error_rate": 0.01, "min_throughput_rps": 5}])).scenarios[0]
    checks = check(scenario, {"image/face": stats("image/face", requests=50, failures=1, rps=4.9)})
    assert [c.passed for c in checks] == [False, False]
    assert checks[0].measured == pytest.approx(0.02)


def test_overload_refusals_count_apart_from_errors():
    """A rejected/ row (the server's overload refusal) is not an error; it has its own limit."""
    scenario = parse_targets(document(targets=[
        {"request": "total", "max_error_rate": 0, "max_rejected_rate": 0.1},
        {"request": "image/face", "max_error_rate": 0, "max_rejected_rate": 0.1}])).scenarios[0]
    rows = {"total": stats(requests=10, failures=3), "image/face": stats("image/face", requests=8, failures=1),
            "rejected/image/face": stats("rejected/image/face", requests=2, failures=2)}
    measured = {(c.request, c.metric): c.measured for c in check(scenario, rows)}
    assert measured[("total", "max_error_rate")] == pytest.approx(0.1)  # 3 failures, 2 of them refusals
    assert measured[("total", "max_rejected_rate")] == pytest.approx(0.2)
    assert measured[("image/face", "max_error_rate")] == pytest.approx(0.1)  # 1 of 10 sent
    assert measured[("image/face", "max_rejected_rate")] == pytest.approx(0.2)


def test_a_request_that_was_never_made_fails_every_check():
    scenario = parse_targets(document(targets=[{"request": "video/32_frames", "p95_ms": 1e9,
                                                "max_error_rate": 1}])).scenarios[0]
    for rows in ({}, {"video/32_frames": stats("video/32_frames", requests=0, p95=math.nan)}):
        checks = check(scenario, rows)
        assert [c.passed for c in checks] == [False, False]
        assert all(c.measured is None for c in checks)


def test_a_nan_percentile_fails():
    scenario = parse_targets(document()).scenarios[0]
    assert not check(scenario, {"total": stats(p95=math.nan)})[0].passed


def test_tables_show_every_check_and_the_verdict():
    scenario = parse_targets(document()).scenarios[0]
    checks = check(scenario, {"total": stats(p95=150.0)})
    table = render_table(checks)
    assert "p95_ms" in table and "<= 100ms" in table and "150ms" in table and "FAIL" in table
    assert table.splitlines()[-1] == "1 of 2 checks passed; 1 FAILED"
    markdown = render_markdown(checks)
    assert markdown.startswith("| scenario | request |") and "| FAIL |" in markdown


@pytest.mark.parametrize("name", ["cpu.yaml", "h100.yaml", "smoke.yaml"])
def test_the_shipped_targets_files_are_valid(name):
    assert load_targets(TARGETS_DIR / name).scenarios


def test_the_h100_file_holds_the_design_targets():
    """docs/design.md §9: >= 1,000 images/s at p95 <= 50 ms, single-image p50 <= 15 ms, 32-frame video <= 1 s."""
    limits = {(s.name, t.request, metric): value
              for s in load_targets(TARGETS_DIR / "h100.yaml").scenarios
              for t in s.targets for metric, value in t.limits.items()}
    throughput = {key: value for key, value in limits.items() if key[2] == "min_throughput_rps"}
    assert max(throughput.values()) >= 1000
    assert any(m == "p95_ms" and v <= 50 for (_, _, m), v in limits.items())
    assert any(r == "image/face" and m == "p50_ms" and v <= 15 for (_, r, m), v in limits.items())
    assert any(r == "video/32_frames" and v <= 1000 for (_, r, m), v in limits.items() if m.endswith("_ms"))
    document_ = yaml.safe_load((TARGETS_DIR / "h100.yaml").read_text())
    assert all(s.get("video_frames", 32) == 32 for s in document_["scenarios"])
