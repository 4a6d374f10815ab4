"""Liveness that exercises inference: one small image through the whole ensemble over HTTP.

Triton's own /v2/health/ready stays 200 when a python stub has died or an instance is wedged
(Triton 2.51: readiness is only re-evaluated on load). This probe sends a real request, so a
dead stub (INTERNAL "Stub process ... is not healthy") or a wedged instance (no answer before
the timeout) fails it. An overload refusal (UNAVAILABLE, HTTP 503) counts as alive: the server
answered, and restarting it would only make the overload worse.

    python3 -m deepfake_serving.probe --url 127.0.0.1:8000 --timeout 20     # exit 0 = alive

Used by the Kubernetes liveness probe (docker/k8s/triton.yaml) and the local server's
watchdog (deepfake_dev.local_server). Plain urllib: no client package needed in the image.
HTTP, not gRPC: a client that gives up does not cancel the request on the server.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence

import numpy as np
from PIL import Image

import deepfake_contract as contract

OVERLOADED = 503  # Triton's HTTP status for UNAVAILABLE (queue full, queue timeout)


def probe_image() -> bytes:
    """A small gray PNG: no face, so it is cheap; the probe asks the pipeline to call every
    step on it all the same (contract.RUN_ALL_STEPS)."""
    buffer = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def infer(url: str, image: bytes, timeout_s: float, model: str = contract.ENSEMBLE_NAME,
          priority: int = 0, parameters: dict | None = None) -> tuple[int, dict]:
    """(HTTP status, JSON answer) of one image through `model`, asking for the LABEL only
    (priority 0: the model's default level; `parameters`: request parameters). Raises OSError
    (URLError, timeout) when the server does not answer."""
    body = {
        "inputs": [{"name": contract.IMAGE.name, "shape": [len(image)], "datatype": "UINT8",
                    "parameters": {"binary_data_size": len(image)}}],
        "outputs": [{"name": "LABEL", "parameters": {"binary_data": False}}],
    }
    extra = {**({"priority": priority} if priority else {}), **(parameters or {})}
    if extra:
        body["parameters"] = extra
    header = json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://{url}/v2/models/{model}/infer", data=header + image, method="POST",
        headers={"Inference-Header-Content-Length": str(len(header)), "Content-Type": "application/octet-stream"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        body = error.read(2000).decode(errors="replace")
        try:
            return error.code, json.loads(body)
        except ValueError:
            return error.code, {"error": body}


def probe(url: str, timeout_s: float = 20.0, model: str = contract.ENSEMBLE_NAME) -> str | None:
    """None when the server answered the inference (or refused it as overloaded); else why not."""
    try:
        # Interactive priority: under a bulk flood the probe is still answered, not refused.
        status, answer = infer(url, probe_image(), timeout_s, model, contract.PRIORITY_INTERACTIVE,
                               {contract.RUN_ALL_STEPS: True})
    except OSError as error:  # refused, reset, timed out
        return f"no answer from {url} within {timeout_s:g} s: {getattr(error, 'reason', error)}"
    if status == OVERLOADED:
        return None
    if status != 200:
        return f"inference failed: HTTP {status}: {answer.get('error', answer)}"
    if not any(output.get("name") == "LABEL" for output in answer.get("outputs", [])):
        return f"the answer has no LABEL: {str(answer)[:300]}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="127.0.0.1:8000", help="Triton's HTTP host:port")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds to wait for the answer")
    args = parser.parse_args(argv)
    problem = probe(args.url, args.timeout)
    if problem:
        print(f"deepfake probe: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
