"""Capacity planning: a concurrency sweep against a server, then the GPUs a target rate needs.

    python -m benchmarks.load.sweep --url grpc://localhost:8001 --out reports/capacity \
        --concurrency 1,2,4,8,16 --duration 60 --slo-p95-ms 50 --target-rps 5000 --rows-per-image 1.2

At each concurrency (closed loop through the SDK): a warm-up, a snapshot of
Triton's counters (metrics endpoint and statistics extension), `--duration`
seconds of load, another snapshot. The client gives throughput and latency
percentiles; the counter deltas give each model's queue and compute time,
average batch and busy share (benchmarks/common/triton_metrics.py).
The best level under the p95 SLO sizes the deployment (benchmarks/load/capacity.py).

Writes OUT/capacity.json, OUT/capacity.md, OUT/throughput_latency.png and
OUT/time_per_model.png. Exit status 1 when no level meets the SLO.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import deepfake_contract as contract
from benchmarks.common import plots
from benchmarks.common.latency import summarize
from benchmarks.common.machine import describe, machine_info
from benchmarks.common.report import markdown_table, write_report
from benchmarks.common.server import Endpoint, add_server_arguments, serve_from_arguments
from benchmarks.common.triton_metrics import ModelCounters, activity, snapshot
from benchmarks.load.capacity import DEFAULT_UTILISATION, Level, Sizing, best_under_slo, size
from benchmarks.load.closed_loop import parse_levels, repeat, run_closed_loop
from benchmarks.load.workload import Request, Workload, format_mix, parse_mix
from deepfake_client import NO_RETRY, DeepfakeClient, UntrainedModelsWarning
from deepfake_models import CLASSIFIER_NAMES

MODELS_SHOWN = (contract.FACE_DETECTOR_NAME, *CLASSIFIER_NAMES, contract.COMBINER_NAME)


class CountedSender:
    """Sends requests through the SDK and counts the ensemble requests they make (one per
    image or video frame), so that snapshots can wait for Triton to have counted them all:
    it updates its counters just after answering, and a snapshot taken at once can miss
    the last answers."""

    def __init__(self, client: DeepfakeClient, endpoint: Endpoint, settle_timeout_s: float = 10.0) -> None:
        self.client, self.endpoint, self.settle_timeout_s = client, endpoint, settle_timeout_s
        self.sent = 0
        self._lock = threading.Lock()
        self._counted_before = self._counted(snapshot(endpoint.url, endpoint.metrics_url))

    def __call__(self, request: Request) -> None:
        with self._lock:
            self.sent += len(request.payloads)
        request.send(self.client)

    @staticmethod
    def _counted(counters: Mapping[str, ModelCounters]) -> float:
        ensemble = counters.get(contract.ENSEMBLE_NAME, ModelCounters())
        return ensemble.success + ensemble.failure

    def settled_snapshot(self) -> dict[str, ModelCounters]:
        """A snapshot once Triton has counted every request sent (or after the timeout)."""
        deadline = time.monotonic() + self.settle_timeout_s
        while True:
            counters = snapshot(self.endpoint.url, self.endpoint.metrics_url)
            if self._counted(counters) - self._counted_before >= self.sent or time.monotonic() > deadline:
                return counters
            time.sleep(0.2)


def run_level(send: CountedSender, workload: Workload, concurrency: int, duration_s: float, warmup_s: float) -> Level:
    if warmup_s > 0:
        run_closed_loop(send, repeat(workload.sequence(64, seed=concurrency)), concurrency, warmup_s)
    before = send.settled_snapshot()
    started = time.monotonic()
    timings = run_closed_loop(send, repeat(workload.sequence(256, seed=concurrency)), concurrency, duration_s)
    seconds = time.monotonic() - started
    after = send.settled_snapshot()
    return Level(concurrency, summarize(timings), activity(before, after, seconds))


def run_sweep(endpoint: Endpoint, workload: Workload, levels: Sequence[int], duration_s: float,
              warmup_s: float) -> list[Level]:
    results = []
    with DeepfakeClient(endpoint.url, retry=NO_RETRY, timeout_s=3600, concurrency=8) as client:
        client.wait_until_ready(timeout_s=600)
        send = CountedSender(client, endpoint)
        for concurrency in levels:
            print(f"sweep: {concurrency} in flight for {duration_s:g} s ...", flush=True)
            level = run_level(send, workload, concurrency, duration_s, warmup_s)
            s = level.summary
            print(f"  {s.throughput_rps:.3g} req/s, p50 {s.p50_ms:,.0f} ms, p95 {s.p95_ms:,.0f} ms, "
                  f"{s.failures} failed", flush=True)
            results.append(level)
    return results


def level_record(level: Level) -> dict:
    return {"concurrency": level.concurrency, "summary": level.summary.to_dict(),
            "rows_per_image": level.rows_per_image, "detector_ms_per_image": level.detector_ms_per_image,
            "classifiers_ms_per_row": level.classifiers_ms_per_row,
            "models": {name: a.to_dict() for name, a in level.models.items()}}


def sweep_markdown(title: str, data: dict, levels: Sequence[Level], best: Level | None,
                   sizing: Sizing | None) -> str:
    overview = markdown_table(
        ["in flight", "requests", "failures", "throughput (req/s)", "p50 (ms)", "p95 (ms)", "p99 (ms)",
         "rows/image"],
        [[lvl.concurrency, lvl.summary.requests, lvl.summary.failures, lvl.summary.throughput_rps,
          lvl.summary.p50_ms, lvl.summary.p95_ms, lvl.summary.p99_ms, lvl.rows_per_image] for lvl in levels])
    per_model = markdown_table(
        ["in flight", "model", "queue (ms/req)", "compute (ms/req)", "avg batch", "busy", "compute ms/row"],
        [[lvl.concurrency, name, a.queue_ms, a.compute_ms, a.average_batch, f"{a.busy_fraction:.0%}",
          a.busy_ms_per_inference]
         for lvl in levels for name in MODELS_SHOWN if (a := lvl.models.get(name)) is not None])
    parts = [f"# {title}\n", f"Machine: {data['machine_description']}  ",
             f"Server: `{data['url']}`, mix `{data['mix']}`, {data['duration_s']:g} s per level "
             f"after {data['warmup_s']:g} s of warm-up\n", "## Throughput and latency\n", overview,
             "## Where the time goes (Triton metrics)\n",
             "Queue and compute are per request of that model (Triton charges each request of a batch the "
             "whole batch's compute); *busy* (share of the interval the model computed) and *compute ms/row* "
             "count each batch once (statistics extension).\n", per_model]
    slo = data["slo_p95_ms"]
    if best is None:
        parts.append(f"\n**No level met the p95 SLO of {slo:g} ms** without errors: no capacity to plan with.\n")
    else:
        parts.append(f"\n**Best under the p95 SLO of {slo:g} ms:** {best.summary.throughput_rps:.3g} images/s at "
                     f"{best.concurrency} in flight (p95 {best.summary.p95_ms:,.0f} ms, "
                     f"{best.rows_per_image:.2f} rows/image).\n")
    if sizing is not None:
        parts.append(f"\n## Sizing\n\n{sizing.target_rps:g} images/s at {sizing.rows_per_image:g} rows per image: "
                     f"{sizing.capacity_rps:.3g} images/s per device, planned at {sizing.utilisation:.0%} = "
                     f"{sizing.planned_rps_per_gpu:.3g} images/s → **{sizing.gpus} device(s)** "
                     f"(model: benchmarks/load/capacity.py).\n")
    return "\n".join(parts)


def write_sweep_report(out: Path, title: str, data: dict, levels: Sequence[Level], best: Level | None,
                       sizing: Sizing | None) -> None:
    data = {**data, "levels": [level_record(lvl) for lvl in levels],
            "best_under_slo": None if best is None else best.concurrency,
            "sizing": None if sizing is None else sizing.to_dict()}
    write_report(out, "capacity", data, sweep_markdown(title, data, levels, best, sizing))
    plots.throughput_latency_chart(out / "throughput_latency.png", levels, data["slo_p95_ms"], best)
    plots.time_per_model_chart(out / "time_per_model.png", levels, MODELS_SHOWN)


@dataclass(frozen=True)
class SweepPlan:
    levels: Sequence[int]
    workload: Workload
    duration_s: float
    warmup_s: float
    slo_p95_ms: float
    target_rps: float | None = None  # plan devices for this many images/s
    rows_per_image: float | None = None  # None: as measured
    utilisation: float = DEFAULT_UTILISATION


def sweep_and_report(plan: SweepPlan, endpoint: Endpoint, out: Path, title: str) -> int:
    """Run the sweep, write the report folder; 1 when no level met the SLO."""
    machine = machine_info()
    results = run_sweep(endpoint, plan.workload, plan.levels, plan.duration_s, plan.warmup_s)
    best = best_under_slo(results, plan.slo_p95_ms)
    sizing = None
    if best is not None and plan.target_rps:
        sizing = size(best, plan.target_rps, plan.rows_per_image or best.rows_per_image, plan.utilisation)
    data = {"machine": machine, "machine_description": describe(machine), "url": endpoint.url,
            "mix": format_mix(plan.workload.mix), "duration_s": plan.duration_s, "warmup_s": plan.warmup_s,
            "slo_p95_ms": plan.slo_p95_ms}
    write_sweep_report(out, title, data, results, best, sizing)
    print((out / "capacity.md").read_text())
    return 0 if best is not None else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_server_arguments(parser)
    parser.add_argument("--out", type=Path, required=True, help="report folder")
    parser.add_argument("--concurrency", default="1,2,4,8,16", help="requests in flight per level")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds measured per level")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of unmeasured load before each level")
    parser.add_argument("--mix", default="face=1", help="request kinds and weights (face, no_face, two_faces, video)")
    parser.add_argument("--video-frames", type=int, default=32)
    parser.add_argument("--slo-p95-ms", type=float, default=50.0, help="p95 latency SLO for the capacity")
    parser.add_argument("--target-rps", type=float, help="images/s to plan for (prints the devices needed)")
    parser.add_argument("--rows-per-image", type=float, default=None,
                        help="mean classifier rows per image to plan for: faces, counting 1 for an image "
                             "without a face (default: as measured)")
    parser.add_argument("--utilisation", type=float, default=DEFAULT_UTILISATION,
                        help="planned share of a device's capacity (headroom for bursts and failures)")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", UntrainedModelsWarning)  # timing does not depend on the weights
    try:
        plan = SweepPlan(parse_levels(args.concurrency), Workload(parse_mix(args.mix), args.video_frames),
                         args.duration, args.warmup, args.slo_p95_ms, args.target_rps, args.rows_per_image,
                         args.utilisation)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with serve_from_arguments(args, args.out) as endpoint:
        return sweep_and_report(plan, endpoint, args.out, "Capacity sweep")


if __name__ == "__main__":
    raise SystemExit(main())
