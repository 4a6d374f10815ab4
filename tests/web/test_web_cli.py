"""`deepfake web`: its options, loopback by default, and a client install that stays web-free."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from setuptools.config.pyprojecttoml import load_file  # reads TOML on Python 3.10 too

from deepfake_client import cli

CLIENT = Path(__file__).resolve().parents[2] / "client"
WEB_PACKAGES = {"fastapi", "uvicorn", "starlette", "python-multipart", "prometheus-client", "websockets"}


def test_web_binds_to_loopback_by_default_and_serves_the_client(monkeypatch):
    served = {}
    monkeypatch.setattr("deepfake_client.web.server.serve", lambda client, host, port, **_: served.update(
        client=client, host=host, port=port))
    assert cli.main(["web", "--url", "localhost:1"]) == 0
    assert served["host"] == "127.0.0.1" and served["port"] == 8080
    assert served["client"].url == "localhost:1"
    cli.main(["web", "--url", "localhost:1", "--host", "0.0.0.0", "--port", "9000", "--insecure-no-auth"])
    assert (served["host"], served["port"]) == ("0.0.0.0", 9000)


def test_the_client_stays_web_free_unless_the_extra_is_asked_for():
    project = load_file(CLIENT / "pyproject.toml")["project"]
    base = {d.split("[")[0].split(">")[0].split("=")[0].strip().lower() for d in project["dependencies"]}
    assert not base & WEB_PACKAGES
    extra = {d.split("[")[0].split(">")[0].split("=")[0].strip().lower() for d in project["optional-dependencies"]["web"]}
    assert {"fastapi", "uvicorn", "python-multipart", "prometheus-client", "websockets"} <= extra
    # Importing the SDK and its CLI loads none of the web stack.
    probe = ("import sys, deepfake_client, deepfake_client.cli;"
             "print(sorted({m.split('.')[0] for m in sys.modules} & {'fastapi', 'uvicorn', 'starlette'}))")
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def test_the_page_ships_in_the_package():
    setuptools = load_file(CLIENT / "pyproject.toml")["tool"]["setuptools"]
    assert "deepfake_client.web" in setuptools["packages"]
    assert setuptools["package-data"]["deepfake_client.web"] == ["static/*"]
    static = CLIENT / "deepfake_client" / "web" / "static"
    assert {p.name for p in static.iterdir()} >= {"index.html", "app.js", "style.css"}
    page = (static / "index.html").read_text() + (static / "app.js").read_text() + (static / "style.css").read_text()
    assert "http://" not in page and "https://" not in page  # nothing from a CDN: works offline
