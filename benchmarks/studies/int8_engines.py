"""INT8 on CPU hosts, two engines side by side: ONNX Runtime QDQ against OpenVINO + NNCF.

    python -m benchmarks.studies.int8_engines --artifacts build --out reports/int8-engines [--model NAME ...]

For each classifier (default: all four) it takes the exported FP32 ONNX file and the
calibration and held-out face crops of `export/quantize.py` (the same functions, so the
same crops and the same gate), and measures these engines:

  ort-fp32   the FP32 ONNX file on onnxruntime, as the `cpu` flavour serves it
  ort-int8   export/quantize.py's static QDQ file (quantize_onnx) on onnxruntime
  ov-fp32    the same ONNX file read by OpenVINO, compiled with FP32 inference precision
  ov-int8    nncf.quantize on the same calibration crops, compiled the same way
  ov-int8-nosq  the same without NNCF's SmoothQuant step (ViT-L only: NNCF applies it to
             transformers; for the CNNs it would be ov-int8 again and is reported "n/a")

For each engine: the latency of one call at each `--batch` size (default 1 and 4) with the
threads the `cpu` flavour gives that classifier (its spec's `cpu_threads`; 0 = every core),
timed in interleaved rounds so that load from other jobs hits every engine alike, and the
gate of export/quantize.py (max and mean |Δ fake probability| against ort-fp32 on the
held-out crops). Only ratios measured in one run mean much on a shared machine.

OpenVINO's engines are reported as "not installed" when openvino or nncf cannot be imported.

Writes OUT/int8_engines.json, OUT/int8_engines.md and OUT/int8_engines.png; the quantised
files are kept under OUT/models/.
"""

from __future__ import annotations

import argparse
import gc
import logging
import math
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from benchmarks.common.machine import describe, machine_info
from benchmarks.common.report import markdown_table, write_report
from benchmarks.studies.gpu import time_call
from export.quantize import (
    CALIBRATION_CROPS,
    HOLDOUT_CROPS,
    Gate,
    batched_logits,
    calibration_and_holdout,
    gate_check,
    quantize_onnx,
)

log = logging.getLogger("benchmarks.studies.int8_engines")

ENGINES = ("ort-fp32", "ort-int8", "ov-fp32", "ov-int8", "ov-int8-nosq")
REFERENCE = "ort-fp32"  # what the gate compares with: the cpu flavour's FP32 model
NOT_INSTALLED = "not installed"

Runner = Callable[[np.ndarray], np.ndarray]  # (N, S, S, 3) uint8 crops -> (N, 2) logits


@dataclass
class EngineResult:
    engine: str
    status: str = "ok"  # "ok", NOT_INSTALLED or "error: ..."
    build_seconds: float = math.nan  # quantisation / compilation
    file_mb: float = math.nan
    ms_per_call: dict[int, float] = field(default_factory=dict)  # batch -> median ms of one call
    gate: dict[str, Any] = field(default_factory=dict)
    peak_rss_gib: float = math.nan  # the process's peak RSS once this engine was built (cumulative)

    def as_dict(self) -> dict[str, Any]:
        return {"engine": self.engine, "status": self.status, "build_seconds": self.build_seconds,
                "file_mb": self.file_mb, "ms_per_call": {str(b): ms for b, ms in self.ms_per_call.items()},
                "gate": self.gate, "peak_rss_gib": self.peak_rss_gib}


def openvino_missing() -> str | None:
    """Why the OpenVINO engines cannot run here, or None."""
    try:
        import nncf  # noqa: F401
        import openvino  # noqa: F401
    except ImportError as error:
        return f"{NOT_INSTALLED} ({error.name or error})"
    return None


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def is_transformer(onnx_path: Path) -> bool:
    """NNCF's transformer preset for graphs with LayerNormalization (ViT-L), not for the CNNs."""
    model = onnx.load(str(onnx_path), load_external_data=False)
    return any(node.op_type == "LayerNormalization" for node in model.graph.node)


# -- the engines -----------------------------------------------------------------

def ort_runner(path: Path, threads: int) -> Runner:
    from deepfake_serving.onnx_classifier import OnnxClassifier  # the cpu flavour's session options

    return OnnxClassifier(path, intra_op_threads=threads)


def ov_compile(model: Any, threads: int) -> Runner:
    """FP32 inference precision (OpenVINO's default on CPUs with AMX or AVX512-BF16 is BF16,
    which would mix a third precision into the comparison); one stream, latency hint."""
    import openvino as ov

    compiled = ov.Core().compile_model(model, "CPU", {
        "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32",
        "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1,
    })
    request = compiled.create_infer_request()
    return lambda faces: request.infer({0: faces})[0].copy()


def ov_quantize(onnx_path: Path, calibration: np.ndarray, out: Path, transformer: bool,
                smooth_quant: bool = True) -> Path:
    """NNCF post-training quantisation (its defaults: INT8, fast bias correction; for
    transformers its transformer preset, SmoothQuant included unless `smooth_quant` is False)
    of the ONNX model read by OpenVINO, on the calibration crops one at a time; saves the IR."""
    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, AdvancedSmoothQuantParameters

    model = ov.Core().read_model(str(onnx_path))
    dataset = nncf.Dataset(list(calibration), lambda crop: crop[None])
    advanced = None if smooth_quant else AdvancedQuantizationParameters(
        smooth_quant_alphas=AdvancedSmoothQuantParameters(convolution=-1, matmul=-1))
    quantised = nncf.quantize(model, dataset, subset_size=len(calibration),
                              model_type=nncf.ModelType.TRANSFORMER if transformer else None,
                              advanced_parameters=advanced)
    del model
    out.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantised, str(out), compress_to_fp16=False)
    return out


def _file_mb(path: Path) -> float:
    files = [path, path.with_suffix(".bin")] if path.suffix == ".xml" else [path]
    return sum(p.stat().st_size for p in files if p.is_file()) / 1e6


def build_engines(name: str, fp32: Path, threads: int, calibration: np.ndarray, models_dir: Path,
                  engines: Sequence[str], transformer: bool) -> tuple[dict[str, EngineResult], dict[str, Runner]]:
    """Quantise and load every requested engine; an engine that cannot be built gets its status."""
    unknown = set(engines) - set(ENGINES)
    if unknown:
        raise ValueError(f"unknown engines {sorted(unknown)}; known: {', '.join(ENGINES)}")
    results = {engine: EngineResult(engine) for engine in engines}
    runners: dict[str, Runner] = {}
    missing = openvino_missing()
    for engine in engines:
        result = results[engine]
        if engine.startswith("ov-") and missing:
            result.status = missing
            log.warning("%s %s: %s", name, engine, missing)
            continue
        if engine == "ov-int8-nosq" and not transformer:
            result.status = "n/a (no SmoothQuant outside transformers: same as ov-int8)"
            continue
        log.info("%s %s: building", name, engine)
        start = time.perf_counter()
        try:
            if engine == "ort-fp32":
                path, runner = fp32, ort_runner(fp32, threads)
            elif engine == "ort-int8":
                path = models_dir / f"{name}.int8.onnx"
                quantize_onnx(fp32, path, calibration)
                gc.collect()
                runner = ort_runner(path, threads)
            elif engine == "ov-fp32":
                path, runner = fp32, ov_compile(str(fp32), threads)
            elif engine == "ov-int8":
                path = ov_quantize(fp32, calibration, models_dir / f"{name}.ov-int8.xml", transformer)
                gc.collect()
                runner = ov_compile(str(path), threads)
            elif engine == "ov-int8-nosq":
                path = ov_quantize(fp32, calibration, models_dir / f"{name}.ov-int8-nosq.xml", transformer,
                                   smooth_quant=False)
                gc.collect()
                runner = ov_compile(str(path), threads)
        except Exception as error:  # noqa: BLE001 - one engine's failure is a result, not the end of the run
            result.status = f"error: {type(error).__name__}: {error}"[:300]
            log.error("%s %s: %s", name, engine, result.status)
            continue
        gc.collect()
        result.build_seconds = time.perf_counter() - start
        result.file_mb = _file_mb(path)
        result.peak_rss_gib = peak_rss_gib()
        runners[engine] = runner
        log.info("%s %s: built in %.1f s, peak RSS so far %.1f GiB", name, engine, result.build_seconds,
                 result.peak_rss_gib)
    return results, runners


def measure_model(name: str, fp32: Path, threads: int, crops: tuple[np.ndarray, np.ndarray], models_dir: Path,
                  gate: Gate | None = None, batches: Sequence[int] = (1, 4), engines: Sequence[str] = ENGINES,
                  rounds: int = 3, min_seconds: float = 2.0) -> dict[str, Any]:
    """Every engine of one ONNX classifier: build, gate on the held-out crops, then latency."""
    if REFERENCE not in engines:
        raise ValueError(f"{REFERENCE} is the gate's reference and must be measured")
    gate = gate or Gate()
    calibration, holdout = crops
    transformer = is_transformer(fp32)
    results, runners = build_engines(name, fp32, threads, calibration, models_dir, engines, transformer)
    if REFERENCE not in runners:
        raise RuntimeError(f"{name}: the reference engine failed: {results[REFERENCE].status}")
    outputs = {}
    for engine, runner in runners.items():
        log.info("%s %s: logits of %d held-out crops", name, engine, len(holdout))
        outputs[engine] = batched_logits(runner, holdout)
    for engine, logits in outputs.items():
        results[engine].gate = gate_check(outputs[REFERENCE], logits, gate)
    samples: dict[tuple[str, int], list[float]] = {(e, b): [] for e in runners for b in batches}
    for round_ in range(rounds):
        for batch in batches:
            faces = np.ascontiguousarray(holdout[np.arange(batch) % len(holdout)])
            for engine, runner in runners.items():
                samples[engine, batch].append(
                    1e3 * time_call(lambda r=runner, f=faces: r(f), synchronize=lambda: None, min_seconds=min_seconds,
                                    min_iterations=2, warmup=1))
        log.info("%s: timing round %d/%d: %s", name, round_ + 1, rounds,
                 ", ".join(f"{e} b{b} {v[-1]:.0f} ms" for (e, b), v in samples.items()))
    for (engine, batch), values in samples.items():
        results[engine].ms_per_call[batch] = statistics.median(values)
    del runners
    gc.collect()
    return {"model": name, "onnx": str(fp32), "threads": threads, "nncf_model_type":
            "transformer" if transformer else "default", "calibration_crops": len(calibration),
            "holdout_crops": len(holdout), "logits": {e: o.tolist() for e, o in outputs.items()},
            "engines": {engine: result.as_dict() for engine, result in results.items()}}


# -- the verdict and the report --------------------------------------------------------

def fastest_passing(report: dict[str, Any], batch: int) -> str | None:
    """The fastest INT8 engine that passed the gate at this batch size, or None (FP32 kept)."""
    timed = [(e["ms_per_call"][str(batch)], e["engine"]) for e in report["engines"].values()
             if "int8" in e["engine"] and e["status"] == "ok" and e["gate"].get("passed")
             and str(batch) in e["ms_per_call"]]
    return min(timed)[1] if timed else None


def _threads_label(threads: int) -> str:
    return f"all ({os.cpu_count()})" if threads == 0 else str(threads)


def markdown(reports: list[dict[str, Any]], batches: Sequence[int], gate: Gate) -> str:
    header = ["model", "engine", "threads", *[f"batch {b} ms" for b in batches],
              *[f"× vs ORT FP32 (b{b})" for b in batches], "max \\|Δp\\|", "mean \\|Δp\\|", "gate", "build s", "MB"]
    rows = []
    for report in reports:
        reference = report["engines"][REFERENCE]["ms_per_call"]
        for result in report["engines"].values():
            if result["status"] != "ok":
                rows.append([report["model"], result["engine"], _threads_label(report["threads"]),
                             *[math.nan] * (2 * len(batches) + 2), result["status"], math.nan, math.nan])
                continue
            ms = [result["ms_per_call"][str(b)] for b in batches]
            speedup = [reference[str(b)] / m for b, m in zip(batches, ms)]
            verdict = ("reference" if result["engine"] == REFERENCE
                       else "pass" if result["gate"]["passed"] else "FAIL")
            rows.append([report["model"], result["engine"], _threads_label(report["threads"]), *ms, *speedup,
                         result["gate"]["max_abs_fake_probability_diff"],
                         result["gate"]["mean_abs_fake_probability_diff"], verdict, result["build_seconds"],
                         result["file_mb"]])
    verdicts = []
    for report in reports:
        winners = {b: fastest_passing(report, b) for b in batches}
        text = ", ".join(f"batch {b}: {w or 'none passes, FP32 kept'}" for b, w in winners.items())
        verdicts.append(f"- {report['model']}: fastest INT8 engine within the gate: {text}")
    return (f"Gate: max |Δ fake probability| ≤ {gate.max_abs}, mean ≤ {gate.mean_abs}, against ORT FP32 on "
            f"held-out face crops. Latency: median over rounds of the mean time of one call.\n\n"
            + markdown_table(header, rows) + "\n" + "\n".join(verdicts) + "\n")


def chart(path: Path, reports: list[dict[str, Any]], batches: Sequence[int]) -> Path:
    """Speed-up over ORT FP32 per model and engine, one panel per batch size; gate failures hatched."""
    from benchmarks.common.plots import _save, plt

    figure, panels = plt.subplots(1, len(batches), figsize=(5.5 * len(batches), 4.2), squeeze=False)
    colours = {"ort-fp32": "tab:grey", "ort-int8": "tab:blue", "ov-fp32": "tab:olive", "ov-int8": "tab:orange",
               "ov-int8-nosq": "tab:red"}
    width = 0.8 / len(ENGINES)
    for axes, batch in zip(panels[0], batches):
        for index, engine in enumerate(ENGINES):
            xs, heights, hatches, labels = [], [], [], []
            for position, report in enumerate(reports):
                result = report["engines"].get(engine)
                if result is None or result["status"] != "ok":
                    continue
                reference = report["engines"][REFERENCE]["ms_per_call"][str(batch)]
                xs.append(position + (index - (len(ENGINES) - 1) / 2) * width)
                heights.append(reference / result["ms_per_call"][str(batch)])
                passed = result["gate"]["passed"]
                hatches.append("" if passed else "//")
                labels.append(f"{heights[-1]:.2g}" + ("" if passed else "\n✗"))
            if xs:
                bars = axes.bar(xs, heights, width, label=engine, color=colours[engine], hatch=hatches)
                axes.bar_label(bars, labels=labels, fontsize=7)
        axes.axhline(1.0, color="black", linewidth=0.8)
        axes.set_xticks(range(len(reports)), [r["model"] for r in reports], fontsize=8)
        axes.set_ylabel("speed-up over ORT FP32 (higher is better)")
        axes.set_title(f"batch {batch} (hatched ✗: fails the gate)")
        axes.margins(y=0.2)
        axes.legend(fontsize=7)
    return _save(figure, path)


def write(out: Path, reports: list[dict[str, Any]], batches: Sequence[int], gate: Gate,
          machine: dict[str, Any], command: str) -> str:
    text = (f"# INT8 engines on the CPU\n\nMachine: {describe(machine)}\n\nCommand: `{command}`\n\n"
            + markdown(reports, batches, gate))
    write_report(out, "int8_engines", {"machine": machine, "command": command, "gate": vars(gate),
                                       "batches": list(batches), "models": reports}, text)
    chart(out / "int8_engines.png", reports, batches)
    return text


def main(argv: Sequence[str] | None = None) -> int:
    from deepfake_models import CLASSIFIERS, spec_by_name
    from export.artifacts import BuildArtifacts

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifacts", type=Path, default=Path("build"), help="export output folder (onnx/*.onnx)")
    parser.add_argument("--out", type=Path, required=True, help="report folder (quantised models under OUT/models)")
    parser.add_argument("--model", action="append", choices=[s.name for s in CLASSIFIERS],
                        help="classifier to measure (repeatable; default: all four)")
    parser.add_argument("--engine", action="append", choices=ENGINES,
                        help=f"engine to measure (repeatable; default: all; {REFERENCE} is always measured)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4], help="batch sizes timed (default 1 4)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds; the median is kept")
    parser.add_argument("--min-seconds", type=float, default=2.0, help="time per engine, batch and round")
    parser.add_argument("--calibration", type=int, default=CALIBRATION_CROPS, help="calibration crops")
    parser.add_argument("--holdout", type=int, default=HOLDOUT_CROPS, help="held-out crops for the gate")
    parser.add_argument("--max-diff", type=float, default=Gate().max_abs, help="gate: largest |Δ fake probability|")
    parser.add_argument("--mean-diff", type=float, default=Gate().mean_abs, help="gate: largest mean |Δ|")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    gate = Gate(max_abs=args.max_diff, mean_abs=args.mean_diff)
    engines = tuple(dict.fromkeys([REFERENCE, *(args.engine or ENGINES)]))
    specs = [spec_by_name(n) for n in args.model] if args.model else list(CLASSIFIERS)
    artifacts = BuildArtifacts(args.artifacts)
    machine = machine_info(packages=("openvino", "nncf"))
    command = "python -m benchmarks.studies.int8_engines " + " ".join(argv if argv is not None else sys.argv[1:])
    reports = []
    crops_by_size: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for number, spec in enumerate(specs, 1):
        log.info("[%d/%d] %s", number, len(specs), spec.name)
        if spec.input_size not in crops_by_size:
            crops_by_size[spec.input_size] = calibration_and_holdout(spec.input_size, args.calibration, args.holdout)
        reports.append(measure_model(spec.name, artifacts.existing_onnx(spec.name), spec.cpu_threads,
                                     crops_by_size[spec.input_size], args.out / "models", gate, args.batch, engines,
                                     args.rounds, args.min_seconds))
        write(args.out, reports, args.batch, gate, machine, command)  # a partial report survives a crash
    print(write(args.out, reports, args.batch, gate, machine, command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
