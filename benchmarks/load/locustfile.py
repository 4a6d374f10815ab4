"""Locust users for the `deepfake_detector` ensemble: one over gRPC, one over HTTP.

    locust -f benchmarks/load/locustfile.py --host grpc://localhost:8001 GrpcTritonUser \
        --mix face=6,no_face=2,two_faces=2,video=1 --video-frames 32

(`python -m benchmarks.load.loadtest` runs this headless and checks latency targets.)
Each user is a closed loop through the SDK (`deepfake_client`): it picks a
request kind by the mix weights, sends it, checks the answer and reports it under
its own name (image/face, image/no_face, image/two_faces, video/<n>_frames), so
the statistics separate images, videos and kinds. A video is reported once, from
its first frame sent to its last answer. Images are sent as a person sends them:
at interactive priority, without retries. Videos are bulk work, as the SDK sends
them: bulk priority, and a refused frame is retried with jittered backoff within
the SDK's budget (FANOUT_OVERLOADED_ATTEMPTS tries per frame), so a video finishes
slower rather than fails. Refusals are counted apart: each refusal a video absorbed
by retrying is reported under rejected/<name>/retried (its time: how long the
refusal took); a request that still failed as overloaded (OverloadedError: queue
full or queue timeout) under rejected/<name>. So the other rows' latencies are
those of accepted requests.
"""

from __future__ import annotations

# gRPC's C core blocks gevent's event loop unless patched, before any channel exists.
import grpc.experimental.gevent as grpc_gevent

grpc_gevent.init_gevent()

import atexit  # noqa: E402
import csv  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import locust.stats  # noqa: E402
from locust import User, constant, events, task  # noqa: E402
from locust.runners import WorkerRunner  # noqa: E402

from benchmarks.load.locust_results import (  # noqa: E402
    REJECTED_PREFIX,
    RETRIED_SUFFIX,
    reported_name,
    three_significant_digits,
)
from benchmarks.load.workload import (  # noqa: E402
    DEFAULT_VIDEO_CONCURRENCY,
    DEFAULT_VIDEO_FRAMES,
    RefusalReporter,
    Workload,
    parse_mix,
)
from deepfake_client import NO_RETRY, DeepfakeClient, OverloadedError, RetryPolicy, UntrainedModelsWarning  # noqa: E402
from deepfake_client.client import FANOUT_OVERLOADED_ATTEMPTS, resolve_tls, resolve_url  # noqa: E402
from deepfake_client.priority import BULK  # noqa: E402
from deepfake_client.transport import TRANSPORTS  # noqa: E402

DEFAULT_MIX = "face=6,no_face=2,two_faces=2,video=1"
# Bulk users: refusals retried with jittered backoff within the SDK's fan-out budget; nothing else retried.
BULK_RETRY = RetryPolicy(max_attempts=1, overloaded_attempts=FANOUT_OVERLOADED_ATTEMPTS)
# Demo weights are fine for timing; the warning would only repeat once per user.
warnings.simplefilter("ignore", UntrainedModelsWarning)
# Locust keeps ~2 significant digits (2,345 ms -> 2,300); seconds-long CPU latencies need 3.
locust.stats.bucket_response_time = three_significant_digits

_workload: Workload | None = None


@events.init_command_line_parser.add_listener
def _add_arguments(parser) -> None:
    parser.add_argument("--mix", default=DEFAULT_MIX, include_in_web_ui=True,
                       help=f"request kinds and weights: face, no_face, two_faces, video (default {DEFAULT_MIX})")
    parser.add_argument("--video-frames", type=int, default=DEFAULT_VIDEO_FRAMES, include_in_web_ui=True,
                       help="frames sampled per video, as DeepfakeClient.detect_video(num_frames=...)")
    parser.add_argument("--video-concurrency", type=int, default=DEFAULT_VIDEO_CONCURRENCY, include_in_web_ui=True,
                       help="frames of one video in flight at once (the SDK's concurrency)")
    parser.add_argument("--request-timeout", type=float, default=120.0, include_in_web_ui=True,
                       help="seconds before a request counts as failed")


@events.init.add_listener
def _prepare(environment, runner, **_kwargs) -> None:
    # Once per process: the media are encoded before the first user starts.
    global _workload
    options = environment.parsed_options
    _workload = Workload(parse_mix(options.mix), options.video_frames)
    if options.csv_prefix and not isinstance(runner, WorkerRunner):
        atexit.register(_write_final_csv, environment, options.csv_prefix)


def _write_final_csv(environment, prefix: str) -> None:
    """Locust's CSV writer refreshes its files once a second and does not write again when it
    closes them, so requests answered in the run's last second (those --stop-timeout lets
    finish) would be missing: once Locust has exited, write the final figures."""
    writer = locust.stats.StatsCSV(environment, locust.stats.PERCENTILES_TO_REPORT)
    for suffix, write in (("_stats.csv", writer.requests_csv), ("_failures.csv", writer.failures_csv),
                          ("_exceptions.csv", writer.exceptions_csv)):
        with open(f"{prefix}{suffix}", "w", newline="") as handle:
            write(csv.writer(handle))


class TritonUser(User):
    abstract = True
    protocol: str
    wait_time = constant(0)  # closed loop: the next request as soon as the last is answered

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.client = DeepfakeClient(self.host, protocol=self.protocol, timeout_s=options.request_timeout,
                                     retry=NO_RETRY, concurrency=options.video_concurrency)
        # The bulk client: its own transport, wrapped so that every refusal it retries is reported.
        address, protocol, scheme_tls = resolve_url(self.host, self.protocol)
        transport = TRANSPORTS[protocol](address, options.request_timeout, tls=resolve_tls(None, scheme_tls, self.host))
        self.bulk = DeepfakeClient(self.host, protocol=self.protocol, timeout_s=options.request_timeout,
                                   retry=BULK_RETRY, concurrency=options.video_concurrency, priority=BULK,
                                   transport=RefusalReporter(transport, self._report_refusal))
        self.rng = random.Random()
        self._sending = ""  # the name of the bulk request being sent, for its refusals

    def on_stop(self) -> None:
        self.client.close()
        self.bulk.close()

    def _report_refusal(self, seconds: float) -> None:
        self._fire(REJECTED_PREFIX + self._sending + RETRIED_SUFFIX, seconds, 0, OverloadedError("refused, retried"))

    def _fire(self, name: str, seconds: float, size: int, exception: BaseException | None) -> None:
        self.environment.events.request.fire(request_type=self.protocol, name=name, response_time=seconds * 1e3,
                                             response_length=size, response=None, context={}, exception=exception)

    @task
    def send_one(self) -> None:
        request = _workload.choose(self.rng)
        self._sending = request.name
        start = time.perf_counter()
        exception = None
        try:
            request.send(self.bulk if request.is_video else self.client, self.environment.parsed_options.video_concurrency)
        except Exception as exc:  # noqa: BLE001 - reported to Locust as this request's failure
            exception = exc
        self._fire(reported_name(request.name, exception), time.perf_counter() - start, request.size_bytes, exception)


class GrpcTritonUser(TritonUser):
    protocol = "grpc"


class HttpTritonUser(TritonUser):
    protocol = "http"
