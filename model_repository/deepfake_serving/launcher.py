"""tritonserver's command line, built in one place for every way we start it.

Both the local server (deepfake_dev.local_server: the pip wheel's Triton 2.51, tests, the
demo) and the serving container (docker/serving/entrypoint.py: the NGC release) call
`tritonserver_command`, so the server the tests run is the one production runs. What
differs between them is an explicit argument, never a second list of flags:

- `host`: the local server listens on 127.0.0.1 unless told otherwise; the container
  binds 0.0.0.0 because other pods must reach it (the Service and NetworkPolicy gate it).
- `gpu_metrics`: only where there is a GPU.
- `http_max_input_bytes`: Triton 2.51 has no `--http-max-input-size` (later releases do),
  so the local server passes None; the container caps HTTP bodies before they are read.
- `backend_directory`: the wheel's backends are assembled in a work folder; the image has
  its own under /opt/tritonserver.

The admin key has to be on the command line: tritonserver reads `--http-restricted-api` and
`--grpc-restricted-protocol` only from flags (no file, no environment variable), so whoever
can read the process's command line (/proc/PID/cmdline) can read the key. See
docker/README.md (hardening) for what that means per deployment.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# APIs that change server state or expose memory; closed unless the caller sends the key
# (HTTP header `admin-key`; gRPC metadata `triton-grpc-protocol-admin-key`: Triton prefixes the gRPC key).
RESTRICTED_APIS = "model-repository,shared-memory,logging,trace"
ADMIN_KEY_HEADER = "admin-key"
LOOPBACK = "127.0.0.1"
ALL_INTERFACES = "0.0.0.0"

HARDENED_FLAGS = (
    "--disable-auto-complete-config",  # only our generated configs
    "--model-control-mode=none",  # no loading/unloading at run time
    "--strict-readiness=true",  # ready = every model ready (after warmup)
    "--exit-on-error=true",  # a model that fails to load stops the server, loudly
)
# In-flight requests get this long to finish on SIGTERM/SIGINT before Triton exits.
EXIT_TIMEOUT_S = 30
# Python backend <-> Triton shared memory per model instance: big enough for one request's
# crops (8 faces x (256^2 + 224^2) x 3 B = 2.8 MB) so the hot path does not grow the region.
PYTHON_SHM_BYTES = 16 << 20


@dataclass(frozen=True)
class Ports:
    http: int = 8000
    grpc: int = 8001
    metrics: int = 8002

    @classmethod
    def free(cls) -> Ports:
        """Three ports nobody listens on right now (tests, side-by-side servers)."""
        sockets = [socket.socket() for _ in range(3)]
        try:
            for s in sockets:
                s.bind((LOOPBACK, 0))
            return cls(*(s.getsockname()[1] for s in sockets))
        finally:
            for s in sockets:
                s.close()


def tritonserver_command(
    binary: str | Path,
    repository: Path,
    admin_key: str,
    *,
    host: str = LOOPBACK,
    ports: Ports = Ports(),
    gpu_metrics: bool = False,
    http_max_input_bytes: int | None = None,
    backend_directory: Path | None = None,
    exit_timeout_s: int = EXIT_TIMEOUT_S,
    python_shm_bytes: int = PYTHON_SHM_BYTES,
    log_verbose: int = 0,
    extra: Sequence[str] = (),
) -> list[str]:
    """The full tritonserver argv; `extra` (TLS flags, user flags) comes last so it can override."""
    if isinstance(extra, str):
        raise TypeError("extra is a sequence of flags, not one string")
    if any(c in admin_key for c in ",:= \n"):
        raise ValueError("the admin key must not contain ',', ':', '=' or whitespace: it sits inside a flag")
    command = [
        str(binary),
        f"--model-repository={repository}",
        *([f"--backend-directory={backend_directory}"] if backend_directory else []),
        *HARDENED_FLAGS,
        f"--exit-timeout-secs={exit_timeout_s}",
        f"--http-address={host}",
        f"--http-port={ports.http}",
        f"--grpc-address={host}",
        f"--grpc-port={ports.grpc}",
        f"--metrics-address={host}",
        f"--metrics-port={ports.metrics}",
        "--allow-metrics=true",
        f"--allow-gpu-metrics={str(gpu_metrics).lower()}",
        "--allow-cpu-metrics=true",
        f"--http-restricted-api={RESTRICTED_APIS}:{ADMIN_KEY_HEADER}={admin_key}",
        f"--grpc-restricted-protocol={RESTRICTED_APIS}:{ADMIN_KEY_HEADER}={admin_key}",
        f"--backend-config=python,shm-default-byte-size={python_shm_bytes}",
    ]
    if http_max_input_bytes is not None:
        command.append(f"--http-max-input-size={http_max_input_bytes}")
    command.append(f"--log-verbose={log_verbose}")
    return command + list(extra)


def redacted(command: Sequence[str]) -> list[str]:
    """The command with the admin key masked, for logs."""
    marker = f"{ADMIN_KEY_HEADER}="
    return [arg.split(marker)[0] + marker + "***" if marker in arg else arg for arg in command]
