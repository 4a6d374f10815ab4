"""Start of the serving container: TensorRT plans for this GPU, the repository, then Triton.

    python3 /opt/deepfake/entrypoint.py serve         # default: build/reuse plans, assemble, exec tritonserver
    python3 /opt/deepfake/entrypoint.py build-plans   # only fill the plan cache (pre-build on a GPU host)
    python3 /opt/deepfake/entrypoint.py versions      # what this image and GPU are (first-host check)

`docker build` has no GPU and a plan only loads on the TensorRT version and GPU
architecture that built it, so plans are built here, at start, into the plan cache
(a persistent volume), keyed by TensorRT version + compute capability + ONNX sha256
+ build flags (export/tensorrt_build.py). A restart with the same inputs reuses them.

Environment (defaults in brackets):
  DEEPFAKE_ARTIFACTS [/models/artifacts]  export output, read-only: onnx/<model>.onnx, fixed/<model>.json
  DEEPFAKE_PLAN_CACHE [/models/cache/plans]  persistent plan cache, may be shared by replicas
  DEEPFAKE_WORKDIR [/tmp/deepfake]  per-container scratch: build view, assembled repository
  DEEPFAKE_SETTINGS [unset: equal weights]  ensemble settings file written by `deepfake calibrate`
                           (mount it read-only); the repository serves its weights and threshold
  DEEPFAKE_PLAN_OPT_BATCH [8]  batch TensorRT optimises for (the profile's max is the flavour's max_batch_size)
  TRITON_ADMIN_KEY_FILE  file holding the key that opens the admin APIs (unset: closed, random key)
  DEEPFAKE_GRPC_TLS [off]  off | server | mutual; certificates from DEEPFAKE_TLS_DIR [/run/secrets/tls]:
                           tls.crt, tls.key, and ca.crt (client CA, required for mutual)
  TRITON_LOG_VERBOSE [0]
Arguments after `serve --` are appended to tritonserver's command line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from deepfake_serving import launcher
from deepfake_serving.images import ImageLimits

FLAVOUR = "tensorrt"
# An HTTP body holds one image (at most ImageLimits.max_bytes) plus a small JSON header:
# anything bigger is refused by Triton before it is read, copied or inflated.
HTTP_MAX_INPUT_BYTES = ImageLimits().max_bytes + (1 << 20)
PORTS = {"http": launcher.Ports().http, "grpc": launcher.Ports().grpc, "metrics": launcher.Ports().metrics}
_KEY_PATTERN = re.compile(r"[A-Za-z0-9._~+/-]{16,256}")  # no ',', ':', '=' or spaces: it sits in a flag
TLS_MODES = ("off", "server", "mutual")


class StartError(RuntimeError):
    """The container cannot serve as configured; the message says what to fix."""


@dataclass(frozen=True)
class Settings:
    artifacts: Path
    plan_cache: Path
    workdir: Path
    opt_batch: int
    admin_key_file: Path | None
    tls_mode: str
    tls_dir: Path
    log_verbose: int
    ensemble_settings: Path | None = None  # DEEPFAKE_SETTINGS

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> Settings:
        tls_mode = env.get("DEEPFAKE_GRPC_TLS", "off").strip().lower()
        if tls_mode not in TLS_MODES:
            raise StartError(f"DEEPFAKE_GRPC_TLS={tls_mode!r}: choose one of {', '.join(TLS_MODES)}")
        try:
            opt_batch = int(env.get("DEEPFAKE_PLAN_OPT_BATCH", "8"))
            log_verbose = int(env.get("TRITON_LOG_VERBOSE", "0"))
        except ValueError as exc:
            raise StartError(f"not a number: {exc}") from None
        key_file = env.get("TRITON_ADMIN_KEY_FILE")
        ensemble_settings = env.get("DEEPFAKE_SETTINGS")
        if ensemble_settings and not Path(ensemble_settings).is_file():
            raise StartError(f"DEEPFAKE_SETTINGS={ensemble_settings}: no such file (mount the settings file there)")
        return cls(
            artifacts=Path(env.get("DEEPFAKE_ARTIFACTS", "/models/artifacts")),
            plan_cache=Path(env.get("DEEPFAKE_PLAN_CACHE", "/models/cache/plans")),
            workdir=Path(env.get("DEEPFAKE_WORKDIR", "/tmp/deepfake")),
            opt_batch=opt_batch,
            admin_key_file=Path(key_file) if key_file else None,
            tls_mode=tls_mode,
            tls_dir=Path(env.get("DEEPFAKE_TLS_DIR", "/run/secrets/tls")),
            log_verbose=log_verbose,
            ensemble_settings=Path(ensemble_settings) if ensemble_settings else None,
        )


def plan_profile(opt_batch: int):
    """The plans' optimisation profile: up to the flavour's max_batch_size, which Triton runs
    (warmup included); a plan whose profile stops below it fails to load."""
    from export.tensorrt_build import Profile
    from export.triton_config import FLAVOURS

    max_batch = FLAVOURS[FLAVOUR].classifier_max_batch_size
    return Profile(min_batch=1, opt_batch=min(opt_batch, max_batch), max_batch=max_batch)


def admin_key(key_file: Path | None) -> str:
    """The admin key from its file (a mounted Secret); without a file, a random key nobody
    knows, which keeps the admin APIs closed."""
    if key_file is None:
        import secrets

        return secrets.token_hex(32)
    try:
        key = key_file.read_text().strip()
    except OSError as exc:
        raise StartError(f"TRITON_ADMIN_KEY_FILE: cannot read {key_file}: {exc.strerror}") from None
    if not _KEY_PATTERN.fullmatch(key):
        raise StartError(f"the admin key in {key_file} must be 16-256 characters from [A-Za-z0-9._~+/-] "
                         "(e.g. `openssl rand -hex 32`)")
    return key


def tls_flags(mode: str, tls_dir: Path) -> list[str]:
    """Triton's gRPC TLS flags; every file they name must exist (a typo would start plain gRPC)."""
    if mode == "off":
        return []
    files = {"--grpc-server-cert": tls_dir / "tls.crt", "--grpc-server-key": tls_dir / "tls.key"}
    if mode == "mutual":
        files["--grpc-root-cert"] = tls_dir / "ca.crt"
    missing = [str(path) for path in files.values() if not path.is_file()]
    if missing:
        raise StartError(f"DEEPFAKE_GRPC_TLS={mode} but {', '.join(missing)} missing (mount the TLS secret)")
    switch = "--grpc-use-ssl-mutual=true" if mode == "mutual" else "--grpc-use-ssl=true"
    return [switch] + [f"{flag}={path}" for flag, path in files.items()]


def tritonserver_command(repository: Path, key: str, tls: Sequence[str], log_verbose: int = 0,
                         extra: Sequence[str] = ()) -> list[str]:
    """The shared launcher's command for the container: every interface (other pods reach it
    through the Service), GPU metrics, HTTP bodies capped; the image's own backends."""
    return launcher.tritonserver_command(
        "tritonserver", repository, key, host=launcher.ALL_INTERFACES, ports=launcher.Ports(**PORTS), gpu_metrics=True,
        http_max_input_bytes=HTTP_MAX_INPUT_BYTES, exit_timeout_s=launcher.EXIT_TIMEOUT_S,
        log_verbose=log_verbose, extra=[*tls, *extra])


def _link(target: Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target)


def prepare_build_view(artifacts: Path, plan_cache: Path, view: Path, names: Sequence[str]) -> Path:
    """A writable build folder (export.artifacts layout) over the read-only export output:
    ONNX files and manifests linked in, plans/ = the shared plan cache. TensorRT 11 writes its
    mixed-precision ONNX next to the linked files, so the export volume stays read-only."""
    missing = [str(p) for name in names
               for p in (artifacts / "onnx" / f"{name}.onnx", artifacts / "fixed" / f"{name}.json") if not p.is_file()]
    if missing:
        raise StartError(f"the export output is incomplete under {artifacts} (missing {', '.join(missing)}); "
                         "mount the folder `make export` wrote (build/) there")
    for name in names:
        _link(artifacts / "onnx" / f"{name}.onnx", view / "onnx" / f"{name}.onnx")
        _link(artifacts / "fixed" / f"{name}.json", view / "fixed" / f"{name}.json")
    plan_cache.mkdir(parents=True, exist_ok=True)
    if not (view / "plans").is_symlink():
        shutil.rmtree(view / "plans", ignore_errors=True)
    _link(plan_cache.resolve(), view / "plans")
    return view


def expected_plan_keys(view: Path, names: Sequence[str], tensorrt_version: str, compute_capability: str,
                       profile) -> dict[str, str]:
    """The cache key each model's plan has for this TensorRT, GPU, ONNX file and profile."""
    from export.artifacts import BuildArtifacts
    from export.provenance import sha256_file
    from export.tensorrt_build import build_flags, plan_cache_key, precision_mode

    artifacts = BuildArtifacts(view)
    flags = build_flags(precision_mode(tensorrt_version), profile)
    return {name: plan_cache_key(tensorrt_version, compute_capability, sha256_file(artifacts.onnx(name)), flags)
            for name in names}


def select_plans(view: Path, keys: Mapping[str, str], selected: Path) -> Path:
    """A build folder holding only the current plans (symlinks), so that `deepfake-export
    repository --plan-filter` finds exactly one per model even when the shared cache keeps plans
    of older ONNX files, other profiles or other GPUs."""
    from export.artifacts import BuildArtifacts
    from export.provenance import read_json

    source = BuildArtifacts(view)
    shutil.rmtree(selected, ignore_errors=True)
    for name, key in keys.items():
        sidecar = read_json(source.plan_sidecar(name, key))
        if sidecar is None or not source.plan(name, key).is_file():
            raise StartError(f"{name}: no plan {key} in the cache after the build step")
        if not sidecar["parity"]["passed"]:
            raise StartError(f"{name}: plan {key} failed its parity check: {sidecar['parity']}")
        target = BuildArtifacts(selected)
        _link(source.plan(name, key).resolve(), target.plan(name, key))
        _link(source.plan_sidecar(name, key).resolve(), target.plan_sidecar(name, key))
        _link(source.onnx(name).resolve(), target.onnx(name))
        _link(source.manifest_path(name).resolve(), target.manifest_path(name))
    return selected


def check_tensorrt_versions(python_version: str, libnvinfer_version: str) -> None:
    """The Python bindings that build the plans must be the TensorRT that Triton loads them with
    (libnvinfer from the image, e.g. "10.16.1.11-1+cuda13.2")."""
    system = libnvinfer_version.split("-")[0]
    if python_version != system and not system.startswith(python_version + "."):
        raise StartError(f"TensorRT Python bindings {python_version} != the image's libnvinfer {libnvinfer_version}: "
                         "plans built here would not load in Triton; rebuild the image")


def system_libnvinfer_version() -> str:
    result = subprocess.run(["dpkg-query", "-W", "--showformat=${Version}\\n", "libnvinfer[0-9]*"],
                            capture_output=True, text=True, check=False)
    versions = [line for line in result.stdout.split() if line]
    if result.returncode != 0 or not versions:
        raise StartError(f"no libnvinfer package in this image: {result.stderr.strip()}")
    return versions[0]


def run_cli(argv: Sequence[str]) -> None:
    from export import cli

    print("+ deepfake-export " + " ".join(argv), flush=True)
    code = cli.main(list(argv))
    if code != 0:
        raise StartError(f"deepfake-export {argv[0]} failed (exit {code}); see above")


def build_plans(settings: Settings) -> tuple[Path, str, str]:
    """Build (or reuse) every plan for this GPU; returns (selected build view, TensorRT, CC)."""
    from deepfake_models import CLASSIFIER_NAMES
    from export.tensorrt_build import cuda_device, import_tensorrt

    trt = import_tensorrt()
    check_tensorrt_versions(trt.__version__, system_libnvinfer_version())
    gpu_name, compute_capability = cuda_device()
    profile = plan_profile(settings.opt_batch)
    print(f"TensorRT {trt.__version__} on {gpu_name} (compute capability {compute_capability}), "
          f"profile {profile}", flush=True)
    view = prepare_build_view(settings.artifacts, settings.plan_cache, settings.workdir / "build", CLASSIFIER_NAMES)
    run_cli(["tensorrt", "--artifacts", str(view), "--opt-batch", str(profile.opt_batch),
             "--max-batch", str(profile.max_batch)])
    keys = expected_plan_keys(view, CLASSIFIER_NAMES, trt.__version__, compute_capability, profile)
    selected = select_plans(view, keys, settings.workdir / "selected")
    return selected, trt.__version__, compute_capability


def assemble_repository(selected: Path, out: Path, tensorrt_version: str, compute_capability: str,
                        ensemble_settings: Path | None = None) -> Path:
    settings = ["--settings", str(ensemble_settings)] if ensemble_settings else []
    run_cli(["repository", "--flavour", FLAVOUR, "--artifacts", str(selected), "--out", str(out),
             "--plan-filter", f"tensorrt_version={tensorrt_version},compute_capability={compute_capability}",
             *settings])
    return out


def serve(settings: Settings, extra: Sequence[str]) -> None:
    key = admin_key(settings.admin_key_file)  # checked before minutes of plan building
    tls = tls_flags(settings.tls_mode, settings.tls_dir)
    selected, tensorrt_version, compute_capability = build_plans(settings)
    repository = assemble_repository(selected, settings.workdir / "repository", tensorrt_version, compute_capability,
                                     settings.ensemble_settings)
    command = tritonserver_command(repository, key, tls, settings.log_verbose, extra)
    print("+ " + " ".join(launcher.redacted(command)), flush=True)
    os.execvp(command[0], command)  # Triton becomes the container's main process (gets SIGTERM)


def versions() -> dict[str, str]:
    """Facts to check on a new GPU host (docker/README.md): which Triton, TensorRT, GPU."""
    import numpy
    import torch

    from export.tensorrt_build import cuda_device, import_tensorrt

    facts = {"triton_release": os.environ.get("NVIDIA_TRITON_SERVER_VERSION", "?"),
             "triton_version": os.environ.get("TRITON_SERVER_VERSION", "?"),
             "python": sys.version.split()[0], "numpy": numpy.__version__,
             "torch": torch.__version__, "torch_cuda": str(torch.version.cuda),
             "libnvinfer": system_libnvinfer_version(), "tensorrt_python": import_tensorrt().__version__}
    facts["gpu"], facts["compute_capability"] = cuda_device()
    return facts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "build-plans", "versions"])
    parser.add_argument("extra", nargs="*", help="serve: extra tritonserver flags (after --)")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_environment(os.environ)
        if args.command == "versions":
            print(json.dumps(versions(), indent=2))
        elif args.command == "build-plans":
            build_plans(settings)
        else:
            serve(settings, args.extra)
    except Exception as exc:
        from export.errors import ExportError

        if not isinstance(exc, (StartError, ExportError)):
            raise
        print(f"deepfake-serve: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
