"""Reading Locust's stats CSV: checked against a file written by Locust's own CSV writer (conftest.py)."""

from __future__ import annotations

import pytest

from benchmarks.load.locust_results import (
    LocustResultsError,
    read_stats,
    rejected_count,
    reported_name,
    stats_csv,
    three_significant_digits,
)
from deepfake_client import InvalidImageError, OverloadedError, ServerUnavailableError

HEADER = "Type,Name,Request Count,Failure Count,Requests/s,50%,95%,99%,Average Response Time,Max Response Time"


def write_rows(path, rows):
    path.write_text(HEADER + "\n" + "\n".join(",".join(map(str, row)) for row in rows) + "\n")
    return path


def test_rows_match_what_locust_computed(locust_csv):
    prefix, expected = locust_csv
    rows = read_stats(stats_csv(prefix))
    assert set(rows) == {"image/face", "video/4_frames", "total"}
    for locust_name, ours in (("image/face", "image/face"), ("video/4_frames", "video/4_frames"),
                              ("Aggregated", "total")):
        row, want = rows[ours], expected[locust_name]
        assert (row.requests, row.failures) == (want["requests"], want["failures"])
        assert (row.p50_ms, row.p95_ms, row.p99_ms) == (want["p50"], want["p95"], want["p99"])
    assert rows["video/4_frames"].error_rate == pytest.approx(1 / 3)
    assert rows["total"].requests == 203 and rows["total"].failures == 1


def test_missing_and_foreign_files_are_reported(tmp_path):
    with pytest.raises(LocustResultsError, match="did Locust run"):
        read_stats(tmp_path / "absent_stats.csv")
    foreign = tmp_path / "other.csv"
    foreign.write_text("a,b\n1,2\n")
    with pytest.raises(LocustResultsError, match="not a Locust stats CSV"):
        read_stats(foreign)


@pytest.mark.parametrize("ms, bucket", [(0.4, 0), (99.6, 100), (999.4, 999), (1234.0, 1230), (2345.0, 2340),
                                        (9996.0, 10000), (12345.0, 12300), (123456.0, 123000)])
def test_response_times_keep_three_significant_digits(ms, bucket):
    assert three_significant_digits(ms) == bucket


def test_refusals_have_their_own_rows_and_are_counted(tmp_path):
    assert reported_name("image/face", OverloadedError("queue full")) == "rejected/image/face"
    for other in (None, ServerUnavailableError("down"), InvalidImageError("bad")):
        assert reported_name("image/face", other) == "image/face"
    path = write_rows(tmp_path / "s_stats.csv", [
        ("grpc", "image/face", 10, 0, 1.0, 100, 200, 300, 120, 400),
        ("grpc", "rejected/image/face", 7, 7, 0.7, 2, 3, 3, 2, 5),
        ("grpc", "rejected/video/4_frames", 2, 2, 0.2, 9, 9, 9, 9, 9),
        ("", "Aggregated", 19, 9, 1.9, 50, 200, 300, 70, 400),
    ])
    stats = read_stats(path)
    assert rejected_count(stats) == 9
    assert stats["image/face"].failures == 0  # the accepted requests' row holds no refusal
    assert rejected_count({k: v for k, v in stats.items() if not k.startswith("rejected/")}) == 0
