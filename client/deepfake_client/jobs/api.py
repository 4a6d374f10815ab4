"""The gateway's /api/jobs: submit (202 with an id), status with progress and partial results, cancel.

No `from __future__ import annotations`: FastAPI reads the routes' annotations at run time.
"""

import math
import re
import shutil
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ..errors import InvalidInputError, VideoError
from ..records.capture import sanitise_filename
from ..video import VideoLimits, probe_video
from ..web.limits import GatewayError
from .inputs import ArchiveLimits, extract_images, server_paths
from .queue import JobQueue
from .store import MAX_ITEMS_PAGE, JobStore, JobStoreError
from .webhook import WebhookConfig, check_url

JOB_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ZIP_MAGIC = b"PK\x03\x04"
COPY_CHUNK = 1 << 20


@dataclass
class JobSettings:
    folder: Path  # where each job's files go (shared by every worker in the distributed mode)
    paths_root: Path | None = None  # server-side paths: off unless set
    webhook: WebhookConfig = field(default_factory=WebhookConfig)
    max_upload_bytes: int = 1 << 30
    max_items: int = 100_000
    max_stride: int = 1000
    chunk_size: int = 16
    retry_s: int = 15  # a chunk the server could not take (busy, unavailable) is tried again after this
    archive: ArchiveLimits = field(default_factory=ArchiveLimits)
    video: VideoLimits = field(default_factory=lambda: VideoLimits(max_bytes=1 << 30, max_seconds=4 * 3600.0))


def _refusal(error: Exception) -> GatewayError:
    if isinstance(error, VideoError):
        return GatewayError(415, "unsupported_media_type", error.message)
    if isinstance(error, InvalidInputError):
        return GatewayError(422, "invalid_input", error.message)
    if isinstance(error, JobStoreError):
        return GatewayError(503, "unavailable", "the job database is unavailable; try again shortly", retry_after_s=5)
    raise error


def jobs_router(store: JobStore, queue: JobQueue, settings: JobSettings,
                threshold: Callable[[], Awaitable[float | None]]) -> APIRouter:
    """threshold: the served ensemble's threshold (a video job's verdict uses it)."""
    router = APIRouter(tags=["jobs"])

    def plan_upload(job_id: str, upload: Path, filename: str | None) -> tuple[str, dict[str, Any], int]:
        folder = upload.parent
        with open(upload, "rb") as handle:
            head = handle.read(4)
        if head == ZIP_MAGIC:
            names, paths = extract_images(upload, folder / "items", settings.archive)
            upload.unlink()
            return "images", {"names": names, "paths": paths}, len(names)
        suffix = Path(filename or "").suffix.lower()
        video = upload.rename(folder / f"input{suffix if re.fullmatch(r'.[a-z0-9]{1,8}', suffix) else ''}")
        info = probe_video(video, settings.video)
        return "video", {"video": str(video), "frame_count": info.frame_count, "fps": info.fps}, info.frame_count

    async def save_upload(file: UploadFile, target: Path) -> None:
        written = 0
        with open(target, "wb") as out:
            while chunk := await file.read(COPY_CHUNK):
                written += len(chunk)
                if written > settings.max_upload_bytes:
                    raise GatewayError(413, "too_large", f"the upload is over {settings.max_upload_bytes:,} bytes")
                out.write(chunk)
        if written == 0:
            raise GatewayError(422, "empty", "the upload is empty")

    @router.post("/api/jobs", status_code=202, summary="Submit long work: a video, a zip of images, or paths under the jobs root")
    async def submit(
        file: Annotated[UploadFile | None, File(description="a video (MP4/MOV, WebM, AVI) or a zip archive of images")] = None,
        paths: Annotated[str | None, Form(description="server-side files or folders under the jobs root, one a line")] = None,
        stride: Annotated[int, Form(description="a video's frames: every stride-th frame is scored")] = 1,
        webhook_url: Annotated[str | None, Form(description="called once with the result (allow-listed hosts)")] = None,
    ) -> JSONResponse:
        if (file is None) == (paths is None):
            raise GatewayError(422, "invalid_request", "send a file (a video or a zip) or paths, not both")
        if not 1 <= stride <= settings.max_stride:
            raise GatewayError(422, "invalid_request", f"stride must be from 1 to {settings.max_stride}, got {stride}")
        try:
            if webhook_url:
                check_url(webhook_url, settings.webhook)
        except InvalidInputError as error:
            raise _refusal(error) from error
        job_id = str(uuid.uuid4())
        folder = settings.folder / job_id
        folder.mkdir(parents=True)
        try:
            filename = None
            if file is not None:
                filename = sanitise_filename(file.filename)
                upload = folder / "upload"
                await save_upload(file, upload)
                kind, plan, count = await run_in_threadpool(plan_upload, job_id, upload, file.filename)
            else:
                requested = [line.strip() for line in paths.splitlines() if line.strip()][: settings.max_items + 1]
                found = await run_in_threadpool(server_paths, settings.paths_root, requested, settings.max_items)
                kind, count = "images", len(found)
                plan = {"names": [str(p.relative_to(settings.paths_root.resolve()))[-255:] for p in found],
                        "paths": [str(p) for p in found], "root": str(settings.paths_root.resolve())}
            if kind == "video":
                plan["stride"] = stride
                count = math.ceil(count / stride)
            if count > settings.max_items:
                raise GatewayError(413, "too_large", f"the job has {count:,} items, over the limit of {settings.max_items:,}")
            job = {"id": job_id, "kind": kind, "filename": filename, "folder": str(folder), "plan": plan, "total": count,
                   "chunk_size": settings.chunk_size, "threshold": await threshold(),
                   "webhook_url": webhook_url or None, "webhook_state": "pending" if webhook_url else None}
            await run_in_threadpool(store.create, job)
        except (InvalidInputError, JobStoreError) as error:
            shutil.rmtree(folder, ignore_errors=True)
            raise _refusal(error) from error
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        await run_in_threadpool(queue.enqueue, job_id, math.ceil(count / settings.chunk_size))
        body = {"id": job_id, "kind": kind, "state": "queued", "total": count, "status_url": f"/api/jobs/{job_id}"}
        return JSONResponse(body, status_code=202, headers={"Location": f"/api/jobs/{job_id}"})

    async def existing(job_id: str) -> dict[str, Any]:
        if not JOB_ID.match(job_id):
            raise GatewayError(404, "not_found", f"no job {job_id[:64]!r}")
        try:
            job = await run_in_threadpool(store.get, job_id)
        except JobStoreError as error:
            raise _refusal(error) from error
        if job is None:
            raise GatewayError(404, "not_found", f"no job {job_id!r}")
        return job

    @router.get("/api/jobs/{job_id}", summary="A job's state, progress and results so far (paged items)")
    async def status(
        job_id: str,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=0, le=MAX_ITEMS_PAGE)] = 100,
    ) -> dict[str, Any]:
        job = await existing(job_id)
        items = await run_in_threadpool(lambda: store.items(job_id, offset=offset, limit=limit))
        return {**job, "items": items, "offset": offset}

    @router.delete("/api/jobs/{job_id}", summary="Cancel a queued or running job (items scored so far are kept)")
    async def cancel(job_id: str) -> dict[str, Any]:
        job = await existing(job_id)
        if not await run_in_threadpool(store.cancel, job_id):
            raise GatewayError(409, "conflict", f"job {job_id} is already {job['state']}")
        return await existing(job_id)

    return router
