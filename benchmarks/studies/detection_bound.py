"""The detector's bounded cost (issue 13.2): time on a 4096² image against a 1024² one, and
the boxes found on the capped copy against full-resolution detection.

    python -m benchmarks.studies.detection_bound --out reports/detection-bound [--repeats 3]

Inputs are the project's samples (deepfake_dev.samples) upscaled with INTER_CUBIC: the
two-face image centred on a grey square canvas of side 1024 and 4096, so both sizes show
the same faces at the same fraction of the image. Times are FaceDetector.detect (MTCNN +
alignment points; decode excluded) on one torch thread, as a face_detector instance runs,
best of --repeats. IoU pairs each full-resolution box with the capped run's best match.
Writes OUT/detection_bound.json and .md.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from benchmarks.common.machine import machine_info
from benchmarks.common.report import markdown_table, write_report
from deepfake_dev import samples
from deepfake_serving.faces import DetectorSettings, FaceDetector

SIDES = (1024, 4096)


def square_sample(side: int) -> np.ndarray:
    """The two-face sample scaled to `side` wide, centred on a grey side x side canvas."""
    image = samples.two_face_image()
    height = round(image.shape[0] * side / image.shape[1])
    scaled = cv2.resize(image, (side, height), interpolation=cv2.INTER_CUBIC)
    canvas = np.full((side, side, 3), 128, np.uint8)
    top = (side - height) // 2
    canvas[top:top + height] = scaled
    return canvas


def iou(a: np.ndarray, b: np.ndarray) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def best_time(detector: FaceDetector, image: np.ndarray, repeats: int) -> float:
    detector.detect([image])  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        detector.detect([image])
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    capped = FaceDetector()
    full = FaceDetector(DetectorSettings(max_detection_side=None))
    images = {side: square_sample(side) for side in SIDES}
    seconds = {side: best_time(capped, image, args.repeats) for side, image in images.items()}
    full_seconds = best_time(full, images[4096], 1)
    matches = []
    for side, image in images.items():
        (reference,) = full.detect([image])
        (found,) = capped.detect([image])
        for face in reference:
            best = max((iou(face.box, other.box) for other in found), default=0.0)
            matches.append({"side": side, "box": face.box.tolist(), "iou": best})
    ratio = seconds[4096] / seconds[1024]
    settings = DetectorSettings()
    data = {
        "machine": machine_info(),
        "max_detection_side": settings.max_detection_side,
        "min_face_size": settings.min_face_size,
        "seconds": {str(side): s for side, s in seconds.items()},
        "seconds_4096_full_resolution": full_seconds,
        "ratio_4096_over_1024": ratio,
        "faces": matches,
        "min_iou": min(m["iou"] for m in matches),
    }
    table = markdown_table(["input", "detect (s), capped at 1280", "× 1024²"],
                           [[f"{side}²", seconds[side], seconds[side] / seconds[1024]] for side in SIDES])
    table += markdown_table(["4096² full resolution (s)"], [[full_seconds]])
    table += markdown_table(["input", "face box (full resolution)", "IoU capped vs full"],
                            [[f"{m['side']}²", [round(v) for v in m["box"]], m["iou"]] for m in matches])
    write_report(args.out, "detection_bound", data, f"# Detection bound\n\n{table}")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
