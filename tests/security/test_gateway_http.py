"""The gateway's HTTP answers: security headers and a CSP the page obeys, one error shape for
every refusal (the framework's own included), bounded metric labels, uploads that must keep
moving, and API keys (real uvicorn on 127.0.0.1)."""

from __future__ import annotations

import json
import re
import socket
import time
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from loopback import serve_app
from web_fakes import FakeClient, image_bytes

from deepfake_client.web import Limits, create_app

STATIC = Path(__file__).resolve().parents[2] / "client" / "deepfake_client" / "web" / "static"


@pytest.fixture(scope="module")
def gateway():
    with serve_app(create_app(FakeClient())) as address, httpx.Client(base_url=f"http://{address}", timeout=30) as http:
        yield http


class InlineFinder(HTMLParser):
    """Inline script, event handlers and style attributes: what the CSP forbids."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self.in_script = False

    def handle_starttag(self, tag, attrs):
        names = {name for name, _ in attrs}
        self.found += [f"{tag}[{n}]" for n in names if n.startswith("on") or n == "style"]
        if tag == "script":
            self.found += [] if "src" in names else ["script without src"]
            self.in_script = True

    def handle_endtag(self, tag):
        self.in_script = self.in_script and tag != "script"

    def handle_data(self, data):
        if self.in_script and data.strip():
            self.found.append("inline script")


def test_the_page_is_sent_with_a_strict_policy_and_has_nothing_inline(gateway):
    page = gateway.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 200
    csp = dict(d.strip().split(" ", 1) for d in page.headers["content-security-policy"].split(";"))
    assert csp["script-src"] == "'self'" and csp["default-src"] == "'self'" and csp["frame-ancestors"] == "'none'"
    assert "unsafe" not in csp["style-src"] and csp["connect-src"] == "'self'"
    assert page.headers["x-content-type-options"] == "nosniff" and page.headers["referrer-policy"] == "no-referrer"
    for name in ("index.html", "docs.html"):
        finder = InlineFinder()
        finder.feed((STATIC / name).read_text())
        assert finder.found == [], name
    assert not re.search(r"\sstyle=", (STATIC / "app.js").read_text())  # no style attributes built in HTML strings
    for path in ("/health", "/static/app.js", "/nope", "/openapi.json"):
        assert gateway.get(path).headers["x-content-type-options"] == "nosniff", path


def test_every_error_has_the_documented_shape(gateway):
    answers = {
        "404": gateway.get("/no/such/path"),
        "405": gateway.delete("/health"),
        "405 made-up method": gateway.request("BREW", "/"),
        "422 no file": gateway.post("/api/detect/image", files={"other": ("x", b"1")}),
        "422 bad field": gateway.post("/api/video/detect", files={"file": ("v.mp4", b"x")}, data={"max_frames": "many"}),
        "415": gateway.post("/api/detect/image", files={"file": ("a.png", b"not an image")}),
    }
    chunked = gateway.post("/api/detect/image", content=iter([b"abc"]))  # no Content-Length: 411
    answers["411"] = chunked
    big = raw_upload(str(gateway.base_url.netloc.decode()), 1 << 30, b"")  # declares 1 GiB: 413 before reading
    status, body = read_answer(big, 10)
    big.close()
    assert status == 413 and set(body) == {"error", "detail"} and body["error"] == "too_large"
    for name, response in answers.items():
        assert response.status_code >= 400, name
        body = response.json()
        assert set(body) == {"error", "detail"} and body["error"] and body["detail"], (name, body)
        assert isinstance(body["detail"], str) and "Traceback" not in body["detail"], name


def test_metrics_stay_bounded_after_2000_made_up_methods(gateway):
    gateway.get("/metrics")  # its own series exist before the count
    for index in range(10):
        gateway.request(f"WARM{index}", f"/warm/{index}")
    before = gateway.get("/metrics").text
    for index in range(2000):
        gateway.request(f"M{index:04d}X", f"/made/up/{index}")
    after = gateway.get("/metrics").text
    series = [line for line in after.splitlines() if line.startswith("deepfake_gateway_requests_total")]
    assert 'method="other"' in after and "M0001X" not in after and "/made/up" not in after
    before_series = [line for line in before.splitlines() if line.startswith("deepfake_gateway_requests_total")]
    assert len(series) == len(before_series) < 20
    assert len(after) < len(before) + 1024  # only counts grew


def raw_upload(address: str, length: int, sent: bytes) -> socket.socket:
    """An upload that declares `length` bytes, sends `sent`, then stalls."""
    host, port = address.split(":")
    connection = socket.create_connection((host, int(port)), timeout=10)
    connection.sendall(
        f"POST /api/detect/image HTTP/1.1\r\nHost: {address}\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {length}\r\n\r\n".encode() + sent
    )
    return connection


def read_answer(connection: socket.socket, timeout_s: float) -> tuple[int, dict]:
    connection.settimeout(timeout_s)
    data = b""
    deadline = time.monotonic() + timeout_s
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        assert time.monotonic() < deadline, data
        chunk = connection.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_stalled_uploads_are_cut_off_and_cannot_take_every_slot():
    limits = Limits(max_uploads=2, body_idle_timeout_s=1.0, body_timeout_s=5.0)
    with serve_app(create_app(FakeClient(), limits=limits)) as address:
        stalled = [raw_upload(address, 1 << 20, b"--b\r\n" + b"x" * 1000) for _ in range(2)]
        time.sleep(0.3)
        third = raw_upload(address, 100, b"x" * 100)
        assert read_answer(third, 5) == (503, {"error": "busy", "detail": "2 uploads are in progress; try again shortly"})
        started = time.monotonic()
        for connection in stalled:
            status, body = read_answer(connection, 5)
            assert status == 408 and body["error"] == "body_timeout"
        assert time.monotonic() - started < 3
        for connection in (*stalled, third):
            connection.close()
        with httpx.Client(base_url=f"http://{address}", timeout=30) as http:  # the slots came back
            ok = http.post("/api/detect/image", files={"file": ("a.png", image_bytes(), "image/png")})
            assert ok.status_code == 200, ok.text


def test_a_slowly_trickling_upload_is_cut_off_by_the_total_timeout():
    limits = Limits(body_idle_timeout_s=1.0, body_timeout_s=2.0)
    with serve_app(create_app(FakeClient(), limits=limits)) as address:
        connection = raw_upload(address, 1 << 20, b"")
        started = time.monotonic()
        status = None
        while time.monotonic() - started < 6 and status is None:  # a byte every 0.5 s: never idle
            try:
                connection.sendall(b"x")
            except OSError:
                break
            time.sleep(0.5)
            connection.settimeout(0.01)
            try:
                status = connection.recv(64).split()[1]
            except (TimeoutError, BlockingIOError, IndexError):
                pass
        assert status == b"408" and time.monotonic() - started < 4
        connection.close()


def test_api_keys_guard_the_api_but_not_the_page():
    key = "k" * 32
    app = create_app(FakeClient(), api_keys=[key], key_rate=2)
    with serve_app(app) as address, httpx.Client(base_url=f"http://{address}", timeout=30) as http:
        upload = {"file": ("a.png", image_bytes(), "image/png")}
        refused = http.post("/api/detect/image", files=upload)
        assert refused.status_code == 401 and refused.json()["error"] == "unauthorized"
        wrong = http.post("/api/detect/image", files=upload, headers={"X-API-Key": "k" * 31 + "j"})
        assert wrong.status_code == 401
        assert http.get("/metrics").status_code == 401
        # Prometheus sends the key from a file as a bearer token (docker/prometheus/prometheus.yml).
        assert http.get("/metrics", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        assert http.get("/metrics", headers={"Authorization": "Bearer " + "k" * 31 + "j"}).status_code == 401
        assert http.get("/health").status_code == 200 and http.get("/", headers={"Accept": "text/html"}).status_code == 200
        statuses = [http.post("/api/detect/image", files=upload, headers={"X-API-Key": key}).status_code for _ in range(8)]
        assert statuses[0] == 200 and 429 in statuses  # 2 a second, bursts of 4
