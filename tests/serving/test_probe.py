"""The inference probe (deepfake_serving.probe) against a fake HTTP server, and the local
server's watchdog (restart on a problem after a backoff, give up when the restart rate is
exceeded) with a fake server and a fake clock."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from deepfake_dev import local_server
from deepfake_serving import launcher, probe


def _serve(status: int, body: dict):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.seen = self.path
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.parametrize("status, body, expected", [
    (200, {"outputs": [{"name": "LABEL", "data": ["NO_FACE"]}]}, None),
    (503, {"error": "Exceeds maximum queue size"}, None),  # overloaded is alive
    (500, {"error": "Stub process 'xception_0_0' is not healthy."}, "HTTP 500: Stub process 'xception_0_0'"),
    (400, {"error": "[request id: <id_unknown>] model not ready"}, "HTTP 400"),
    (200, {"outputs": []}, "no LABEL"),
])
def test_probe_verdicts(status, body, expected):
    server = _serve(status, body)
    try:
        result = probe.probe(f"127.0.0.1:{server.server_port}", timeout_s=5)
    finally:
        server.shutdown()
    assert result is None if expected is None else expected in result


def test_probe_without_a_server_says_so():
    port = launcher.Ports.free().http
    assert "no answer from" in probe.probe(f"127.0.0.1:{port}", timeout_s=2)
    assert probe.main(["--url", f"127.0.0.1:{port}", "--timeout", "1"]) == 1


def test_probe_image_is_a_small_png():
    assert probe.probe_image().startswith(b"\x89PNG") and len(probe.probe_image()) < 2000


class _FakeServer:
    http_url = "unused"

    def __init__(self, problems):
        self._problems, self.starts, self.stops = list(problems), 0, 0

    def problems(self):
        return self._problems.pop(0) if self._problems else []

    def errors(self):
        return "(log)"

    def stop(self):
        self.stops += 1
        return ["removed /dev/shm/x (xception_0_0)"]

    def start(self):
        self.starts += 1


def test_the_watchdog_restarts_on_a_problem_and_stops_when_asked(capsys):
    server = _FakeServer([[], ["the python stub of xception_0_0 (pid 1) has died"], []])
    calls = iter(range(100))
    budget = local_server.RestartBudget(3, backoff_s=0)
    assert local_server._watch(server, budget, lambda: next(calls) >= 4, check_every_s=0, probe_every_s=1e9) == 0
    assert server.starts == 1 and server.stops == 2
    err = capsys.readouterr().err
    assert "xception_0_0 (pid 1) has died" in err and "cleanup: removed /dev/shm/x" in err and "restarting" in err


def test_the_watchdog_gives_up_after_max_restarts_in_the_window(capsys):
    server = _FakeServer([["tritonserver ended with signal 11 (SIGSEGV)"]] * 5)
    budget = local_server.RestartBudget(2, window_s=600, backoff_s=0)
    assert local_server._watch(server, budget, lambda: False, check_every_s=0, probe_every_s=1e9) == 1
    assert server.starts == 2 and "giving up: 2 of 2 restarts in 600 s" in capsys.readouterr().err


class FakeClock:
    """time.monotonic and time.sleep of a test: sleeping moves the clock."""

    def __init__(self) -> None:
        self.now, self.slept = 0.0, []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_the_restart_budget_is_a_rate_with_a_doubling_backoff():
    clock = FakeClock()
    budget = local_server.RestartBudget(3, window_s=600, backoff_s=2, max_backoff_s=5, clock=clock)
    assert [budget.next_backoff() for _ in range(3)] == [2, 4, 5]  # doubled, capped
    assert budget.next_backoff() is None  # a 4th within 10 minutes: given up
    clock.now = 599.0
    assert budget.next_backoff() is None
    clock.now = 600.0  # the first three have left the window: the budget and the backoff are back
    assert budget.next_backoff() == 2 and budget.describe() == "1 of 3 restarts in 600 s"
    lifetime = local_server.RestartBudget(1, window_s=None, clock=clock)
    assert lifetime.next_backoff() == local_server.RESTART_BACKOFF_S
    clock.now += 10**6
    assert lifetime.next_backoff() is None  # the old meaning of --max-restarts: never forgiven


def test_crashes_spread_out_are_restarted_for_ever_a_crash_loop_is_given_up(monkeypatch, capsys):
    """A crash every 10 minutes (e.g. a client's burst of 1 ms deadlines) is restarted each
    time, after the backoff; crashes in a row exhaust the rate and the watchdog gives up."""
    clock = FakeClock()
    monkeypatch.setattr(local_server.time, "monotonic", clock)
    crash = ["tritonserver ended with signal 11 (SIGSEGV)"]
    every_ten_minutes = ([crash] + [[]] * 600) * 6  # checked once a second
    server = _FakeServer(every_ten_minutes)
    budget = local_server.RestartBudget(3, window_s=600, backoff_s=2, clock=clock)
    checks = iter(range(10**6))
    stop = lambda: next(checks) >= 3 * len(every_ten_minutes)  # noqa: E731
    assert local_server._watch(server, budget, stop, check_every_s=1, probe_every_s=1e9, sleep=clock.sleep) == 0
    assert server.starts == 6  # more than 3 in the launcher's life
    assert sum(s for s in clock.slept if s < 1) == pytest.approx(6 * 2)  # each waited its 2 s backoff first
    capsys.readouterr()

    server = _FakeServer([crash] * 10)
    budget = local_server.RestartBudget(3, window_s=600, backoff_s=2, clock=clock)
    assert local_server._watch(server, budget, lambda: False, check_every_s=1, probe_every_s=1e9,
                               sleep=clock.sleep) == 1
    assert server.starts == 3 and "giving up" in capsys.readouterr().err


def test_a_stop_during_the_backoff_stops_without_restarting(capsys):
    clock = FakeClock()
    server = _FakeServer([["the python stub of xception_0_0 (pid 1) has died"]])
    budget = local_server.RestartBudget(3, backoff_s=30, clock=clock)
    stop = lambda: clock.now >= 10  # noqa: E731  (Ctrl-C 10 s into the 30 s backoff)
    assert local_server._watch(server, budget, stop, check_every_s=1, probe_every_s=1e9, sleep=clock.sleep) == 0
    assert server.starts == 0 and clock.now < 11 and "stopped" in capsys.readouterr().out


def test_the_watchdog_restarts_when_the_inference_probe_fails(monkeypatch, capsys):
    server = _FakeServer([])
    monkeypatch.setattr(local_server.probe, "probe", lambda url, timeout: "no answer from x within 30 s")
    assert local_server._watch(server, local_server.RestartBudget(0), lambda: False, check_every_s=0,
                               probe_every_s=0) == 1
    assert "the inference probe failed: no answer" in capsys.readouterr().err


def test_clean_up_returns_only_once_every_process_of_the_group_is_gone():
    """The clean-up after a crash kills what is left of Triton's group and waits on the pids
    themselves (a dying process loses its command line before it is gone)."""
    import subprocess

    leader = subprocess.Popen(["sleep", "60"], process_group=0)
    child = subprocess.Popen(["sleep", "60"], process_group=leader.pid)
    server = object.__new__(local_server.LocalTritonServer)
    server._process = leader
    server.stubs = [local_server.Stub(child.pid, "xception_0_0", "no-such-region")]
    assert local_server._in_group(child.pid, leader.pid) and not local_server._in_group(child.pid, 1)
    server._clean_up()
    assert not local_server._in_group(leader.pid, leader.pid) and not local_server._in_group(child.pid, leader.pid)
    leader.wait(), child.wait()


def test_a_stop_that_has_to_kill_says_so_with_what_triton_last_said(tmp_path):
    """A server that ignores SIGINT is killed after the timeout, and the stop reports it."""
    import subprocess
    import sys

    ignores_sigint = "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); print('up', flush=True); " \
                     "time.sleep(60)"
    process = subprocess.Popen([sys.executable, "-c", ignores_sigint], process_group=0, stdout=subprocess.PIPE)
    assert process.stdout.readline() == b"up\n"  # its SIGINT handler is set
    server = object.__new__(local_server.LocalTritonServer)
    server._process, server.stubs = process, []
    server._workdir = tmp_path / "work"
    server.log_path = tmp_path / "tritonserver.log"
    server.log_path.write_text("I1207 Timeout 15: Found 1 live models and 5 in-flight non-inference requests\n")
    cleaned = server.stop(timeout_s=0.5)
    process.stdout.close()
    assert process.poll() is not None
    assert cleaned[0].startswith(f"killed tritonserver (pid {process.pid}): not stopped 0.5 s after SIGINT")
    assert "5 in-flight" in cleaned[0]
