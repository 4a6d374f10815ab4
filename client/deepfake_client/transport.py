"""tritonclient's gRPC and HTTP clients behind one small interface.

A transport sends encoded image bytes to a model and returns its output arrays,
answers health and configuration questions, and turns every tritonclient or
network failure into an SDK error (errors.py). No transport ever makes the server
cancel an inference request (see GrpcTransport). TLS (tls.py) is on when a
transport is given a TlsConfig. The asyncio client runs these in worker threads.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import numpy as np
from tritonclient.utils import InferenceServerException

from .errors import (
    InvalidInputError,
    RequestTimeoutError,
    ServerUnavailableError,
    from_transport_exception,
    from_triton_exception,
)
from .tls import TlsConfig

Outputs = dict[str, np.ndarray]
IMAGE_INPUT = "IMAGE"
PROTOCOLS = ("grpc", "http")
# scheme -> (protocol, TLS)
CLOSE_DRAIN_S = 60.0  # the longest close() waits for abandoned gRPC requests to finish
SCHEMES = {"grpc": ("grpc", False), "grpcs": ("grpc", True), "http": ("http", False), "https": ("http", True)}


@contextmanager
def _translated_errors(
    url: str,
    model: str,
    timeout_s: float,
    unavailable: tuple[type[BaseException], ...] = (),
    tls: bool = False,
) -> Iterator[None]:
    try:
        yield
    except InferenceServerException as exc:
        raise from_triton_exception(exc, model, tls=tls) from exc
    except unavailable as exc:
        # aiohttp's TLS errors are connection errors too, some wrapping the ssl.SSLError: keep them TLS errors.
        ssl_error = next((e for e in (exc, exc.__cause__) if isinstance(e, ssl.SSLError)), None)
        if ssl_error is not None:
            raise from_transport_exception(ssl_error, url, timeout_s) from exc
        raise ServerUnavailableError(f"cannot reach the server at {url}: {exc}") from exc
    except Exception as exc:
        mapped = from_transport_exception(exc, url, timeout_s)
        if mapped is None:
            raise
        raise mapped from exc


def _image_input(module: Any, image: bytes) -> Any:
    tensor = module.InferInput(IMAGE_INPUT, [len(image)], "UINT8")
    tensor.set_data_from_numpy(np.frombuffer(image, dtype=np.uint8))
    return tensor


def _outputs(result: Any, names: list) -> Outputs:
    return {name: result.as_numpy(name) for name in names}


def _string_parameters(config: dict[str, Any]) -> dict[str, str]:
    return {key: value.get("string_value", "") for key, value in config.get("parameters", {}).items()}


def _grpc_tls_arguments(tls: TlsConfig | None) -> dict[str, Any]:
    """tritonclient.grpc's TLS arguments: it takes file paths and reads them (2.40 to 2.73, sync and aio alike)."""
    if tls is None:
        return {}
    paths = {"root_certificates": tls.ca, "private_key": tls.key, "certificate_chain": tls.cert}
    return {"ssl": True, **{name: str(path) for name, path in paths.items() if path is not None}}


class Transport:
    """The five calls the clients make, written once over a flavour's tritonclient client.

    A flavour says how a call gets a client (`_client`), how it sends an image
    (`_infer`), which options the health and config calls take (`_options`), and
    how a config response is unwrapped (`_config`).
    """

    _unavailable: tuple[type[BaseException], ...] = ()  # flavour exceptions that mean "cannot reach"

    def __init__(self, url: str, timeout_s: float, tls: TlsConfig | None = None) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.tls = tls

    # What a flavour provides

    def _client(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _infer(self, client: Any, model: str, image: bytes, priority: int,
               parameters: dict[str, Any] | None) -> Outputs:
        raise NotImplementedError

    _options: dict[str, Any] = {}  # every call but infer
    _json_options: dict[str, Any] = {}  # the metadata and config calls

    @staticmethod
    def _config(response: dict[str, Any]) -> dict[str, Any]:
        return response

    # The calls

    @contextmanager
    def _call(self, model: str) -> Iterator[Any]:
        with _translated_errors(self.url, model, self.timeout_s, self._unavailable, tls=self.tls is not None):
            with self._client() as client:
                yield client

    def infer(self, model: str, image: bytes, priority: int = 0, parameters: dict[str, Any] | None = None) -> Outputs:
        """The model's outputs for one encoded image. `priority`: Triton's request priority
        (1 is served first; 0, the model's default level; deepfake_contract.PRIORITY_*);
        `parameters`: request parameters (e.g. deepfake_contract.RUN_ALL_STEPS)."""
        with self._call(model) as client:
            return self._infer(client, model, image, priority, parameters)

    def server_live(self) -> bool:
        with self._call("") as client:
            return client.is_server_live(**self._options)

    def model_ready(self, model: str) -> bool:
        with self._call(model) as client:
            return client.is_model_ready(model, **self._options)

    def server_version(self) -> str:
        with self._call("") as client:
            return client.get_server_metadata(**self._options, **self._json_options)["version"]

    def model_config(self, model: str) -> dict[str, Any]:
        """The model's configuration as served, as JSON (e.g. an ensemble's steps)."""
        with self._call(model) as client:
            return self._config(client.get_model_config(model, **self._options, **self._json_options))

    def model_parameters(self, model: str) -> dict[str, str]:
        return _string_parameters(self.model_config(model))

    def close(self) -> None:
        raise NotImplementedError


class GrpcTransport(Transport):
    """One channel for all threads (tritonclient.grpc is thread-safe).

    Inference requests carry NO gRPC deadline: an expired deadline cancels the
    request on the server, and Triton 2.51 (NGC 24.10) can crash when a request is
    cancelled while queued or running (triton-inference-server/server#7368). The
    timeout is kept here instead: the caller stops waiting and gets
    RequestTimeoutError, and the request finishes on the server, its answer
    dropped. Closing the transport waits (up to `drain_s`) for such abandoned
    requests, because closing the channel under them would cancel them too. The
    health and config calls keep their deadline: they never reach a model.
    """

    def __init__(
        self, url: str, timeout_s: float, tls: TlsConfig | None = None, drain_s: float = CLOSE_DRAIN_S
    ) -> None:
        import tritonclient.grpc as grpcclient

        super().__init__(url, timeout_s, tls)
        self._module = grpcclient
        self._options = {"client_timeout": timeout_s}
        self._json_options = {"as_json": True}
        self._grpc = grpcclient.InferenceServerClient(url, **_grpc_tls_arguments(tls))
        self.drain_s = drain_s
        self._in_flight = 0  # inference requests sent and not yet answered, abandoned ones included
        self._idle = threading.Condition()

    @contextmanager
    def _client(self) -> Iterator[Any]:
        yield self._grpc

    @staticmethod
    def _config(response: dict[str, Any]) -> dict[str, Any]:
        return response["config"]

    def _infer(self, client: Any, model: str, image: bytes, priority: int,
               parameters: dict[str, Any] | None) -> Outputs:
        answered = threading.Event()
        answer: list = []

        def on_answer(result: Any, error: Any) -> None:
            answer.append((result, error))
            answered.set()
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

        with self._idle:
            self._in_flight += 1
        try:
            # No client_timeout: see above.
            client.async_infer(model, [_image_input(self._module, image)], on_answer, priority=priority,
                               parameters=parameters)
        except BaseException:
            on_answer(None, None)
            raise
        if not answered.wait(self.timeout_s):
            raise RequestTimeoutError(
                f"no answer from {self.url} within {self.timeout_s:g} s (the request was not cancelled: "
                "it finishes on the server and its answer is dropped)"
            )
        result, error = answer.pop()
        if error is not None:
            try:
                raise error
            finally:
                # A raised error's traceback holds this frame: if the frame still held the
                # error, the two would form a cycle that keeps `image` (the whole upload)
                # until the cyclic GC happens to run (issue 18: 1 GB on refused uploads).
                del error
        return _outputs(result, [o.name for o in result.get_response().outputs])

    def close(self) -> None:
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight <= 0, timeout=self.drain_s)
        self._grpc.close()


class HttpTransport(Transport):
    """tritonclient's HTTP client is not thread-safe, and its gevent sockets belong to the
    thread that made them (another thread gets "Cannot switch to a different thread"): each
    call borrows an idle client its own thread made (or makes one) and gives it back, and
    the clients of threads that have ended are closed when a new one is made.

    The timeout is the client's network timeout: on expiry it drops the connection.
    Triton's HTTP front end does not cancel a request whose connection is gone (only
    gRPC propagates cancellation), so the request finishes on the server."""

    def __init__(self, url: str, timeout_s: float, tls: TlsConfig | None = None) -> None:
        import tritonclient.http as httpclient
        from geventhttpclient.response import HTTPConnectionClosed

        super().__init__(url, timeout_s, tls)
        self._module = httpclient
        # The server hung up without answering (e.g. a TLS port reached in plain text).
        self._unavailable = (HTTPConnectionClosed,)
        self._tls_arguments: dict[str, Any] = {}
        if tls is not None:
            # geventhttpclient builds a verifying context (hostname checked) from these; no
            # ca_certs keeps its default roots. `insecure` (no hostname check) is never set.
            files = {"ca_certs": tls.ca, "certfile": tls.cert, "keyfile": tls.key}
            options = {name: str(path) for name, path in files.items() if path is not None}
            self._tls_arguments = {"ssl": True, "ssl_options": options}
        self._idle: dict[threading.Thread, list] = {}  # the idle clients each thread made
        self._busy: list = []  # clients lent out now, for close()
        self._lock = threading.Lock()

    def _new_client(self) -> Any:
        with self._lock:
            ended = [thread for thread in self._idle if not thread.is_alive()]
            orphans = [client for thread in ended for client in self._idle.pop(thread)]
        for client in orphans:
            _close_quietly(client)
        return self._module.InferenceServerClient(
            self.url, connection_timeout=self.timeout_s, network_timeout=self.timeout_s, **self._tls_arguments
        )

    @contextmanager
    def _client(self) -> Iterator[Any]:
        thread = threading.current_thread()
        with self._lock:
            idle = self._idle.get(thread)
            client = idle.pop() if idle else None
        client = client or self._new_client()
        with self._lock:
            self._busy.append(client)
        try:
            yield client
        finally:
            with self._lock:
                self._busy.remove(client)
                self._idle.setdefault(thread, []).append(client)

    def _infer(self, client: Any, model: str, image: bytes, priority: int,
               parameters: dict[str, Any] | None) -> Outputs:
        result = client.infer(model, [_image_input(self._module, image)], priority=priority, parameters=parameters)
        return _outputs(result, [o["name"] for o in result.get_response()["outputs"]])

    def close(self) -> None:
        with self._lock:
            clients = [client for idle in self._idle.values() for client in idle] + self._busy
            self._idle, self._busy = {}, []
        for client in clients:
            _close_quietly(client)


def _close_quietly(client: Any) -> None:
    """Close a client, possibly from another thread than its own: gevent may refuse; its sockets
    are then freed with the object."""
    try:
        client.close()
    except Exception:  # noqa: BLE001 - nothing to report: the client is being discarded
        pass


TRANSPORTS: dict[str, type[Transport]] = {"grpc": GrpcTransport, "http": HttpTransport}


def parse_url(url: str, protocol: str | None) -> tuple[str, str, bool | None]:
    """(host:port, protocol, TLS) from a URL that may carry a grpc://, grpcs://, http:// or https:// scheme.

    TLS is None without a scheme: the URL does not say.
    """
    scheme, sep, rest = url.partition("://")
    if sep:
        if scheme not in SCHEMES:
            raise InvalidInputError(
                f"unsupported URL scheme {scheme!r} in {url!r}: use grpc://, grpcs://, http:// or https://"
            )
        scheme_protocol, tls = SCHEMES[scheme]
        if protocol is not None and protocol != scheme_protocol:
            raise InvalidInputError(f"URL {url!r} contradicts protocol={protocol!r}")
        return rest.rstrip("/"), scheme_protocol, tls
    protocol = protocol or "grpc"
    if protocol not in PROTOCOLS:
        raise InvalidInputError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    return url.rstrip("/"), protocol, None


def split_url(url: str, protocol: str | None) -> tuple[str, str]:
    """(host:port, protocol) for callers without TLS support: a TLS scheme is refused, never silently dropped."""
    address, protocol, tls = parse_url(url, protocol)
    if tls:
        raise InvalidInputError(f"{url!r} asks for TLS, which this tool does not support: use grpc:// or http://")
    return address, protocol
