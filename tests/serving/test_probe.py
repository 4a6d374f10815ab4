"""The inference probe (deepfake_serving.probe) against a fake HTTP server, and the local
server's watchdog (restart on a problem, give up after max_restarts) with a fake server."""

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
    assert local_server._watch(server, 3, lambda: next(calls) >= 4, check_every_s=0, probe_every_s=1e9) == 0
    assert server.starts == 1 and server.stops == 2
    err = capsys.readouterr().err
    assert "xception_0_0 (pid 1) has died" in err and "cleanup: removed /dev/shm/x" in err and "restarting" in err


def test_the_watchdog_gives_up_after_max_restarts(capsys):
    server = _FakeServer([["tritonserver ended with signal 11 (SIGSEGV)"]] * 5)
    assert local_server._watch(server, 2, lambda: False, check_every_s=0, probe_every_s=1e9) == 1
    assert server.starts == 2 and "giving up after 2 restarts" in capsys.readouterr().err


def test_the_watchdog_restarts_when_the_inference_probe_fails(monkeypatch, capsys):
    server = _FakeServer([])
    monkeypatch.setattr(local_server.probe, "probe", lambda url, timeout: "no answer from x within 30 s")
    assert local_server._watch(server, 0, lambda: False, check_every_s=0, probe_every_s=0) == 1
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
