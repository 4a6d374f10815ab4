"""Serving under load: closed loops, an open-loop flood at a multiple of capacity, recovery.

    python -m benchmarks.load.overload --repository build/repository/cpu --factor 3 --duration 60 \
        --out reports/overload

1. Closed loop at 1, 2, 4 and 8 in flight (`--levels`, `--closed-duration` s each): images/s,
   refusals and latency per level. Capacity = the best level's images/s; the unloaded p95 is
   the 1-in-flight level's.
2. Open loop: bulk requests (the default priority) arrive every 1 / (factor x capacity) s for
   `--duration` s whatever the answers (HTTP, no client deadline: nothing is cancelled on the
   server). Beside it, one interactive request (priority 1) every `--interactive-every` s
   (default: a quarter of capacity, so that people's requests alone never fill the server).
   Goodput = accepted images / (last accepted answer - start of the load).
3. Recovery: after the last arrival, one request every 0.5 s until one is answered within twice
   the unloaded p95: the time from the end of the load to that answer.
4. The server is stopped; a clean stop leaves no in-flight request and kills nothing.
Memory (tritonserver + its stubs, and their /dev/shm files) is sampled before, every second
during, and after. Output: overload.json and overload.md.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

import deepfake_contract as contract
from deepfake_serving.probe import OVERLOADED, infer

MIB = 1 << 20
LEVELS = (1, 2, 4, 8)


@dataclass
class Outcome:
    sent: float  # seconds since the phase started
    latency_s: float
    status: int  # HTTP status; 0 = no answer
    message: str = ""
    priority: int = 0


def _call(url: str, image: bytes, start: float, timeout_s: float, priority: int = 0) -> Outcome:
    sent = time.monotonic()
    try:
        status, answer = infer(url, image, timeout_s, priority=priority)
        message = answer.get("error", "") if status != 200 else ""
    except OSError as error:
        status, message = 0, str(error)
    return Outcome(sent - start, time.monotonic() - sent, status, message, priority)


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def closed_loop(url: str, image: bytes, clients: int, duration_s: float) -> dict:
    """`clients` callers, each sending its next image as soon as the last is answered."""
    start = time.monotonic()
    outcomes: list[Outcome] = []

    def client() -> None:
        while time.monotonic() - start < duration_s:
            outcomes.append(_call(url, image, start, 300))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - start
    served = [o.latency_s for o in outcomes if o.status == 200]
    return {"in_flight": clients, "images": len(served), "seconds": elapsed, "images_per_s": len(served) / elapsed,
            "refused": sum(o.status == OVERLOADED for o in outcomes),
            "failed": sum(o.status not in (200, OVERLOADED) for o in outcomes),
            "p50_s": percentile(served, 50), "p95_s": percentile(served, 95)}


def open_loop(url: str, image: bytes, rate: float, duration_s: float, interactive_every_s: float,
              timeout_s: float = 600) -> list[Outcome]:
    """Bulk requests at a fixed rate for duration_s, each on its own thread (never waiting for
    answers), and an interactive request every interactive_every_s."""
    count = int(rate * duration_s + 1e-6)
    interactive = int(duration_s / interactive_every_s) if interactive_every_s > 0 else 0
    arrivals = sorted([(i / rate, contract.PRIORITY_BULK) for i in range(count)]
                      + [((i + 0.5) * interactive_every_s, contract.PRIORITY_INTERACTIVE) for i in range(interactive)])
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(arrivals) or 1) as pool:
        futures = []
        for at, priority in arrivals:
            time.sleep(max(0.0, start + at - time.monotonic()))
            futures.append(pool.submit(_call, url, image, start, timeout_s, priority))
        return [f.result() for f in futures]


def recovery_s(url: str, image: bytes, normal_s: float, limit_s: float = 120) -> float:
    """Seconds until a request is answered within normal_s again (one try every 0.5 s)."""
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        outcome = _call(url, image, start, 300)
        if outcome.status == 200 and outcome.latency_s <= normal_s:
            return time.monotonic() - start
        time.sleep(0.5)
    return float("inf")


class MemorySampler:
    """footprint() of a LocalTritonServer every second, on a thread."""

    def __init__(self, server) -> None:
        self.server, self.samples, self._stop = server, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self.server.footprint())
            self._stop.wait(1.0)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def summarise_flood(outcomes: list[Outcome], capacity: float, unloaded_p95_s: float) -> dict:
    def latencies(priority: int, status: int = 200) -> list[float]:
        return [o.latency_s for o in outcomes if o.priority == priority and o.status == status]

    accepted = [o for o in outcomes if o.status == 200]
    refused = [o for o in outcomes if o.status == OVERLOADED]
    others = Counter(f"{o.status}: {o.message}" for o in outcomes if o.status not in (200, OVERLOADED))
    busy_s = max((o.sent + o.latency_s for o in accepted), default=0.0)
    goodput = len(accepted) / busy_s if busy_s else 0.0
    by_priority = {}
    for name, priority in (("bulk", contract.PRIORITY_BULK), ("interactive", contract.PRIORITY_INTERACTIVE)):
        served = latencies(priority)
        by_priority[name] = {
            "offered": sum(o.priority == priority for o in outcomes), "accepted": len(served),
            "refused": len(latencies(priority, OVERLOADED)),
            "p50_s": percentile(served, 50), "p95_s": percentile(served, 95),
            "p95_over_unloaded": percentile(served, 95) / unloaded_p95_s,
        }
    return {
        "offered": len(outcomes), "accepted": len(accepted), "rejected": len(refused),
        "refusals": dict(Counter(o.message for o in refused)), "other_failures": dict(others),
        "goodput_images_per_s": goodput, "goodput_over_capacity": goodput / capacity,
        "refusal_p50_ms": 1000 * percentile([o.latency_s for o in refused], 50),
        "refusal_p95_ms": 1000 * percentile([o.latency_s for o in refused], 95),
        "by_priority": by_priority,
    }


def in_flight_at_stop(log_text: str) -> int:
    """The most in-flight inferences Triton reported while stopping (0 after a clean stop)."""
    counts = re.findall(r"Found (\d+) model versions that have in-flight inferences", log_text)
    return max((int(c) for c in counts), default=0)


def admission_bound(repository: Path) -> int:
    """Bulk requests deepfake_detector holds at once (in flight + bulk queue), from the
    assembled repository's repository.json."""
    admission = json.loads((Path(repository) / "repository.json").read_text())["admission"]["deepfake_detector"]
    return admission["in_flight"] + admission["bulk_queue"]


def run(server, image: bytes, factor: float, duration_s: float | None = None, levels: Sequence[int] = LEVELS,
        closed_duration_s: float = 30.0, interactive_every_s: float | None = None,
        flood_bounds: float | None = None) -> dict:
    """interactive_every_s: None, one interactive request per 4 / capacity s (a quarter of it).
    flood_bounds: instead of duration_s, offer this many times the admission bound in bulk
    requests, so that the flood overfills the queue however slow the machine is today."""
    url = server.http_url
    _call(url, image, time.monotonic(), 300)  # warm caches and allocators
    closed = [closed_loop(url, image, n, closed_duration_s) for n in levels]
    capacity = max(level["images_per_s"] for level in closed)
    unloaded_p95 = closed[0]["p95_s"]
    if flood_bounds is not None:
        duration_s = flood_bounds * admission_bound(server.repository) / (factor * capacity)
    if duration_s is None:
        raise ValueError("give duration_s or flood_bounds")
    if interactive_every_s is None:
        interactive_every_s = 4.0 / capacity
    memory_before = server.footprint()
    with MemorySampler(server) as sampler:
        outcomes = open_loop(url, image, factor * capacity, duration_s, interactive_every_s)
    recovered = recovery_s(url, image, 2 * unloaded_p95)
    time.sleep(2)
    memory_after = server.footprint()
    samples = sampler.samples or [memory_before]
    return {
        "closed_loop": closed, "capacity_images_per_s": capacity, "unloaded_p95_s": unloaded_p95,
        "closed_loop_min_over_best": min(level["images_per_s"] for level in closed[1:] or closed) / capacity,
        "factor": factor, "rate_images_per_s": factor * capacity, "duration_s": duration_s,
        "interactive_every_s": interactive_every_s,
        "flood": summarise_flood(outcomes, capacity, unloaded_p95),
        "recovery_s": recovered,
        "rss_mib": {"before": memory_before[0] / MIB, "peak": max(s[0] for s in samples) / MIB,
                    "after": memory_after[0] / MIB},
        "shm_mib": {"before": memory_before[1] / MIB, "after": memory_after[1] / MIB},
        "outcomes": [asdict(o) for o in outcomes],
    }


def markdown(summary: dict) -> str:
    s, f = summary, summary["flood"]
    lines = ["| in flight | images/s | of the best | refused | failed | p50 (s) | p95 (s) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for level in s["closed_loop"]:
        lines.append(f"| {level['in_flight']} | {level['images_per_s']:.2f} | "
                     f"{level['images_per_s'] / s['capacity_images_per_s']:.0%} | {level['refused']} | "
                     f"{level['failed']} | {level['p50_s']:.2f} | {level['p95_s']:.2f} |")
    bulk, interactive = f["by_priority"]["bulk"], f["by_priority"]["interactive"]
    lines += [
        "",
        f"Open loop at {s['factor']:g}x capacity ({s['rate_images_per_s']:.2f} images/s) for {s['duration_s']:.0f} s:",
        "",
        "| offered | accepted | refused | other failures | goodput (images/s) | of capacity | refusal p50 / p95 (ms) "
        "| bulk accepted p50 / p95 (s) | interactive accepted / offered, p50 / p95 (s) | recovery (s) "
        "| RSS before / peak / after (MiB) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| {f['offered']} | {f['accepted']} | {f['rejected']} | {sum(f['other_failures'].values())} "
        f"| {f['goodput_images_per_s']:.2f} | {f['goodput_over_capacity']:.0%} "
        f"| {f['refusal_p50_ms']:.0f} / {f['refusal_p95_ms']:.0f} | {bulk['p50_s']:.2f} / {bulk['p95_s']:.2f} "
        f"| {interactive['accepted']} / {interactive['offered']}, {interactive['p50_s']:.2f} / {interactive['p95_s']:.2f} "
        f"| {s['recovery_s']:.1f} | {s['rss_mib']['before']:.0f} / {s['rss_mib']['peak']:.0f} / {s['rss_mib']['after']:.0f} |",
        "",
        f"Unloaded p95 {s['unloaded_p95_s']:.2f} s; bulk p95 {bulk['p95_over_unloaded']:.1f}x and interactive p95 "
        f"{interactive['p95_over_unloaded']:.1f}x of it.",
        "Refusals: " + json.dumps(f["refusals"]), "Other failures: " + json.dumps(f["other_failures"]),
    ]
    if "stop" in s:
        lines.append(f"Stop: {s['stop']['seconds']:.1f} s, in-flight at stop {s['stop']['in_flight']}, "
                     f"cleaned {s['stop']['cleaned'] or 'nothing'}")
    return "\n".join(lines)


def main(argv=None) -> int:
    from benchmarks.common.machine import machine_info
    from deepfake_dev import samples
    from deepfake_dev.local_server import LocalTritonServer, Ports

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repository", type=Path, required=True, help="assembled repository (cpu flavour here)")
    parser.add_argument("--factor", type=float, default=3.0, help="offered load as a multiple of capacity")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of open-loop load")
    parser.add_argument("--levels", type=lambda t: [int(x) for x in t.split(",")], default=list(LEVELS),
                        help="closed-loop in-flight levels, e.g. 1,2,4,8")
    parser.add_argument("--closed-duration", type=float, default=30.0, help="seconds per closed-loop level")
    parser.add_argument("--interactive-every", type=float,
                        help="seconds between interactive requests during the flood (default 4 / capacity; 0: none)")
    parser.add_argument("--out", type=Path, default=Path("reports/overload"))
    args = parser.parse_args(argv)

    image = samples.encode_image(samples.face_image())
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "tritonserver.log"
    server = LocalTritonServer(args.repository, Ports.free(), log_path=log)
    server.start(timeout_s=900)
    try:
        summary = run(server, image, args.factor, args.duration, args.levels, args.closed_duration,
                      args.interactive_every)
        summary["server_problems_after"] = server.problems()
    finally:
        started = time.monotonic()
        cleaned = server.stop()
    summary["stop"] = {"seconds": time.monotonic() - started, "cleaned": cleaned,
                       "in_flight": in_flight_at_stop(log.read_text(errors="replace"))}
    summary["machine"] = machine_info()
    summary["repository"] = json.loads((args.repository / "repository.json").read_text())
    (args.out / "overload.json").write_text(json.dumps(summary, indent=2))
    (args.out / "overload.md").write_text(markdown(summary) + "\n")
    print(markdown(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
