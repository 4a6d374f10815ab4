"""The FastAPI app: the seed system's endpoints and the web page, on a `DeepfakeClient`.

Handlers are async; each SDK call (blocking gRPC/HTTP) runs on the gateway's own
thread pool (`Limits.max_in_flight` threads), so the event loop never waits on
Triton and the pool, not the default executor's few threads, bounds the work
in flight. Uploads are bounded by the per-route body limit; Starlette keeps a part in
memory up to 1 MiB and spools a larger one to a temporary file (its default, left as it
is: the setting is process-wide, not the app's). A video is written to one temporary
file because the SDK video path reads files, and that file is removed when its detection ends, whatever happens to the request.

No `from __future__ import annotations` here: FastAPI reads the parameters' annotations at run time.
"""


import asyncio
import base64
import functools
import gc
import hashlib
import importlib
import json
import logging
import math
import os
import re
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, Query, Request, UploadFile, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..ensemble import EnsembleSettings
from ..errors import DeepfakeError, ModelNotReadyError
from ..provenance import ProvenanceReader, reader_for
from ..results import DetectionResult, FrameResult
from ..video import probe_video
from . import seed
from .limits import DEFAULT_LIMITS, GatewayError, Limits, check_image, decode_base64_frame, from_sdk_error, too_large
from .metrics import GatewayMetrics, MetricsMiddleware
from .security import ApiKeyMiddleware, SecurityHeadersMiddleware, TokenBucket, UploadAdmission, origin_allowed

log = logging.getLogger("deepfake_client.web")

STATIC = Path(__file__).parent / "static"
SERVICE = "deepfake-detector gateway"
DEVICE = "triton"  # the seed reported its torch device; the models now run wherever Triton runs them
SETTINGS_TTL_S = 30.0
NDJSON = "application/x-ndjson"

Overlay = Callable[[bytes, Any], bytes]


def _version() -> str:
    try:
        return version("deepfake-client")
    except PackageNotFoundError:
        return "unknown"


def default_overlay() -> Overlay | None:
    """The SDK's heatmap drawing, render_overlay(image_bytes, explanation) -> PNG, when this SDK has it."""
    for name in ("deepfake_client.overlay", "deepfake_client.explain"):
        try:
            draw = getattr(importlib.import_module(name), "render_overlay", None)
        except ImportError:
            continue
        if draw is not None:
            return draw
    return None


class Gateway:
    """The state behind the routes: the SDK client, its thread pool, cached settings, sessions."""

    def __init__(self, client: Any, limits: Limits, overlay: Overlay | None, provenance: ProvenanceReader | None = None) -> None:
        self.client = client
        self.provenance = provenance
        self.limits = limits
        self.overlay = overlay
        self.executor = ThreadPoolExecutor(max_workers=limits.max_in_flight, thread_name_prefix="deepfake-web")
        self.webcam_sessions = 0
        self._settings: EnsembleSettings | None = None
        self._settings_at = -math.inf

    async def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a blocking SDK call on the pool; SDK errors become HTTP answers."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.executor, functools.partial(function, *args, **kwargs))
        except DeepfakeError as error:
            # tritonclient's gRPC callback leaves a reference cycle behind each failed call
            # (the call raised inside its own done-callback) that holds the request, i.e. the
            # upload: a full collection frees it now, not whenever the cyclic GC next runs.
            # Measured over 100 refused 19 MiB uploads: RSS 250-690 MiB without, 177-228 with.
            # Not gc.collect(1): the cycle may still be live then, gets promoted to the oldest
            # generation, and piles up there (7.7 GB after 200 uploads).
            gc.collect()
            raise from_sdk_error(error) from error

    async def settings(self) -> EnsembleSettings:
        """weighted_average's weights and threshold (fixed while Triton runs: model control is off)."""
        if self._settings is None or time.monotonic() - self._settings_at > SETTINGS_TTL_S:
            self._settings = await self.call(self.client.ensemble_settings)
            self._settings_at = time.monotonic()
        return self._settings

    async def detect(self, data: bytes) -> tuple[DetectionResult, float]:
        started = time.perf_counter()
        result = await self.call(self.client.detect, data)
        return result, time.perf_counter() - started

    def with_provenance(self, result: DetectionResult, data: bytes) -> DetectionResult:
        """The upload's C2PA Content Credentials beside the models' verdict (blocking: call it off the loop).
        The gateway's own reading, with its trust anchors, replaces any the client made."""
        return result if self.provenance is None else replace(result, provenance=self.provenance.read(data))

    async def explain(self, data: bytes) -> tuple[DetectionResult, float, str]:
        """Detection plus the heatmap overlay (base64 PNG), from the SDK's explain API."""
        explain = getattr(self.client, "explain", None)
        if explain is None or self.overlay is None:
            raise GatewayError(501, "gradcam_unavailable", "gradcam unavailable: this SDK has no explanations (client.explain)")
        started = time.perf_counter()
        try:
            explanation = await self.call(explain, data)
        except GatewayError as error:
            if isinstance(error.__cause__, ModelNotReadyError):  # Triton serves no explainer model
                raise GatewayError(501, "gradcam_unavailable", f"gradcam unavailable: {error.__cause__.message}") from error
            raise
        elapsed = time.perf_counter() - started
        png = await self.call(self.overlay, data, explanation)
        return explanation.detection, elapsed, base64.b64encode(png).decode("ascii")


def _error_response(error: GatewayError) -> JSONResponse:
    headers = {"Retry-After": str(error.retry_after_s)} if error.retry_after_s else None
    return JSONResponse(error.to_dict(), status_code=error.status, headers=headers)


class BodyLimitMiddleware:
    """Refuses an upload over its route's limit from its Content-Length, before reading it.

    uvicorn never reads past a declared Content-Length, so the check bounds what is read;
    a body without one (chunked) is refused with 411.
    """

    def __init__(self, app: Any, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        limit = self.limits.body_limit(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if limit is not None:
            headers = dict(scope["headers"])
            length = headers.get(b"content-length")
            if length is None or not length.isdigit():
                error = GatewayError(411, "length_required", "send the upload with a Content-Length")
                return await _error_response(error)(scope, receive, send)
            if int(length) > limit:
                error = too_large("the upload", int(length), self.limits.upload_limit(scope["path"]), "bytes")
                return await _error_response(error)(scope, receive, send)
        await self.app(scope, receive, send)


def create_app(
    client: Any,
    *,
    limits: Limits = DEFAULT_LIMITS,
    overlay: Overlay | None | str = "auto",
    close_client: bool = False,
    allowed_origins: Iterable[str] = (),
    api_keys: Iterable[str] = (),
    key_rate: float = 10.0,
    records: Any = None,
    provenance: ProvenanceReader | bool | None = True,
    jobs: Any = None,
) -> FastAPI:
    """The gateway on `client` (a DeepfakeClient, or anything with its methods).

    overlay: the heatmap drawing for generate_gradcam ("auto": the SDK's, if it has one).
    close_client: close the client when the app shuts down.
    allowed_origins: pages (scheme://host:port) besides the gateway's own that may open the webcam socket.
    api_keys: when given, /api/* and /metrics need one in X-API-Key; key_rate: requests a second per key.
    records: a `deepfake_client.records.gateway.GatewayRecords`: every verdict is recorded and
        /api/history is served (closed with the app).
    provenance: reads each uploaded image's C2PA Content Credentials into the answer's `provenance`
        (True: a reader that trusts no signer; None: not read). Never changes the verdict.
    jobs: a `deepfake_client.jobs.service.GatewayJobs`: /api/jobs is served, interrupted jobs are
        resumed at start and the embedded workers run with the app.
    """
    origins = frozenset(o.rstrip("/").lower() for o in allowed_origins)
    api_keys = tuple(api_keys)
    gateway = Gateway(client, limits, default_overlay() if overlay == "auto" else overlay, reader_for(provenance))
    metrics = GatewayMetrics()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if jobs is not None:
            jobs.start()
        yield
        if jobs is not None:
            jobs.close()  # chunks being scored stop at their next item; a restart resumes them
        gateway.executor.shutdown(wait=True)  # requests in flight are finished, never abandoned
        if records is not None:
            records.close()  # writes what is buffered
        if close_client:
            client.close()

    app = FastAPI(
        title="Deepfake detector",
        version=_version(),
        summary="The seed system's REST/WebSocket API and a web console, on the Triton deepfake_detector ensemble.",
        lifespan=lifespan,
        docs_url=None,  # served below from installed assets, not a CDN
        redoc_url=None,
    )
    app.state.gateway = gateway
    # Outermost last: headers on everything; metrics; the key; then the body checks.
    upload_paths = ("/api/detect/image", "/api/detect/batch", "/api/video/detect", "/api/jobs")
    app.add_middleware(UploadAdmission, paths=upload_paths, max_uploads=limits.max_uploads,
                       idle_s=limits.body_idle_timeout_s, total_s=limits.body_timeout_s)
    app.add_middleware(BodyLimitMiddleware, limits=limits)
    if api_keys:
        app.add_middleware(ApiKeyMiddleware, keys=api_keys, rate=key_rate, burst=max(1.0, 2 * key_rate))
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(SecurityHeadersMiddleware)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    docs_assets = _swagger_ui_assets()
    if docs_assets is not None:
        app.mount("/docs/assets", StaticFiles(directory=docs_assets), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        if docs_assets is None:
            raise GatewayError(501, "docs_unavailable", "the API page needs swagger-ui-py (the web extra); /openapi.json works")
        return FileResponse(STATIC / "docs.html", headers={"Cache-Control": "no-cache"})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        """The framework's own refusals (404, 405 ...) in the documented shape."""
        code = HTTP_ERROR_CODES.get(error.status_code, f"http_{error.status_code}")
        return JSONResponse({"error": code, "detail": str(error.detail)}, status_code=error.status_code, headers=error.headers)
    if records is not None:  # issue 20: prediction records and history
        records.register_metrics(metrics.registry)
        app.include_router(records.router)
    if jobs is not None:  # issue 20: jobs for long work

        async def threshold() -> float:
            return (await gateway.settings()).threshold

        app.include_router(jobs.router(client, threshold))

    @app.exception_handler(GatewayError)
    async def gateway_error(_: Request, error: GatewayError) -> JSONResponse:
        return _error_response(error)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'request'}: {e['msg']}" for e in error.errors())
        return JSONResponse({"error": "invalid_request", "detail": problems}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected_error(_: Request, error: Exception) -> JSONResponse:
        log.error("unexpected error: %s", _describe(error))
        return JSONResponse({"error": "internal", "detail": "internal error (see the gateway's log)"}, status_code=500)

    # Service

    @app.get("/", summary="Service information (JSON); a browser gets the web page")
    async def root(request: Request) -> Any:
        if "text/html" in request.headers.get("accept", ""):
            return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})
        try:
            models = seed.seed_names(list((await gateway.settings()).weights))
            status = "running"
        except GatewayError:
            models, status = [], "degraded"
        return {"service": SERVICE, "version": _version(), "status": status, "models": models}

    @app.get("/health", summary="Readiness of Triton and the ensemble (503 when not ready)")
    async def health() -> JSONResponse:
        state = await gateway.call(client.health)
        settings = None
        if state.ready:
            try:
                settings = await gateway.settings()
            except GatewayError:
                pass
        ready = state.ready and settings is not None
        body = {
            "status": "healthy" if ready else "unhealthy",
            "models_loaded": seed.seed_names(list(settings.weights)) if ready else [],
            "total_models": len(settings.weights) if settings else 0,
            "device": DEVICE,
            # New.
            "triton_live": state.live,
            "triton_version": state.server_version,
            "untrained": bool(state.untrained_models),
            "api_key_required": bool(api_keys),  # the page asks for a key when true
            "untrained_models": list(state.untrained_models or ()),
            "threshold": settings.threshold if settings else None,
            "uncertain_band": settings.to_band_dict() if settings else None,
            "weights": dict(settings.weights) if settings else None,
            # When the page sends a video or a batch as a job instead (null: no jobs on this gateway).
            "jobs": {"video_bytes": limits.job_video_bytes, "batch_files": limits.max_batch_files} if jobs else None,
            "limits": {
                "max_image_bytes": limits.max_image_bytes,
                "max_batch_files": limits.max_batch_files,
                "max_video_bytes": limits.max_video_bytes,
                "max_video_frames": limits.max_video_frames,
                "max_webcam_fps": limits.max_ws_fps,
            },
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", summary="Prometheus metrics of the gateway's own requests")
    async def prometheus_metrics() -> Response:
        return Response(metrics.exposition(), media_type=metrics.content_type)

    # Images

    async def read_image(upload: UploadFile) -> tuple[bytes, tuple[int, int]]:
        if upload.size is not None and upload.size > limits.max_image_bytes:
            raise too_large(repr(upload.filename), upload.size, limits.max_image_bytes, "bytes")
        data = await upload.read()
        return data, check_image(data, limits, repr(upload.filename or "the image"))

    async def judge_image(upload: UploadFile, gradcam: bool, kind: str = "image", group: str | None = None) -> dict[str, Any]:
        data, size = await read_image(upload)
        settings = await gateway.settings()
        heatmap = None
        if gradcam:
            result, elapsed, heatmap = await gateway.explain(data)
        else:
            result, elapsed = await gateway.detect(data)
        result = await asyncio.get_running_loop().run_in_executor(gateway.executor, gateway.with_provenance, result, data)
        metrics.observe(result)
        if records is not None:
            records.image(result, kind=kind, data=data, filename=upload.filename, size=size, elapsed=elapsed,
                          identity=records.identity(client, settings), group_id=group)
        return seed.image_response(
            upload.filename or "", result, settings, processing_time=elapsed, device=DEVICE, image_size=size, gradcam=heatmap
        )

    @app.post("/api/detect/image", summary="Judge one image (multipart `file`)")
    async def detect_image(
        file: Annotated[UploadFile, File(description="JPEG, PNG, WebP or BMP")],
        generate_gradcam: Annotated[bool, Form(description="add the heatmap overlay (base64 PNG) in `gradcam`")] = False,
        generate_gradcam_query: Annotated[bool | None, Query(alias="generate_gradcam", include_in_schema=False)] = None,
    ) -> dict[str, Any]:
        return await judge_image(file, generate_gradcam or bool(generate_gradcam_query))

    def item_error(upload: UploadFile, error: GatewayError) -> dict[str, Any]:
        return {"filename": upload.filename or "", "status": error.status, **error.to_dict()}

    @app.post("/api/detect/batch", summary="Judge several images (multipart `files`); ?stream=true: NDJSON progress")
    async def detect_batch(
        files: Annotated[list[UploadFile], File(description=f"at most {limits.max_batch_files} images")],
        stream: Annotated[bool, Query(description="answer NDJSON: one line per image as it is judged, then the summary")] = False,
    ) -> Any:
        """Answers per item: a bad upload, a refused or a failed image is that item's error, never the batch's.

        The images go through the SDK's batch (DeepfakeClient.detect_many): bulk priority, its
        adaptive limit on requests in flight, and jittered retries of refusals within its budget.
        """
        if len(files) > limits.max_batch_files:
            raise GatewayError(413, "too_many_files", f"{len(files)} files, over the limit of {limits.max_batch_files} per batch")
        group = str(uuid.uuid4())  # groups the batch's recorded items
        settings = await gateway.settings()  # an unavailable server fails the batch before any upload is judged
        finished: asyncio.Queue[tuple[int, dict[str, Any]]] = asyncio.Queue()
        images: list[tuple[int, bytes, tuple[int, int]]] = []  # (position, data, size) of the uploads to judge
        for position, upload in enumerate(files):
            try:
                images.append((position, *await read_image(upload)))
            except GatewayError as error:
                finished.put_nowait((position, item_error(upload, error)))
        loop = asyncio.get_running_loop()
        started = time.perf_counter()

        def on_result(index: int, outcome: Any) -> None:  # on an SDK thread
            position, data, size = images[index]
            loop.call_soon_threadsafe(finished.put_nowait, (position, judged(files[position], outcome, size, data)))

        def judged(upload: UploadFile, outcome: Any, size: tuple[int, int], data: bytes) -> dict[str, Any]:
            if isinstance(outcome, DeepfakeError):
                return item_error(upload, from_sdk_error(outcome))
            outcome = gateway.with_provenance(outcome, data)  # on the SDK's thread, off the loop
            metrics.observe(outcome)
            # In a batch, an item's processing_time is from the batch's start to its answer.
            elapsed = time.perf_counter() - started
            if records is not None:
                records.image(outcome, kind="batch_item", data=data, filename=upload.filename, size=size, elapsed=elapsed,
                              identity=records.identity(client, settings), group_id=group)
            return seed.image_response(upload.filename or "", outcome, settings, device=DEVICE, image_size=size,
                                       processing_time=elapsed)

        batch = loop.run_in_executor(
            gateway.executor, functools.partial(client.detect_many, [data for _, data, _ in images], on_result=on_result)
        )

        async def results() -> AsyncIterator[tuple[int, dict[str, Any]]]:
            """(position, answer) of every file as it is judged, then the batch's end."""
            for _ in files:
                if finished.empty():
                    waiter = asyncio.ensure_future(finished.get())
                    await asyncio.wait([waiter, batch], return_when=asyncio.FIRST_COMPLETED)
                    if waiter.done():
                        yield waiter.result()
                        continue
                    waiter.cancel()
                    if finished.empty():  # the batch ended without an outcome for every image: raise why
                        await batch
                        raise RuntimeError("the SDK batch ended without an outcome for every image")
                yield finished.get_nowait()
            await batch

        if not stream:
            return seed.batch_response([r for _, r in sorted([item async for item in results()], key=lambda d: d[0])])

        async def lines() -> AsyncIterator[str]:
            done: list[tuple[int, dict[str, Any]]] = []
            async for position, result in results():
                done.append((position, result))
                yield _line({"type": "progress", "done": len(done), "total": len(files), "index": position, "result": result})
            yield _line({"type": "summary", **seed.batch_response([r for _, r in sorted(done, key=lambda d: d[0])])})

        return StreamingResponse(lines(), media_type=NDJSON)

    # Video

    @app.post("/api/video/detect", summary="Judge a video from sampled frames (multipart `file`, `max_frames`)")
    async def detect_video(
        file: Annotated[UploadFile, File(description="MP4/MOV, WebM/Matroska or AVI")],
        max_frames: Annotated[int, Form(description=f"frames sampled, 1 to {limits.max_video_frames}")] = limits.default_video_frames,
        max_frames_query: Annotated[int | None, Query(alias="max_frames", include_in_schema=False)] = None,
        stream: Annotated[bool, Query(description="answer NDJSON: one line per frame as it is judged, then the result")] = False,
    ) -> Any:
        frames_wanted = max_frames_query if max_frames_query is not None else max_frames
        if not 1 <= frames_wanted <= limits.max_video_frames:
            raise GatewayError(422, "invalid_request", f"max_frames must be from 1 to {limits.max_video_frames}, got {frames_wanted}")
        if file.size is not None and file.size > limits.max_video_bytes:
            raise too_large("the video", file.size, limits.max_video_bytes, "bytes")
        data = await file.read()
        if not data:
            raise GatewayError(422, "empty", "the video is empty")
        settings = await gateway.settings()
        path = _temporary_copy(data, Path(file.filename or "").suffix)
        video_sha256, video_bytes = (hashlib.sha256(data).hexdigest(), len(data)) if records is not None else ("", 0)
        del data
        try:
            try:
                info = await gateway.call(probe_video, path, limits.video_limits())
            except GatewayError as error:
                if error.status != 415:
                    raise
                raise GatewayError(415, error.code, f"{file.filename or 'the upload'!r} cannot be read: {error.message}") from error
            seconds = info.frame_count / info.fps if info.fps else None
            if seconds is not None and seconds > limits.max_video_seconds:
                raise too_large("the video", seconds, limits.max_video_seconds, "seconds")
        except BaseException:
            os.unlink(path)
            raise
        loop = asyncio.get_running_loop()
        frames: asyncio.Queue[FrameResult] = asyncio.Queue()
        started = time.perf_counter()
        future = loop.run_in_executor(
            gateway.executor,
            functools.partial(
                client.detect_video,
                path,
                num_frames=frames_wanted,
                threshold=settings.threshold,
                on_frame=lambda frame: (metrics.observe(frame.result), loop.call_soon_threadsafe(frames.put_nowait, frame)),
            ),
        )
        future.add_done_callback(lambda _: os.unlink(path))  # removed once OpenCV is done with it

        async def result() -> dict[str, Any]:
            try:
                video = await future
            except DeepfakeError as error:
                raise from_sdk_error(error) from error
            elapsed = time.perf_counter() - started
            if records is not None:
                records.video(video, data_sha256=video_sha256, size_bytes=video_bytes, filename=file.filename,
                              elapsed=elapsed, identity=records.identity(client, settings))
            return seed.video_response(file.filename or "", video, settings, processing_time=elapsed)

        if not stream:
            return await result()

        async def lines() -> AsyncIterator[str]:
            expected = min(frames_wanted, info.frame_count)
            yield _line({"type": "start", "total_frames": info.frame_count, "frames_to_process": expected, "fps": info.fps})
            done = 0
            while not (future.done() and frames.empty()):
                waiter = asyncio.ensure_future(frames.get())
                await asyncio.wait([waiter, future], return_when=asyncio.FIRST_COMPLETED)
                if not waiter.done():
                    waiter.cancel()
                    continue
                frame = waiter.result()
                done += 1
                entry = seed.frame_entry(frame.index, frame.timestamp_s, frame.result, settings)
                yield _line({"type": "progress", "done": done, "total": expected, "frame_result": entry})
            try:
                yield _line({"type": "result", **(await result())})
            except GatewayError as error:
                yield _line({"type": "error", "status": error.status, **error.to_dict()})

        return StreamingResponse(lines(), media_type=NDJSON)

    # Webcam

    @app.websocket("/api/video/webcam")
    async def webcam(socket: WebSocket) -> None:
        """Send a frame (base64 or a data URL, as text; or the encoded bytes); receive its verdict.

        Frames are read as they come, so a flood is answered (`rate_limited`) rather than
        queued; one frame per session is judged at a time. Every refusal is a JSON message
        and the socket stays open; it closes with 1008 (policy), 1009 (too big, by uvicorn)
        or 1013 (try again later).
        """
        if not origin_allowed(socket.scope, origins):
            metrics.webcam_frame("refused_origin")
            await socket.close(code=1008, reason="origin not allowed")  # before accept: HTTP 403
            return
        await socket.accept()
        if gateway.webcam_sessions >= limits.max_ws_sessions:
            error = GatewayError(503, "too_many_sessions", f"{limits.max_ws_sessions} webcam sessions are open; try again later")
            await socket.send_json({"status": 503, **error.to_dict()})
            await socket.close(code=1013)  # try again later
            metrics.webcam_frame("refused_session")
            return
        gateway.webcam_sessions += 1
        metrics.webcam_sessions.inc()
        session = WebcamSession(socket, limits, on_skipped=metrics.webcam_frame)
        session_id = str(uuid.uuid4())  # groups the session's recorded frames
        try:
            await session.run(lambda number, message: judge_frame(number, message, session_id))
        except WebSocketDisconnect:
            pass
        except Exception as error:  # never a traceback to the client: a close code
            log.error("webcam session failed: %s", _describe(error))
            await session.close(1011)
        finally:
            await session.finish()
            gateway.webcam_sessions -= 1
            metrics.webcam_sessions.dec()

    async def judge_frame(number: int, message: dict[str, Any], session_id: str | None = None) -> dict[str, Any]:
        try:
            answer = {"frame": number, **(await webcam_frame(message, session_id))}
            metrics.webcam_frame("judged")
        except GatewayError as error:
            answer = {"frame": number, "status": error.status, **error.to_dict()}
            metrics.webcam_frame("error")
            del error  # its traceback holds the frame
        return answer

    async def webcam_frame(message: dict[str, Any], session: str | None = None) -> dict[str, Any]:
        if message.get("bytes") is not None:
            data = message["bytes"]
        else:
            text = (message.get("text") or "").strip()
            if text.startswith("{"):  # also accepted: {"frame": "<base64>"} or {"image": ...}
                text = _json_frame(text)
            data = decode_base64_frame(text, limits)
        if len(data) > limits.max_ws_frame_bytes:
            raise too_large("the frame", len(data), limits.max_ws_frame_bytes, "bytes")
        size = check_image(data, limits, "the frame")
        settings = await gateway.settings()
        result, elapsed = await gateway.detect(data)
        metrics.observe(result)
        if records is not None:
            records.image(result, kind="webcam", data=data, filename=None, size=size, elapsed=elapsed,
                          identity=records.identity(client, settings), group_id=session)
        fields = seed.detection_fields(result, settings)
        return {
            "prediction": fields["prediction"],
            "confidence": fields["confidence"],
            "fake_probability": fields["fake_probability"],
            "processing_time": round(elapsed, 4),
            **{k: fields[k] for k in ("verdict", "flags", "num_faces", "faces", "untrained")},
            "threshold": settings.threshold,
        }

    return app


HTTP_ERROR_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                    405: "method_not_allowed", 406: "not_acceptable", 413: "too_large", 415: "unsupported_media_type"}


def _describe(error: BaseException) -> str:
    """One line for the log: the error's type and message, without a traceback to keep."""
    return f"{type(error).__name__}: {error}"


def _swagger_ui_assets() -> Path | None:
    """Swagger UI's files as installed by the swagger-ui-py package (no CDN), if installed."""
    try:
        import swagger_ui
    except ImportError:
        return None
    folder = Path(swagger_ui.__file__).parent / "static"
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None


def _json_frame(text: str) -> str:
    """The base64 frame of a JSON message {"frame": "..."} (or {"image": "..."})."""
    try:
        payload = json.loads(text)
    except ValueError:
        payload = None
    frame = payload.get("frame", payload.get("image")) if isinstance(payload, dict) else None
    if not isinstance(frame, str):
        raise GatewayError(422, "invalid_frame", 'a JSON message needs a base64 string in "frame"')
    return frame


class WebcamSession:
    """One webcam socket: reads every message as it arrives, judges one frame at a time, and
    answers frames over the rate (or sent while one is being judged) with `rate_limited`."""

    def __init__(self, socket: WebSocket, limits: Limits, on_skipped: Callable[[str], None]) -> None:
        self.on_skipped = on_skipped  # counts a skipped frame in the metrics
        self.socket = socket
        self.limits = limits
        self.bucket = TokenBucket(limits.max_ws_fps, burst=max(1.0, limits.max_ws_fps))
        self.send_lock = asyncio.Lock()  # the reader and the judging task both send
        self.judging: asyncio.Task | None = None

    async def send(self, data: dict[str, Any]) -> None:
        async with self.send_lock:
            await self.socket.send_json(data)

    async def run(self, judge: Callable[[int, dict[str, Any]], Any]) -> None:
        number = 0
        while True:
            message = await self.socket.receive()
            if message["type"] == "websocket.disconnect":
                return
            number += 1
            busy = self.judging is not None and not self.judging.done()
            if busy or not self.bucket.take():
                reason = "a frame is still being judged" if busy else f"over {self.limits.max_ws_fps:g} frames per second"
                await self.send({"frame": number, "status": 429, "error": "rate_limited", "detail": f"{reason}: frame skipped"})
                self.on_skipped("rate_limited")
                continue
            self.judging = asyncio.create_task(self._judge(judge, number, message))

    async def _judge(self, judge: Callable[[int, dict[str, Any]], Any], number: int, message: dict[str, Any]) -> None:
        answer = await judge(number, message)
        try:
            await self.send(answer)
        except (WebSocketDisconnect, RuntimeError):
            pass  # the client left while its frame was judged

    async def close(self, code: int) -> None:
        try:
            await self.socket.close(code=code)
        except RuntimeError:
            pass  # already closed

    async def finish(self) -> None:
        """The frame being judged is awaited (never abandoned) before the session ends."""
        if self.judging is not None:
            await asyncio.gather(self.judging, return_exceptions=True)


def _line(data: dict[str, Any]) -> str:
    return json.dumps(data) + "\n"


def _temporary_copy(data: bytes, suffix: str) -> str:
    """The video as a private temporary file (the SDK reads video files); the caller removes it."""
    suffix = suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,8}", suffix) else ""  # OpenCV may go by the extension
    descriptor, path = tempfile.mkstemp(prefix="deepfake-web-", suffix=suffix)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
    except BaseException:
        os.unlink(path)
        raise
    return path
