"""The gateway served by uvicorn on a free loopback port, on the SDK client of the real Triton
server (tests/conftest.py's deepfake_server), and headless Chromium driving its page."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from live_app import serve_app

CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT_S = 300  # a CPU Triton judges an image in about 1.2 s; shared CI machines are slower


@contextmanager
def serve_gateway(triton_grpc_url: str) -> Iterator[str]:
    """The gateway on a DeepfakeClient of that Triton, in a thread; yields host:port."""
    from deepfake_client import DeepfakeClient

    with serve_client(DeepfakeClient(triton_grpc_url, timeout_s=300)) as url:
        yield url


@contextmanager
def serve_client(client) -> Iterator[str]:
    """The gateway on `client` (a DeepfakeClient or a fake one), served by uvicorn in a thread; yields host:port."""
    from deepfake_client.web import create_app

    with serve_app(create_app(client, close_client=True), start_timeout_s=60) as url:
        yield url


@pytest.fixture(scope="session")
def gateway_url(deepfake_server):
    with serve_gateway(deepfake_server.grpc_url) as url:
        yield url


@pytest.fixture(scope="module")
def explaining_gateway_url(request, tmp_path_factory):
    """A gateway on a Triton that also serves deepfake_explainer (opt-in in the assembly).

    Started only for the heatmap tests, and only once the SDK has explanations (issue 11).
    """
    from deepfake_client import DeepfakeClient

    if not hasattr(DeepfakeClient, "explain"):
        pytest.skip("this SDK has no explanations API yet (DeepfakeClient.explain, issue 11): no heatmap to show")
    from deepfake_dev.local_server import LocalTritonServer, Ports
    from export.repository import RepositoryOptions, assemble

    folder = tmp_path_factory.mktemp("explainer")
    repository = assemble(request.getfixturevalue("export_artifacts"), folder / "cpu", RepositoryOptions(explainer=True))
    with LocalTritonServer(repository, Ports.free(), log_path=folder / "tritonserver.log") as triton, \
            serve_gateway(triton.grpc_url) as url:
        yield url


def write_y4m(path: Path, frames: list[np.ndarray], fps: int = 8) -> Path:
    """Raw YUV 4:2:0 frames in a Y4M file: what Chromium's fake camera reads (no codec needed)."""
    import cv2

    height, width = frames[0].shape[:2]
    with open(path, "wb") as handle:
        handle.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            handle.write(b"FRAME\n")
            handle.write(cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420).tobytes())  # Y, then U, then V planes
    return path


@pytest.fixture(scope="session")
def fake_camera(tmp_path_factory) -> Path:
    """The sample video's frames (the astronaut drifting), looped by Chromium as the webcam."""
    from deepfake_dev import samples

    return write_y4m(tmp_path_factory.mktemp("camera") / "astronaut.y4m", samples.video_frames(16))


@pytest.fixture(scope="session")
def browser(fake_camera):
    from selenium import webdriver

    if not (Path(CHROMEDRIVER).exists() and shutil.which("chromium")):
        pytest.fail("the browser tests need Debian's chromium and chromium-driver: apt-get install chromium chromium-driver "
                    "(`make test` installs them)")
    options = webdriver.ChromeOptions()
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,1600",
                 "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                 f"--use-file-for-fake-video-capture={fake_camera}"):
        options.add_argument(flag)
    options.binary_location = shutil.which("chromium")
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
