"""Failures that break the server, each on a disposable one: a killed python stub, gRPC
cancellations from tiny client deadlines (server#7368 on 2.51), a crash. Afterwards: the
failure is reported, and nothing is left behind (no stub process, no /dev/shm file)."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from conftest import orphans
from tritonclient.utils import InferenceServerException

import deepfake_contract as contract
from deepfake_client import NO_RETRY, DeepfakeClient, DetectionResult, OverloadedError
from deepfake_dev import samples
from deepfake_serving import probe

pytestmark = pytest.mark.integration


def test_a_killed_stub_then_a_crash_are_reported_and_leave_no_orphans(disposable_server):
    """One disposable server for both (a start costs a minute): kill -9 a classifier's stub,
    then crash tritonserver itself."""
    server = disposable_server
    assert server.stubs and server.problems() == [] and probe.probe(server.http_url) is None
    victim = next(stub for stub in server.stubs if stub.instance.startswith("xception"))
    os.kill(victim.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while not server.problems() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert server.problems() == [f"the python stub of {victim.instance} (pid {victim.pid}) has died"]
    # Triton itself still says ready; an inference (what the k8s probes run) tells the truth.
    failure = probe.probe(server.http_url, timeout_s=60)
    assert failure and "xception" in failure, failure
    with DeepfakeClient(server.grpc_url, timeout_s=60) as client:  # and `deepfake health` names the model
        health = client.health()
    assert not health.ready and health.not_ready_models == ("xception",), health.to_dict()

    os.kill(server._process.pid, signal.SIGSEGV)  # what a server-side crash looks like
    deadline = time.monotonic() + 10
    while server.is_running() and time.monotonic() < deadline:
        time.sleep(0.1)
    # Triton's own SIGSEGV handler prints a backtrace and exits; either way it is reported.
    (problem,) = server.problems()
    assert problem.startswith("tritonserver ended with"), problem
    cleaned = server.stop()
    assert orphans(server) == ([], [])
    # Whatever Triton did not clean up itself is named, so the user knows what was removed.
    assert cleaned and all(line.startswith(("killed the orphan python stub", "removed /dev/shm/")) for line in cleaned)


def _tiny_deadline_calls(url: str, data: bytes, count: int) -> list[str]:
    client = grpcclient.InferenceServerClient(url)
    outcomes = []
    for _ in range(count):
        tensor = grpcclient.InferInput(contract.IMAGE.name, [len(data)], "UINT8")
        tensor.set_data_from_numpy(np.frombuffer(data, np.uint8))
        try:
            client.infer(contract.ENSEMBLE_NAME, [tensor], client_timeout=0.001)
            outcomes.append("ok")
        except InferenceServerException as error:
            outcomes.append(str(error.status()))
    return outcomes


def _in_flight_at_stop(server) -> int:
    from benchmarks.load.overload import in_flight_at_stop

    return in_flight_at_stop(server.log_path.read_text(errors="replace"))


def test_refusals_then_a_clean_stop(disposable_server, sample_media):
    """A flood far over the admission bound: each refused at the entry; then the server stops
    cleanly: no request left in flight, no process killed, no shared-memory file left (with the
    ensemble's queue timeouts, 2.51 leaked one in-flight request per refusal)."""
    server = disposable_server
    data = (sample_media / samples.FACE_IMAGE).read_bytes()
    with DeepfakeClient(server.grpc_url, timeout_s=300, retry=NO_RETRY) as client:
        flood = client.detect_many([data] * 40, concurrency=40)
    refused = [o for o in flood if isinstance(o, OverloadedError)]
    assert refused and all(isinstance(o, (DetectionResult, OverloadedError)) for o in flood), flood
    cleaned = server.stop()
    assert cleaned == [] and orphans(server) == ([], [])
    assert _in_flight_at_stop(server) == 0


def test_bursts_of_1ms_deadlines_neither_crash_nor_wedge_the_server(disposable_server, sample_media):
    """Raw tritonclient, 1 ms deadlines, 8 callers at once, 5 bursts of 200 (the ensemble of
    Triton 2.51 crashed or wedged on these, server#7368; the pipeline model does not). After
    each burst the server answers a normal request. Known 2.51 limit (model_repository/README.md):
    after cancellations the pipeline's stubs do not unload within Triton's exit timeout, so the
    stop has to kill them; it leaves nothing behind."""
    server = disposable_server
    data = (sample_media / samples.FACE_IMAGE).read_bytes()
    for burst in range(5):
        with ThreadPoolExecutor(max_workers=8) as pool:
            outcomes = sum(pool.map(lambda _: _tiny_deadline_calls(server.grpc_url, data, 25), range(8)), [])
        assert len(outcomes) == 200
        print(f"burst {burst + 1}, outcomes of 1-ms deadlines:", {o: outcomes.count(o) for o in set(outcomes)})
        assert set(outcomes) <= {"ok", "StatusCode.DEADLINE_EXCEEDED", "StatusCode.UNAVAILABLE",
                                 "StatusCode.CANCELLED"}, outcomes
        assert server.problems() == []
        # Interactive priority, 30 s: the admitted leftovers of the burst finish first.
        assert probe.probe(server.http_url, timeout_s=30) is None
    cleaned = server.stop()
    print("cleanup:", cleaned)
    assert orphans(server) == ([], [])
    assert _in_flight_at_stop(server) == 0
    # Only the public pipeline's stubs may have had to be killed, never another model's.
    assert all(contract.ENSEMBLE_NAME in line for line in cleaned), cleaned
