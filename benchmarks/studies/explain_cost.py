"""What explanations cost, and whether they slow plain detections down.

    python -m benchmarks.studies.explain_cost --artifacts build --out benchmarks/results/explain-cost

1. Per model, in this process: milliseconds per face of a plain forward pass
   (inference mode) against Grad-CAM (forward with gradients + backward to the
   target layer) at `--threads` torch threads (1: what the served cpu explainer uses).
2. Served (skip with --no-server): assembles a cpu repository with the explainer,
   starts Triton, and times with the SDK, one request at a time: a plain detection
   of the face sample; `explain` of it; and plain detections while another thread
   sends `explain` requests back to back (what explanations cost the others).

Writes OUT/explain_cost.json and OUT/explain_cost.md. Run it alone, under `heavy`.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from benchmarks.common.machine import describe, machine_info
from benchmarks.common.report import markdown_table, write_report
from deepfake_models import CLASSIFIER_NAMES
from deepfake_serving.explain import grad_cam
from deepfake_serving.explain_models import load_classifier, target_layer
from export.artifacts import BuildArtifacts


def median_ms(run: Callable[[], object], repeats: int) -> float:
    run()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def measure_model(name: str, artifacts: BuildArtifacts, repeats: int) -> dict:
    model, side = load_classifier(name, artifacts.fixed_checkpoint(name))
    faces = np.random.default_rng(0).integers(0, 256, (1, side, side, 3), dtype=np.uint8)
    layer = target_layer(name, model)
    with torch.inference_mode():
        forward = median_ms(lambda: model(torch.from_numpy(faces)), repeats)
    explain = median_ms(lambda: grad_cam(model, layer, faces), repeats)
    return {"model": name, "forward_ms": forward, "grad_cam_ms": explain, "ratio": explain / forward}


def per_model(artifacts: BuildArtifacts, repeats: int) -> list[dict]:
    rows = []
    for name in CLASSIFIER_NAMES:
        rows.append(measure_model(name, artifacts, repeats))  # one model in memory at a time
        print(rows[-1], flush=True)
        gc.collect()
    return rows


def served(artifacts_dir: Path, repeats: int) -> dict:
    from deepfake_client import DeepfakeClient
    from deepfake_dev import samples
    from deepfake_dev.local_server import LocalTritonServer, Ports
    from export.repository import RepositoryOptions, assemble

    work = Path(tempfile.mkdtemp(prefix="explain-cost-"))
    repository = assemble(artifacts_dir, work / "cpu", RepositoryOptions(explainer=True))
    image = samples.write_samples(work / "samples")[samples.FACE_IMAGE].read_bytes()
    server = LocalTritonServer(repository, Ports.free(), log_path=work / "triton.log")
    server.start(timeout_s=900)
    try:
        with DeepfakeClient(server.grpc_url, timeout_s=600) as client:
            plain = median_ms(lambda: client.detect(image), repeats)
            explain = median_ms(lambda: client.explain(image), repeats)
            # The control: the same plain detections beside a stream of other plain detections,
            # i.e. what any concurrent work costs on the shared CPU.
            beside_plain, _ = beside(client, lambda: client.detect(image), image, repeats)
            during, explained = beside(client, lambda: client.explain(image), image, repeats)
    finally:
        server.stop()
    return {"plain_detection_ms": plain, "explain_ms": explain, "plain_detection_during_explanations_ms": during,
            "plain_detection_during_plain_detections_ms": beside_plain,
            "explanations_during": explained, "repeats": repeats}


def beside(client, background: Callable[[], object], image: bytes, repeats: int) -> tuple[float, int]:
    """Median ms of plain detections while another thread runs `background` back to back."""
    stop = threading.Event()
    done = []

    def loop() -> None:
        while not stop.is_set():
            background()
            done.append(1)

    worker = threading.Thread(target=loop, daemon=True)
    worker.start()
    time.sleep(1.0)  # let the first background request start
    try:
        return median_ms(lambda: client.detect(image), repeats), len(done)
    finally:
        stop.set()
        worker.join()


def markdown(info: dict, rows: list[dict], server: dict | None, threads: int) -> str:
    text = [f"# Explanation cost\n\n{describe(info)}\n",
            f"## Per model, one face, {threads} torch thread(s)\n",
            markdown_table(["model", "forward ms", "Grad-CAM ms", "ratio"],
                           [[r["model"], r["forward_ms"], r["grad_cam_ms"], r["ratio"]] for r in rows]),
            f"\nAll four: forward {sum(r['forward_ms'] for r in rows):.0f} ms, "
            f"Grad-CAM {sum(r['grad_cam_ms'] for r in rows):.0f} ms per face.\n"]
    if server:
        text += ["\n## Served (cpu flavour, face sample, median of "
                 f"{server['repeats']} sequential requests)\n",
                 markdown_table(["request", "ms"], [
                     ["plain detection (deepfake_detector)", server["plain_detection_ms"]],
                     ["explain (deepfake_explainer, 1 face)", server["explain_ms"]],
                     ["plain detection while plain detections run (control)",
                      server["plain_detection_during_plain_detections_ms"]],
                     ["plain detection while explanations run", server["plain_detection_during_explanations_ms"]],
                 ])]
    return "\n".join(text) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifacts", type=Path, default=Path("build"), help="export output folder")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/explain-cost"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for part 1 (default 1)")
    parser.add_argument("--no-server", action="store_true", help="part 1 only")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    info = machine_info()
    rows = per_model(BuildArtifacts(args.artifacts), args.repeats)
    server = None if args.no_server else served(args.artifacts, args.repeats)
    data = {"machine": info, "threads": args.threads, "per_model": rows, "served": server}
    json_path, md_path = write_report(args.out, "explain_cost", data, markdown(info, rows, server, args.threads))
    print(md_path.read_text())
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
