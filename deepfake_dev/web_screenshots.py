"""Screenshots of the web console for the README (docs/images/web-*.png), taken in headless
Chromium against the gateway on the real Triton server:

    python -m deepfake_dev.web_screenshots --repository build/repository/cpu

Needs the `web` extra, selenium, and Debian's chromium + chromium-driver (as tests/web).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import cv2
import uvicorn
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from deepfake_client import DeepfakeClient
from deepfake_client.web import create_app
from deepfake_dev import samples
from deepfake_dev.local_server import LocalTritonServer, Ports

OUT = Path("docs/images")
DESKTOP = (1100, 1000)
PHONE = (390, 844)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _camera(folder: Path) -> Path:
    path = folder / "camera.y4m"
    frames = samples.video_frames(16)
    with open(path, "wb") as handle:
        handle.write(b"YUV4MPEG2 W512 H512 F8:1 Ip A1:1 C420jpeg\n")
        for frame in frames:
            handle.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420).tobytes())
    return path


def _browser(camera: Path, size: tuple[int, int]) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                 f"--window-size={size[0]},{size[1]}", "--use-fake-device-for-media-stream",
                 "--use-fake-ui-for-media-stream", f"--use-file-for-fake-video-capture={camera}"):
        options.add_argument(flag)
    options.binary_location = shutil.which("chromium")
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path="/usr/bin/chromedriver"))


def _tab(driver: webdriver.Chrome, url: str, tab: str) -> None:
    driver.get(url)
    driver.find_element(By.CSS_SELECTOR, f'nav button[data-tab="{tab}"]').click()


def _wait(driver: webdriver.Chrome, condition, timeout_s: float = 600) -> None:
    WebDriverWait(driver, timeout_s, poll_frequency=0.3).until(condition)


def take(url: str, media: Path, camera: Path, out: Path) -> list[Path]:
    written = []
    driver = _browser(camera, DESKTOP)
    try:
        _tab(driver, url, "image")
        driver.find_element(By.ID, "image-file").send_keys(str(media / samples.TWO_FACES_IMAGE))
        _wait(driver, lambda d: d.find_element(By.ID, "image-verdict").text in ("FAKE", "REAL"))
        written.append(out / "web-image.png")
        driver.save_screenshot(str(written[-1]))

        _tab(driver, url, "batch")
        names = [samples.FACE_IMAGE, samples.NO_FACE_IMAGE, samples.TWO_FACES_IMAGE, "face.png", "face.webp"]
        driver.find_element(By.ID, "batch-files").send_keys("\n".join(str(media / n) for n in names))
        _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#batch-stats dd"))
        written.append(out / "web-batch.png")
        driver.save_screenshot(str(written[-1]))

        _tab(driver, url, "video")
        frames = driver.find_element(By.ID, "video-frames")
        frames.clear()
        frames.send_keys("8")
        driver.find_element(By.ID, "video-file").send_keys(str(media / samples.FACE_VIDEO))
        _wait(driver, lambda d: d.find_element(By.ID, "video-verdict").text in ("FAKE", "REAL", "NO FACE"))
        written.append(out / "web-video.png")
        driver.save_screenshot(str(written[-1]))

        _tab(driver, url, "webcam")
        driver.find_element(By.ID, "webcam-start").click()
        _wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#webcam-chart circle.point")) >= 4)
        written.append(out / "web-webcam.png")
        driver.save_screenshot(str(written[-1]))
        driver.find_element(By.ID, "webcam-stop").click()
    finally:
        driver.quit()
    driver = _browser(camera, PHONE)
    try:
        _tab(driver, url, "image")
        driver.find_element(By.ID, "image-file").send_keys(str(media / samples.FACE_IMAGE))
        _wait(driver, lambda d: d.find_element(By.ID, "image-verdict").text in ("FAKE", "REAL"))
        written.append(out / "web-phone.png")
        driver.save_screenshot(str(written[-1]))
    finally:
        driver.quit()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repository", type=Path, required=True, help="assembled model repository")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="deepfake-shots-") as folder:
        folder = Path(folder)
        samples.write_samples(folder / "media")
        camera = _camera(folder)
        with LocalTritonServer(args.repository, Ports.free(), log_path=folder / "tritonserver.log") as triton:
            client = DeepfakeClient(triton.grpc_url, timeout_s=300)
            port = _free_port()
            server = uvicorn.Server(uvicorn.Config(create_app(client, close_client=True), host="127.0.0.1", port=port,
                                                   log_level="warning"))
            thread = threading.Thread(target=server.run, daemon=True)
            thread.start()
            while not server.started:
                time.sleep(0.05)
            try:
                for path in take(f"http://127.0.0.1:{port}/", folder / "media", camera, args.out):
                    print(f"wrote {path}")
            finally:
                server.should_exit = True
                thread.join(timeout=60)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
