"""A 300-frame video as a job on the real Triton server, with the gateway as its own process:

- killed (SIGKILL) mid-job and started again, the job completes; the frames scored before the kill
  keep their results and their scorer (not scored again), and the webhook arrives once, signed;
- on Redis with two `deepfake job worker` processes (Debian's redis-server, started here), the job
  completes with each frame scored exactly once (Triton's own success count rises by the frame count).

Every 10th frame is scored (30 of the 300): the cpu flavour judges about 1-2 images/s on this
2-core machine, and the point is the job machinery, not the frame count.
Run with `flock /tmp/triton.lock` beside the other Triton tests.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from jobs_helpers import WebhookReceiver, free_port, redis_server, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

FRAMES, STRIDE, CHUNK = 300, 10, 4
SCORED = FRAMES // STRIDE
SECRET = "integration-secret"


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    from deepfake_dev.samples import write_video

    return write_video(tmp_path_factory.mktemp("video") / "long.mp4", num_frames=FRAMES, fps=25.0)


def successes(server) -> float:
    """Triton's count of successful deepfake_detector requests."""
    text = requests.get(server.metrics_url, timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("nv_inference_request_success{") and 'model="deepfake_detector"' in line)


class Process:
    """A `deepfake` command as its own process (its output in a log file)."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str]) -> None:
        self.log = log
        self.handle = open(log, "ab")
        self.process = subprocess.Popen([sys.executable, "-m", "deepfake_client.cli", *args], stdout=self.handle,
                                        stderr=subprocess.STDOUT, env=env)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()
        self.handle.close()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def environment(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "DEEPFAKE_DATA_DIR": str(tmp_path / "data"), "DEEPFAKE_JOB_WEBHOOK_SECRET": SECRET}


def start_gateway(server, tmp_path: Path, port: int, *extra: str) -> Process:
    gateway = Process(["web", "--url", server.grpc_url, "--port", str(port), "--record-db", str(tmp_path / "db.sqlite"),
                       "--jobs-dir", str(tmp_path / "jobs"), "--job-chunk-size", str(CHUNK), *extra],
                      tmp_path / "gateway.log", environment(tmp_path))

    def up() -> bool:
        assert gateway.process.poll() is None, gateway.tail()
        try:
            return requests.get(f"http://127.0.0.1:{port}/openapi.json", timeout=5).status_code == 200
        except requests.ConnectionError:
            return False

    wait_for(up, bool, timeout_s=120)
    return gateway


def job_store(tmp_path: Path):
    from deepfake_client.jobs.store import JobStore
    from deepfake_client.records.store import RecordStore

    return JobStore(RecordStore(str(tmp_path / "db.sqlite")).engine)


def submit(port: int, video: Path, **form) -> str:
    with open(video, "rb") as handle:
        answer = requests.post(f"http://127.0.0.1:{port}/api/jobs", files={"file": ("long.mp4", handle, "video/mp4")},
                               data={"stride": STRIDE, **form}, timeout=120)
    assert answer.status_code == 202, answer.text
    assert answer.json()["total"] == SCORED
    return answer.json()["id"]


def status(port: int, job_id: str) -> dict:
    return requests.get(f"http://127.0.0.1:{port}/api/jobs/{job_id}", params={"limit": 1000}, timeout=30).json()


def test_a_video_job_survives_a_killed_gateway_without_scoring_frames_again(deepfake_server, video, tmp_path):
    port = free_port()
    with WebhookReceiver() as receiver:
        options = ("--job-webhook-host", receiver.host, "--jobs-queue", f"sqlite:///{tmp_path / 'queue.sqlite'}")
        gateway = start_gateway(deepfake_server, tmp_path, port, *options)
        before = successes(deepfake_server)
        try:
            job_id = submit(port, video, webhook_url=f"http://{receiver.host}/done")
            partial = wait_for(lambda: status(port, job_id), lambda j: j["progress"]["done"] >= SCORED // 3, poll_s=0.1)
            gateway.kill()  # mid-job: no shutdown, no clean-up
        finally:
            gateway.stop()
        assert partial["state"] == "running" and partial["progress"]["done"] < SCORED, partial["progress"]
        scored_before = job_store(tmp_path).scorers(job_id)
        assert SCORED // 3 <= len(scored_before) < SCORED

        gateway = start_gateway(deepfake_server, tmp_path, port, *options)
        try:
            done = wait_for(lambda: status(port, job_id), lambda j: j["state"] in ("done", "failed", "cancelled"))
            wait_for(lambda: status(port, job_id)["webhook"]["state"], lambda s: s in ("sent", "failed"))
            time.sleep(2)  # a second webhook, if one were sent, would have arrived by now
        finally:
            gateway.stop()
    assert done["state"] == "done", (done, gateway.tail())
    scored_after = job_store(tmp_path).scorers(job_id)
    assert sorted(scored_after) == list(range(SCORED))
    assert {p: scored_after[p] for p in scored_before} == scored_before  # kept, not scored again
    assert set(scored_after.values()) - set(scored_before.values()), "the restarted gateway scored the rest"
    assert [i["frame_index"] for i in done["items"]] == list(range(0, FRAMES, STRIDE))
    assert done["result"]["frames_scored"] == SCORED and done["result"]["verdict"] in ("REAL", "FAKE", "NO_FACE")
    assert done["progress"]["failed"] == 0, [i for i in done["items"] if i.get("error")]
    # Triton: every frame once, plus at most what was in flight when the gateway died (2 chunks x 8).
    assert SCORED <= successes(deepfake_server) - before <= SCORED + 2 * 8
    from deepfake_client.jobs.webhook import verify

    assert len(receiver.received) == 1
    headers, body = receiver.received[0]
    assert verify(SECRET.encode(), headers["X-Deepfake-Timestamp"], body, headers["X-Deepfake-Signature"])
    assert receiver.payloads()[0]["result"] == done["result"]


def test_a_video_job_on_redis_with_two_worker_processes_scores_each_frame_once(deepfake_server, video, tmp_path):
    port = free_port()
    redis, queue = redis_server(tmp_path)
    workers = []
    gateway = None
    try:
        gateway = start_gateway(deepfake_server, tmp_path, port, "--jobs-queue", queue)  # 0 workers with Redis
        for n in range(2):
            workers.append(Process(["job", "worker", "--url", deepfake_server.grpc_url, "--queue", queue,
                                    "--db", str(tmp_path / "db.sqlite"), "--workers", "2", "--concurrency", "2",
                                    "--timeout", "600"],
                                   tmp_path / f"worker{n}.log", environment(tmp_path)))
        for worker in workers:
            wait_for(lambda w=worker: "job worker:" in w.log.read_text(errors="replace"), bool, timeout_s=120)
        before = successes(deepfake_server)
        job_id = submit(port, video)
        done = wait_for(lambda: status(port, job_id), lambda j: j["state"] in ("done", "failed", "cancelled"))
        after = successes(deepfake_server)
    finally:
        for process in [*workers, *([gateway] if gateway else [])]:
            process.stop()
        redis.terminate()
        redis.wait(30)
    assert done["state"] == "done", (done, [w.tail() for w in workers])
    assert done["progress"]["failed"] == 0, [i for i in done["items"] if i.get("error")]
    scorers = job_store(tmp_path).scorers(job_id)
    assert sorted(scorers) == list(range(SCORED))
    assert len({owner.split(":")[1] for owner in scorers.values()}) == 2, "both worker processes took chunks"
    # Each frame scored exactly once, by Triton's own count. (The long --timeout: on this busy 2-core
    # machine a request can wait over the SDK's default 60 s; Triton still scores one the client gave
    # up on, and the job then scores it again: once for the job, twice for Triton.)
    assert after - before == SCORED
