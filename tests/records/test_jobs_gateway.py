"""Jobs through the gateway (fake SDK client; real databases and a real huey queue on SQLite):
archives, server-side paths under a root, refusals, cancel, and the signed webhook sent once."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from jobs_helpers import WebhookReceiver, redis_server, wait_for, zip_of

sys.path.insert(0, str(Path(__file__).parents[1] / "web"))
from web_fakes import NO_FACE_WIDTH, FakeClient, image_bytes  # noqa: E402

from deepfake_client.errors import OverloadedError  # noqa: E402
from deepfake_client.jobs.api import JobSettings  # noqa: E402
from deepfake_client.jobs.inputs import ArchiveLimits  # noqa: E402
from deepfake_client.jobs.service import GatewayJobs  # noqa: E402
from deepfake_client.jobs.webhook import WebhookConfig, verify  # noqa: E402
from deepfake_client.records.store import RecordStore  # noqa: E402
from deepfake_client.web import create_app  # noqa: E402

pytest.importorskip("huey", reason="the jobs extra (huey) is not installed")

SECRET = b"test-secret-not-for-production"


def gateway(url: str, tmp_path: Path, *, workers: int = 2, client=None, queue: str | None = None,
            **settings) -> tuple[TestClient, GatewayJobs]:
    options = {"folder": tmp_path / "jobs", **settings}
    jobs = GatewayJobs(RecordStore(url), queue or f"sqlite:///{tmp_path / 'queue.sqlite'}", JobSettings(**options),
                       workers=workers)
    return TestClient(create_app(client or FakeClient(), jobs=jobs)), jobs


def submit(web: TestClient, data: bytes, name: str = "photos.zip", **form) -> dict:
    answer = web.post("/api/jobs", files={"file": (name, data, "application/octet-stream")}, data=form)
    assert answer.status_code == 202, answer.text
    assert answer.headers["Location"] == f"/api/jobs/{answer.json()['id']}"
    return answer.json()


def finished(web: TestClient, job_id: str) -> dict:
    return wait_for(lambda: web.get(f"/api/jobs/{job_id}", params={"limit": 1000}).json(),
                    lambda job: job["state"] in ("done", "failed", "cancelled"))


def test_an_archive_job_scores_each_image_once_with_partial_results_by_name(database_url, tmp_path):
    members = {f"set/p{i:02d}.png": image_bytes(NO_FACE_WIDTH if i % 4 == 0 else 50, 30) for i in range(40)}
    members["notes.txt"] = b"not an image: left out"
    client = FakeClient()
    web, _ = gateway(database_url, tmp_path, client=client, chunk_size=7)
    with web:
        job = submit(web, zip_of(members))
        assert job["kind"] == "images" and job["total"] == 40
        done = finished(web, job["id"])
    assert done["state"] == "done", done
    assert done["progress"] == {"done": 40, "failed": 0, "total": 40, "fraction": 1.0}
    assert done["result"]["counts"] == {"NO_FACE": 10, "FAKE": 30}
    assert [i["name"] for i in done["items"]] == sorted(n for n in members if n.endswith(".png"))
    assert len(client.calls) == 40  # each image scored exactly once


@pytest.mark.parametrize("members, reason", [
    ({"../escape.png": b"x"}, "unsafe name"),
    ({"/etc/passwd.png": b"x"}, "unsafe name"),
    ({"a\\..\\b.png": b"x"}, "unsafe name"),
    ({"readme.txt": b"x"}, "no images"),
])
def test_unsafe_or_empty_archives_are_refused(database_url, tmp_path, members, reason):
    web, _ = gateway(database_url, tmp_path, workers=0)
    with web:
        answer = web.post("/api/jobs", files={"file": ("a.zip", zip_of(members), "application/zip")})
    assert answer.status_code == 422 and reason in answer.json()["detail"]
    assert not any((tmp_path / "jobs").iterdir())  # nothing left behind


def test_zip_bombs_and_too_many_members_are_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    limits = ArchiveLimits(max_members=5, max_member_bytes=1 << 20, max_ratio=50)
    web, _ = gateway(url, tmp_path, workers=0, archive=limits)
    with web:
        bomb = zip_of({"bomb.png": b"\0" * (900 << 10)}, zipfile.ZIP_DEFLATED)  # ~1000x
        answer = web.post("/api/jobs", files={"file": ("b.zip", bomb, "application/zip")})
        assert answer.status_code == 422 and "zip bomb" in answer.json()["detail"]
        many = zip_of({f"{i}.png": image_bytes() for i in range(6)})
        answer = web.post("/api/jobs", files={"file": ("m.zip", many, "application/zip")})
        assert answer.status_code == 422 and "over the limit of 5" in answer.json()["detail"]
        answer = web.post("/api/jobs", files={"file": ("v.mp4", b"not a video at all", "video/mp4")})
        assert answer.status_code == 415


def test_server_side_paths_are_off_by_default_and_confined_to_the_root(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    for i in range(3):
        (root / "sub" / f"{i}.png").write_bytes(image_bytes(50, 30))
    (outside / "secret.png").write_bytes(image_bytes(50, 30))
    (root / "sub" / "link.png").symlink_to(outside / "secret.png")  # a link out: skipped in a folder
    (root / "out").symlink_to(outside)
    web, _ = gateway(url, tmp_path, workers=0)
    with web:
        answer = web.post("/api/jobs", data={"paths": "sub"})
        assert answer.status_code == 422 and "off" in answer.json()["detail"]
    web, _ = gateway(url, tmp_path, paths_root=root.resolve())
    with web:
        for refused in ("../outside/secret.png", str(outside / "secret.png"), "out/secret.png", "sub/link.png", "out"):
            answer = web.post("/api/jobs", data={"paths": refused})
            assert answer.status_code == 422 and "outside the jobs root" in answer.json()["detail"], refused
        answer = web.post("/api/jobs", data={"paths": "sub"})
        assert answer.status_code == 202, answer.text
        done = finished(web, answer.json()["id"])
    assert done["state"] == "done" and sorted(i["name"] for i in done["items"]) == [f"sub/{i}.png" for i in range(3)]


def test_the_webhook_goes_once_signed_and_only_to_allowed_hosts(database_url, tmp_path):
    with WebhookReceiver() as receiver:
        config = WebhookConfig.of(SECRET, [receiver.host])
        web, _ = gateway(database_url, tmp_path, webhook=config)
        with web:
            answer = web.post("/api/jobs", files={"file": ("a.zip", zip_of({"a.png": image_bytes()}), "application/zip")},
                              data={"webhook_url": "http://example.org/hook"})
            assert answer.status_code == 422 and "allow-list" in answer.json()["detail"]
            job = submit(web, zip_of({f"{i}.png": image_bytes() for i in range(5)}),
                         webhook_url=f"http://{receiver.host}/hook?job=1")
            done = finished(web, job["id"])
            wait_for(lambda: web.get(f"/api/jobs/{job['id']}").json()["webhook"]["state"], lambda s: s == "sent")
    assert len(receiver.received) == 1
    headers, body = receiver.received[0]
    assert verify(SECRET, headers["X-Deepfake-Timestamp"], body, headers["X-Deepfake-Signature"])
    assert not verify(b"another secret", headers["X-Deepfake-Timestamp"], body, headers["X-Deepfake-Signature"])
    payload = receiver.payloads()[0]
    assert payload["id"] == job["id"] and payload["state"] == "done" and payload["result"] == done["result"]


def test_cancel_stops_a_job_and_a_finished_job_cannot_be_cancelled(database_url, tmp_path):
    web, _ = gateway(database_url, tmp_path, workers=0)  # no workers: the job stays queued
    with web:
        job = submit(web, zip_of({"a.png": image_bytes()}))
        answer = web.delete(f"/api/jobs/{job['id']}")
        assert answer.status_code == 200 and answer.json()["state"] == "cancelled"
        assert web.delete(f"/api/jobs/{job['id']}").status_code == 409
        assert web.get("/api/jobs/not-a-job").status_code == 404
        assert web.get("/api/jobs/00000000-0000-0000-0000-000000000000").status_code == 404
    client = FakeClient()
    web, _ = gateway(database_url, tmp_path, client=client)  # the queued task runs now, and does nothing
    with web:
        assert wait_for(lambda: web.get(f"/api/jobs/{job['id']}").json(), lambda j: j["state"] == "cancelled")
    assert client.calls == []


class RefusingClient(FakeClient):
    """The server refuses the first `refusals` images as overloaded (after the SDK's own retries)."""

    def __init__(self, refusals: int) -> None:
        super().__init__()
        self.refusals = refusals

    def _judge(self, data):
        with self.lock:
            refuse = self.refusals > 0
            self.refusals -= 1
        if refuse:
            raise OverloadedError("queue full: retry later")
        return super()._judge(data)


def test_an_overloaded_server_slows_a_job_down_and_never_fails_its_items(tmp_path):
    client = RefusingClient(refusals=5)
    web, _ = gateway(f"sqlite:///{tmp_path / 'r.sqlite'}", tmp_path, client=client, chunk_size=4, retry_s=1)
    with web:
        job = submit(web, zip_of({f"{i}.png": image_bytes(50, 30) for i in range(8)}))
        done = finished(web, job["id"])
    assert done["state"] == "done" and done["progress"] == {"done": 8, "failed": 0, "total": 8, "fraction": 1.0}
    assert len(client.calls) == 8  # refused calls raise before they are counted: each image judged once


def test_the_same_job_on_a_redis_queue(tmp_path):
    """RedisHuey (a real redis-server): the same job, consumed from Redis by the gateway's threads."""
    redis, url = redis_server(tmp_path)
    client = FakeClient()
    try:
        web, jobs = gateway(f"sqlite:///{tmp_path / 'r.sqlite'}", tmp_path, client=client, queue=url, chunk_size=3)
        assert jobs.queue.distributed
        with web:
            job = submit(web, zip_of({f"{i}.png": image_bytes(50, 30) for i in range(10)}))
            done = finished(web, job["id"])
    finally:
        redis.terminate()
        redis.wait(30)
    assert done["state"] == "done" and done["progress"]["done"] == 10 and len(client.calls) == 10
