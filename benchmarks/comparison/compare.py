"""The seed-style baseline and the served ensemble on the same inputs, one after the other.

    python -m benchmarks.comparison.compare --artifacts build --repository build/repository/cpu \
        --out reports/compare --requests 24 --concurrency 1,8

First the baseline (benchmarks/comparison/baseline.py: one request at a time, the four
eager FP32 PyTorch models in turn) answers the request sequence; its models are
then freed, and the served pipeline answers the same sequence through the SDK
at each concurrency. The two never run at the same time, so neither steals the
other's cores. Both first answer one request of each kind untimed (warm-up),
and those answers are compared: the same models on the same crops must give the
same per-model probabilities (ONNX Runtime vs PyTorch, FP32).

Writes OUT/compare.json, OUT/compare.md and OUT/compare.png. Exit status 1 when
no concurrency reaches --min-ratio times the baseline's throughput.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from benchmarks.common import plots
from benchmarks.common.latency import Summary, Timing, summarize_by_name
from benchmarks.common.machine import describe, machine_info
from benchmarks.common.report import markdown_table, write_report
from benchmarks.common.server import add_server_arguments, serve_from_arguments
from benchmarks.comparison.baseline import SeedPipeline
from benchmarks.load.closed_loop import parse_levels, run_closed_loop
from benchmarks.load.workload import Request, Workload, parse_mix
from deepfake_client import NO_RETRY, DeepfakeClient, UntrainedModelsWarning
from export.artifacts import BuildArtifacts

DEFAULT_MIN_RATIO = 1.5  # docs/design.md §9: served throughput >= 1.5x the seed-style baseline


def _first_of_each_kind(requests: Sequence[Request]) -> list[Request]:
    return list({r.kind: r for r in reversed(requests)}.values())


def baseline_send(pipeline: SeedPipeline, probabilities: dict[str, np.ndarray]) -> Callable[[Request], None]:
    def send(request: Request) -> None:
        for frame, payload in enumerate(request.payloads):
            verdict = pipeline(payload)
            request.check_faces(verdict.num_faces, f"frame {frame}" if request.is_video else "image")
            probabilities.setdefault(request.name, verdict.model_fake_probability)
    return send


def served_probabilities(client: DeepfakeClient, request: Request) -> np.ndarray:
    result = client.detect(request.payloads[0])
    return np.array([[face.model_probabilities[name] for name in result.model_names] for face in result.faces],
                    dtype=np.float32).reshape(len(result.faces), len(result.model_names))


def run_baseline(artifacts: BuildArtifacts, requests: Sequence[Request]) -> tuple[list[Timing], dict[str, np.ndarray]]:
    print("baseline: loading the four PyTorch models (eager FP32) and MTCNN ...", flush=True)
    pipeline = SeedPipeline.load(artifacts)
    probabilities: dict[str, np.ndarray] = {}
    send = baseline_send(pipeline, probabilities)
    for request in _first_of_each_kind(requests):
        send(request)  # warm-up, untimed; also records each kind's probabilities
    print(f"baseline: {len(requests)} requests, one at a time ...", flush=True)
    timings = run_closed_loop(send, requests, concurrency=1)
    del pipeline, send
    gc.collect()
    return timings, probabilities


def run_served(url: str, requests: Sequence[Request], levels: Sequence[int]
               ) -> tuple[dict[int, list[Timing]], dict[str, np.ndarray]]:
    with DeepfakeClient(url, retry=NO_RETRY, timeout_s=3600, concurrency=8) as client:
        client.wait_until_ready(timeout_s=600)
        probabilities = {r.name: served_probabilities(client, r) for r in _first_of_each_kind(requests)}
        for request in _first_of_each_kind(requests):
            request.send(client)  # warm-up, untimed
        runs = {}
        for concurrency in levels:
            print(f"served: {len(requests)} requests, {concurrency} in flight ...", flush=True)
            runs[concurrency] = run_closed_loop(lambda r: r.send(client), requests, concurrency)
    return runs, probabilities


def largest_difference(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    """Largest |Δ per-model fake probability| between two runs' answers (NaN if face counts differ)."""
    names = a.keys() & b.keys()
    if not names or any(a[name].shape != b[name].shape for name in names):
        return float("nan")
    return max(float(np.max(np.abs(a[name] - b[name]), initial=0.0)) for name in names)


def ratios(baseline: Summary, served: Summary) -> dict[str, float]:
    """Above 1 means the served pipeline is better: more throughput, lower latency."""
    return {
        "throughput": served.throughput_rps / baseline.throughput_rps,
        "p50_latency": baseline.p50_ms / served.p50_ms,
        "p95_latency": baseline.p95_ms / served.p95_ms,
    }


def comparison_markdown(data: dict) -> str:
    rows = [["baseline (seed design)", "1", *_figures(data["baseline"]["total"]), "1", "", ""]]
    for level, run in data["served"].items():
        r = run["ratios"]
        rows.append([f"served ({data['flavour']})", level, *_figures(run["summary"]["total"]),
                     f"{r['throughput']:.2f}", f"{r['p50_latency']:.2f}", f"{r['p95_latency']:.2f}"])
    table = markdown_table(["pipeline", "in flight", "requests", "failures", "throughput (req/s)", "p50 (ms)",
                            "p95 (ms)", "× throughput", "× p50", "× p95"], rows)
    verdict = data["verdict"]
    return (f"# Seed-style baseline vs served pipeline\n\nMachine: {data['machine_description']}  \n"
            f"Load average after the baseline / after the served runs: {data['load_after_baseline']} / "
            f"{data['load_after_served']}  \nInputs: {data['requests']} requests, mix `{data['mix']}` "
            f"(same sequence for both)  \nLargest |Δ per-model probability| between the two: "
            f"{data['largest_probability_difference']:.2e}\n\n{table}\n"
            f"Ratios: served over baseline for throughput, baseline over served for latency (above 1 is better).\n\n"
            f"**Target** served ≥ {verdict['min_ratio']}× the baseline's throughput: "
            f"{'met' if verdict['met'] else 'NOT met'} (best {verdict['best_ratio']:.2f}× at "
            f"{verdict['best_concurrency']} in flight).\n")


def _figures(summary: dict) -> list:
    return [summary["requests"], summary["failures"], summary["throughput_rps"], summary["p50_ms"], summary["p95_ms"]]


def _flavour(repository: Path | None) -> str:
    if repository is None:
        return "unknown flavour"
    return json.loads((repository / "repository.json").read_text())["flavour"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifacts", type=Path, default=Path("build"), help="export output folder (fixed checkpoints)")
    add_server_arguments(parser)
    parser.add_argument("--out", type=Path, required=True, help="report folder")
    parser.add_argument("--requests", type=int, default=24, help="requests in the sequence both answer")
    parser.add_argument("--mix", default="face=1", help="request kinds and weights (face, no_face, two_faces, video)")
    parser.add_argument("--video-frames", type=int, default=32)
    parser.add_argument("--concurrency", default="1,8", help="served requests in flight, comma-separated levels")
    parser.add_argument("--min-ratio", type=float, default=DEFAULT_MIN_RATIO)
    parser.add_argument("--seed", type=int, default=0, help="seed of the request sequence")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", UntrainedModelsWarning)  # timing does not depend on the weights
    try:
        levels = parse_levels(args.concurrency)
        if args.requests < 1:
            raise ValueError(f"--requests must be at least 1, got {args.requests}")
        workload = Workload(parse_mix(args.mix), args.video_frames)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    machine = machine_info()
    requests = workload.sequence(args.requests, args.seed)
    baseline_timings, baseline_probabilities = run_baseline(BuildArtifacts(args.artifacts), requests)
    load_after_baseline = [round(x, 2) for x in os.getloadavg()]
    with serve_from_arguments(args, args.out) as endpoint:
        served_runs, served_probabilities_ = run_served(endpoint.url, requests, levels)
        flavour = _flavour(endpoint.repository)
    baseline = summarize_by_name(baseline_timings)
    served = {level: summarize_by_name(timings) for level, timings in served_runs.items()}
    level_ratios = {level: ratios(baseline["total"], s["total"]) for level, s in served.items()}
    best = max(level_ratios, key=lambda level: level_ratios[level]["throughput"])
    data = {
        "machine": machine,
        "machine_description": describe(machine),
        "load_after_baseline": load_after_baseline,
        "load_after_served": [round(x, 2) for x in os.getloadavg()],
        "flavour": flavour,
        "mix": args.mix,
        "requests": args.requests,
        "baseline": {name: s.to_dict() for name, s in baseline.items()},
        "served": {str(level): {"summary": {name: s.to_dict() for name, s in served[level].items()},
                                "ratios": level_ratios[level]} for level in levels},
        "largest_probability_difference": largest_difference(baseline_probabilities, served_probabilities_),
        "verdict": {"min_ratio": args.min_ratio, "best_concurrency": best,
                    "best_ratio": level_ratios[best]["throughput"],
                    "met": level_ratios[best]["throughput"] >= args.min_ratio},
    }
    markdown = comparison_markdown(data)
    write_report(args.out, "compare", data, markdown)
    plots.comparison_chart(args.out / "compare.png", baseline["total"], {lvl: s["total"] for lvl, s in served.items()},
                           flavour)
    print(markdown)
    return 0 if data["verdict"]["met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
