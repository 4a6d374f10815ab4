"""GPU benchmark: per-model FP16 throughput against batch size, against the compute ceiling,
and the ensemble end to end on the GPU.

    python -m benchmarks.studies.gpu --artifacts build --out reports/gpu               # models, batch 1...128
    python -m benchmarks.studies.gpu --artifacts build --out reports/gpu --end-to-end  # + the served ensemble
    python -m benchmarks.studies.gpu --artifacts build --out reports/gpu --flops-only  # FLOPs per face, any machine

Per model: the fixed checkpoint in PyTorch FP16 (deepfake_models.servable; UINT8 crops
already on the GPU), and the model's TensorRT plan for this GPU and TensorRT
version when the `tensorrt` package is importable, each timed at every batch
size (up to the plan's profile maximum). The ceiling is the measured FP16
matmul peak divided by the FLOPs per face (counted exactly on the CPU,
benchmarks/studies/flops.py). --end-to-end assembles the `pytorch` flavour (and
`tensorrt` when every model has a plan), starts Triton on it and runs the
capacity sweep (benchmarks/load/sweep.py) with a 50 ms p95 SLO into OUT/e2e-<flavour>/.

Writes OUT/gpu.json, OUT/gpu.md and OUT/batch_throughput.png.
Exit status 3 when no CUDA GPU is visible: nothing is measured then.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import plots
from benchmarks.common.machine import describe, machine_info
from benchmarks.common.report import markdown_table, write_report
from benchmarks.load.closed_loop import parse_levels
from benchmarks.studies.flops import flops_per_face
from deepfake_contract import CLASSIFIER_INPUT, CLASSIFIER_OUTPUT
from deepfake_models import CLASSIFIERS, ClassifierSpec
from export.artifacts import BuildArtifacts

DEFAULT_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128)
EXIT_NO_GPU = 3
E2E_FLAVOURS = ("pytorch", "tensorrt")
E2E_LEVELS = "1,4,16,64,128,256"
E2E_MIX = {"face": 8, "no_face": 1, "two_faces": 1}
E2E_SLO_MS = 50.0  # docs/design.md §9: p95 <= 50 ms at >= 1,000 images/s on one H100


class NoGpuError(RuntimeError):
    """No CUDA device: the GPU benchmark cannot measure anything here."""


def require_cuda() -> str:
    """The GPU's name; raises NoGpuError saying what to do instead."""
    import torch

    if not torch.cuda.is_available():
        build = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise NoGpuError(
            f"CUDA is not available here (torch {torch.__version__}, {build}, sees no GPU). "
            "This benchmark measures GPU throughput: nothing was measured. Run it on a machine with an "
            "NVIDIA GPU: python -m benchmarks.studies.gpu --artifacts build --out reports/gpu --end-to-end "
            "(here, --flops-only counts the FLOPs per face)."
        )
    return torch.cuda.get_device_name(0)


def time_call(run: Callable[[], object], synchronize: Callable[[], None], min_seconds: float = 1.0,
              min_iterations: int = 10, warmup: int = 3) -> float:
    """Seconds per call of `run`, whose GPU work is asynchronous: `synchronize` waits for it."""
    for _ in range(warmup):
        run()
    synchronize()
    iterations, start = 0, time.perf_counter()
    while iterations < min_iterations or time.perf_counter() - start < min_seconds:
        run()
        iterations += 1
        if iterations % min_iterations == 0:
            synchronize()
    synchronize()
    return (time.perf_counter() - start) / iterations


def matmul_peak_tflops(size: int = 8192) -> float:
    """The dense FP16 matrix-multiply rate this GPU reaches: the denominator of the ceiling."""
    import torch

    a = torch.randn(size, size, device="cuda", dtype=torch.float16)
    b = torch.randn(size, size, device="cuda", dtype=torch.float16)
    return 2 * size**3 / time_call(lambda: torch.mm(a, b), torch.cuda.synchronize) / 1e12


@dataclass(frozen=True)
class Runner:
    runtime: str  # "pytorch" or "tensorrt"
    max_batch: int | None  # a plan's profile maximum; None: any
    prepare: Callable[[int], Callable[[], object]]  # batch size -> one call running that batch on the GPU


def _random_faces(spec: ClassifierSpec, batch: int):
    import torch

    shape = (batch, spec.input_size, spec.input_size, 3)
    return torch.randint(0, 256, shape, dtype=torch.uint8, device="cuda")


def pytorch_runner(spec: ClassifierSpec, artifacts: BuildArtifacts) -> Runner:
    import torch

    from deepfake_models.servable import load_servable

    model = load_servable(spec, artifacts.fixed_checkpoint(spec.name), "cuda", torch.float16)

    def prepare(batch: int) -> Callable[[], object]:
        faces = _random_faces(spec, batch)
        return torch.inference_mode()(lambda: model(faces))

    return Runner("pytorch", None, prepare)


def plan_for_this_gpu(spec: ClassifierSpec, artifacts: BuildArtifacts) -> Path | None:
    """The plan built for this GPU's architecture and the installed TensorRT, if any."""
    import tensorrt
    import torch

    capability = "{}.{}".format(*torch.cuda.get_device_capability(0))
    for sidecar in artifacts.plans(spec.name):
        if sidecar.get("compute_capability") == capability and sidecar.get("tensorrt_version") == tensorrt.__version__:
            return Path(sidecar["plan"])
    return None


def tensorrt_runner(spec: ClassifierSpec, plan: Path) -> Runner:
    import tensorrt
    import torch

    engine = tensorrt.Runtime(tensorrt.Logger(tensorrt.Logger.WARNING)).deserialize_cuda_engine(plan.read_bytes())
    context = engine.create_execution_context()
    _, _, max_shape = engine.get_tensor_profile_shape(CLASSIFIER_INPUT, 0)

    def prepare(batch: int) -> Callable[[], object]:
        faces = _random_faces(spec, batch)
        logits = torch.empty((batch, 2), dtype=torch.float32, device="cuda")

        def run() -> None:
            context.set_input_shape(CLASSIFIER_INPUT, tuple(faces.shape))
            context.set_tensor_address(CLASSIFIER_INPUT, faces.data_ptr())
            context.set_tensor_address(CLASSIFIER_OUTPUT, logits.data_ptr())
            if not context.execute_async_v3(torch.cuda.current_stream().cuda_stream):
                raise RuntimeError(f"TensorRT failed to run {plan}")
        return run

    return Runner("tensorrt", int(max_shape[0]), prepare)


def result_row(model: str, runtime: str, batch: int, seconds: float, flops: int, peak_tflops: float) -> dict:
    faces_per_s = batch / seconds
    ceiling = peak_tflops * 1e12 / flops
    return {"model": model, "runtime": runtime, "batch": batch, "ms_per_batch": seconds * 1e3,
            "faces_per_s": faces_per_s, "achieved_tflops": faces_per_s * flops / 1e12,
            "ceiling_faces_per_s": ceiling, "share_of_ceiling": faces_per_s / ceiling}


def measure(runner: Runner, spec: ClassifierSpec, batches: Sequence[int], flops: int, peak_tflops: float) -> list[dict]:
    import torch

    rows = []
    for batch in batches:
        if runner.max_batch is not None and batch > runner.max_batch:
            break
        try:
            seconds = time_call(runner.prepare(batch), torch.cuda.synchronize)
        except torch.cuda.OutOfMemoryError:
            print(f"  {spec.name} ({runner.runtime}): out of GPU memory at batch {batch}", flush=True)
            break
        rows.append(result_row(spec.name, runner.runtime, batch, seconds, flops, peak_tflops))
        print(f"  {spec.name} ({runner.runtime}) batch {batch}: {rows[-1]['faces_per_s']:,.0f} faces/s", flush=True)
    return rows


def four_model_estimate(rows: Sequence[Mapping], flops: Mapping[str, int], peak_tflops: float) -> dict[str, dict]:
    """Per runtime: faces/s through all four classifiers on one GPU, each at its best batch size
    (their GPU times add up: 1 / Σ 1/best), against the ceiling peak / Σ FLOPs."""
    estimates = {}
    for runtime in dict.fromkeys(row["runtime"] for row in rows):
        best = {}
        for row in rows:
            if row["runtime"] == runtime:
                best[row["model"]] = max(best.get(row["model"], 0.0), row["faces_per_s"])
        if set(best) != set(flops):
            continue  # some model has no figure for this runtime
        estimates[runtime] = {"best_faces_per_s": best,
                              "four_models_faces_per_s": 1.0 / sum(1.0 / v for v in best.values()),
                              "ceiling_faces_per_s": peak_tflops * 1e12 / sum(flops.values())}
    return estimates


def flops_markdown(flops: Mapping[str, int], peak_tflops: float | None) -> str:
    header = ["model", "GFLOP per face"] + (["ceiling (faces/s)"] if peak_tflops else [])
    rows = [[name, f"{value / 1e9:.2f}"] + ([f"{peak_tflops * 1e12 / value:,.0f}"] if peak_tflops else [])
            for name, value in flops.items()]
    total = sum(flops.values())
    rows.append(["**all four**", f"{total / 1e9:.2f}"] + ([f"{peak_tflops * 1e12 / total:,.0f}"] if peak_tflops else []))
    return markdown_table(header, rows)


def gpu_markdown(data: Mapping) -> str:
    parts = [f"# GPU benchmark\n\nMachine: {data['machine_description']}  \n"
             f"Measured FP16 matmul peak: {data['peak_tflops']:.0f} TFLOP/s\n",
             "## FLOPs per face and the compute ceiling\n", flops_markdown(data["flops"], data["peak_tflops"]),
             "## Throughput against batch size\n",
             markdown_table(["model", "runtime", "batch", "ms/batch", "faces/s", "TFLOP/s", "of ceiling"],
                            [[r["model"], r["runtime"], r["batch"], r["ms_per_batch"], f"{r['faces_per_s']:,.0f}",
                              r["achieved_tflops"], f"{r['share_of_ceiling']:.0%}"] for r in data["rows"]]),
             "## All four classifiers on one GPU (each at its best batch)\n"]
    for runtime, estimate in data["four_models"].items():
        parts.append(f"- {runtime}: {estimate['four_models_faces_per_s']:,.0f} faces/s "
                     f"(ceiling {estimate['ceiling_faces_per_s']:,.0f}; target ≥ 2,000)")
    return "\n".join(parts) + "\n"


def count_all_flops(specs: Sequence[ClassifierSpec]) -> dict[str, int]:
    import torch

    torch.set_num_threads(min(4, torch.get_num_threads()))
    return {spec.name: flops_per_face(spec) for spec in specs}


def run_models(artifacts: BuildArtifacts, batches: Sequence[int], flops: Mapping[str, int],
               peak_tflops: float) -> list[dict]:
    import torch

    have_tensorrt = importlib.util.find_spec("tensorrt") is not None
    if not have_tensorrt:
        print("TensorRT is not installed: PyTorch FP16 only", flush=True)
    rows = []
    for spec in CLASSIFIERS:
        runners = [pytorch_runner(spec, artifacts)]
        plan = plan_for_this_gpu(spec, artifacts) if have_tensorrt else None
        if plan is not None:
            runners.append(tensorrt_runner(spec, plan))
        elif have_tensorrt:
            print(f"  {spec.name}: no TensorRT plan for this GPU and TensorRT version", flush=True)
        for runner in runners:
            rows += measure(runner, spec, batches, flops[spec.name], peak_tflops)
        del runners
        gc.collect()
        torch.cuda.empty_cache()
    return rows


def run_end_to_end(artifacts: BuildArtifacts, out: Path) -> dict[str, int]:
    """The capacity sweep of each flavour this GPU can serve; the sweep's exit status by flavour."""
    from benchmarks.common.server import serve
    from benchmarks.load.sweep import SweepPlan, sweep_and_report
    from benchmarks.load.workload import Workload
    from export.repository import RepositoryError, RepositoryOptions, assemble

    plan = SweepPlan(parse_levels(E2E_LEVELS), Workload(E2E_MIX), duration_s=60.0, warmup_s=10.0,
                     slo_p95_ms=E2E_SLO_MS)
    statuses = {}
    for flavour in E2E_FLAVOURS:
        folder = out / f"e2e-{flavour}"
        try:
            repository = assemble(artifacts.root, folder / "repository", RepositoryOptions(flavour=flavour))
        except RepositoryError as exc:
            print(f"end to end, {flavour} flavour: cannot be assembled here ({exc})", flush=True)
            continue
        with serve(folder, repository=repository) as endpoint:
            statuses[flavour] = sweep_and_report(plan, endpoint, folder, f"End to end on the GPU: {flavour} flavour")
    return statuses


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifacts", type=Path, default=Path("build"), help="export output folder")
    parser.add_argument("--out", type=Path, required=True, help="report folder")
    parser.add_argument("--batch-sizes", default=",".join(map(str, DEFAULT_BATCHES)))
    parser.add_argument("--flops-only", action="store_true", help="count FLOPs per face (CPU) and stop")
    parser.add_argument("--end-to-end", action="store_true", help="also sweep the served ensemble on the GPU")
    args = parser.parse_args(argv)
    try:
        batches = parse_levels(args.batch_sizes, what="batch sizes")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    machine = machine_info()

    if args.flops_only:
        flops = count_all_flops(CLASSIFIERS)
        data = {"machine": machine, "flops": flops}
        write_report(args.out, "flops", data, f"# FLOPs per face\n\nCounted on: {describe(machine)}\n\n"
                                              f"{flops_markdown(flops, None)}")
        print(flops_markdown(flops, None))
        return 0
    try:
        require_cuda()
    except NoGpuError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NO_GPU

    artifacts = BuildArtifacts(args.artifacts)
    flops = count_all_flops(CLASSIFIERS)
    peak = matmul_peak_tflops()
    print(f"FP16 matmul peak: {peak:.0f} TFLOP/s", flush=True)
    rows = run_models(artifacts, batches, flops, peak)
    data = {"machine": machine, "machine_description": describe(machine), "peak_tflops": peak, "flops": flops,
            "rows": rows, "four_models": four_model_estimate(rows, flops, peak)}
    write_report(args.out, "gpu", data, gpu_markdown(data))
    plots.batch_throughput_chart(args.out / "batch_throughput.png", rows,
                                 {name: peak * 1e12 / value for name, value in flops.items()})
    print(gpu_markdown(data))
    if args.end_to_end:
        statuses = run_end_to_end(artifacts, args.out)
        return max(statuses.values(), default=0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
