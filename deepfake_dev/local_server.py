"""Run the real Triton server bundled in the `nvidia-pytriton` wheel on a built repository.

That wheel ships `tritonserver` 2.51.0 (= NGC 24.10) with the python backend,
but no Docker and no GPU are needed. We start the binary ourselves with
production-like flags: explicit configs only, model control off, strict
readiness, exit on error, admin APIs closed.

    python -m deepfake_dev.local_server --repository build/repository/cpu
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# APIs that change server state or expose memory; closed unless a key is given.
RESTRICTED_APIS = "model-repository,shared-memory,logging,trace"


class ServerStartError(RuntimeError):
    """Triton did not become ready (bad repository, port in use, missing backend...)."""


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
                s.bind(("127.0.0.1", 0))
            return cls(*(s.getsockname()[1] for s in sockets))
        finally:
            for s in sockets:
                s.close()


def _pytriton_root() -> Path:
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise ServerStartError("nvidia-pytriton is not installed: run `make setup`")
    return Path(list(spec.submodule_search_locations)[0])


def _backend_directory(workdir: Path) -> Path:
    """A backend dir whose python/ holds the backend library and the stub for this Python."""
    triton = _pytriton_root() / "tritonserver"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = triton / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.exists():
        raise ServerStartError(f"the Triton wheel has no python backend stub for Python {version}")
    python_backend = workdir / "backends" / "python"
    python_backend.mkdir(parents=True, exist_ok=True)
    for source in (
        triton / "backends" / "python" / "libtriton_python.so",
        triton / "backends" / "python" / "triton_python_backend_utils.py",
        stub,
    ):
        target = python_backend / source.name
        if not target.exists():
            shutil.copy2(source, target)
    return workdir / "backends"


def server_command(repository: Path, backends: Path, ports: Ports, admin_key: str, log_verbose: int = 0) -> list[str]:
    binary = _pytriton_root() / "tritonserver" / "bin" / "tritonserver"
    return [
        str(binary),
        f"--model-repository={repository}",
        f"--backend-directory={backends}",
        "--disable-auto-complete-config",
        "--model-control-mode=none",
        "--strict-readiness=true",
        "--exit-on-error=true",
        "--exit-timeout-secs=15",
        f"--http-port={ports.http}",
        f"--grpc-port={ports.grpc}",
        f"--metrics-port={ports.metrics}",
        "--allow-metrics=true",
        "--allow-gpu-metrics=false",
        f"--http-restricted-api={RESTRICTED_APIS}:admin-key={admin_key}",
        f"--grpc-restricted-protocol={RESTRICTED_APIS}:admin-key={admin_key}",
        f"--log-verbose={log_verbose}",
    ]


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    libs = _pytriton_root().parent / "nvidia_pytriton.libs"
    # The stub links libpython3.X.so: it must be this interpreter's own, not another
    # 3.X patch release found first on the system (its C extension modules, e.g. _ssl,
    # then fail with undefined symbols).
    libpython_dir = sysconfig.get_config_var("LIBDIR") if sysconfig.get_config_var("Py_ENABLE_SHARED") else None
    env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [libpython_dir, str(libs), env.get("LD_LIBRARY_PATH")]))
    # The python stub imports packages from the interpreter found on PATH: make it ours.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


class LocalTritonServer:
    """Start, wait for readiness, stop. Usable as a context manager."""

    def __init__(
        self,
        repository: Path,
        ports: Ports = Ports(),
        log_path: Path | None = None,
        admin_key: str | None = None,
        log_verbose: int = 0,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.repository = Path(repository).resolve()
        if not (self.repository / "deepfake_detector" / "config.pbtxt").exists():
            raise ServerStartError(
                f"{self.repository} is not an assembled repository (no deepfake_detector/config.pbtxt): "
                "build one with `deepfake-export repository`"
            )
        self.ports = ports
        # Without a key the admin APIs stay closed: a random key nobody knows.
        self.admin_key = admin_key or secrets.token_hex(16)
        self.log_verbose = log_verbose
        # Appended to the command line, e.g. gRPC TLS flags; the readiness wait uses HTTP, which stays plain.
        if isinstance(extra_args, str):
            raise TypeError("extra_args is a sequence of flags, not one string")
        self.extra_args = tuple(extra_args)
        self._workdir = Path(tempfile.mkdtemp(prefix="deepfake-triton-"))
        self.log_path = log_path or self._workdir / "tritonserver.log"
        self._process: subprocess.Popen | None = None

    @property
    def http_url(self) -> str:
        return f"localhost:{self.ports.http}"

    @property
    def grpc_url(self) -> str:
        return f"localhost:{self.ports.grpc}"

    @property
    def metrics_url(self) -> str:
        return f"http://localhost:{self.ports.metrics}/metrics"

    def start(self, timeout_s: float = 600.0) -> LocalTritonServer:
        command = server_command(self.repository, _backend_directory(self._workdir), self.ports,
                                 self.admin_key, self.log_verbose) + list(self.extra_args)
        log = open(self.log_path, "ab")
        self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=_environment(),
                                         start_new_session=True)
        log.close()
        self._wait_ready(timeout_s)
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        url = f"http://{self.http_url}/v2/health/ready"
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ServerStartError(
                    f"tritonserver exited with code {self._process.returncode}:\n{self.errors()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.5)
        self.stop()
        raise ServerStartError(f"tritonserver not ready after {timeout_s:.0f} s:\n{self.errors()}")

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def errors(self, limit: int = 10, width: int = 600) -> str:
        """Triton's error lines (model load failures...), else the log's tail; with the log's path."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no log)"
        # Error lines start with E<month><day>; the machine has no GPU, so CUDA complaints are noise.
        found = [line[:width] for line in lines
                 if line.startswith("E") and "CUDA" not in line and "Cuda" not in line]
        return "\n".join(found[-limit:] or lines[-limit:]) + f"\n(full log: {self.log_path})"

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def stop(self, timeout_s: float = 30.0) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)  # Triton's graceful shutdown
            try:
                self._process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait()
        # Keep the working folder only while it holds the log someone may want to read.
        keep_log = self.log_path.parent == self._workdir
        shutil.rmtree(self._workdir / "backends" if keep_log else self._workdir, ignore_errors=True)

    def __enter__(self) -> LocalTritonServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repository", type=Path, required=True, help="assembled model repository")
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--metrics-port", type=int, default=8002)
    parser.add_argument("--log", type=Path, help="server log file (default: a temporary file)")
    parser.add_argument("--log-verbose", type=int, default=0)
    parser.add_argument("--admin-key", default=os.environ.get("TRITON_ADMIN_KEY"),
                        help="opens the repository/shared-memory/logging/trace APIs to holders of this key "
                             "(default: closed; env TRITON_ADMIN_KEY)")
    parser.add_argument("--extra-arg", action="append", default=[], metavar="FLAG",
                        help="passed to tritonserver as is, repeatable (e.g. --extra-arg=--grpc-use-ssl=true)")
    args = parser.parse_args(argv)

    server = LocalTritonServer(args.repository, Ports(args.http_port, args.grpc_port, args.metrics_port),
                               log_path=args.log, admin_key=args.admin_key, log_verbose=args.log_verbose,
                               extra_args=args.extra_arg)
    print(f"starting Triton on {args.repository} (log: {server.log_path}) ...", flush=True)
    try:
        server.start()
    except ServerStartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"ready: gRPC {server.grpc_url}  HTTP {server.http_url}  metrics {server.metrics_url}", flush=True)
    print("Ctrl-C to stop", flush=True)
    stop_requested = False

    def request_stop(*_):
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    while not stop_requested and server.is_running():
        time.sleep(0.5)
    crashed = not server.is_running()
    server.stop()
    if crashed:
        print(f"error: tritonserver stopped unexpectedly:\n{server.log_tail()}", file=sys.stderr)
        return 1
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
