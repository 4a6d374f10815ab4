"""Headless Locust runs against a targets file: every scenario in turn, then a pass/fail table.

    python -m benchmarks.load.loadtest --url grpc://localhost:8001 \
        --targets benchmarks/load/targets/cpu.yaml --out reports/loadtest

Writes, per scenario, OUT/<scenario>/locust_stats.csv (+ _failures, _exceptions,
_stats_history), report.html and locust.log; then OUT/checks.json and
OUT/checks.md. `--check-only` re-checks an earlier OUT against (other) targets
without sending anything.

Exit status: 0 every target met; 1 a target missed; 2 unusable arguments or
targets file; 3 Locust produced no results (see OUT/<scenario>/locust.log).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from benchmarks.common.report import write_report
from benchmarks.load.locust_results import (
    TOTAL,
    LocustResultsError,
    RequestStats,
    read_stats,
    rejected_count,
    stats_csv,
)
from benchmarks.load.targets import (
    Check,
    Scenario,
    TargetsError,
    check,
    duration_seconds,
    load_targets,
    render_markdown,
    render_table,
)
from deepfake_client.transport import split_url

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
USER_CLASSES = {"grpc": "GrpcTritonUser", "http": "HttpTritonUser"}
STARTUP_ALLOWANCE_S = 180  # Locust start and workload encoding, on top of run and stop time
EXIT_PASSED, EXIT_MISSED, EXIT_USAGE, EXIT_NO_RESULTS = 0, 1, 2, 3


def locust_command(scenario: Scenario, url: str, out: Path, run_time: str | None = None) -> list[str]:
    host, protocol = split_url(url, None)
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "--host", f"{protocol}://{host}",
        "--users", str(scenario.users),
        "--spawn-rate", f"{scenario.spawn_rate or scenario.users:g}",
        "--run-time", run_time or scenario.run_time,
        "--stop-timeout", scenario.stop_timeout,
        "--csv", str(out / "locust"), "--csv-full-history",
        "--html", str(out / "report.html"),
        "--only-summary",
        "--exit-code-on-error", "0",  # failures are judged by the targets, not by Locust
        "--mix", scenario.mix_argument,
        "--video-frames", str(scenario.video_frames),
    ]
    if scenario.processes > 1:
        command += ["--processes", str(scenario.processes)]
    return command + [USER_CLASSES[protocol]]


def run_locust(scenario: Scenario, url: str, out: Path, run_time: str | None = None) -> int:
    out.mkdir(parents=True, exist_ok=True)
    for old in (*out.glob("locust_*.csv"), out / "report.html"):  # never judge a previous run's results
        old.unlink(missing_ok=True)
    command = locust_command(scenario, url, out, run_time)
    timeout = duration_seconds(run_time or scenario.run_time) + duration_seconds(scenario.stop_timeout)
    with open(out / "locust.log", "w") as log:
        log.write(" ".join(command) + "\n\n")
        log.flush()
        try:
            return subprocess.run(command, stdout=log, stderr=subprocess.STDOUT,
                                  timeout=timeout + STARTUP_ALLOWANCE_S).returncode
        except subprocess.TimeoutExpired:
            log.write(f"\nstopped: Locust ran past {timeout + STARTUP_ALLOWANCE_S} s\n")
            return -1


def _stats_record(stats: dict[str, RequestStats]) -> dict:
    return {name: {**asdict(row), "error_rate": row.error_rate} for name, row in stats.items()}


def summary_markdown(targets_path: Path, url: str, checks: Sequence[Check], problems: Sequence[str]) -> str:
    problem_lines = "".join(f"- {problem}\n" for problem in problems)
    return f"# Load test: {targets_path}\n\nServer: `{url}`\n\n{render_markdown(checks)}\n{problem_lines}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=Path, required=True, help="targets YAML file")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--url", default="grpc://localhost:8001",
                        help="server: grpc://host:port (GrpcTritonUser) or http://host:port (HttpTritonUser)")
    parser.add_argument("--scenario", action="append", help="run only this scenario (repeatable)")
    parser.add_argument("--run-time", help="override every scenario's run time (e.g. 10s for a smoke run)")
    parser.add_argument("--check-only", action="store_true", help="check the results already in --out")
    args = parser.parse_args(argv)

    try:
        targets = load_targets(args.targets)
        scenarios = [targets.scenario(name) for name in args.scenario] if args.scenario else list(targets.scenarios)
        if args.run_time:
            duration_seconds(args.run_time)
        host, protocol = split_url(args.url, None)
    except (TargetsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    checks: list[Check] = []
    problems: list[str] = []
    without_results = []
    record: dict = {"targets": str(args.targets), "url": f"{protocol}://{host}", "scenarios": {}}
    for scenario in scenarios:
        folder = args.out / scenario.name
        if not args.check_only:
            print(f"[{scenario.name}] {scenario.users} users, {args.run_time or scenario.run_time}, "
                  f"mix {scenario.mix_argument} ...", flush=True)
            code = run_locust(scenario, args.url, folder, args.run_time)
            if code != 0:
                problems.append(f"{scenario.name}: Locust exited with {code} (see {folder / 'locust.log'})")
        try:
            stats = read_stats(stats_csv(folder / "locust"))
        except LocustResultsError as exc:
            problems.append(f"{scenario.name}: {exc}")
            without_results.append(scenario.name)
            continue
        scenario_checks = check(scenario, stats)
        checks += scenario_checks
        record["scenarios"][scenario.name] = {"stats": _stats_record(stats), "rejected": rejected_count(stats),
                                              "checks": [c.to_dict() for c in scenario_checks]}
        print(f"[{scenario.name}] {stats[TOTAL].requests} requests, {rejected_count(stats)} rejected as overloaded",
              flush=True)

    record["problems"] = problems
    record["passed"] = bool(checks) and not problems and all(c.passed for c in checks)
    write_report(args.out, "checks", record, summary_markdown(args.targets, record["url"], checks, problems))
    print(render_table(checks))
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    if without_results:
        return EXIT_NO_RESULTS
    return EXIT_PASSED if record["passed"] else EXIT_MISSED


if __name__ == "__main__":
    raise SystemExit(main())
