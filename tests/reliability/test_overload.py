"""Bounded overload on the real server: 3x its capacity for a short while. Some requests are
refused early with the documented overload refusal (HTTP 503, model_repository/README.md),
nothing else fails, and the server serves normally afterwards. Latency and memory figures
are printed and go to benchmarks/README.md (benchmarks/overload.py), not into assertions."""

from __future__ import annotations

import math
import urllib.request

import pytest

from benchmarks import overload
from deepfake_dev import samples
from deepfake_serving.probe import OVERLOADED
from export.triton_config import FLAVOURS

pytestmark = pytest.mark.integration

# Triton's words for its two queue refusals (both UNAVAILABLE), measured on 2.51.
REFUSALS = ("Exceeds maximum queue size", "Request timeout expired")


def test_three_times_capacity_is_partly_refused_and_the_server_recovers(deepfake_server):
    image = samples.encode_image(samples.face_image())
    summary = overload.run(deepfake_server, image, factor=3, duration_s=15, unloaded_count=3, capacity=None,
                           queue_timeout_s=FLAVOURS["cpu"].queue_timeout_us / 1e6)
    print(overload.markdown(summary))
    metrics = urllib.request.urlopen(deepfake_server.metrics_url).read().decode().splitlines()
    print("\n".join(line for line in metrics if line.startswith(("nv_inference_request_failure", "deepfake_images"))))
    assert summary["rejected"] > 0 and summary["accepted"] > 0
    assert summary["other_failures"] == {}
    assert all(any(r in message for r in REFUSALS) for message in summary["refusals"]), summary["refusals"]
    assert all(o["status"] in (200, OVERLOADED) for o in summary["outcomes"])
    assert math.isfinite(summary["recovery_s"])  # a normal answer again, whenever that was
    assert deepfake_server.problems() == []
