"""The server a benchmark measures: one already running (--url), or one it starts on a repository."""

from __future__ import annotations

import argparse
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from deepfake_client.transport import split_url
from deepfake_dev.local_server import LocalTritonServer, Ports

DEFAULT_METRICS_PORT = 8002


@dataclass(frozen=True)
class Endpoint:
    url: str  # "grpc://host:port" or "http://host:port", as the SDK takes it
    metrics_url: str  # Triton's Prometheus endpoint
    repository: Path | None = None  # set when the benchmark started the server


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--url", help="a running server, e.g. grpc://localhost:8001")
    group.add_argument("--repository", type=Path, help="start Triton on this assembled repository for the run")
    parser.add_argument("--metrics-url", help=f"with --url: its metrics endpoint (default: the same host, "
                                              f"port {DEFAULT_METRICS_PORT})")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_from_arguments(args: argparse.Namespace, log_folder: Path):
    """serve() with the options of add_server_arguments."""
    return serve(log_folder, url=args.url, metrics_url=args.metrics_url, repository=args.repository)


@contextmanager
def serve(log_folder: Path, *, url: str | None = None, metrics_url: str | None = None,
          repository: Path | None = None) -> Iterator[Endpoint]:
    """A running server at `url`, or Triton started on `repository` (and stopped after)."""
    if (url is None) == (repository is None):
        raise ValueError("give either the URL of a running server or a repository to serve")
    if url is not None:
        host, protocol = split_url(url, None)
        metrics = metrics_url or f"http://{host.rsplit(':', 1)[0]}:{DEFAULT_METRICS_PORT}/metrics"
        yield Endpoint(f"{protocol}://{host}", metrics)
        return
    log_folder.mkdir(parents=True, exist_ok=True)
    server = LocalTritonServer(repository, Ports(_free_port(), _free_port(), _free_port()),
                               log_path=log_folder / "tritonserver.log")
    print(f"starting Triton on {repository} (log: {server.log_path}) ...", flush=True)
    with server:
        yield Endpoint(f"grpc://{server.grpc_url}", server.metrics_url, server.repository)
