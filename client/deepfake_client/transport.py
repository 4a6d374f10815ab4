"""The four tritonclient flavours behind one small interface.

A transport sends encoded image bytes to a model and returns its output arrays,
answers health questions, and turns every tritonclient or network failure into
an SDK error (errors.py). Timeouts differ by flavour: gRPC takes a deadline per
call, the HTTP clients take theirs at construction. TLS (tls.py) is on when a
transport is given a TlsConfig.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from tritonclient.utils import InferenceServerException

from .errors import InvalidInputError, ServerUnavailableError, from_transport_exception, from_triton_exception
from .tls import TlsConfig

Outputs = dict[str, np.ndarray]
IMAGE_INPUT = "IMAGE"
PROTOCOLS = ("grpc", "http")
# scheme -> (protocol, TLS)
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


class GrpcTransport:
    def __init__(self, url: str, timeout_s: float, tls: TlsConfig | None = None) -> None:
        import tritonclient.grpc as grpcclient

        self.url = url
        self.timeout_s = timeout_s
        self.tls = tls
        self._module = grpcclient
        # thread-safe: one channel for all
        self._client = grpcclient.InferenceServerClient(url, **_grpc_tls_arguments(tls))

    def _errors(self, model: str):
        return _translated_errors(self.url, model, self.timeout_s, tls=self.tls is not None)

    def infer(self, model: str, image: bytes) -> Outputs:
        with self._errors(model):
            result = self._client.infer(model, [_image_input(self._module, image)], client_timeout=self.timeout_s)
            return _outputs(result, [o.name for o in result.get_response().outputs])

    def server_live(self) -> bool:
        with self._errors(""):
            return self._client.is_server_live(client_timeout=self.timeout_s)

    def model_ready(self, model: str) -> bool:
        with self._errors(model):
            return self._client.is_model_ready(model, client_timeout=self.timeout_s)

    def server_version(self) -> str:
        with self._errors(""):
            return self._client.get_server_metadata(as_json=True, client_timeout=self.timeout_s)["version"]

    def model_parameters(self, model: str) -> dict[str, str]:
        with self._errors(model):
            response = self._client.get_model_config(model, as_json=True, client_timeout=self.timeout_s)
            return _string_parameters(response["config"])

    def close(self) -> None:
        self._client.close()


class HttpTransport:
    """tritonclient's HTTP client is not thread-safe: each call borrows an idle client (or
    makes one) and gives it back, so there are never more clients (and connections) than
    calls that were in flight at once, however many threads come and go."""

    def __init__(self, url: str, timeout_s: float, tls: TlsConfig | None = None) -> None:
        import tritonclient.http as httpclient
        from geventhttpclient.response import HTTPConnectionClosed

        self.url = url
        self.timeout_s = timeout_s
        self.tls = tls
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
        self._clients: list = []  # every client made, for close()
        self._idle: list = []
        self._lock = threading.Lock()

    def _new_client(self) -> Any:
        client = self._module.InferenceServerClient(
            self.url, connection_timeout=self.timeout_s, network_timeout=self.timeout_s, **self._tls_arguments
        )
        with self._lock:
            self._clients.append(client)
        return client

    @contextmanager
    def _client(self) -> Iterator[Any]:
        with self._lock:
            client = self._idle.pop() if self._idle else None
        client = client or self._new_client()
        try:
            yield client
        finally:
            with self._lock:
                self._idle.append(client)

    def _errors(self, model: str):
        return _translated_errors(self.url, model, self.timeout_s, self._unavailable, tls=self.tls is not None)

    def infer(self, model: str, image: bytes) -> Outputs:
        with self._errors(model):
            with self._client() as client:
                result = client.infer(model, [_image_input(self._module, image)])
            return _outputs(result, [o["name"] for o in result.get_response()["outputs"]])

    def server_live(self) -> bool:
        with self._errors(""):
            with self._client() as client:
                return client.is_server_live()

    def model_ready(self, model: str) -> bool:
        with self._errors(model):
            with self._client() as client:
                return client.is_model_ready(model)

    def server_version(self) -> str:
        with self._errors(""):
            with self._client() as client:
                return client.get_server_metadata()["version"]

    def model_parameters(self, model: str) -> dict[str, str]:
        with self._errors(model):
            with self._client() as client:
                return _string_parameters(client.get_model_config(model))

    def close(self) -> None:
        with self._lock:
            clients, self._clients, self._idle = self._clients, [], []
        for client in clients:
            client.close()


class AsyncGrpcTransport:
    def __init__(self, url: str, timeout_s: float, tls: TlsConfig | None = None) -> None:
        import tritonclient.grpc.aio as grpcaio

        self.url = url
        self.timeout_s = timeout_s
        self.tls = tls
        self._module = grpcaio
        self._client_instance: Any | None = None

    @property
    def _client(self) -> Any:
        # Created on first use, inside the caller's event loop.
        if self._client_instance is None:
            self._client_instance = self._module.InferenceServerClient(self.url, **_grpc_tls_arguments(self.tls))
        return self._client_instance

    def _errors(self, model: str):
        return _translated_errors(self.url, model, self.timeout_s, tls=self.tls is not None)

    async def infer(self, model: str, image: bytes) -> Outputs:
        with self._errors(model):
            result = await self._client.infer(model, [_image_input(self._module, image)], client_timeout=self.timeout_s)
            return _outputs(result, [o.name for o in result.get_response().outputs])

    async def server_live(self) -> bool:
        with self._errors(""):
            return await self._client.is_server_live(client_timeout=self.timeout_s)

    async def model_ready(self, model: str) -> bool:
        with self._errors(model):
            return await self._client.is_model_ready(model, client_timeout=self.timeout_s)

    async def server_version(self) -> str:
        with self._errors(""):
            metadata = await self._client.get_server_metadata(as_json=True, client_timeout=self.timeout_s)
            return metadata["version"]

    async def model_parameters(self, model: str) -> dict[str, str]:
        with self._errors(model):
            response = await self._client.get_model_config(model, as_json=True, client_timeout=self.timeout_s)
            return _string_parameters(response["config"])

    async def close(self) -> None:
        if self._client_instance is not None:
            await self._client_instance.close()
            self._client_instance = None


class AsyncHttpTransport:
    def __init__(self, url: str, timeout_s: float, tls: TlsConfig | None = None) -> None:
        import aiohttp
        import tritonclient.http.aio as httpaio

        self.url = url
        self.timeout_s = timeout_s
        self.tls = tls
        self._module = httpaio
        # aiohttp takes an ssl.SSLContext: ours verifies the certificate and the hostname.
        self._tls_arguments = {} if tls is None else {"ssl": True, "ssl_context": tls.ssl_context()}
        self._unavailable = (aiohttp.ClientConnectionError,)
        self._client_instance: Any | None = None

    @property
    def _client(self) -> Any:
        # aiohttp sessions belong to an event loop: create it inside the caller's.
        if self._client_instance is None:
            self._client_instance = self._module.InferenceServerClient(
                self.url, conn_timeout=self.timeout_s, **self._tls_arguments
            )
        return self._client_instance

    def _errors(self, model: str):
        return _translated_errors(self.url, model, self.timeout_s, self._unavailable, tls=self.tls is not None)

    async def infer(self, model: str, image: bytes) -> Outputs:
        with self._errors(model):
            result = await self._client.infer(model, [_image_input(self._module, image)])
            return _outputs(result, [o["name"] for o in result.get_response()["outputs"]])

    async def server_live(self) -> bool:
        with self._errors(""):
            return await self._client.is_server_live()

    async def model_ready(self, model: str) -> bool:
        with self._errors(model):
            return await self._client.is_model_ready(model)

    async def server_version(self) -> str:
        with self._errors(""):
            return (await self._client.get_server_metadata())["version"]

    async def model_parameters(self, model: str) -> dict[str, str]:
        with self._errors(model):
            return _string_parameters(await self._client.get_model_config(model))

    async def close(self) -> None:
        if self._client_instance is not None:
            await self._client_instance.close()
            self._client_instance = None


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
