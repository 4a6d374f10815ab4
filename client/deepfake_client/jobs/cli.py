"""`deepfake job submit/status/wait/cancel` (against a gateway, over HTTP), `deepfake job worker`
(a distributed worker: consumes the Redis queue, scores through Triton), and `deepfake web`'s job options.

Secrets (the webhook secret, an API key) come from files or the environment, never the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from ..client import DEFAULT_CONCURRENCY
from ..errors import DeepfakeError, InvalidInputError, RequestTimeoutError, ServerUnavailableError

SECRET_ENV = "DEEPFAKE_JOB_WEBHOOK_SECRET"
API_KEY_ENV = "DEEPFAKE_API_KEY"
DEFAULT_GATEWAY = "http://127.0.0.1:8080"
FINISHED = ("done", "failed", "cancelled")
EXAMPLES = {
    "submit": "deepfake job submit long-clip.mp4 --stride 5 --webhook https://hooks.example.org/deepfake",
    "status": "deepfake job status 6f1c0a4e-...-9b2d --items 20",
    "wait": "deepfake job wait 6f1c0a4e-...-9b2d --timeout 3600",
    "cancel": "deepfake job cancel 6f1c0a4e-...-9b2d",
    "worker": "deepfake job worker --queue redis://127.0.0.1:6379/0 --db postgresql://deepfake@db/deepfake --url triton:8001",
}


# `deepfake web`'s options


def add_web_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("jobs for long work (issue 20; in the record database)")
    group.add_argument("--no-jobs", action="store_true", help="serve no /api/jobs")
    group.add_argument("--jobs-queue", metavar="URL",
                       help="the huey queue: sqlite:///PATH (default: jobs-queue.sqlite in the data folder, consumed "
                            "by this gateway) or redis://HOST:PORT/DB (consumed by `deepfake job worker` processes)")
    group.add_argument("--job-workers", type=int, metavar="N",
                       help="worker threads in this gateway (default 2 with SQLite, 0 with Redis)")
    group.add_argument("--job-chunk-size", type=int, default=16, metavar="N",
                       help="items per queue task (default %(default)s): the unit a worker claims and a restart resumes")
    group.add_argument("--jobs-dir", metavar="DIR",
                       help="the jobs' files (default: jobs/ in the data folder; shared by every worker)")
    group.add_argument("--jobs-root", metavar="DIR",
                       help="allow jobs on server-side paths under DIR (off by default; links out of it are refused)")
    group.add_argument("--job-webhook-host", action="append", default=[], metavar="HOST[:PORT]",
                       help=f"a host webhooks may call (repeat); the signing secret is ${SECRET_ENV} or --job-webhook-secret-file")
    group.add_argument("--job-webhook-secret-file", metavar="FILE", help="the webhooks' HMAC-SHA256 secret")


def webhook_config(hosts: list[str], secret_file: str | None) -> Any:
    from .webhook import WebhookConfig

    secret = Path(secret_file).read_text().strip() if secret_file else os.environ.get(SECRET_ENV)
    return WebhookConfig.of(secret, hosts)


def gateway_jobs(args: argparse.Namespace, records: Any) -> Any:
    """The gateway's GatewayJobs from `deepfake web`'s options, or None with --no-jobs."""
    if args.no_jobs:
        return None
    from ..records.store import RecordStore, data_dir, default_url
    from .api import JobSettings
    from .queue import default_queue_url
    from .service import GatewayJobs

    store = records.store if records is not None else RecordStore(args.record_db or default_url())
    queue = args.jobs_queue or os.environ.get("DEEPFAKE_JOBS_QUEUE") or default_queue_url(data_dir())
    workers = args.job_workers if args.job_workers is not None else (0 if queue.startswith("redis") else 2)
    settings = JobSettings(folder=Path(args.jobs_dir) if args.jobs_dir else data_dir() / "jobs",
                           paths_root=Path(args.jobs_root).resolve() if args.jobs_root else None,
                           webhook=webhook_config(args.job_webhook_host, args.job_webhook_secret_file),
                           chunk_size=max(1, args.job_chunk_size))
    return GatewayJobs(store, queue, settings, workers=workers)


# deepfake job


def add_job_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    job = commands.add_parser("job", help="long work as jobs on a gateway: submit, status, wait, cancel; worker")
    actions = job.add_subparsers(dest="job_action", metavar="action", required=True)

    def action(name: str, help: str, parents: list[argparse.ArgumentParser] | None = None) -> argparse.ArgumentParser:
        p = actions.add_parser(name, parents=parents or [gateway], help=help, epilog=f"example:\n  {EXAMPLES[name]}",
                               formatter_class=argparse.RawDescriptionHelpFormatter)
        return p

    gateway = argparse.ArgumentParser(add_help=False)
    gateway.add_argument("--gateway", default=os.environ.get("DEEPFAKE_GATEWAY", DEFAULT_GATEWAY),
                         help=f"the gateway (`deepfake web`) URL (default $DEEPFAKE_GATEWAY or {DEFAULT_GATEWAY}); "
                              f"its API key, if it needs one: ${API_KEY_ENV}")
    gateway.add_argument("--json", action="store_true", help="print JSON")

    p = action("submit", "submit a video, a zip of images, or server-side paths (--paths)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("file", nargs="?", help="a video or a .zip of images")
    what.add_argument("--paths", nargs="+", metavar="PATH", help="files or folders under the gateway's jobs root")
    p.add_argument("--stride", type=int, default=1, help="a video: score every N-th frame (default %(default)s)")
    p.add_argument("--webhook", metavar="URL", help="called once with the result (the gateway's allow-list decides)")
    p.add_argument("--wait", action="store_true", help="then wait for the result, as `deepfake job wait`")
    p.add_argument("--timeout", type=float, default=None, help="with --wait: give up after this many seconds")
    p.set_defaults(job_run=run_submit)

    p = action("status", "a job's state, progress and first items")
    p.add_argument("id")
    p.add_argument("--items", type=int, default=0, help="also print this many items (default %(default)s)")
    p.set_defaults(job_run=run_status)

    p = action("wait", "wait until a job ends; print its result (exit code: as `deepfake video`)")
    p.add_argument("id")
    p.add_argument("--timeout", type=float, default=None, help="give up after this many seconds (exit 6)")
    p.set_defaults(job_run=run_wait)

    p = action("cancel", "cancel a queued or running job (scored items are kept)")
    p.add_argument("id")
    p.set_defaults(job_run=run_cancel)

    p = action("worker", "consume the job queue (distributed mode: Redis), scoring through Triton", parents=[common])
    p.add_argument("--queue", required=True, help="the gateway's --jobs-queue (redis://HOST:PORT/DB)")
    p.add_argument("--db", help="the gateway's record database (default: as `deepfake web`)")
    p.add_argument("--workers", type=int, default=2, help="worker threads (default %(default)s)")
    p.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY,
                   help="requests in flight per worker thread, at most (the SDK's adaptive limit; default %(default)s)")
    p.add_argument("--job-webhook-host", action="append", default=[], metavar="HOST[:PORT]")
    p.add_argument("--job-webhook-secret-file", metavar="FILE")
    p.set_defaults(job_run=None, handler=run_worker)


def _call(args: argparse.Namespace, method: str, path: str, body: bytes | None = None,
          content_type: str | None = None) -> dict[str, Any]:
    request = urllib.request.Request(args.gateway.rstrip("/") + path, data=body, method=method)
    if content_type:
        request.add_header("Content-Type", content_type)
    if os.environ.get(API_KEY_ENV):
        request.add_header("X-API-Key", os.environ[API_KEY_ENV])
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            detail = json.loads(error.read()).get("detail", "")
        except ValueError:
            detail = error.reason
        if error.code in (404, 409, 413, 415, 422):
            raise InvalidInputError(f"HTTP {error.code}: {detail}") from None
        if error.code == 503:
            raise ServerUnavailableError(f"HTTP 503: {detail}") from None
        raise DeepfakeError(f"HTTP {error.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as error:
        raise ServerUnavailableError(f"cannot reach the gateway at {args.gateway}: {error}") from None


def _multipart(fields: dict[str, str], file: Path | None) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    if file is not None:
        safe = file.name.replace('"', "_").replace("\r", "_").replace("\n", "_")
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{safe}"\r\n'
                     f"Content-Type: application/octet-stream\r\n\r\n".encode() + file.read_bytes() + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _print(args: argparse.Namespace, job: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(job, indent=2))
        return
    progress = job.get("progress") or {}
    print(f"{job['id']}  {job['kind']}  {job['state']}  {progress.get('done', 0)}/{progress.get('total', job.get('total'))}"
          f"{'  failed ' + str(progress['failed']) if progress.get('failed') else ''}")
    if job.get("result"):
        print(json.dumps(job["result"]))
    if job.get("error"):
        print(f"error: {job['error']}")
    for item in job.get("items") or []:
        where = item.get("frame_index") if item.get("frame_index") is not None else item.get("name")
        print(f"  {where}  {item.get('verdict') or item.get('error')}  {item.get('fake_probability')}")


def run_submit(args: argparse.Namespace) -> int:
    fields = {"stride": str(args.stride)}
    if args.webhook:
        fields["webhook_url"] = args.webhook
    file = None
    if args.paths:
        fields["paths"] = "\n".join(args.paths)
    else:
        file = Path(args.file)
        if not file.is_file():
            raise InvalidInputError(f"{args.file} is not a file")
    body, content_type = _multipart(fields, file)
    job = _call(args, "POST", "/api/jobs", body, content_type)
    if args.wait:
        args.id = job["id"]
        return run_wait(args)
    print(json.dumps(job) if args.json else job["id"])
    return 0


def run_status(args: argparse.Namespace) -> int:
    _print(args, _call(args, "GET", f"/api/jobs/{args.id}?limit={max(0, args.items)}"))
    return 0


def run_cancel(args: argparse.Namespace) -> int:
    _print(args, _call(args, "DELETE", f"/api/jobs/{args.id}"))
    return 0


def exit_code(job: dict[str, Any]) -> int:
    """1 when anything is FAKE, 5 when nothing had a face, 7 when the job failed or was cancelled."""
    if job["state"] != "done":
        return 7
    result = job.get("result") or {}
    counts = result.get("counts") or {}
    if result.get("verdict") == "FAKE" or counts.get("FAKE"):
        return 1
    if result.get("verdict") == "NO_FACE" or (counts and set(counts) <= {"NO_FACE", "ERROR"}):
        return 5
    return 0


def run_wait(args: argparse.Namespace) -> int:
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    delay = 0.5
    while True:
        job = _call(args, "GET", f"/api/jobs/{args.id}?limit=0")
        if job["state"] in FINISHED:
            _print(args, job)
            return exit_code(job)
        progress = job["progress"]
        if not args.json:
            print(f"{job['state']} {progress['done']}/{progress['total']}", file=sys.stderr)
        if deadline is not None and time.monotonic() > deadline:
            raise RequestTimeoutError(f"job {args.id} did not end within {args.timeout:g} s (it goes on)")
        time.sleep(delay)
        delay = min(delay * 1.5, 10.0)


def run_worker(client: Any, args: argparse.Namespace) -> int:
    """Consumes the queue until SIGINT/SIGTERM (huey's consumer: a graceful stop)."""
    from ..records.store import RecordStore, default_url
    from .queue import JobQueue
    from .runner import JobRunner
    from .store import JobStore

    store = JobStore(RecordStore(args.db or default_url()).engine)
    webhook = webhook_config(args.job_webhook_host, args.job_webhook_secret_file)
    queue = JobQueue(args.queue, lambda: JobRunner(store, client, webhook))
    print(f"job worker: {args.workers} threads on {args.queue}", file=sys.stderr)
    queue.consumer(args.workers).run()
    return 0
