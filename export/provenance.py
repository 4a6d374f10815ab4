"""Hashes, tool versions and JSON records: what every export step writes next to
its output so that a re-run can tell whether the output is still up to date."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

_PACKAGE_DIR = Path(__file__).resolve().parent
# Packages whose code shapes the export outputs: export itself, the classifiers (networks,
# layouts, preprocessing) and the contract (tensor names in every ONNX file and plan).
_FINGERPRINTED_PACKAGES = ("export", "deepfake_models", "deepfake_contract")
# Modules that do not shape any export output: editing them must not invalidate
# fixed checkpoints, ONNX files or plans.
# quantize.py makes INT8 files from the ONNX ones: its own cache key is quantize.code_key().
_NOT_FINGERPRINTED = {"cli.py", "__main__.py", "repository.py", "triton_config.py", "quantize.py"}
_TOOLS = ("torch", "onnx", "onnxruntime", "transformers", "efficientnet_pytorch", "safetensors", "numpy")


def sha256_file(path: Path, chunk_bytes: int = 16 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def tool_versions() -> dict[str, str]:
    versions = {}
    for tool in _TOOLS:
        try:
            versions[tool] = metadata.version(tool)
        except metadata.PackageNotFoundError:
            versions[tool] = "not installed"
    return versions


def _package_dir(name: str) -> Path:
    """Where package `name` lives, without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {name} not found")
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def code_fingerprint() -> str:
    """sha256 over the code (export, deepfake_models, deepfake_contract) and tool versions
    that produce the artifacts."""
    digest = hashlib.sha256()
    for package in _FINGERPRINTED_PACKAGES:
        root = _package_dir(package)
        for path in sorted(root.rglob("*.py")):
            if package == "export" and path.relative_to(root).as_posix() in _NOT_FINGERPRINTED:
                continue
            digest.update(f"{package}/{path.relative_to(root).as_posix()}".encode())
            digest.update(path.read_bytes())
    digest.update(json.dumps(tool_versions(), sort_keys=True).encode())
    return digest.hexdigest()


@contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a private temporary name next to `path`; once the block has written it
    completely, rename it over `path`. Neither a failed or interrupted run nor a
    concurrent one (two test sessions sharing a build folder) leaves a half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        yield partial
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def write_json(path: Path, record: dict[str, Any]) -> None:
    with atomic_output(path) as partial:
        partial.write_text(json.dumps(record, indent=2) + "\n")


def read_json(path: Path) -> dict[str, Any] | None:
    """The record at `path`, or None when there is none or it is unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
