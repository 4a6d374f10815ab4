"""The synchronous client: one call per image, batch, video or live stream.

Usage:

    from deepfake_client import DeepfakeClient
    with DeepfakeClient("localhost:8001") as client:
        print(client.detect("photo.jpg").label, client.detect_video("clip.mp4").label)
"""

from __future__ import annotations

import os
import re
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

import deepfake_contract as contract
from deepfake_contract.parameters import decode

from .aggregation import Aggregation, video_result
from .concurrency import AdaptiveLimit, bounded_map
from .ensemble import COMBINER_MODEL, EnsembleSettings
from .errors import (
    DeepfakeError,
    InvalidInputError,
    ModelNotReadyError,
    OverloadedError,
    ServerUnavailableError,
    in_context,
)
from .explain import EXPLAINER_MODEL, ExplanationResult, parse_explanation
from .images import ImageInput, encode_image, encode_rgb_array
from .priority import BULK, INTERACTIVE, Priority, choose, parse_priority
from .provenance import ProvenanceReader, reader_for
from .results import DetectionResult, FrameResult, VideoResult, parse_outputs
from .retry import DEFAULT_RETRY, RetryPolicy, call_with_retry
from .scope import with_flags
from .stream import LiveStream
from .tls import TlsConfig
from .transport import TRANSPORTS, Transport, parse_url
from .video import DEFAULT_NUM_FRAMES, StreamSource, VideoFrame, probe_video, read_frames, sample_indices, stream_frames

DEFAULT_MODEL = "deepfake_detector"
DEFAULT_URLS = {"grpc": "localhost:8001", "http": "localhost:8000"}
URL_ENVIRONMENT_VARIABLE = "DEEPFAKE_URL"
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_CONCURRENCY = 8  # requests in flight for batches and videos
DEFAULT_TOP_K = 5  # frames averaged by the "topk" aggregation
DEFAULT_MAX_IN_FLIGHT = 4  # frames scored at once in a live stream
DEFAULT_WINDOW = 16  # frames in a live stream's rolling verdict
# Triton's words when a model's python stub process has died: "Stub process 'xception_0_0' is not healthy".
DEAD_STUB = re.compile(r"Stub process '(?P<model>\w+?)_\d+_\d+' is not healthy")
# Tries per item when the server refuses the SDK's own batch/video fan-out as overloaded
# (jittered backoff up to RetryPolicy.max_backoff_s between them: about a minute at most in all).
# A retry lands only when the entry has a free slot; under a flood at 3x capacity that is about
# one try in three (measured on the cpu flavour), so 8 tries lost ~4% of the images of a batch;
# 30 lose about none, and bulk work rides out a flood of a minute.
FANOUT_OVERLOADED_ATTEMPTS = 30

BatchOutcome = DetectionResult | DeepfakeError


class UntrainedModelsWarning(UserWarning):
    """The server serves untrained demo weights: its verdicts are meaningless."""


@dataclass(frozen=True)
class Health:
    url: str
    model: str
    live: bool
    model_ready: bool
    server_version: str | None = None
    untrained_models: tuple[str, ...] | None = None  # None when the model is not ready
    models: dict[str, bool] | None = None  # readiness of each model the ensemble runs; None when not live
    inference_error: str | None = None  # why the probe inference failed; None when it succeeded or did not run

    @property
    def not_ready_models(self) -> tuple[str, ...]:
        """The ensemble's models that cannot serve (e.g. a dead or wedged instance)."""
        return tuple(name for name, ready in (self.models or {}).items() if not ready)

    @property
    def ready(self) -> bool:
        return self.live and self.model_ready and not self.not_ready_models and self.inference_error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "model": self.model,
            "live": self.live,
            "model_ready": self.model_ready,
            "ready": self.ready,
            "server_version": self.server_version,
            "untrained_models": None if self.untrained_models is None else list(self.untrained_models),
            "models": self.models,
            "not_ready_models": list(self.not_ready_models),
            "inference_error": self.inference_error,
        }


def resolve_url(url: str | None, protocol: str | None) -> tuple[str, str, bool | None]:
    """(host:port, protocol, TLS per the scheme or None): the argument, else $DEEPFAKE_URL, else the default port."""
    url = url or os.environ.get(URL_ENVIRONMENT_VARIABLE)
    if url:
        return parse_url(url, protocol)
    protocol = protocol or "grpc"
    return parse_url(DEFAULT_URLS.get(protocol, ""), protocol)


def resolve_tls(tls: TlsConfig | bool | None, scheme_tls: bool | None, url: str) -> TlsConfig | None:
    """The TLS to use, its files checked: the argument, else the URL's scheme (grpcs://, https://: default roots)."""
    if isinstance(tls, bool) or tls is None:
        if scheme_tls is not None and tls is not None and tls != scheme_tls:
            raise InvalidInputError(f"tls={tls} contradicts the URL {url}")
        tls = TlsConfig() if (tls or scheme_tls) else None
    elif not isinstance(tls, TlsConfig):
        raise InvalidInputError(f"tls must be a TlsConfig, True or False, got {type(tls).__name__}")
    elif scheme_tls is False:
        raise InvalidInputError(f"TLS options given for the plain-text URL {url}: use grpcs:// or https://")
    return None if tls is None else tls.check()


class DeepfakeClient:
    """Synchronous client of the `deepfake_detector` ensemble.

    url: "host:port", optionally "grpc://..." or "http://..." (default: $DEEPFAKE_URL,
    else localhost:8001 for gRPC, localhost:8000 for HTTP); "grpcs://..." or
    "https://..." use TLS with the default roots. tls: a TlsConfig(ca=, cert=, key=)
    for a private CA or mutual TLS (True: the default roots); its files are checked
    here, before any connection. timeout_s bounds the wait for each request; a
    request that times out is abandoned, never cancelled on the server (see
    transport.py). Requests that cannot connect or that the server answers
    UNAVAILABLE are retried per `retry`; an overloaded server's refusal
    (OverloadedError) only if `retry.overloaded_attempts` > 1; nothing else is (a
    failed TLS handshake raises TlsError). `concurrency` bounds the requests in
    flight for batches and videos. `priority` (None: by call kind, see
    priority.py; "interactive", "bulk" or a level) is the request priority of
    every call that does not give its own. `provenance`: the ProvenanceReader that reads each
    image's C2PA Content Credentials into `DetectionResult.provenance` (True: one trusting no
    signer; None: not read); it never changes the verdict. Thread-safe.
    """

    transport_classes: dict[str, type[Transport]] = TRANSPORTS  # protocol -> transport

    def __init__(
        self,
        url: str | None = None,
        *,
        protocol: str | None = None,
        model: str = DEFAULT_MODEL,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy = DEFAULT_RETRY,
        concurrency: int = DEFAULT_CONCURRENCY,
        tls: TlsConfig | bool | None = None,
        priority: Priority | None = None,
        transport: Any | None = None,  # advanced: a custom Transport (see transport.py), e.g. in tests
        provenance: ProvenanceReader | bool | None = True,
    ) -> None:
        self.provenance = reader_for(provenance)
        self.priority = parse_priority(priority)  # None: each call kind's own
        self.url, self.protocol, scheme_tls = resolve_url(url, protocol)
        given_scheme = "" if scheme_tls is None else self.protocol + ("s" if scheme_tls else "") + "://"
        self.tls = resolve_tls(tls, scheme_tls, given_scheme + self.url)
        self.model = model
        self.timeout_s = timeout_s
        self.retry = retry
        self.concurrency = concurrency
        self._transport = transport or self.transport_classes[self.protocol](self.url, timeout_s, tls=self.tls)
        self._warned_untrained = False

    @property
    def scheme(self) -> str:
        return self.protocol + ("s" if self.tls is not None else "")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.scheme}://{self.url}, model={self.model!r})"

    def _checked(self, result: DetectionResult) -> DetectionResult:
        """Warn once per client when the server serves untrained demo weights."""
        if result.untrained and not self._warned_untrained:
            self._warned_untrained = True
            warnings.warn(untrained_message(result.untrained_models), UntrainedModelsWarning, stacklevel=4)
        return result

    def _not_ready_error(self, health: Health, timeout_s: float) -> DeepfakeError:
        if not health.live:
            return ServerUnavailableError(f"server at {self.url} not live after {timeout_s:g} s")
        if health.not_ready_models:
            return ModelNotReadyError(
                f"model {self.model!r} not ready after {timeout_s:g} s: {', '.join(health.not_ready_models)} not ready"
            )
        return ModelNotReadyError(f"model {self.model!r} not ready after {timeout_s:g} s")

    def __enter__(self) -> DeepfakeClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes the connections, after the requests abandoned on a timeout have finished (gRPC)."""
        self._transport.close()

    # Images

    def detect(self, image: ImageInput, *, priority: Priority | None = None) -> DetectionResult:
        """The verdict on one image: a path, encoded bytes, an HxWx3 RGB uint8 array or a PIL image.
        Sent at interactive priority unless `priority` (or the client's) says otherwise."""
        data = encode_image(image)
        return self._with_provenance(self._detect_bytes(data, choose(priority, self.priority, INTERACTIVE)), data)

    def _with_provenance(self, result: DetectionResult, data: bytes) -> DetectionResult:
        return result if self.provenance is None else replace(result, provenance=self.provenance.read(data))

    def _detect_bytes(self, data: bytes, priority: int, retry: RetryPolicy | None = None,
                      limit: AdaptiveLimit | None = None) -> DetectionResult:
        attempt = lambda: self._transport.infer(self.model, data, priority=priority)  # noqa: E731
        if limit is not None:  # each attempt takes a slot; the backoff between attempts does not
            attempt = lambda infer=attempt: limit.call(infer)  # noqa: E731
        return self._checked(with_flags(parse_outputs(call_with_retry(attempt, retry or self.retry)), data))

    def _fanout_retry(self) -> RetryPolicy:
        """The retry policy of the SDK's own fan-out (batches, videos): that load is the SDK's
        doing, so a queue refusal is answered by backing off with jitter and trying again,
        within FANOUT_OVERLOADED_ATTEMPTS; a single detect() is not retried on overload.
        A policy without retries (NO_RETRY, e.g. in load tests) stays without."""
        if self.retry.max_attempts == 1 or self.retry.overloaded_attempts >= FANOUT_OVERLOADED_ATTEMPTS:
            return self.retry
        return replace(self.retry, overloaded_attempts=FANOUT_OVERLOADED_ATTEMPTS)

    def explain(self, image: ImageInput, *, priority: Priority | None = None) -> ExplanationResult:
        """The verdict on one image plus Grad-CAM heatmaps of its first faces, from the
        `deepfake_explainer` ensemble (seconds per face on a CPU server: mind timeout_s).
        Interactive priority unless `priority` (or the client's) says otherwise."""
        data = encode_image(image)
        level = choose(priority, self.priority, INTERACTIVE)
        outputs = call_with_retry(lambda: self._transport.infer(EXPLAINER_MODEL, data, priority=level), self.retry)
        result = parse_explanation(outputs)
        result = replace(result, detection=with_flags(result.detection, data))
        self._checked(result.detection)
        return result

    def detect_many(
        self,
        images: Iterable[ImageInput],
        *,
        concurrency: int | None = None,
        on_result: Callable[[int, BatchOutcome], None] | None = None,
        priority: Priority | None = None,
    ) -> list[BatchOutcome]:
        """Verdicts in input order; an item that fails holds its DeepfakeError instead.

        `on_result(position, outcome)` is called as items complete (e.g. for progress).
        Sent at bulk priority unless `priority` (or the client's) says otherwise.
        """
        outcomes: dict[int, BatchOutcome] = {}
        level = choose(priority, self.priority, BULK)
        retry, limit = self._fanout_retry(), AdaptiveLimit(concurrency or self.concurrency)
        def detect(image: ImageInput) -> DetectionResult:
            data = encode_image(image)
            return self._with_provenance(self._detect_bytes(data, level, retry, limit), data)

        for position, outcome in bounded_map(detect, images, limit.maximum):
            outcomes[position] = outcome
            if on_result is not None:
                on_result(position, outcome)
        return [outcomes[i] for i in range(len(outcomes))]

    # Videos

    def detect_video(
        self,
        path: str | Path,
        *,
        num_frames: int = DEFAULT_NUM_FRAMES,
        aggregation: Aggregation | str = Aggregation.MEAN,
        top_k: int = DEFAULT_TOP_K,
        threshold: float | None = None,
        concurrency: int | None = None,
        on_frame: Callable[[FrameResult], None] | None = None,
        priority: Priority | None = None,
    ) -> VideoResult:
        """The verdict on a video from `num_frames` frames sampled uniformly, scored concurrently.

        A frame's score is the server's image score (its most-fake face); frames
        without a face are reported but not aggregated. `threshold` defaults to
        the server's own (weighted_average's `threshold`). Any frame that fails
        fails the video with that frame's error, its message naming the frame; a
        frame the server refuses as overloaded fails it only once the fan-out's
        retries are spent (a verdict over fewer frames than asked would be a
        different measurement, silently). Bulk priority unless `priority` (or the
        client's) says otherwise.
        """
        aggregation = Aggregation(aggregation)
        level = choose(priority, self.priority, BULK)
        info = probe_video(path)
        indices = sample_indices(info.frame_count, num_frames)
        if threshold is None:
            threshold = self.ensemble_settings().threshold

        retry, limit = self._fanout_retry(), AdaptiveLimit(concurrency or self.concurrency)

        def score(frame: VideoFrame) -> FrameResult:
            try:
                result = self._detect_bytes(encode_rgb_array(frame.rgb), level, retry, limit)
            except OverloadedError as error:
                tries = retry.overloaded_attempts
                raise in_context(error, f"frame {frame.index} of {info.path}, still refused after {tries} tries") from error
            except DeepfakeError as error:
                raise in_context(error, f"frame {frame.index} of {info.path}") from error
            return FrameResult(index=frame.index, timestamp_s=frame.timestamp_s, result=result)

        frames: list[FrameResult] = []
        for _, outcome in bounded_map(score, read_frames(info, indices), limit.maximum):
            if isinstance(outcome, DeepfakeError):
                raise outcome
            frames.append(outcome)
            if on_frame is not None:
                on_frame(outcome)
        return video_result(
            frames, frame_count=info.frame_count, fps=info.fps, threshold=threshold, strategy=aggregation, top_k=top_k
        )

    def stream(
        self,
        source: StreamSource,
        *,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        window: int = DEFAULT_WINDOW,
        aggregation: Aggregation | str = Aggregation.MEAN,
        top_k: int = DEFAULT_TOP_K,
        threshold: float | None = None,
        max_frames: int | None = None,
        max_seconds: float | None = None,
        realtime: bool | None = None,
        priority: Priority | None = None,
    ) -> LiveStream:
        """Live scoring of a webcam (index), an RTSP/HTTP URL or a video file; iterate the result.

        At most `max_in_flight` frames are scored at once; others are dropped and
        counted. Each update carries the verdict over the last `window` scored
        frames. Files are replayed at their frame rate unless realtime=False.
        Interactive priority unless `priority` (or the client's) says otherwise.
        """
        level = choose(priority, self.priority, INTERACTIVE)
        if threshold is None:
            threshold = self.ensemble_settings().threshold
        return LiveStream(
            stream_frames(source, realtime=realtime),
            lambda frame: self._detect_bytes(encode_rgb_array(frame.rgb), level),
            threshold=threshold,
            max_in_flight=max_in_flight,
            window=window,
            aggregation=aggregation,
            top_k=top_k,
            max_frames=max_frames,
            max_seconds=max_seconds,
        )

    # Server state

    def ensemble_settings(self) -> EnsembleSettings:
        """The served weights, threshold and face pooling (weighted_average's configuration)."""
        parameters = call_with_retry(lambda: self._transport.model_parameters(COMBINER_MODEL), self.retry)
        return EnsembleSettings.from_parameters(parameters)

    def health(self) -> Health:
        """Liveness, and the readiness of the ensemble and of every model it runs.

        An unreachable server is reported as not live; `not_ready_models` names the
        ensemble's models that cannot serve.
        """
        try:
            live = self._transport.server_live()
        except ServerUnavailableError:
            return Health(url=self.url, model=self.model, live=False, model_ready=False)
        if not live:
            return Health(url=self.url, model=self.model, live=False, model_ready=False)
        model_ready = self._transport.model_ready(self.model)
        models = {name: self._transport.model_ready(name) for name in self._member_models()}
        combiner_ready = models.get(COMBINER_MODEL, True)
        untrained = self.ensemble_settings().untrained_models if model_ready and combiner_ready else None
        inference_error = self._probe_inference() if model_ready and all(models.values()) else None
        dead = DEAD_STUB.search(inference_error or "")
        if dead and dead["model"] in models:
            models[dead["model"]] = False
        return Health(
            url=self.url,
            model=self.model,
            live=live,
            model_ready=model_ready,
            server_version=self._transport.server_version(),
            untrained_models=untrained,
            models=models,
            inference_error=inference_error,
        )

    def _probe_inference(self) -> str | None:
        """One small face-less image through the pipeline, every step called all the same
        (contract.RUN_ALL_STEPS): Triton 2.51 keeps a model "ready" when one of its python
        stubs has died, but every request it gets then fails."""
        try:
            probe = encode_rgb_array(np.full((8, 8, 3), 128, np.uint8))  # no face: cheap
            # Interactive: a health check must not wait behind bulk work to learn the server is fine.
            self._transport.infer(self.model, probe, priority=INTERACTIVE, parameters={contract.RUN_ALL_STEPS: True})
        except OverloadedError:
            return None  # it answered: busy, not broken
        except DeepfakeError as error:
            return error.message
        return None

    def _member_models(self) -> tuple[str, ...]:
        """The models the ensemble runs: its steps as served, else (its configuration
        unavailable) the detector, the classifiers the combiner names, and the combiner."""
        try:
            steps = self._transport.model_config(self.model).get("ensemble_scheduling", {}).get("step", [])
            names = [step["model_name"] for step in steps]
        except DeepfakeError:
            names = []
        if names:
            return tuple(dict.fromkeys(names))
        try:
            classifiers = decode(self._transport.model_parameters(COMBINER_MODEL), "model_names", default=[], kind=list)
        except (DeepfakeError, ValueError):
            classifiers = []
        return (contract.FACE_DETECTOR_NAME, *map(str, classifiers), contract.COMBINER_NAME)

    def wait_until_ready(self, timeout_s: float = 120.0, poll_s: float = 0.5) -> Health:
        """Poll until the model is ready; raises ServerUnavailableError/ModelNotReadyError after timeout_s."""
        deadline = time.monotonic() + timeout_s
        while True:
            health = self.health()
            if health.ready:
                return health
            if time.monotonic() >= deadline:
                raise self._not_ready_error(health, timeout_s)
            time.sleep(poll_s)


def untrained_message(models: Iterable[str]) -> str:
    return (
        f"the server serves UNTRAINED demo weights for {', '.join(models)}: "
        "its verdicts are meaningless until the published checkpoints are exported"
    )
