"""What the web gateway adds: the same images through direct SDK calls and through the
gateway's POST /api/detect/image, at 1 and 8 requests in flight.

    python -m benchmarks.studies.gateway_overhead --repository build/repository/cpu --out reports/gateway
    python -m benchmarks.studies.gateway_overhead --url grpc://localhost:8001 --out reports/gateway

The gateway runs as its own process (`deepfake web`), as it is deployed, so its CPU is not
the load generator's. Each mode sends the same face image (the workload's `face` request)
after a warm-up, in alternating rounds (A B, B A) so that a drift in the machine's load hits
both. Besides the two latencies, it reports the gateway's own time per request: the
latency through the gateway minus the SDK call inside it (the answer's processing_time),
which a busy shared machine's noise in Triton's own latency does not blur. Goal (issue 12):
at most 5% added p50 latency and no throughput loss. Writes gateway_overhead.json and .md to --out.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from benchmarks.common.machine import describe, machine_info
from benchmarks.common.server import _free_port, add_server_arguments, serve_from_arguments
from benchmarks.load.workload import image_requests
from deepfake_client import DeepfakeClient
from deepfake_client.retry import NO_RETRY

GOAL_P50_OVERHEAD = 0.05


def run(send: Callable[[], float | None], count: int, concurrency: int) -> tuple[list[float], list[float], float]:
    """`count` sends with `concurrency` in flight: (latencies, the gateway's own times, elapsed), in seconds.

    `send` returns the time the gateway spent in its SDK call (the answer's processing_time),
    or None for a direct call; latency minus that is what the gateway itself adds.
    """
    latencies: list[float] = []
    own: list[float] = []

    def one(_: int) -> None:
        started = time.perf_counter()
        inner = send()
        latency = time.perf_counter() - started
        latencies.append(latency)
        if inner is not None:
            own.append(latency - inner)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(count)))
    return latencies, own, time.perf_counter() - started


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def start_gateway(triton_url: str, port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "deepfake_client.cli", "web", "--url", triton_url, "--port", str(port), "--timeout", "300"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"the gateway exited: {process.stderr.read()[-2000:]}")
        time.sleep(0.3)
    process.terminate()
    raise RuntimeError("the gateway did not become healthy in 60 s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_server_arguments(parser)
    parser.add_argument("--concurrency", default="1,8", help="in flight, comma-separated (default %(default)s)")
    parser.add_argument("--images", type=int, default=16, help="images per mode and concurrency (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per concurrency (default %(default)s)")
    parser.add_argument("--warmup", type=int, default=4, help="requests per mode before timing (default %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("reports/gateway"))
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    face = image_requests()["face"]
    info = machine_info()
    rows = []
    with serve_from_arguments(args, args.out) as endpoint:
        client = DeepfakeClient(endpoint.url, timeout_s=300, retry=NO_RETRY, concurrency=max(levels))
        port = _free_port()
        gateway = start_gateway(endpoint.url, port)
        try:
            http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300,
                                limits=httpx.Limits(max_connections=max(levels)))
            files = {"file": ("face.jpg", face.payloads[0], "image/jpeg")}

            def direct() -> None:
                result = client.detect(face.payloads[0])
                face.check_faces(len(result.faces), "direct")

            def via_gateway() -> float:
                response = http.post("/api/detect/image", files=files)
                response.raise_for_status()
                answer = response.json()
                face.check_faces(answer["num_faces"], "gateway")
                return answer["processing_time"]  # the gateway's SDK call

            for send in (direct, via_gateway):
                run(send, args.warmup, min(args.warmup, max(levels)))
            for concurrency in levels:
                count = max(args.images, 2 * concurrency)
                totals = {"direct": ([], [], 0.0), "gateway": ([], [], 0.0)}
                for round_ in range(args.rounds):  # A B, then B A: a drift in the machine's load hits both
                    order = [("direct", direct), ("gateway", via_gateway)]
                    for mode, send in order if round_ % 2 == 0 else order[::-1]:
                        latencies, own, elapsed = run(send, count, concurrency)
                        kept = totals[mode]
                        totals[mode] = (kept[0] + latencies, kept[1] + own, kept[2] + elapsed)
                (d_lat, _, d_time), (g_lat, g_own, g_time) = totals["direct"], totals["gateway"]
                row = {
                    "concurrency": concurrency, "requests_per_mode": len(d_lat),
                    "direct_p50_ms": _p(d_lat, 0.5), "direct_p95_ms": _p(d_lat, 0.95),
                    "gateway_p50_ms": _p(g_lat, 0.5), "gateway_p95_ms": _p(g_lat, 0.95),
                    "gateway_own_p50_ms": _p(g_own, 0.5), "gateway_own_p95_ms": _p(g_own, 0.95),
                    "direct_throughput": len(d_lat) / d_time, "gateway_throughput": len(g_lat) / g_time,
                }
                row["p50_overhead"] = row["gateway_p50_ms"] / row["direct_p50_ms"] - 1
                row["own_p50_share"] = row["gateway_own_p50_ms"] / row["direct_p50_ms"]
                row["throughput_ratio"] = row["gateway_throughput"] / row["direct_throughput"]
                rows.append(row)
                print(json.dumps(row), flush=True)
        finally:
            gateway.terminate()
            gateway.wait(timeout=30)
            client.close()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gateway_overhead.json").write_text(json.dumps({"machine": info, "rows": rows}, indent=2))
    lines = [
        f"Machine: {describe(info)}", "",
        "| in flight | requests | direct p50 (ms) | gateway p50 (ms) | added p50 | gateway's own time p50 (ms) "
        "| own time / direct p50 | direct (images/s) | gateway (images/s) | throughput ratio |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(f"| {r['concurrency']} | {r['requests_per_mode']} | {r['direct_p50_ms']:,.0f} | {r['gateway_p50_ms']:,.0f} "
                     f"| {100 * r['p50_overhead']:+.1f}% | {r['gateway_own_p50_ms']:.1f} | {100 * r['own_p50_share']:.2f}% "
                     f"| {r['direct_throughput']:.3f} | {r['gateway_throughput']:.3f} | {r['throughput_ratio']:.3f} |")
    (args.out / "gateway_overhead.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    met = all(r["own_p50_share"] <= GOAL_P50_OVERHEAD for r in rows)
    print(f"\ngoal (the gateway's own time <= {GOAL_P50_OVERHEAD:.0%} of the direct p50): {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
