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
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from deepfake_serving import launcher, probe
from deepfake_serving.launcher import RESTRICTED_APIS, Ports  # noqa: F401  (re-exported for callers)

# Shorter than the container's: a developer's Ctrl-C should not wait half a minute.
EXIT_TIMEOUT_S = 15
# The watchdog's inference probe (a wedged instance answers nothing): how often, how patient.
PROBE_EVERY_S = 10.0
PROBE_TIMEOUT_S = 30.0
# The restart budget: at most this many restarts in any window, each after a doubling backoff.
MAX_RESTARTS = 3
RESTART_WINDOW_S = 600.0
RESTART_BACKOFF_S = 2.0
MAX_RESTART_BACKOFF_S = 60.0


class ServerStartError(RuntimeError):
    """Triton did not become ready (bad repository, port in use, missing backend...)."""


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


def server_command(repository: Path, backends: Path, ports: Ports, admin_key: str, log_verbose: int = 0,
                   host: str = launcher.LOOPBACK, extra: Sequence[str] = ()) -> list[str]:
    """The shared launcher's command for the wheel's Triton 2.51: no GPU, and no
    --http-max-input-size in that release (docker/README.md, hardening)."""
    binary = _pytriton_root() / "tritonserver" / "bin" / "tritonserver"
    return launcher.tritonserver_command(
        binary, repository, admin_key, host=host, ports=ports, gpu_metrics=False, http_max_input_bytes=None,
        backend_directory=backends, exit_timeout_s=EXIT_TIMEOUT_S, log_verbose=log_verbose, extra=extra)


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


@dataclass(frozen=True)
class Stub:
    """One python-backend stub process: a model instance's own Python interpreter."""

    pid: int
    instance: str  # e.g. "effort_clip_0_0"
    shm_region: str  # its shared-memory file under /dev/shm


SHM_DIR = Path("/dev/shm")


def _proc_state(pid: int) -> tuple[str, int] | None:
    """(state letter, process group) of a live process, None once it is gone (Linux /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (None if fields[0] in "ZX" else (fields[0], int(fields[2])))


def _in_group(pid: int, group: int) -> bool:
    """Whether pid is a live (not zombie) process of that group; a reused pid is not."""
    state = _proc_state(pid)
    return state is not None and state[1] == group


def python_stubs(group: int) -> list[Stub]:
    """The python-backend stubs in a process group: Triton starts them as its children, in its
    group. Their command line is: stub, model.py, shm region, ..., instance name, kind."""
    stubs = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        state = _proc_state(int(entry.name))
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if state and state[1] == group and argv[0].endswith("triton_python_backend_stub") and len(argv) > 8:
            stubs.append(Stub(int(entry.name), argv[8], argv[2]))
    return stubs


class LocalTritonServer:
    """Start, wait for readiness, stop. Usable as a context manager.

    Triton runs in its own process group with its python stubs. Whatever way it ends
    (stop, crash, kill), `stop()` kills what is left of that group and removes the stubs'
    /dev/shm files, so no orphan stub (often 1 GB) or shared-memory file stays behind.
    """

    def __init__(
        self,
        repository: Path,
        ports: Ports = Ports(),
        log_path: Path | None = None,
        admin_key: str | None = None,
        log_verbose: int = 0,
        extra_args: Sequence[str] = (),
        host: str = launcher.LOOPBACK,
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
        self.host = host  # the address Triton binds; clients here always use loopback
        # Appended to the command line, e.g. gRPC TLS flags; the readiness wait uses HTTP, which stays plain.
        if isinstance(extra_args, str):
            raise TypeError("extra_args is a sequence of flags, not one string")
        self.extra_args = tuple(extra_args)
        self._workdir = Path(tempfile.mkdtemp(prefix="deepfake-triton-"))
        self.log_path = log_path or self._workdir / "tritonserver.log"
        self._process: subprocess.Popen | None = None
        self.stubs: list[Stub] = []  # recorded once ready

    @property
    def _address(self) -> str:
        """Where a client on this machine reaches the server."""
        return launcher.LOOPBACK if self.host in (launcher.LOOPBACK, launcher.ALL_INTERFACES) else self.host

    @property
    def http_url(self) -> str:
        return f"{self._address}:{self.ports.http}"

    @property
    def grpc_url(self) -> str:
        return f"{self._address}:{self.ports.grpc}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self._address}:{self.ports.metrics}/metrics"

    def start(self, timeout_s: float = 600.0) -> LocalTritonServer:
        command = server_command(self.repository, _backend_directory(self._workdir), self.ports,
                                 self.admin_key, self.log_verbose, self.host, self.extra_args)
        log = open(self.log_path, "ab")
        self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=_environment(),
                                         start_new_session=True)
        log.close()
        self._wait_ready(timeout_s)
        self.stubs = python_stubs(self._process.pid)
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

    def problems(self) -> list[str]:
        """What is broken now, in words: the server has exited, or a stub has died (Triton
        2.51 keeps reporting ready with a dead stub; its requests fail)."""
        if self._process is None:
            return []
        code = self._process.poll()
        if code is not None:
            how = f"signal {-code} ({signal.Signals(-code).name})" if code < 0 else f"exit code {code}"
            return [f"tritonserver ended with {how}"]
        return [f"the python stub of {stub.instance} (pid {stub.pid}) has died" for stub in self.stubs
                if _proc_state(stub.pid) is None]

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

    def footprint(self) -> tuple[int, int]:
        """(resident memory of tritonserver and its stubs, bytes of their /dev/shm files in use)."""
        rss = 0
        for pid in [self._process.pid] + [stub.pid for stub in self.stubs]:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            rss += next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:"))
        shm = 0
        for stub in self.stubs:
            try:
                shm += (SHM_DIR / stub.shm_region).stat().st_blocks * 512  # allocated, not apparent, size
            except OSError:
                pass
        return rss, shm

    def stop(self, timeout_s: float = EXIT_TIMEOUT_S + 15.0) -> list[str]:
        """Stop Triton, then clean up after it; returns what had to be cleaned (orphan stubs,
        shared-memory files), empty after a graceful stop."""
        killed = []
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)  # Triton's graceful shutdown
            try:
                self._process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
                killed = [f"killed tritonserver (pid {self._process.pid}): not stopped {timeout_s:g} s after SIGINT"
                          + self._in_flight_note()]
        cleaned = killed + (self._clean_up() if self._process is not None else [])
        # Keep the working folder only while it holds the log someone may want to read.
        keep_log = self.log_path.parent == self._workdir
        shutil.rmtree(self._workdir / "backends" if keep_log else self._workdir, ignore_errors=True)
        return cleaned

    def _in_flight_note(self) -> str:
        """Triton's last word on what kept it from exiting (it logs the requests still in flight)."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return ""
        last = next((line.strip() for line in reversed(lines) if "in-flight" in line), None)
        return f" (Triton: {last[:300]})" if last else ""

    def _clean_up(self) -> list[str]:
        """Kill what is left of Triton's process group; remove its stubs' shm files."""
        group = self._process.pid
        left = python_stubs(group)
        cleaned = [f"killed the orphan python stub of {stub.instance} (pid {stub.pid})" for stub in left]
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:  # the group is empty: nothing outlived Triton
            pass
        # Wait on the pids, not on python_stubs(): a dying stub loses its command line (its
        # memory) before it is gone, and stubs exiting on their own may still be mid-exit.
        pids = {stub.pid for stub in left + self.stubs}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_in_group(pid, group) for pid in pids):
            time.sleep(0.1)
        for stub in self.stubs:
            shm = SHM_DIR / stub.shm_region
            if shm.exists():
                shm.unlink(missing_ok=True)
                cleaned.append(f"removed {shm} ({stub.instance})")
        return cleaned

    def __enter__(self) -> LocalTritonServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> int:
    # No abbreviations: `--admin-key` must not silently mean `--admin-key-file`.
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--repository", type=Path, required=True, help="assembled model repository")
    parser.add_argument("--host", default=launcher.LOOPBACK,
                        help="address the HTTP, gRPC and metrics endpoints bind to (default: %(default)s, this "
                             "machine only; 0.0.0.0 exposes them on every interface)")
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--metrics-port", type=int, default=8002)
    parser.add_argument("--log", type=Path, help="server log file (default: a temporary file)")
    parser.add_argument("--log-verbose", type=int, default=0)
    parser.add_argument("--admin-key-file", type=Path, default=os.environ.get("TRITON_ADMIN_KEY_FILE"),
                        help="file holding the key that opens the repository/shared-memory/logging/trace APIs "
                             "(HTTP header `admin-key`, gRPC metadata `triton-grpc-protocol-admin-key`); default: "
                             "closed; env TRITON_ADMIN_KEY_FILE, or the key itself in env TRITON_ADMIN_KEY). "
                             "Not a flag of its own, so it stays out of this process's command line; Triton "
                             "itself still takes it as a flag (docker/README.md, hardening).")
    parser.add_argument("--max-restarts", type=int, default=MAX_RESTARTS,
                        help="restarts allowed in any --restart-window-s after a crash, a dead python stub or a "
                             "failed inference probe (default %(default)s)")
    parser.add_argument("--restart-window-s", type=float, default=RESTART_WINDOW_S,
                        help="the window of --max-restarts, in seconds (default %(default)g; 0: the launcher's "
                             "lifetime, as --max-restarts meant before)")
    parser.add_argument("--restart-backoff-s", type=float, default=RESTART_BACKOFF_S,
                        help="wait before a restart, doubled for each restart still in the window "
                             f"(default %(default)g, at most {MAX_RESTART_BACKOFF_S:g})")
    parser.add_argument("--extra-arg", action="append", default=[], metavar="FLAG",
                        help="passed to tritonserver as is, repeatable (e.g. --extra-arg=--grpc-use-ssl=true)")
    args = parser.parse_args(argv)
    if args.max_restarts < 0 or args.restart_window_s < 0 or args.restart_backoff_s < 0:
        parser.error("--max-restarts, --restart-window-s and --restart-backoff-s must be >= 0")
    budget = RestartBudget(args.max_restarts, args.restart_window_s or None, args.restart_backoff_s)
    try:
        admin_key = args.admin_key_file.read_text().strip() if args.admin_key_file else os.environ.get("TRITON_ADMIN_KEY")
    except OSError as exc:
        print(f"error: cannot read the admin key file {args.admin_key_file}: {exc.strerror}", file=sys.stderr)
        return 2

    server = LocalTritonServer(args.repository, Ports(args.http_port, args.grpc_port, args.metrics_port),
                               log_path=args.log, admin_key=admin_key, log_verbose=args.log_verbose,
                               extra_args=args.extra_arg, host=args.host)
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
    return _watch(server, budget, lambda: stop_requested)


@dataclass
class RestartBudget:
    """At most `max_restarts` restarts in any `window_s` seconds (None: in the launcher's lifetime).

    A rate, not a lifetime count: a server that crashes now and then (e.g. a client's burst of
    cancelled requests, on Triton 2.51) keeps being restarted; one that crashes again and again
    is given up on. Each restart waits `backoff_s`, doubled for each restart still in the window
    (at most `max_backoff_s`), so a crash loop does not hammer the machine."""

    max_restarts: int = MAX_RESTARTS
    window_s: float | None = RESTART_WINDOW_S
    backoff_s: float = RESTART_BACKOFF_S
    max_backoff_s: float = MAX_RESTART_BACKOFF_S
    clock: Callable[[], float] = time.monotonic
    _restarts: list[float] = field(default_factory=list, init=False)  # when each restart was allowed

    def next_backoff(self) -> float | None:
        """The wait before restarting now, or None when the budget is spent; counts the restart."""
        now = self.clock()
        if self.window_s is not None:
            self._restarts = [t for t in self._restarts if now - t < self.window_s]
        if len(self._restarts) >= self.max_restarts:
            return None
        backoff = min(self.max_backoff_s, self.backoff_s * 2 ** len(self._restarts))
        self._restarts.append(now)
        return backoff

    def describe(self) -> str:
        window = "in the launcher's lifetime" if self.window_s is None else f"in {self.window_s:g} s"
        return f"{len(self._restarts)} of {self.max_restarts} restarts {window}"


def _wait_unless_stopped(seconds: float, stop_requested, sleep: Callable[[float], None], step_s: float = 0.2) -> bool:
    """Sleep `seconds`, waking to check for a stop; whether a stop was asked for."""
    left = seconds
    while left > 0 and not stop_requested():
        sleep(min(step_s, left))
        left -= step_s
    return stop_requested()


def _watch(server: LocalTritonServer, budget: RestartBudget, stop_requested, check_every_s: float = 0.5,
           probe_every_s: float = PROBE_EVERY_S, sleep: Callable[[float], None] = time.sleep) -> int:
    """Serve until asked to stop. A crash, a dead stub or a failed inference probe (a wedged
    instance) is reported with its cause, cleaned up, and the server restarted after a
    backoff, as long as the restart budget allows."""
    next_probe = time.monotonic() + probe_every_s
    while not stop_requested():
        problems = server.problems()
        if not problems and time.monotonic() >= next_probe:
            failed = probe.probe(server.http_url, PROBE_TIMEOUT_S)
            problems = [f"the inference probe failed: {failed}"] if failed and not stop_requested() else []
            next_probe = time.monotonic() + probe_every_s
        if problems:
            print("error: " + "; ".join(problems) + f"\n{server.errors()}", file=sys.stderr, flush=True)
            for line in server.stop():
                print(f"cleanup: {line}", file=sys.stderr, flush=True)
            backoff = budget.next_backoff()
            if backoff is None:
                print(f"error: giving up: {budget.describe()} already", file=sys.stderr, flush=True)
                return 1
            print(f"restarting tritonserver in {backoff:g} s ({budget.describe()}) ...", file=sys.stderr, flush=True)
            if _wait_unless_stopped(backoff, stop_requested, sleep):
                break
            try:
                server.start()
            except ServerStartError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
            print("ready again", flush=True)
            next_probe = time.monotonic() + probe_every_s
        sleep(check_every_s)
    for line in server.stop():
        print(f"cleanup: {line}", file=sys.stderr, flush=True)
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
