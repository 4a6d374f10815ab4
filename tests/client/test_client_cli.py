"""The `deepfake` command: arguments, output and exit codes, against a fake server."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import cv2
import numpy as np
import pytest
from client_fakes import (
    MODEL_NAMES,
    FakeTransport,
    ensemble_outputs,
    fake_client,
    one_face,
    png_pixel,
)

from deepfake_client import (
    InvalidImageError,
    Label,
    ModelNotReadyError,
    OverloadedError,
    RequestTimeoutError,
    ServerError,
    ServerUnavailableError,
    cli,
)
from deepfake_client.cli import ExitCode, main, verdict_exit_code
from deepfake_client.client import FANOUT_OVERLOADED_ATTEMPTS
from deepfake_contract import settings as ensemble_settings


@pytest.fixture
def server(monkeypatch):
    """Routes the CLI to a FakeTransport; set `server.respond` per test."""
    transport = FakeTransport(lambda _: one_face(0.1))
    monkeypatch.setattr(cli, "open_client", lambda args: fake_client(transport))
    return transport


def image_file(tmp_path, name: str = "photo.png", red: int = 10):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((8, 8, 3), (0, 0, red), np.uint8))  # BGR: red channel = `red`
    return path


def by_red(image: bytes):
    """Red 200 -> fake, 100 -> no face, 50 -> rejected, otherwise real."""
    red = png_pixel(image)
    if red == 50:
        raise InvalidImageError("the server rejected the input: not an image")
    if red == 100:
        return ensemble_outputs([])
    return one_face(0.9 if red == 200 else 0.1)


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "red, expected",
    [(10, ExitCode.REAL), (200, ExitCode.FAKE), (100, ExitCode.NO_FACE), (50, ExitCode.INVALID_INPUT)],
)
def test_image_exit_code_follows_the_verdict(server, tmp_path, capsys, red, expected):
    server.respond = by_red
    code, out, _ = run(["image", image_file(tmp_path, red=red)], capsys)
    assert code == expected
    assert {ExitCode.REAL: "REAL", ExitCode.FAKE: "FAKE", ExitCode.NO_FACE: "NO_FACE"}.get(expected, "ERROR") in out


@pytest.mark.parametrize(
    "error, expected",
    [
        (ServerUnavailableError("down"), ExitCode.UNAVAILABLE),
        (ModelNotReadyError("not loaded"), ExitCode.UNAVAILABLE),
        (RequestTimeoutError("slow"), ExitCode.TIMEOUT),
        (ServerError("boom"), ExitCode.SERVER_ERROR),
        (OverloadedError("queue full"), ExitCode.OVERLOADED),
    ],
)
def test_server_failures_have_their_own_exit_codes(server, tmp_path, capsys, error, expected):
    def fail(_):
        raise error

    server.respond = fail
    code, _, err = run(["image", image_file(tmp_path)], capsys)
    assert code == expected and str(error) in err


def test_an_overloaded_server_is_retried_within_the_fan_out_budget_then_exits_8(server, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("deepfake_client.retry.random.uniform", lambda low, high: 0.0)  # no real waiting

    def refuse(_):
        raise OverloadedError("the server is overloaded, retry later: Exceeds maximum queue size")

    server.respond = refuse
    for i in range(3):
        image_file(tmp_path / "in", f"{i}.png")
    code, out, _ = run(["folder", tmp_path / "in", "--json"], capsys)
    assert code == ExitCode.OVERLOADED == 8
    assert {item["error"]["type"] for item in json.loads(out)} == {"OverloadedError"}
    assert len(server.calls) == 3 * FANOUT_OVERLOADED_ATTEMPTS  # a folder is the SDK's fan-out: a budget each


def test_a_missing_image_is_invalid_input(server, tmp_path, capsys):
    code, out, _ = run(["image", tmp_path / "nope.jpg", "--json"], capsys)
    assert code == ExitCode.INVALID_INPUT
    assert json.loads(out)["error"]["type"] == "InvalidInputError"
    assert not server.calls  # no round trip for a file that is not there


def test_image_json_output(server, tmp_path, capsys):
    server.respond = by_red
    code, out, _ = run(["image", image_file(tmp_path, red=200), "--json"], capsys)
    data = json.loads(out)
    assert code == ExitCode.FAKE and data["label"] == "FAKE" and data["num_faces"] == 1
    assert set(data["model_probabilities"]) == set(MODEL_NAMES)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["image"],
        ["video", "x.mp4", "--frames", "0"],
        ["folder", "d", "--concurrency", "-1"],
        ["stream", "0", "--max-in-flight", "0"],
        ["image", "x.jpg", "--protocol", "udp"],
        ["video", "x.mp4", "--threshold", "1.5"],
        ["calibrate", "data", "--calibration", "beta"],
        ["teleport"],
    ],
)
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == ExitCode.USAGE
    assert "usage:" in capsys.readouterr().err


def test_folder_recursive_extensions_and_order(server, tmp_path, capsys):
    server.respond = by_red
    image_file(tmp_path, "b.png", red=10)
    image_file(tmp_path, "a.png", red=10)
    image_file(tmp_path, "sub/c.png", red=10)
    (tmp_path / "notes.txt").write_text("not an image")

    code, out, _ = run(["folder", tmp_path, "--json"], capsys)
    assert code == ExitCode.REAL
    assert [item["input"] for item in json.loads(out)] == [str(tmp_path / "a.png"), str(tmp_path / "b.png")]

    code, out, _ = run(["folder", tmp_path, "--recursive", "--json"], capsys)
    assert [item["input"] for item in json.loads(out)][-1] == str(tmp_path / "sub" / "c.png")

    code, out, _ = run(["folder", tmp_path, "--extensions", "jpg"], capsys)
    assert code == ExitCode.INVALID_INPUT


def test_folder_fake_wins_over_errors_and_errors_over_real(server, tmp_path, capsys):
    server.respond = by_red
    image_file(tmp_path / "mixed", "ok.png", red=10)
    image_file(tmp_path / "mixed", "bad.png", red=50)
    code, out, _ = run(["folder", tmp_path / "mixed"], capsys)
    assert code == ExitCode.INVALID_INPUT and "not an image" in out
    image_file(tmp_path / "mixed", "fake.png", red=200)
    code, _, _ = run(["folder", tmp_path / "mixed"], capsys)
    assert code == ExitCode.FAKE


def test_verdict_exit_code_precedence():
    assert verdict_exit_code([Label.REAL, Label.REAL]) == ExitCode.REAL
    assert verdict_exit_code([Label.REAL, Label.NO_FACE]) == ExitCode.NO_FACE
    assert verdict_exit_code([]) == ExitCode.NO_FACE  # nothing judged is not "all real"
    assert verdict_exit_code([Label.FAKE], [ServerUnavailableError("x")]) == ExitCode.FAKE
    errors = [InvalidImageError("x"), RequestTimeoutError("y"), ServerUnavailableError("z")]
    assert verdict_exit_code([Label.REAL], errors) == ExitCode.UNAVAILABLE
    assert verdict_exit_code([], errors[:2]) == ExitCode.TIMEOUT
    assert verdict_exit_code([], [*errors[:2], OverloadedError("full")]) == ExitCode.OVERLOADED
    assert verdict_exit_code([], [OverloadedError("full"), ServerUnavailableError("z")]) == ExitCode.UNAVAILABLE


def write_video(path, reds):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (32, 32))
    for red in reds:
        writer.write(np.full((32, 32, 3), (0, 0, red), np.uint8))
    writer.release()
    return path


def test_video_command_table_and_json(server, tmp_path, capsys):
    server.respond = lambda image: one_face(0.9 if png_pixel(image) > 150 else 0.1)
    path = write_video(tmp_path / "clip.mp4", [200] * 6 + [10] * 4)

    code, out, _ = run(["video", path, "--frames", "10"], capsys)
    assert code == ExitCode.FAKE and "FAKE" in out and "mean of 10 frames" in out

    code, out, _ = run(["video", path, "--frames", "10", "--threshold", "0.7", "--json"], capsys)
    data = json.loads(out)
    assert code == ExitCode.REAL and data["label"] == "REAL"  # mean 0.58 is not above 0.7
    assert data["fake_probability"] == pytest.approx(0.58, abs=0.01)
    assert data["fake_frame_ratio"] == pytest.approx(0.6)
    assert len(data["timeline"]) == 10 and data["timeline"][0]["label"] == "FAKE"


def test_video_that_cannot_be_read_is_invalid_input(server, tmp_path, capsys):
    (tmp_path / "broken.mp4").write_bytes(b"garbage" * 50)
    code, _, err = run(["video", tmp_path / "broken.mp4"], capsys)
    assert code == ExitCode.INVALID_INPUT and "not a supported video" in err


def test_stream_command_reports_every_scored_frame(server, tmp_path, capsys):
    server.respond = lambda _: one_face(0.9)
    path = write_video(tmp_path / "clip.mp4", [10] * 8)
    code, out, err = run(["stream", path, "--no-realtime", "--max-in-flight", "8", "--json"], capsys)
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == ExitCode.FAKE
    assert lines and lines[-1]["window_label"] == "FAKE"
    assert json.loads(err)["summary"]["scored"] == len(lines)


def test_ctrl_c_stops_a_stream_cleanly_with_its_verdict(server, tmp_path, capsys):
    server.respond = lambda _: one_face(0.2)
    path = write_video(tmp_path / "long.mp4", [10] * 100)  # 10 s at 10 fps, replayed in real time
    threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT)).start()
    started = time.monotonic()
    code, out, err = run(["stream", path], capsys)
    assert time.monotonic() - started < 5
    assert code == ExitCode.REAL and "stream ended" in err
    assert 0 < len(out.splitlines()) < 100
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_health_command(server, capsys):
    code, out, _ = run(["health", "--json"], capsys)
    assert code == ExitCode.REAL and json.loads(out)["ready"] is True
    server.ready = False
    code, out, _ = run(["health"], capsys)
    assert code == ExitCode.UNAVAILABLE and "model_ready" in out


def test_health_names_the_broken_models_of_the_ensemble(server, capsys):
    code, out, _ = run(["health", "--json"], capsys)
    report = json.loads(out)
    assert code == ExitCode.REAL and report["not_ready_models"] == []
    assert set(report["models"]) == {"face_detector", *MODEL_NAMES, "weighted_average"}
    server.unready_models = {"xception", "face_detector"}  # e.g. a dead stub
    code, out, _ = run(["health", "--json"], capsys)
    report = json.loads(out)
    assert code == ExitCode.UNAVAILABLE and report["ready"] is False
    assert report["model_ready"] is True  # the ensemble itself still says ready: the members tell
    assert report["not_ready_models"] == ["face_detector", "xception"]
    code, out, _ = run(["health"], capsys)
    assert code == ExitCode.UNAVAILABLE and "not_ready_models" in out and "xception" in out


def test_untrained_weights_are_shown_loudly(server, tmp_path, capsys):
    server.respond = lambda _: ensemble_outputs([[0.2] * 4], untrained=(True,) * 4)
    code, _, err = run(["image", image_file(tmp_path)], capsys)
    assert code == ExitCode.REAL
    assert "WARNING" in err and "UNTRAINED" in err and "effort_clip" in err


def labelled_folder(tmp_path):
    """3 real and 3 fake images plus a fake video; red encodes the xception probability."""
    folder = tmp_path / "labelled"
    for i, red in enumerate([10, 20, 30]):
        image_file(folder / "real", f"r{i}.png", red=red)
    for i, red in enumerate([40, 60, 70]):
        image_file(folder / "fake", f"f{i}.png", red=red)
    write_video(folder / "fake" / "v.mp4", [80] * 5)
    return folder


def xception_knows(image: bytes):
    """xception's probability rises with red and separates the classes; the others are noise."""
    red = png_pixel(image)
    xception = red / 100
    return ensemble_outputs([[xception, 0.5 - xception / 4, 0.4, 0.45 + (red % 20) / 100]])


def test_evaluate_writes_a_report_with_metrics_and_plots(server, tmp_path, capsys):
    server.respond = xception_knows
    out_dir = tmp_path / "report"
    code, out, _ = run(["evaluate", labelled_folder(tmp_path), "--out", out_dir, "--frames", "4", "--json"], capsys)
    assert code == ExitCode.REAL
    summary = json.loads(out)
    frame, video = summary["frame_level"], summary["video_level"]
    assert frame["samples"] == 6 + 4 and video["samples"] == 7  # 4 sampled video frames; 7 files
    assert frame["models"]["xception"]["roc_auc"] == 1.0
    assert frame["models"]["f3net"]["roc_auc"] == 0.5  # a constant score ranks nothing
    report = json.loads((out_dir / "report.json").read_text())
    assert report["frame_level"] == frame
    for png in ("roc_frame.png", "roc_video.png", "confusion_frame.png", "confusion_video.png"):
        assert (out_dir / png).read_bytes().startswith(b"\x89PNG")


def test_calibrate_on_a_small_folder_warns_and_writes_only_when_forced(server, tmp_path, capsys):
    server.respond = xception_knows
    settings, report = tmp_path / "settings.json", tmp_path / "calibration"
    argv = ["calibrate", labelled_folder(tmp_path), "--settings", settings, "--out", report, "--bootstrap", "50"]
    code, out, err = run(argv, capsys)
    assert code == ExitCode.INVALID_INPUT and "at least 50 per class" in err and "settings not written" in out
    assert not settings.exists() and (report / "calibration.md").exists()

    code, out, _ = run([*argv, "--force", "--json"], capsys)
    data = json.loads(out)
    assert code == ExitCode.REAL and data["written"] and not data["adopted"]
    written = ensemble_settings.load(settings)
    assert written.weights == {name: 0.25 for name in MODEL_NAMES}  # 7 files earn no change of weights
    assert written.threshold == data["threshold"] and written.calibration == data["calibration"]


def test_calibrate_dry_run_and_from_a_report(server, tmp_path, capsys):
    server.respond = xception_knows
    settings = tmp_path / "settings.json"
    run(["evaluate", labelled_folder(tmp_path), "--out", tmp_path / "report", "--frames", "4"], capsys)
    calls = len(server.calls)
    code, out, _ = run(
        ["calibrate", tmp_path / "report" / "report.json", "--settings", settings, "--out", tmp_path / "calibration",
         "--force", "--dry-run", "--json", "--bootstrap", "50"],
        capsys,
    )
    data = json.loads(out)
    assert code == ExitCode.REAL and not data["written"] and not settings.exists()
    assert len(server.calls) == calls  # no inference: the report holds every model's scores
    assert data["counts"]["samples"] == 6 + 4 and data["counts"]["fake_groups"] == 4  # the video's frames: one group


def test_calibrate_on_a_report_that_is_not_one(server, tmp_path, capsys):
    (tmp_path / "other.json").write_text("{}")
    code, _, err = run(["calibrate", tmp_path / "other.json", "--settings", tmp_path / "s.json"], capsys)
    assert code == ExitCode.INVALID_INPUT and "not an evaluation report" in err


def test_health_runs_an_inference_and_names_a_dead_stub(server, capsys):
    """Triton 2.51 keeps every model "ready" after a python stub died; an inference fails."""
    def dead_stub(_):
        raise ServerError("in ensemble 'deepfake_detector', Stub process 'efficientnet_b4_0_0' is not healthy.")

    def overloaded(_):
        raise OverloadedError("the server is overloaded, retry later: Request timeout expired")

    server.respond = dead_stub
    code, out, _ = run(["health", "--json"], capsys)
    report = json.loads(out)
    assert code == ExitCode.UNAVAILABLE and report["ready"] is False and report["model_ready"] is True
    assert report["not_ready_models"] == ["efficientnet_b4"] and "not healthy" in report["inference_error"]
    server.respond = overloaded  # busy is alive: restarting would only make it worse
    code, out, _ = run(["health", "--json"], capsys)
    assert code == ExitCode.REAL and json.loads(out)["inference_error"] is None
    # The probe image has no face: it asks the pipeline to call every step all the same.
    assert server.request_parameters and all(p == {"run_all_steps": True} for p in server.request_parameters)


@pytest.mark.parametrize("argv, expected", [
    (["image", "x.png"], 60.0), (["folder", "d"], 60.0), (["explain", "x.png"], 300.0),
    (["image", "x.png", "--timeout", "5"], 5.0), (["explain", "x.png", "--timeout", "5"], 5.0),
])
def test_each_command_gets_its_own_default_timeout(monkeypatch, argv, expected):
    """explain's longer default once leaked into every command (argparse shares parent actions)."""
    opened = []
    monkeypatch.setattr(cli, "DeepfakeClient", lambda *args, **options: opened.append(options) or fake_client(
        FakeTransport(lambda _: one_face(0.1))))
    monkeypatch.setattr(cli, "run_image", lambda client, args: ExitCode.REAL)
    monkeypatch.setattr(cli, "run_folder", lambda client, args: ExitCode.REAL)
    monkeypatch.setattr(cli, "run_explain", lambda client, args: ExitCode.REAL)
    assert main(argv) == ExitCode.REAL
    assert opened[0]["timeout_s"] == expected


def test_an_uncertain_image_says_so_in_the_table_and_json_with_its_own_exit_code(server, tmp_path, capsys):
    server.respond = lambda _: ensemble_outputs([[0.55] * 4], band=(0.4, 0.6))
    code, out, _ = run(["image", image_file(tmp_path)], capsys)
    assert code == ExitCode.UNCERTAIN
    header, row = out.splitlines()[:2]
    assert header.split()[1] == "verdict" and row.split()[1] == "UNCERTAIN"
    code, out, _ = run(["image", image_file(tmp_path), "--json"], capsys)
    data = json.loads(out)
    assert code == ExitCode.UNCERTAIN and data["verdict"] == "UNCERTAIN" and data["label"] == "FAKE"


def test_uncertain_ranks_below_fake_and_errors_and_above_no_face():
    assert verdict_exit_code([Label.UNCERTAIN, Label.FAKE]) == ExitCode.FAKE
    assert verdict_exit_code([Label.UNCERTAIN], [RequestTimeoutError("slow")]) == ExitCode.TIMEOUT
    assert verdict_exit_code([Label.UNCERTAIN, Label.NO_FACE, Label.REAL]) == ExitCode.UNCERTAIN


def test_out_of_scope_flags_are_printed_beside_the_table(server, tmp_path, capsys):
    server.respond = lambda _: ensemble_outputs([[0.2] * 4], faces_found=3)
    grey = tmp_path / "grey.png"
    cv2.imwrite(str(grey), np.tile(np.arange(0, 256, 4, dtype=np.uint8), (64, 1)))  # one channel
    code, out, _ = run(["image", grey], capsys)
    assert code == ExitCode.REAL
    line = next(line for line in out.splitlines() if "outside what the models were trained on" in line)
    assert "greyscale" in line and "too_many_faces" in line and "face 1: small_face" in line
    data = json.loads(run(["image", grey, "--json"], capsys)[1])
    assert "greyscale" in data["flags"] and data["faces"][0]["flags"] == ["small_face"]


def test_evaluate_reports_abstention_with_the_served_band_and_a_risk_coverage_plot(server, tmp_path, capsys):
    from deepfake_contract.parameters import encode

    server.respond = xception_knows
    server.parameters["uncertain_band"] = encode({"low": 0.4, "high": 0.5, "source": "test"})  # ensemble scores 0.375-0.494
    out_dir = tmp_path / "report"
    code, out, _ = run(["evaluate", labelled_folder(tmp_path), "--out", out_dir, "--frames", "4", "--json"], capsys)
    assert code == ExitCode.REAL
    summary = json.loads(out)
    assert summary["server_settings"]["uncertain_band"] == {"low": 0.4, "high": 0.5}
    frame = summary["frame_level"]["abstention"]
    curve = np.array(json.loads((out_dir / "report.json").read_text())["frame_level"]["abstention"]
                      ["risk_coverage"]["coverage"])
    assert curve[-1] == 1.0 and frame["without_abstention"]["coverage"] == 1.0
    with_band = frame["with_abstention"]
    assert 0 < with_band["coverage"] < 1 and with_band["abstained"] > 0
    assert with_band["error_rate"] <= frame["without_abstention"]["error_rate"]
    for png in ("risk_coverage_frame.png", "risk_coverage_video.png"):
        assert (out_dir / png).read_bytes().startswith(b"\x89PNG")
    code, out, _ = run(["evaluate", labelled_folder(tmp_path), "--out", out_dir, "--frames", "4"], capsys)
    assert "with the served band [0.400, 0.500] coverage" in out
