"""Overload benchmark: open-loop load at a multiple of capacity, then recovery.

    python -m benchmarks.overload --repository build/repository/cpu --factor 3 --duration 60 \
        --out reports/overload

1. Unloaded: `--unloaded` requests one at a time give the unloaded p95 and the capacity
   (images/s = 1 / mean latency, the server being saturated by one image on a small CPU;
   pass `--capacity` on a machine where that is not true).
2. Load: requests arrive every 1 / (factor x capacity) s for `--duration` s whatever the
   answers (open loop, HTTP, no client deadline: nothing is cancelled on the server).
3. Recovery: after the last arrival, one request every 0.5 s until one is answered within
   twice the unloaded p95: the time from the end of the load to that answer.
Memory (tritonserver + its stubs, and their /dev/shm files) is sampled before, every second
during, and after. Each refusal is counted by its message. Output: overload.json and a
Markdown summary.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from deepfake_serving.probe import OVERLOADED, infer

MIB = 1 << 20


@dataclass
class Outcome:
    sent: float  # seconds since the load started
    latency_s: float
    status: int  # HTTP status; 0 = no answer
    message: str = ""


def _call(url: str, image: bytes, start: float, timeout_s: float) -> Outcome:
    sent = time.monotonic()
    try:
        status, answer = infer(url, image, timeout_s)
        message = answer.get("error", "") if status != 200 else ""
    except OSError as error:
        status, message = 0, str(error)
    return Outcome(sent - start, time.monotonic() - sent, status, message)


def unloaded(url: str, image: bytes, count: int) -> list[float]:
    outcomes = [_call(url, image, time.monotonic(), 300) for _ in range(count)]
    failed = [o for o in outcomes if o.status != 200]
    if failed:
        raise RuntimeError(f"unloaded requests failed: {failed[0]}")
    return [o.latency_s for o in outcomes]


def open_loop(url: str, image: bytes, rate: float, duration_s: float, timeout_s: float = 600) -> list[Outcome]:
    """Requests at a fixed rate for duration_s, each on its own thread (never waiting for answers)."""
    count = int(rate * duration_s)
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=count or 1) as pool:
        futures = []
        for i in range(count):
            time.sleep(max(0.0, start + i / rate - time.monotonic()))
            futures.append(pool.submit(_call, url, image, start, timeout_s))
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


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def summarise(outcomes: list[Outcome], unloaded_s: list[float], queue_timeout_s: float) -> dict:
    accepted = [o.latency_s for o in outcomes if o.status == 200]
    refusals = Counter(o.message for o in outcomes if o.status == OVERLOADED)
    others = Counter(f"{o.status}: {o.message}" for o in outcomes if o.status not in (200, OVERLOADED))
    p95_unloaded = percentile(unloaded_s, 95)
    return {
        "offered": len(outcomes), "accepted": len(accepted), "rejected": sum(refusals.values()),
        "refusals": dict(refusals), "other_failures": dict(others),
        "unloaded_p95_s": p95_unloaded, "accepted_p50_s": percentile(accepted, 50),
        "accepted_p95_s": percentile(accepted, 95), "accepted_max_s": max(accepted, default=float("nan")),
        "bound_s": 2 * p95_unloaded + queue_timeout_s,
        "last_answer_after_load_s": max((o.sent + o.latency_s for o in outcomes), default=0.0)
        - max((o.sent for o in outcomes), default=0.0),
    }


def run(server, image: bytes, factor: float, duration_s: float, unloaded_count: int,
        capacity: float | None, queue_timeout_s: float) -> dict:
    url = server.http_url
    unloaded(url, image, 2)  # warm caches and allocators
    unloaded_s = unloaded(url, image, unloaded_count)
    capacity = capacity or 1.0 / float(np.mean(unloaded_s))
    memory_before = server.footprint()
    with MemorySampler(server) as sampler:
        outcomes = open_loop(url, image, factor * capacity, duration_s)
    recovered = recovery_s(url, image, 2 * percentile(unloaded_s, 95))
    time.sleep(2)
    memory_after = server.footprint()
    summary = summarise(outcomes, unloaded_s, queue_timeout_s)
    peak = max(sampler.samples, default=memory_before)
    summary.update({
        "capacity_images_per_s": capacity, "rate_images_per_s": factor * capacity, "duration_s": duration_s,
        "recovery_s": recovered,
        "rss_mib": {"before": memory_before[0] / MIB, "peak": max(s[0] for s in sampler.samples or [peak]) / MIB,
                    "after": memory_after[0] / MIB},
        "shm_mib": {"before": memory_before[1] / MIB, "peak": max(s[1] for s in sampler.samples or [peak]) / MIB,
                    "after": memory_after[1] / MIB},
        "outcomes": [asdict(o) for o in outcomes],
    })
    return summary


def markdown(summary: dict) -> str:
    s = summary
    return "\n".join([
        "| offered | accepted | rejected | other failures | unloaded p95 (s) | accepted p50 / p95 / max (s) "
        "| bound 2×p95+timeout (s) | recovery (s) | RSS before / peak / after (MiB) | shm before / after (MiB) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| {s['offered']} | {s['accepted']} | {s['rejected']} | {sum(s['other_failures'].values())} "
        f"| {s['unloaded_p95_s']:.2f} | {s['accepted_p50_s']:.2f} / {s['accepted_p95_s']:.2f} / "
        f"{s['accepted_max_s']:.2f} | {s['bound_s']:.2f} | {s['recovery_s']:.1f} "
        f"| {s['rss_mib']['before']:.0f} / {s['rss_mib']['peak']:.0f} / {s['rss_mib']['after']:.0f} "
        f"| {s['shm_mib']['before']:.0f} / {s['shm_mib']['after']:.0f} |",
        "", "Refusals: " + json.dumps(s["refusals"]), "Other failures: " + json.dumps(s["other_failures"]),
    ])


def main(argv=None) -> int:
    from deepfake_dev import samples
    from deepfake_dev.local_server import LocalTritonServer, Ports
    from export.triton_config import FLAVOURS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repository", type=Path, required=True, help="assembled repository (cpu flavour here)")
    parser.add_argument("--factor", type=float, default=3.0, help="offered load as a multiple of capacity")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--unloaded", type=int, default=10, help="requests to measure the unloaded latency")
    parser.add_argument("--capacity", type=float, help="images/s (default: 1 / unloaded mean latency)")
    parser.add_argument("--out", type=Path, default=Path("reports/overload"))
    args = parser.parse_args(argv)

    flavour = json.loads((args.repository / "repository.json").read_text())["flavour"]
    timeout_s = FLAVOURS[flavour].queue_timeout_us / 1e6
    image = samples.encode_image(samples.face_image())
    args.out.mkdir(parents=True, exist_ok=True)
    with LocalTritonServer(args.repository, Ports.free(), log_path=args.out / "tritonserver.log") as server:
        summary = run(server, image, args.factor, args.duration, args.unloaded, args.capacity, timeout_s)
        problems = server.problems()
    summary["server_problems_after"] = problems
    (args.out / "overload.json").write_text(json.dumps(summary, indent=2))
    (args.out / "overload.md").write_text(markdown(summary) + "\n")
    print(markdown(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
