"""The four tritonclient flavours behind one small interface.

A transport sends encoded image bytes to a model and returns its output arrays,
answers health questions, and turns every tritonclient or network failure into
an SDK error (errors.py). Timeouts differ by flavour: gRPC takes a deadline per
call, the HTTP clients take theirs at construction.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Dict, Iterator, Optional, Tuple, Type

import numpy as np
from tritonclient.utils import InferenceServerException

from .errors import InvalidInputError, ServerUnavailableError, from_transport_exception, from_triton_exception

Outputs = Dict[str, np.ndarray]
IMAGE_INPUT = "IMAGE"
PROTOCOLS = ("grpc", "http")


@contextmanager
def _translated_errors(
    url: str, model: str, timeout_s: float, unavailable: Tuple[Type[BaseException], ...] = ()
) -> Iterator[None]:
    try:
        yield
    except InferenceServerException as exc:
        raise from_triton_exception(exc, model) from exc
    except unavailable as exc:
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


def _string_parameters(config: Dict[str, Any]) -> Dict[str, str]:
    return {key: value.get("string_value", "") for key, value in config.get("parameters", {}).items()}


class GrpcTransport:
    def __init__(self, url: str, timeout_s: float) -> None:
        import tritonclient.grpc as grpcclient

        self.url = url
        self.timeout_s = timeout_s
        self._module = grpcclient
        self._client = grpcclient.InferenceServerClient(url)  # thread-safe: one channel for all

    def infer(self, model: str, image: bytes) -> Outputs:
        with _translated_errors(self.url, model, self.timeout_s):
            result = self._client.infer(model, [_image_input(self._module, image)], client_timeout=self.timeout_s)
            return _outputs(result, [o.name for o in result.get_response().outputs])

    def server_live(self) -> bool:
        with _translated_errors(self.url, "", self.timeout_s):
            return self._client.is_server_live(client_timeout=self.timeout_s)

    def model_ready(self, model: str) -> bool:
        with _translated_errors(self.url, model, self.timeout_s):
            return self._client.is_model_ready(model, client_timeout=self.timeout_s)

    def server_version(self) -> str:
        with _translated_errors(self.url, "", self.timeout_s):
            return self._client.get_server_metadata(as_json=True, client_timeout=self.timeout_s)["version"]

    def model_parameters(self, model: str) -> Dict[str, str]:
        with _translated_errors(self.url, model, self.timeout_s):
            response = self._client.get_model_config(model, as_json=True, client_timeout=self.timeout_s)
            return _string_parameters(response["config"])

    def close(self) -> None:
        self._client.close()


class HttpTransport:
    """tritonclient's HTTP client is not thread-safe: one client per calling thread."""

    def __init__(self, url: str, timeout_s: float) -> None:
        import tritonclient.http as httpclient

        self.url = url
        self.timeout_s = timeout_s
        self._module = httpclient
        self._local = threading.local()
        self._clients: list = []
        self._lock = threading.Lock()

    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._module.InferenceServerClient(
                self.url, connection_timeout=self.timeout_s, network_timeout=self.timeout_s
            )
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def infer(self, model: str, image: bytes) -> Outputs:
        with _translated_errors(self.url, model, self.timeout_s):
            result = self._client().infer(model, [_image_input(self._module, image)])
            return _outputs(result, [o["name"] for o in result.get_response()["outputs"]])

    def server_live(self) -> bool:
        with _translated_errors(self.url, "", self.timeout_s):
            return self._client().is_server_live()

    def model_ready(self, model: str) -> bool:
        with _translated_errors(self.url, model, self.timeout_s):
            return self._client().is_model_ready(model)

    def server_version(self) -> str:
        with _translated_errors(self.url, "", self.timeout_s):
            return self._client().get_server_metadata()["version"]

    def model_parameters(self, model: str) -> Dict[str, str]:
        with _translated_errors(self.url, model, self.timeout_s):
            return _string_parameters(self._client().get_model_config(model))

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()


class AsyncGrpcTransport:
    def __init__(self, url: str, timeout_s: float) -> None:
        import tritonclient.grpc.aio as grpcaio

        self.url = url
        self.timeout_s = timeout_s
        self._module = grpcaio
        self._client_instance: Optional[Any] = None

    @property
    def _client(self) -> Any:
        # Created on first use, inside the caller's event loop.
        if self._client_instance is None:
            self._client_instance = self._module.InferenceServerClient(self.url)
        return self._client_instance

    async def infer(self, model: str, image: bytes) -> Outputs:
        with _translated_errors(self.url, model, self.timeout_s):
            result = await self._client.infer(model, [_image_input(self._module, image)], client_timeout=self.timeout_s)
            return _outputs(result, [o.name for o in result.get_response().outputs])

    async def server_live(self) -> bool:
        with _translated_errors(self.url, "", self.timeout_s):
            return await self._client.is_server_live(client_timeout=self.timeout_s)

    async def model_ready(self, model: str) -> bool:
        with _translated_errors(self.url, model, self.timeout_s):
            return await self._client.is_model_ready(model, client_timeout=self.timeout_s)

    async def server_version(self) -> str:
        with _translated_errors(self.url, "", self.timeout_s):
            metadata = await self._client.get_server_metadata(as_json=True, client_timeout=self.timeout_s)
            return metadata["version"]

    async def model_parameters(self, model: str) -> Dict[str, str]:
        with _translated_errors(self.url, model, self.timeout_s):
            response = await self._client.get_model_config(model, as_json=True, client_timeout=self.timeout_s)
            return _string_parameters(response["config"])

    async def close(self) -> None:
        if self._client_instance is not None:
            await self._client_instance.close()
            self._client_instance = None


class AsyncHttpTransport:
    def __init__(self, url: str, timeout_s: float) -> None:
        import aiohttp
        import tritonclient.http.aio as httpaio

        self.url = url
        self.timeout_s = timeout_s
        self._module = httpaio
        self._unavailable = (aiohttp.ClientConnectionError,)
        self._client_instance: Optional[Any] = None

    @property
    def _client(self) -> Any:
        # aiohttp sessions belong to an event loop: create it inside the caller's.
        if self._client_instance is None:
            self._client_instance = self._module.InferenceServerClient(self.url, conn_timeout=self.timeout_s)
        return self._client_instance

    def _errors(self, model: str):
        return _translated_errors(self.url, model, self.timeout_s, self._unavailable)

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

    async def model_parameters(self, model: str) -> Dict[str, str]:
        with self._errors(model):
            return _string_parameters(await self._client.get_model_config(model))

    async def close(self) -> None:
        if self._client_instance is not None:
            await self._client_instance.close()
            self._client_instance = None


def split_url(url: str, protocol: Optional[str]) -> Tuple[str, str]:
    """(host:port, protocol) from a URL that may carry a grpc:// or http:// scheme."""
    scheme, sep, rest = url.partition("://")
    if sep:
        if scheme not in PROTOCOLS:
            raise InvalidInputError(f"unsupported URL scheme {scheme!r} in {url!r}: use grpc:// or http://")
        if protocol is not None and protocol != scheme:
            raise InvalidInputError(f"URL {url!r} contradicts protocol={protocol!r}")
        return rest.rstrip("/"), scheme
    protocol = protocol or "grpc"
    if protocol not in PROTOCOLS:
        raise InvalidInputError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    return url.rstrip("/"), protocol
