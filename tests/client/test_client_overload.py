"""Overload refusals and client timeouts against a real Triton 2.51, on a tiny repository.

No export is needed: `deepfake_detector` here is one python model that sleeps, then
answers a valid no-face result. Its queue policy refuses what it cannot hold: the
queue holds one request (`max_queue_size: 1`); `deepfake_detector_timeout` holds many
but rejects those that waited 100 ms (`default_timeout_microseconds`, REJECT).
What Triton sends for these refusals (status and message) is pinned here, for gRPC
and HTTP, and so is the SDK's promise never to cancel a request on the server.
"""

from __future__ import annotations

import re
import threading
import urllib.request
from pathlib import Path

import pytest

from deepfake_client import (
    NO_RETRY,
    DeepfakeClient,
    DetectionResult,
    Label,
    OverloadedError,
    RequestTimeoutError,
)
from deepfake_client.cli import ExitCode, main

pytestmark = pytest.mark.integration

SLEEP_S = 1.0

MODEL = '''
import time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        time.sleep(SLEEP_S)
        empty = np.zeros((0,), np.float32)
        outputs = {
            "LABEL": np.array([b"NO_FACE"], dtype=np.object_),
            "FAKE_PROBABILITY": np.array([np.nan], np.float32),
            "NUM_FACES": np.array([0], np.int32),
            "MODEL_NAMES": np.array([b"stub"], dtype=np.object_),
            "FACE_BOXES": np.zeros((0, 4), np.float32),
            "FACE_SCORES": empty,
            "FACE_FAKE_PROBABILITY": empty,
            "MODEL_FAKE_PROBABILITY": np.zeros((0, 1), np.float32),
        }
        return [pb_utils.InferenceResponse([pb_utils.Tensor(k, v) for k, v in outputs.items()]) for _ in requests]
'''.replace("SLEEP_S", repr(SLEEP_S))

OUTPUTS = [("LABEL", "TYPE_STRING", "[1]"), ("FAKE_PROBABILITY", "TYPE_FP32", "[1]"),
           ("NUM_FACES", "TYPE_INT32", "[1]"), ("MODEL_NAMES", "TYPE_STRING", "[1]"),
           ("FACE_BOXES", "TYPE_FP32", "[-1, 4]"), ("FACE_SCORES", "TYPE_FP32", "[-1]"),
           ("FACE_FAKE_PROBABILITY", "TYPE_FP32", "[-1]"), ("MODEL_FAKE_PROBABILITY", "TYPE_FP32", "[-1, 1]")]


def _config(name: str, max_queue_size: int, queue_timeout_us: int) -> str:
    outputs = ", ".join(f'{{ name: "{n}" data_type: {t} dims: {d} }}' for n, t, d in OUTPUTS)
    return f'''name: "{name}"
backend: "python"
max_batch_size: 0
input [ {{ name: "IMAGE" data_type: TYPE_UINT8 dims: [-1] }} ]
output [ {outputs} ]
instance_group [ {{ kind: KIND_CPU count: 1 }} ]
dynamic_batching {{
  default_queue_policy {{
    max_queue_size: {max_queue_size} timeout_action: REJECT default_timeout_microseconds: {queue_timeout_us}
  }}
}}
'''


QUEUE_FULL = "deepfake_detector"
QUEUE_TIMEOUT = "deepfake_detector_timeout"


@pytest.fixture(scope="module")
def tiny_server(tmp_path_factory):
    from deepfake_dev.local_server import LocalTritonServer, Ports

    repository = tmp_path_factory.mktemp("tiny-repository")
    for name, queue_size, timeout_us in ((QUEUE_FULL, 1, 0), (QUEUE_TIMEOUT, 64, 100_000)):
        (repository / name / "1").mkdir(parents=True)
        (repository / name / "1" / "model.py").write_text(MODEL)
        (repository / name / "config.pbtxt").write_text(_config(name, queue_size, timeout_us))
    log = tmp_path_factory.mktemp("tiny-triton") / "tritonserver.log"
    server = LocalTritonServer(repository, Ports.free(), log_path=log)
    server.start(timeout_s=300)
    yield server
    server.stop()


def _url(server, protocol: str) -> str:
    return server.grpc_url if protocol == "grpc" else server.http_url


def _burst(url: str, protocol: str, model: str, n: int = 4, **options) -> list:
    """n requests sent at once, each from its own thread; their outcomes."""
    with DeepfakeClient(url, protocol=protocol, model=model, timeout_s=60, **options) as client:
        return client.detect_many([b"\xff\xd8 any bytes: the stub does not decode"] * n, concurrency=n)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
@pytest.mark.parametrize(
    "model, message",
    [(QUEUE_FULL, "[request id: <id_unknown>] Exceeds maximum queue size"), (QUEUE_TIMEOUT, "Request timeout expired")],
)
def test_queue_refusals_are_overloaded_errors(tiny_server, protocol, model, message):
    outcomes = _burst(_url(tiny_server, protocol), protocol, model, retry=NO_RETRY)
    refused = [o for o in outcomes if isinstance(o, OverloadedError)]
    served = [o for o in outcomes if isinstance(o, DetectionResult)]
    assert len(refused) + len(served) == len(outcomes), [str(o) for o in outcomes]
    assert refused and served  # some run; the queue turns away what it cannot hold
    assert all(r.label is Label.NO_FACE for r in served)
    for error in refused:
        assert error.message.endswith(message)
        assert error.status == ("StatusCode.UNAVAILABLE" if protocol == "grpc" else "503")


def test_the_cli_exits_8_when_the_server_refuses(tiny_server, tmp_path, capsys):
    """One request runs and one waits (queue size 1): `deepfake image` is refused at once, exit 8.
    (A folder or a video retries refusals within a budget: tests/client/test_client_batch.py.)"""
    image = tmp_path / "x.jpg"
    image.write_bytes(b"\xff\xd8 not decoded by the stub")
    blockers = [_blocker(tiny_server), _blocker(tiny_server)]
    code = main(["image", str(image), "--url", tiny_server.grpc_url, "--no-progress"])
    captured = capsys.readouterr()
    for blocker in blockers:
        blocker.join()
    assert code == ExitCode.OVERLOADED == 8
    assert "overloaded, retry later" in captured.out + captured.err


def _metric_reaches(server, value: float, name: str, model: str, reason: str | None = None) -> float:
    """The metric once it reaches `value`, or after 10 s (Triton refreshes its metrics every 2 s)."""
    for _ in range(20):
        found = _metric(server, name, model, reason)
        if found >= value:
            return found
        threading.Event().wait(0.5)
    return found


def _metric(server, name: str, model: str, reason: str | None = None) -> float:
    text = urllib.request.urlopen(server.metrics_url, timeout=10).read().decode()
    labels = f'model="{model}"' + (f',reason="{reason}"' if reason else "") + ',version="1"'
    found = re.search(rf"^{name}{{{re.escape(labels)}}} (\S+)$", text, re.MULTILINE)
    assert found, f"{name}{{{labels}}} not in the metrics"
    return float(found.group(1))


def _blocker(server) -> threading.Thread:
    """A request that keeps the model busy for SLEEP_S, so that the next one waits in the queue."""
    def run() -> None:
        with DeepfakeClient(server.grpc_url, model=QUEUE_FULL, timeout_s=60) as client:
            client.detect(b"\xff\xd8 bytes")

    thread = threading.Thread(target=run)
    thread.start()
    threading.Event().wait(0.3)
    return thread


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_a_timed_out_request_is_abandoned_not_cancelled(tiny_server, protocol):
    """The SDK's timeout never reaches the server as a cancellation (Triton 2.51 can crash on one,
    triton-inference-server/server#7368): a request that times out while queued still runs, and
    counts as a success. (With a gRPC deadline it is cancelled in the queue: CANCELED.)"""
    successes = _metric(tiny_server, "nv_inference_request_success", QUEUE_FULL)
    cancelled = _metric(tiny_server, "nv_inference_request_failure", QUEUE_FULL, "CANCELED")
    blocker = _blocker(tiny_server)
    with DeepfakeClient(_url(tiny_server, protocol), protocol=protocol, timeout_s=0.05) as client:
        with pytest.raises(RequestTimeoutError, match="within 0.05 s"):
            client.detect(b"\xff\xd8 bytes")
    # For gRPC, close() waited for the abandoned request, so closing the channel did not cancel it.
    blocker.join()
    assert _metric_reaches(tiny_server, successes + 2, "nv_inference_request_success", QUEUE_FULL) == successes + 2
    assert _metric(tiny_server, "nv_inference_request_failure", QUEUE_FULL, "CANCELED") == cancelled
    assert tiny_server.is_running()


def test_the_cli_timeout_leaves_the_request_to_finish(tiny_server, tmp_path, capsys):
    image = Path(tmp_path / "x.jpg")
    image.write_bytes(b"\xff\xd8 bytes")
    successes = _metric(tiny_server, "nv_inference_request_success", QUEUE_FULL)
    cancelled = _metric(tiny_server, "nv_inference_request_failure", QUEUE_FULL, "CANCELED")
    blocker = _blocker(tiny_server)
    code = main(["image", str(image), "--url", tiny_server.grpc_url, "--timeout", "0.05"])
    assert code == ExitCode.TIMEOUT
    assert "within 0.05 s" in capsys.readouterr().err
    blocker.join()
    assert _metric_reaches(tiny_server, successes + 2, "nv_inference_request_success", QUEUE_FULL) == successes + 2
    assert _metric(tiny_server, "nv_inference_request_failure", QUEUE_FULL, "CANCELED") == cancelled
    assert tiny_server.is_running()
