"""The demo: serve an assembled repository on the real Triton server and judge sample media.

    python -m deepfake_dev.demo --repository build/repository/cpu     (what `make demo` runs)

Starts Triton (nvidia-pytriton's tritonserver), writes sample images made from
skimage's astronaut photo (one face, no face, two faces) and a short video, runs
the `deepfake` CLI on them as a user would, prints the verdicts, and stops the server.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import deepfake_contract as contract
from deepfake_client import cli
from deepfake_dev import samples
from deepfake_dev.local_server import LocalTritonServer, Ports, ServerStartError

DEMO_IMAGES = (samples.FACE_IMAGE, samples.NO_FACE_IMAGE, samples.TWO_FACES_IMAGE)
# Exit codes of the `deepfake` CLI that still mean "answered": REAL, FAKE, no face.
ANSWERED = {0, 1, 5}
OVERLAY = "explain_overlay.png"  # `deepfake explain` on the face image, written beside the media


def write_demo_media(folder: Path) -> tuple[Path, Path]:
    """The demo's image folder and video, from the standard sample set."""
    written = samples.write_samples(folder / "all")
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    for name in DEMO_IMAGES:
        shutil.copy2(written[name], images / name)
    return images, written[samples.FACE_VIDEO]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repository", type=Path, required=True, help="assembled model repository")
    parser.add_argument("--media", type=Path, default=Path("build/demo"), help="where to write the sample media")
    args = parser.parse_args(argv)

    images, video = write_demo_media(args.media)
    server = LocalTritonServer(args.repository, Ports.free(), log_path=args.media / "tritonserver.log")
    print(f"starting Triton on {args.repository} (log: {server.log_path}); loading the ensemble's six models takes a minute ...",
          flush=True)
    try:
        server.start()
    except ServerStartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        commands = [["folder", str(images)], ["video", str(video), "--frames", "8"]]
        if (args.repository / contract.EXPLAINER_NAME).is_dir():  # assembled with --explainer
            commands.append(["explain", str(images / samples.FACE_IMAGE), "--out", str(args.media / OVERLAY)])
        codes = []
        for command in commands:
            full = [*command, "--url", server.grpc_url]
            print(f"\n$ deepfake {' '.join(full)}", flush=True)
            codes.append(cli.main(full))
    finally:
        server.stop()
    print("\nThe server is stopped. Serve it yourself with `make serve`, then use the same `deepfake` commands,")
    print("or the web console: `deepfake web --url localhost:8001`, then open http://127.0.0.1:8080.")
    return 0 if all(code in ANSWERED for code in codes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
