"""How far our face crops are from DeepfakeBench's training crops (docs/alignment.md).

The reference is DeepfakeBench's protocol with dlib (HOG detector on RGB,
upsample 1, largest face, 68-point predictor, parts 37/44/30/49/55, the template
crop). Each landmark method of DetectorSettings.landmarks is compared with it on
every real face available offline: the astronaut, Grace Hopper (matplotlib's
sample photo) and the cameraman, each with rotated, scaled, shifted and
mirrored copies, and the 100 faces of skimage's LFW subset (25 x 25 pixels,
upscaled 8x: many people, little detail).

It also estimates the constants of landmarks.py (the calibrated MTCNN template
and the HOG box convention) and reports the calibration's leave-one-face-out
error. One run takes about a minute on one CPU core.

    python -m benchmarks.studies.alignment_fidelity [--figure docs/images/alignment_fidelity.png] [--json out.json]
"""

from __future__ import annotations

import argparse
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from deepfake_dev import samples
from deepfake_serving.alignment import (
    align_face,
    crop_displacement,
    deepfakebench_template,
    estimate_similarity,
    relative_similarity,
)
from deepfake_serving.dlib_landmarks import Dlib68, deepfakebench_points
from deepfake_serving.faces import DetectorSettings, FaceDetector
from deepfake_serving.landmarks import (
    HOG_BOX_CENTRE_OFFSET,
    HOG_BOX_SIDE,
    MTCNN_POINTS_IN_DEEPFAKEBENCH_CROP,
    DlibRefiner,
    calibrated_points,
)

POINT_NAMES = ("left eye (37)", "right eye (44)", "nose (30)", "left mouth (49)", "right mouth (55)")
LFW_FACES = 100  # the first 100 images of skimage's lfw_subset are faces, the rest are not
LFW_UPSCALE = 8
LFW_PADDING = 100
# The cameraman looks down and aside: dlib's HOG scores him -0.11 at upsample 1,
# under its threshold 0, so DeepfakeBench would have dropped the frame. He is
# measured with a lowered threshold, and reported apart (out of the training domain).
CAMERAMAN_HOG_THRESHOLD = -0.5
FIGURE_FACES = ("astronaut original", "hopper original", "cameraman original", "lfw 000")


@dataclass
class Sample:
    name: str
    identity: str  # the person: variations of one photo share it
    group: str  # "hd" (astronaut, hopper), "cameraman" or "lfw"
    image: np.ndarray
    hog_threshold: float = 0.0
    from_original: np.ndarray | None = None  # 2x3: the person's original photo -> this image


@dataclass
class Measurement:
    sample: Sample
    hog_box: np.ndarray  # dlib's box, (left, top, right, bottom), right/bottom inside
    reference_points: np.ndarray  # dlib parts 37/44/30/49/55, in image pixels
    mtcnn_box: np.ndarray
    mtcnn_points: np.ndarray  # MTCNN's five points, in image pixels
    method_points: dict[str, np.ndarray] = field(default_factory=dict)  # alignment points by method


# ---- the faces --------------------------------------------------------------------------


def grace_hopper() -> np.ndarray:
    import matplotlib.cbook

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as file:
        data = np.frombuffer(file.read(), np.uint8)
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def cameraman() -> np.ndarray:
    """The cameraman as he appears in samples.two_face_image() (RGB)."""
    return np.ascontiguousarray(samples.two_face_image()[:, : samples.TWO_FACES_ASTRONAUT_OFFSET_X])


def lfw_faces() -> list[np.ndarray]:
    """skimage's LFW faces, upscaled and padded so that both detectors see a head with background."""
    from skimage import data as skimage_data

    faces = []
    for face in skimage_data.lfw_subset()[:LFW_FACES]:
        gray = (face * 255).round().astype(np.uint8)
        side = gray.shape[0] * LFW_UPSCALE
        big = np.pad(cv2.resize(gray, (side, side), interpolation=cv2.INTER_CUBIC), LFW_PADDING, mode="edge")
        faces.append(np.repeat(big[:, :, None], 3, axis=2))
    return faces


def variations(image: np.ndarray) -> dict[str, np.ndarray]:
    """The image, its mirror, and copies rotated by +-10/20 degrees, scaled by 0.5-2
    and shifted (by sub-pixel amounts too), on canvases that keep it whole."""
    return {name: varied for name, (varied, _) in variations_with_geometry(image).items()}


def variations_with_geometry(image: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """variations() with the 2x3 matrix taking original pixels to varied ones (None for the mirror)."""
    height, width = image.shape[:2]
    out = {"original": (image, np.eye(2, 3)), "flip": (np.ascontiguousarray(image[:, ::-1]), None)}
    for angle in (-20, -10, 10, 20):
        out[f"rotate {angle:+d}"] = warp_expanded(image, cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0))
    for factor in (0.5, 0.75, 1.5, 2.0):
        interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
        resized = cv2.resize(image, None, fx=factor, fy=factor, interpolation=interpolation)
        # cv2.resize maps pixel centres: x' + 0.5 = factor * (x + 0.5).
        out[f"scale {factor:g}"] = (resized, np.array([[factor, 0, 0.5 * factor - 0.5], [0, factor, 0.5 * factor - 0.5]]))
    for dx, dy in ((37, -23), (-58.5, 41.25)):
        out[f"shift {dx:+g},{dy:+g}"] = warp_expanded(image, np.array([[1, 0, dx], [0, 1, dy]], np.float64))
    return out


def warp_expanded(image: np.ndarray, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Warp with a 2x3 matrix onto a canvas holding the whole result (black around it);
    returns the warped image and the matrix actually applied."""
    height, width = image.shape[:2]
    corners = np.array([[0, 0], [width, 0], [0, height], [width, height]], np.float64)
    moved = corners @ matrix[:, :2].T + matrix[:, 2]
    low, high = np.floor(moved.min(axis=0)), np.ceil(moved.max(axis=0))
    matrix = matrix.copy()
    matrix[:, 2] -= low
    width, height = (high - low).astype(int)
    return cv2.warpAffine(image, matrix, (int(width), int(height))), matrix


def all_samples(with_lfw: bool = True) -> list[Sample]:
    found = []
    photos = {"astronaut": ("hd", samples.face_image(), 0.0), "hopper": ("hd", grace_hopper(), 0.0),
              "cameraman": ("cameraman", cameraman(), CAMERAMAN_HOG_THRESHOLD)}
    for person, (group, image, threshold) in photos.items():
        for variation, (varied, matrix) in variations_with_geometry(image).items():
            found.append(Sample(f"{person} {variation}", person, group, varied, threshold, matrix))
    if with_lfw:
        found += [Sample(f"lfw {i:03d}", f"lfw {i:03d}", "lfw", image, 0.0, np.eye(2, 3)) for i, image in
                  enumerate(lfw_faces())]
    return found


# ---- the reference and MTCNN on one sample ------------------------------------------------


def hog_largest(dlib68: Dlib68, image: np.ndarray, threshold: float) -> np.ndarray | None:
    if threshold == 0.0:
        return dlib68.largest_face(image)
    import dlib

    rectangles, _, _ = dlib.get_frontal_face_detector().run(image, 1, threshold)
    if not rectangles:
        return None
    largest = max(rectangles, key=lambda r: r.width() * r.height())
    return np.array([largest.left(), largest.top(), largest.right(), largest.bottom()], np.int64)


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def measure(sample: Sample, dlib68: Dlib68, detector: FaceDetector) -> Measurement | None:
    """The reference and MTCNN's face for the sample, or None if either detector misses it."""
    box = hog_largest(dlib68, sample.image, sample.hog_threshold)
    if box is None:
        return None
    reference = deepfakebench_points(dlib68.landmarks(sample.image, box))
    (faces,) = detector.detect([sample.image])
    faces = [face for face in faces if overlap(face.box, box) >= 0.3]
    if not faces:
        return None
    face = max(faces, key=lambda f: overlap(f.box, box))
    return Measurement(sample, box, reference, face.box.astype(np.float64), face.landmarks.astype(np.float64))


# ---- comparing crops ----------------------------------------------------------------------


def to_crop(points: np.ndarray, alignment_points: np.ndarray) -> np.ndarray:
    """Where image `points` land in the 256 crop aligned on `alignment_points`."""
    matrix = estimate_similarity(alignment_points, deepfakebench_template())
    return points @ matrix[:, :2].T + matrix[:, 2]


def crop_to_crop(ours: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """The similarity taking pixels of our crop to the same image pixels in the reference
    crop: scale (> 1: the reference shows the face larger), rotation in degrees, shift
    of the crop centre, and the RMS displacement of the five template points, which is
    how far facial features sit from where training put them."""
    relative = relative_similarity(ours, reference)
    centre = np.array([128.0, 128.0])
    moved_centre = relative[:, :2] @ centre + relative[:, 2]
    return {
        "scale": float(np.hypot(relative[0, 0], relative[1, 0])),
        "rotation_deg": float(np.degrees(np.arctan2(relative[1, 0], relative[0, 0]))),
        "centre_dx": float(moved_centre[0] - centre[0]),
        "centre_dy": float(moved_centre[1] - centre[1]),
        "rms_px": crop_displacement(ours, reference),
    }


def crop_difference(image: np.ndarray, ours: np.ndarray, reference: np.ndarray) -> float:
    """Mean absolute difference of the two 256 crops, in 0-255 levels."""
    return float(np.abs(align_face(image, ours).astype(np.int16) - align_face(image, reference)).mean())


def self_consistency(measurements: list[Measurement], which: str) -> list[float]:
    """How much a detector's crop moves when the photo is rotated, scaled or shifted:
    its points on each variation, mapped back to the original photo, against its
    points on the original (RMS crop displacement, px). The floor for any comparison."""
    originals = {m.sample.identity: m for m in measurements if m.sample.name.endswith(" original")}
    moved = []
    for m in measurements:
        original = originals.get(m.sample.identity)
        if original is None or m is original or m.sample.from_original is None:
            continue
        back = np.linalg.inv(np.vstack([m.sample.from_original, [0, 0, 1]]))[:2]
        points = getattr(m, which) @ back[:, :2].T + back[:, 2]
        moved.append(crop_displacement(points, getattr(original, which)))
    return moved


# ---- calibration --------------------------------------------------------------------------


def by_identity(measurements: list[Measurement]) -> dict[str, list[Measurement]]:
    groups: dict[str, list[Measurement]] = {}
    for m in measurements:
        groups.setdefault(m.sample.identity, []).append(m)
    return groups


def mtcnn_template(measurements: list[Measurement], leave_out: str | None = None) -> np.ndarray:
    """Mean position of MTCNN's points in the reference crops, one vote per person."""
    per_person = [
        np.mean([to_crop(m.mtcnn_points, m.reference_points) for m in group], axis=0)
        for identity, group in by_identity(measurements).items()
        if identity != leave_out
    ]
    return np.mean(per_person, axis=0)


def points_for_template(mtcnn_points: np.ndarray, template: np.ndarray) -> np.ndarray:
    """calibrated_points() with another template (for the leave-one-out estimate)."""
    to_crop_matrix = np.vstack([estimate_similarity(mtcnn_points, template), [0, 0, 1]])
    to_image = np.linalg.inv(to_crop_matrix)[:2]
    return deepfakebench_template() @ to_image[:, :2].T + to_image[:, 2]


def hog_box_convention(measurements: list[Measurement]) -> tuple[float, float, float]:
    """Medians of the HOG box's centre offset (x, y) and side, in MTCNN box sides, one vote per person."""
    per_person = []
    for group in by_identity(measurements).values():
        rows = []
        for m in group:
            x1, y1, x2, y2 = m.mtcnn_box
            side = np.sqrt((x2 - x1) * (y2 - y1))
            left, top, right, bottom = m.hog_box.astype(np.float64)
            rows.append((((left + right) / 2 - (x1 + x2) / 2) / side, ((top + bottom) / 2 - (y1 + y2) / 2) / side,
                         (right - left + 1) / side))
        per_person.append(np.mean(rows, axis=0))
    dx, dy, side = np.median(per_person, axis=0)
    return float(dx), float(dy), float(side)


# ---- the methods --------------------------------------------------------------------------


def add_methods(measurements: list[Measurement], refiner: DlibRefiner, dlib68: Dlib68) -> None:
    calibration = [m for m in measurements if m.sample.group != "cameraman"]
    templates = {identity: mtcnn_template(calibration, leave_out=identity) for identity in by_identity(measurements)}
    for m in measurements:
        image = m.sample.image
        m.method_points["mtcnn"] = m.mtcnn_points
        m.method_points["mtcnn_calibrated"] = calibrated_points(m.mtcnn_points)
        m.method_points["mtcnn_calibrated, leave-one-out"] = points_for_template(
            m.mtcnn_points, templates[m.sample.identity]
        )
        m.method_points["dlib68"] = refiner.points(image, m.mtcnn_box, m.mtcnn_points)
        m.method_points["dlib68, no fallback"] = refiner.dlib_points(image, m.mtcnn_box)
        m.method_points["dlib68, no fallback, raw MTCNN box"] = deepfakebench_points(dlib68.landmarks(image, m.mtcnn_box))


def summarise(measurements: list[Measurement], method: str) -> dict[str, object]:
    stats = [crop_to_crop(m.method_points[method], m.reference_points) for m in measurements]
    mad = [crop_difference(m.sample.image, m.method_points[method], m.reference_points) for m in measurements]
    column = {key: np.array([s[key] for s in stats]) for key in stats[0]}
    return {
        "faces": len(measurements),
        "scale_mean": float(column["scale"].mean()),
        "scale_range": [float(column["scale"].min()), float(column["scale"].max())],
        "rotation_mean_deg": float(column["rotation_deg"].mean()),
        "rotation_max_abs_deg": float(np.abs(column["rotation_deg"]).max()),
        "centre_shift_mean": [float(column["centre_dx"].mean()), float(column["centre_dy"].mean())],
        "rms_px_mean": float(column["rms_px"].mean()),
        "rms_px_p90": float(np.percentile(column["rms_px"], 90)),
        "rms_px_max": float(column["rms_px"].max()),
        "mad_mean": float(np.mean(mad)),
        "per_face": {m.sample.name: {**s, "mad": d} for m, s, d in zip(measurements, stats, mad)},
    }


def landmark_table(measurements: list[Measurement]) -> dict[str, list[list[float]]]:
    """Mean positions in the 256 crop: the template, the reference points in the reference
    crop and in our crops, MTCNN's points in the reference crop."""
    return {
        "template": deepfakebench_template().round(1).tolist(),
        "dlib points, reference crop": np.mean(
            [to_crop(m.reference_points, m.reference_points) for m in measurements], axis=0).round(1).tolist(),
        "dlib points, mtcnn crop": np.mean(
            [to_crop(m.reference_points, m.mtcnn_points) for m in measurements], axis=0).round(1).tolist(),
        "dlib points, mtcnn_calibrated crop": np.mean(
            [to_crop(m.reference_points, m.method_points["mtcnn_calibrated"]) for m in measurements], axis=0
        ).round(1).tolist(),
        "mtcnn points, reference crop": np.mean(
            [to_crop(m.mtcnn_points, m.reference_points) for m in measurements], axis=0).round(1).tolist(),
    }


def timings(dlib68: Dlib68, refiner: DlibRefiner, detector: FaceDetector, repeats: int = 20) -> dict[str, float]:
    """Milliseconds on the astronaut (512 x 512, one face), one thread."""
    image = samples.face_image()
    (faces,) = detector.detect([image])
    face = faces[0]

    def best_of(function) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            function()
            times.append(time.perf_counter() - start)
        return 1000 * float(np.median(times))

    return {
        "mtcnn detect (image)": best_of(lambda: detector.detect([image])),
        "mtcnn_calibrated (face)": best_of(lambda: calibrated_points(face.landmarks)),
        "dlib68 refinement (face)": best_of(lambda: refiner.points(image, face.box, face.landmarks)),
        "align_face 256 (face)": best_of(lambda: align_face(image, face.landmarks)),
        "reference: HOG upsample 1 + 68 points (image)": best_of(lambda: dlib68.landmarks(image, dlib68.largest_face(image))),
    }


# ---- the figure ---------------------------------------------------------------------------


def figure(measurements: list[Measurement], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = {m.sample.name: m for m in measurements if m.sample.name in FIGURE_FACES}
    rows = [chosen[name] for name in FIGURE_FACES if name in chosen]
    columns = [("DeepfakeBench reference\n(dlib 37/44/30/49/55)", None), ("mtcnn (before)", "mtcnn"),
               ("mtcnn_calibrated (default)", "mtcnn_calibrated"), ("dlib68 (opt-in)", "dlib68")]
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(3.1 * len(columns), 3.25 * len(rows)), squeeze=False)
    template = deepfakebench_template()
    for row, m in enumerate(rows):
        for column, (title, method) in enumerate(columns):
            points = m.reference_points if method is None else m.method_points[method]
            axis = axes[row][column]
            axis.imshow(align_face(m.sample.image, points))
            axis.scatter(*template.T, marker="+", s=60, c="white", linewidths=1, label="template")
            axis.scatter(*to_crop(m.reference_points, points).T, s=14, c="red", label="dlib 37/44/30/49/55")
            axis.scatter(*to_crop(m.mtcnn_points, points).T, s=14, c="deepskyblue", label="MTCNN 5 points")
            note = "" if method is None else "  rms {rms_px:.1f} px, scale {scale:.3f}".format(
                **crop_to_crop(points, m.reference_points))
            axis.set_title((f"{title}\n" if row == 0 else "") + m.sample.name + note, fontsize=8)
            axis.set_xticks([])
            axis.set_yticks([])
    axes[0][0].legend(loc="lower left", fontsize=6, framealpha=0.7)
    fig.suptitle("256 crops (scale 1.3): red = dlib's DeepfakeBench points, blue = MTCNN's, + = template.\n"
                 "rms: how far this crop's content at the template points sits from the reference crop's; "
                 "scale: face size in the reference crop / in this crop", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=80)
    plt.close(fig)
    # A 256-colour palette keeps the committed figure a few hundred kB.
    Image.open(buffer).convert("RGB").quantize(256).save(path, optimize=True)


# ---- main ---------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--figure", type=Path, default=Path("docs/images/alignment_fidelity.png"))
    parser.add_argument("--json", type=Path, default=None, help="write every number, per face too")
    args = parser.parse_args()
    torch.set_num_threads(1)

    dlib68, refiner = Dlib68(), DlibRefiner()
    detector = FaceDetector(DetectorSettings(landmarks="mtcnn"))
    measurements, missed = [], []
    for sample in all_samples():
        found = measure(sample, dlib68, detector)
        (measurements if found else missed).append(found or sample.name)
    print(f"{len(measurements)} faces measured; missed by HOG or MTCNN: {', '.join(missed)}")
    add_methods(measurements, refiner, dlib68)

    calibration = [m for m in measurements if m.sample.group != "cameraman"]
    template = mtcnn_template(calibration)
    box = hog_box_convention(calibration)
    people = len(by_identity(calibration))
    print(f"\nCalibration on {people} people ({len(calibration)} images); landmarks.py holds:")
    print("MTCNN_POINTS_IN_DEEPFAKEBENCH_CROP =", np.round(template, 2).tolist())
    print(f"HOG_BOX_CENTRE_OFFSET = ({box[0]:.3f}, {box[1]:.3f}); HOG_BOX_SIDE = {box[2]:.3f}")
    drift = np.abs(template - MTCNN_POINTS_IN_DEEPFAKEBENCH_CROP).max()
    box_drift = max(abs(box[0] - HOG_BOX_CENTRE_OFFSET[0]), abs(box[1] - HOG_BOX_CENTRE_OFFSET[1]),
                    abs(box[2] - HOG_BOX_SIDE))
    print(f"(differs from landmarks.py by {drift:.3f} px and {box_drift:.4f} box sides)")

    groups = {"hd": "astronaut + hopper, 12 variations each", "lfw": "LFW subset",
              "cameraman": "cameraman (non-frontal, HOG threshold -0.5)"}
    methods = ("mtcnn", "mtcnn_calibrated", "mtcnn_calibrated, leave-one-out", "dlib68", "dlib68, no fallback",
               "dlib68, no fallback, raw MTCNN box")
    report: dict[str, object] = {"missed": missed, "calibrated_template": template.tolist(), "hog_box": box}
    for group, title in groups.items():
        selected = [m for m in measurements if m.sample.group == group]
        print(f"\n== {title}: {len(selected)} images")
        print(f"{'method':34s} {'scale':>6s} {'range':>13s} {'rot':>6s} {'|rot|max':>8s} {'centre shift':>13s} "
              f"{'rms':>5s} {'p90':>5s} {'max':>5s} {'MAD':>5s}")
        report[group] = {}
        for method in methods:
            summary = summarise(selected, method)
            report[group][method] = summary
            low, high = summary["scale_range"]
            dx, dy = summary["centre_shift_mean"]
            print(f"{method:34s} {summary['scale_mean']:6.3f} [{low:.3f},{high:.3f}] "
                  f"{summary['rotation_mean_deg']:+6.2f} {summary['rotation_max_abs_deg']:8.2f} "
                  f"({dx:+5.2f},{dy:+5.2f}) {summary['rms_px_mean']:5.2f} {summary['rms_px_p90']:5.2f} "
                  f"{summary['rms_px_max']:5.2f} {summary['mad_mean']:5.1f}")
        table = landmark_table(selected)
        report[group]["landmarks"] = table
        print("mean positions in the 256 crop, per point:", ", ".join(POINT_NAMES))
        for name, points in table.items():
            print(f"  {name:36s}", "  ".join(f"({x:5.1f},{y:5.1f})" for x, y in points))
    hd = [m for m in measurements if m.sample.group == "hd"]
    for which in ("reference_points", "mtcnn_points"):
        moved = self_consistency(hd, which)
        report[f"self_consistency_{which}"] = {"mean": float(np.mean(moved)), "max": float(np.max(moved))}
        print(f"\n{which} under rotation/scale/shift of the HD photos: crop moves {np.mean(moved):.2f} px "
              f"on average, {np.max(moved):.2f} at most ({len(moved)} variations)")
    astronaut = {m.sample.name: m for m in measurements}["astronaut original"]
    report["astronaut_landmarks"] = landmark_table([astronaut])

    report["timings_ms"] = timings(dlib68, refiner, detector)
    print("\nrun time, ms (median, one thread):", json.dumps(report["timings_ms"], indent=1))
    figure(measurements, args.figure)
    print(f"figure: {args.figure}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
