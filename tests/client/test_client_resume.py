"""`deepfake evaluate` / `calibrate`: --concurrency, each score written as it arrives
(scores.jsonl), and --resume after an interruption without scoring anything twice (issue 17)."""

from __future__ import annotations

import json
import os

import pytest
from client_fakes import FakeTransport, fake_client
from test_client_cli import labelled_folder, run, xception_knows

from deepfake_client import cli
from deepfake_client.cli import INTERRUPTED, ExitCode
from deepfake_client.score_log import SCORES_FILE
from deepfake_contract import PRIORITY_BULK, PRIORITY_INTERACTIVE
from deepfake_contract.parameters import encode

IMAGES, VIDEO_FRAMES = 6, 4  # labelled_folder: 6 images and one video, sampled at --frames 4


@pytest.fixture
def server(monkeypatch):
    """The CLI on a FakeTransport that scores like xception_knows and can be told to interrupt."""
    transport = FakeTransport(xception_knows)
    transport.interrupt_after = None  # requests answered before a Ctrl-C arrives

    def respond(image: bytes):
        if transport.interrupt_after is not None and len(transport.calls) > transport.interrupt_after:
            raise KeyboardInterrupt
        return xception_knows(image)

    transport.respond = respond
    monkeypatch.setattr(cli, "open_client", lambda args: fake_client(transport, concurrency=args.concurrency,
                                                                     priority=args.priority))
    return transport


def records(folder) -> list[dict]:
    lines = (folder / SCORES_FILE).read_text().splitlines()
    return [json.loads(line) for line in lines[1:]]  # after the header


def evaluate(folder, out, *extra):
    return ["evaluate", folder, "--out", out, "--frames", VIDEO_FRAMES, "--concurrency", 1, "--no-progress", *extra]


def test_an_interrupted_evaluation_resumes_with_the_rest_and_reports_as_a_clean_run(server, tmp_path, capsys):
    folder = labelled_folder(tmp_path)
    clean, resumed = tmp_path / "clean", tmp_path / "resumed"
    assert run(evaluate(folder, clean), capsys)[0] == ExitCode.REAL
    clean_calls = len(server.calls)
    assert clean_calls == IMAGES + VIDEO_FRAMES

    server.calls.clear()
    server.interrupt_after = 3
    code, _, err = run(evaluate(folder, resumed), capsys)
    assert code == INTERRUPTED and "--resume" in err and str(resumed / SCORES_FILE) in err
    assert len(records(resumed)) == 3  # each score was written as it arrived
    assert not (resumed / "report.json").exists()

    server.calls.clear()
    server.interrupt_after = None
    code, _, _ = run(evaluate(folder, resumed, "--resume"), capsys)
    assert code == ExitCode.REAL
    assert len(server.calls) == clean_calls - 3  # only what was not recorded
    assert json.loads((resumed / "report.json").read_text()) == json.loads((clean / "report.json").read_text())


def test_a_torn_last_line_is_scored_again_and_a_changed_file_too(server, tmp_path, capsys):
    folder = labelled_folder(tmp_path)
    out = tmp_path / "report"
    run(evaluate(folder, out), capsys)
    expected = json.loads((out / "report.json").read_text())
    log = out / SCORES_FILE
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:-1]) + lines[-1][:25])  # killed while writing the video's line
    changed = folder / "real" / "r0.png"
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))

    server.calls.clear()
    code, _, _ = run(evaluate(folder, out, "--resume"), capsys)
    assert code == ExitCode.REAL
    assert len(server.calls) == VIDEO_FRAMES + 1  # the torn video, and the image touched since
    assert json.loads((out / "report.json").read_text()) == expected
    assert len(records(out)) == IMAGES + 1 + 1  # the old lines, then the two scored again, the torn one cut


def test_without_resume_a_new_run_starts_afresh(server, tmp_path, capsys):
    folder = labelled_folder(tmp_path)
    out = tmp_path / "report"
    run(evaluate(folder, out), capsys)
    server.calls.clear()
    run(evaluate(folder, out), capsys)
    assert len(server.calls) == IMAGES + VIDEO_FRAMES and len(records(out)) == IMAGES + 1


def test_resuming_against_other_server_settings_or_a_damaged_log_is_refused(server, tmp_path, capsys):
    folder = labelled_folder(tmp_path)
    out = tmp_path / "report"
    run(evaluate(folder, out), capsys)
    log = out / SCORES_FILE
    intact = log.read_text()
    log.write_text(intact.replace("\n", "\nnot json\n", 1))
    code, _, err = run(evaluate(folder, out, "--resume"), capsys)
    assert code == ExitCode.INVALID_INPUT and "line 2, is not a score record" in err

    log.write_text(intact)
    server.parameters = {**server.parameters, "threshold": encode(0.7)}
    server.calls.clear()
    code, _, err = run(evaluate(folder, out, "--resume"), capsys)
    assert code == ExitCode.INVALID_INPUT and "other server settings" in err and "without --resume" in err
    assert server.calls == []


def test_concurrency_bounds_the_requests_and_evaluation_is_bulk_unless_told(server, tmp_path, capsys):
    folder = labelled_folder(tmp_path)
    run(["evaluate", folder, "--out", tmp_path / "a", "--frames", VIDEO_FRAMES, "--concurrency", 2], capsys)
    assert 1 <= server.max_in_flight <= 2
    assert {priority for _, priority in server.priorities} == {PRIORITY_BULK}
    server.priorities.clear()
    run(["evaluate", folder, "--out", tmp_path / "b", "--frames", VIDEO_FRAMES, "--priority", "interactive"], capsys)
    assert {priority for _, priority in server.priorities} == {PRIORITY_INTERACTIVE}


def test_an_interrupted_calibration_resumes_and_calibrates_as_a_clean_run(server, tmp_path, capsys):
    folder = labelled_folder(tmp_path)

    def calibrate(name, *extra):
        return ["calibrate", folder, "--out", tmp_path / name, "--settings", tmp_path / f"{name}.json",
                "--frames", VIDEO_FRAMES, "--bootstrap", 50, "--force", "--json", "--concurrency", 1, *extra]

    code, clean, _ = run(calibrate("clean"), capsys)
    assert code == ExitCode.REAL
    server.calls.clear()
    server.interrupt_after = 4
    assert run(calibrate("resumed"), capsys)[0] == INTERRUPTED
    assert len(records(tmp_path / "resumed")) == 4
    server.calls.clear()
    server.interrupt_after = None
    code, resumed, _ = run(calibrate("resumed", "--resume"), capsys)
    assert code == ExitCode.REAL and len(server.calls) == IMAGES + VIDEO_FRAMES - 4
    drop = ("settings", "report")  # where each run wrote its files
    assert {k: v for k, v in json.loads(resumed).items() if k not in drop} == \
        {k: v for k, v in json.loads(clean).items() if k not in drop}


def test_a_file_gone_since_it_was_listed_is_skipped_not_a_traceback(server, tmp_path):
    from deepfake_client.evaluation import LabelledFile, open_score_log, score_files

    with fake_client(server) as client:
        log = open_score_log(tmp_path / SCORES_FILE, client.ensemble_settings(), resume=False)
        run_ = score_files(client, [LabelledFile(tmp_path / "gone.png", 1, False)], log=log)
        log.close()
    assert [str(path) for path, _ in run_.skipped] == [str(tmp_path / "gone.png")]
    assert "not found" in run_.skipped[0][1] and records(tmp_path)[0]["skipped"] == run_.skipped[0][1]
