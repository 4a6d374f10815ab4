"""A stats CSV written by Locust itself, for the parser and the runner's --check-only.

Locust is imported only in a subprocess: importing it monkey-patches the whole
interpreter for gevent, which must not happen to the pytest process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from benchmarks.load.locust_results import stats_csv

WRITER = textwrap.dedent("""
    import csv, json, sys
    from locust.env import Environment
    from locust.stats import PERCENTILES_TO_REPORT, StatsCSV

    env = Environment()
    for ms in range(1, 201):
        env.stats.log_request("grpc", "image/face", float(ms), 1000)
    for ms in (1500.0, 2500.0, 3500.0):
        env.stats.log_request("grpc", "video/4_frames", ms, 4000)
    env.stats.log_error("grpc", "video/4_frames", "boom")  # the last one failed, as Locust logs a failure
    with open(sys.argv[1], "w", newline="") as handle:
        StatsCSV(env, PERCENTILES_TO_REPORT).requests_csv(csv.writer(handle))
    expected = {}
    for entry in (env.stats.get("image/face", "grpc"), env.stats.get("video/4_frames", "grpc"), env.stats.total):
        expected[entry.name] = {"requests": entry.num_requests, "failures": entry.num_failures,
                                "p50": entry.get_response_time_percentile(0.5),
                                "p95": entry.get_response_time_percentile(0.95),
                                "p99": entry.get_response_time_percentile(0.99)}
    print(json.dumps(expected))
""")


@pytest.fixture(scope="session")
def locust_csv(tmp_path_factory):
    """(prefix, what Locust computed per entry): image/face 1..200 ms; video/4_frames 3 requests, 1 failed."""
    prefix = tmp_path_factory.mktemp("locust") / "locust"
    done = subprocess.run([sys.executable, "-c", WRITER, str(stats_csv(prefix))], capture_output=True, text=True,
                          check=True)
    return prefix, json.loads(done.stdout)
