"""GPU measurement kit: everything that bounds the service on a CUDA machine that has
PyTorch but neither Triton nor TensorRT, in one command, in under 8 minutes.

    python -m benchmarks.studies.gpu_kit --artifacts build --out reports/gpu-kit          # on a GPU
    python -m benchmarks.studies.gpu_kit --artifacts build --out reports/kit --tiny       # CPU smoke test (CI)

It measures, on cuda:0 (or the CPU with --tiny, which also shrinks every size):
1. each classifier in FP16 (FP32 on the CPU) at batch 1...128 against the compute floor
   (FLOPs counted exactly, benchmarks/studies/flops.py; peak from a dense matmul), reusing
   benchmarks/studies/gpu.py's timing and rows;
2. the detector stage, encoded JPEG in -> aligned crops out (decode + MTCNN +
   alignment; on a GPU decode is nvJPEG and alignment grid_sample,
   deepfake_serving/alignment_torch.py), in images/s on 1024² and 4096² inputs at
   batch 1 and batched;
3. JPEG decoding alone with torchvision (nvJPEG on a GPU), images/s;
4. the whole pipeline without Triton: detector stage, the four classifiers on the
   crops (placeholder rows skipped), the combiner, images/s.
Writes OUT/gpu_kit.json and OUT/gpu_kit.md. It needs only the project's own code and
the exported fixed checkpoints (deepfake-export all).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks.common.machine import describe, machine_info
from benchmarks.common.report import markdown_table, write_report
from benchmarks.studies.detection_bound import square_sample
from benchmarks.studies.flops import flops_per_face
from benchmarks.studies.gpu import result_row, time_call
from deepfake_dev import samples
from deepfake_models import CLASSIFIERS, ClassifierSpec, spec_by_name
from export.artifacts import BuildArtifacts


@dataclass(frozen=True)
class KitSize:
    batches: tuple[int, ...]
    sides: tuple[int, ...]
    detector_batch: int
    min_seconds: float
    min_iterations: int
    warmup: int
    matmul: int


FULL = KitSize(batches=(1, 2, 4, 8, 16, 32, 64, 128), sides=(1024, 4096), detector_batch=8,
               min_seconds=1.0, min_iterations=5, warmup=2, matmul=8192)
TINY = KitSize(batches=(1, 2), sides=(256, 512), detector_batch=2, min_seconds=0.0, min_iterations=1, warmup=0,
               matmul=256)


def _sync(device: torch.device) -> Callable[[], None]:
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def _time(run: Callable[[], object], device: torch.device, size: KitSize) -> float:
    return time_call(run, _sync(device), size.min_seconds, size.min_iterations, size.warmup)


def matmul_peak_tflops(device: torch.device, dtype: torch.dtype, size: KitSize) -> float:
    a = torch.randn(size.matmul, size.matmul, device=device, dtype=dtype)
    b = torch.randn(size.matmul, size.matmul, device=device, dtype=dtype)
    return 2 * size.matmul**3 / _time(lambda: torch.mm(a, b), device, size) / 1e12


def classifier_rows(specs: Sequence[ClassifierSpec], artifacts: BuildArtifacts, device: torch.device,
                    dtype: torch.dtype, peak: float, size: KitSize) -> tuple[list[dict], dict[str, int]]:
    from deepfake_models.servable import load_servable

    rows, flops = [], {}
    for spec in specs:
        flops[spec.name] = flops_per_face(spec)
        model = load_servable(spec, artifacts.fixed_checkpoint(spec.name), device, dtype)
        for batch in size.batches:
            seconds = _time_model(model, spec, batch, device, size)
            rows.append(result_row(spec.name, f"pytorch {str(dtype).removeprefix('torch.')}", batch, seconds,
                                   flops[spec.name], peak))
            print(f"  {spec.name} batch {batch}: {rows[-1]['faces_per_s']:,.1f} faces/s", flush=True)
    return rows, flops


@torch.inference_mode()
def _time_model(model: torch.nn.Module, spec: ClassifierSpec, batch: int, device: torch.device,
                size: KitSize) -> float:
    faces = torch.randint(0, 256, (batch, spec.input_size, spec.input_size, 3), dtype=torch.uint8, device=device)
    return _time(lambda: model(faces), device, size)


def detector_rows(device: torch.device, size: KitSize) -> list[dict]:
    from deepfake_serving.detection import detect_faces
    from deepfake_serving.faces import DetectorSettings, FaceDetector

    detector = FaceDetector(DetectorSettings(device=str(device)))
    rows = []
    for side in size.sides:
        jpeg = samples.encode_image(square_sample(side), quality=90)
        for batch in sorted({1, size.detector_batch}):
            images = [jpeg] * batch
            seconds = _time(lambda: detect_faces(images, detector, on_device=str(device)), device, size)  # noqa: B023
            rows.append({"side": side, "batch": batch, "images_per_s": batch / seconds})
            print(f"  detector {side}² batch {batch}: {batch / seconds:,.1f} images/s", flush=True)
    return rows


def decode_rows(device: torch.device, size: KitSize) -> list[dict]:
    from deepfake_serving.alignment_torch import decode_jpeg

    rows = []
    for side in size.sides:
        jpeg = samples.encode_image(square_sample(side), quality=90)
        seconds = _time(lambda: decode_jpeg(jpeg, device), device, size)  # noqa: B023
        rows.append({"side": side, "images_per_s": 1 / seconds})
        print(f"  decode {side}²: {1 / seconds:,.1f} images/s", flush=True)
    return rows


def pipeline_rows(specs: Sequence[ClassifierSpec], artifacts: BuildArtifacts, device: torch.device,
                  dtype: torch.dtype, size: KitSize) -> list[dict]:
    """The served pipeline's work without Triton: detector stage, classifiers, combiner."""
    from deepfake_models.servable import load_servable
    from deepfake_serving.combiner import CombinerSettings, combine
    from deepfake_serving.detection import detect_faces
    from deepfake_serving.faces import DetectorSettings, FaceDetector
    from deepfake_serving.placeholders import infer_present_rows

    detector = FaceDetector(DetectorSettings(device=str(device)))
    models = {spec.name: load_servable(spec, artifacts.fixed_checkpoint(spec.name), device, dtype) for spec in specs}
    settings = CombinerSettings(model_names=tuple(models), weights={name: 1.0 for name in models})
    mix = [samples.encode_image(samples.face_image()), samples.encode_image(samples.no_face_image()),
           samples.encode_image(samples.two_face_image())]

    def run(images: list[bytes]) -> None:
        detections = detect_faces(images, detector, on_device=str(device))
        with torch.inference_mode():
            for detection in detections:
                logits = [infer_present_rows(
                    detection.crops[spec.input_size], detection.present,
                    lambda faces, name=spec.name: models[name](torch.from_numpy(faces).to(device)).float().cpu().numpy())
                    for spec in specs]
                combine(int(detection.num_faces[0]), logits, settings)

    rows = []
    for batch in sorted({1, size.detector_batch}):
        images = [mix[i % len(mix)] for i in range(batch)]
        seconds = _time(lambda: run(images), device, size)  # noqa: B023
        rows.append({"batch": batch, "images_per_s": batch / seconds, "mix": "face, no_face, two_faces in turn"})
        print(f"  pipeline batch {batch}: {batch / seconds:,.2f} images/s", flush=True)
    return rows


def kit_markdown(data: dict) -> str:
    parts = [f"# GPU measurement kit\n\nMachine: {data['machine_description']}  \n"
             f"Device: {data['device']}, classifiers in {data['dtype']}; "
             f"measured matmul peak {data['peak_tflops']:.3g} TFLOP/s{' (--tiny smoke run)' if data['tiny'] else ''}\n",
             "## Classifiers against batch size and the compute floor\n",
             markdown_table(["model", "batch", "ms/batch", "faces/s", "floor (faces/s)", "of floor"],
                            [[r["model"], r["batch"], r["ms_per_batch"], f"{r['faces_per_s']:,.1f}",
                              f"{r['ceiling_faces_per_s']:,.3g}", f"{r['share_of_ceiling']:.0%}"]
                             for r in data["classifiers"]]),
             "## Detector stage (decode + MTCNN + alignment)\n",
             markdown_table(["input", "batch", "images/s"],
                            [[f"{r['side']}²", r["batch"], f"{r['images_per_s']:,.1f}"] for r in data["detector"]]),
             "## JPEG decode (torchvision; nvJPEG on a GPU)\n",
             markdown_table(["input", "images/s"], [[f"{r['side']}²", f"{r['images_per_s']:,.1f}"]
                                                    for r in data["decode"]]),
             "## Whole pipeline without Triton\n",
             markdown_table(["batch", "images/s", "inputs"],
                            [[r["batch"], f"{r['images_per_s']:,.2f}", r["mix"]] for r in data["pipeline"]])]
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, default=Path("build"), help="export output folder")
    parser.add_argument("--out", type=Path, required=True, help="report folder")
    parser.add_argument("--tiny", action="store_true", help="CPU smoke test: small sizes, one timed call each")
    parser.add_argument("--model", dest="models", action="append", help="only this classifier (repeatable)")
    args = parser.parse_args(argv)
    if not args.tiny and not torch.cuda.is_available():
        print("gpu_kit: no CUDA GPU here; nothing measured (use --tiny for the CPU smoke test)")
        return 3
    device = torch.device("cpu" if args.tiny else "cuda:0")
    dtype = torch.float32 if device.type == "cpu" else torch.float16
    size = TINY if args.tiny else FULL
    specs = [spec_by_name(name) for name in args.models] if args.models else list(CLASSIFIERS)
    artifacts = BuildArtifacts(args.artifacts)
    started = time.perf_counter()
    peak = matmul_peak_tflops(device, dtype, size)
    print(f"matmul peak {peak:.3g} TFLOP/s", flush=True)
    classifiers, flops = classifier_rows(specs, artifacts, device, dtype, peak, size)
    data = {
        "machine": machine_info(), "machine_description": describe(machine_info()), "device": str(device),
        "dtype": str(dtype).removeprefix("torch."), "tiny": args.tiny, "peak_tflops": peak, "flops": flops,
        "classifiers": classifiers, "detector": detector_rows(device, size), "decode": decode_rows(device, size),
        "pipeline": pipeline_rows(specs, artifacts, device, dtype, size),
    }
    data["seconds"] = time.perf_counter() - started
    write_report(args.out, "gpu_kit", data, kit_markdown(data))
    print(f"report in {args.out}/gpu_kit.md ({data['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
