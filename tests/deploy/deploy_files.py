"""Readers for the deployment files (docker/): pins, Dockerfiles, YAML, PromQL, ONNX I/O.

Small and strict on purpose: the files cannot be executed here (no Docker engine, no
cluster, no GPU), so the tests read them the way the tools would.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
K8S = DOCKER / "k8s"
VERSIONS_ENV = DOCKER / "versions.env"


def read_env(path: Path = VERSIONS_ENV) -> dict[str, str]:
    """KEY=VALUE lines as `docker compose --env-file` and `set -a; . file` read them (no quoting)."""
    values = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not re.fullmatch(r"[A-Z][A-Z0-9_]*", key) or any(c in value for c in " \"'$`"):
            raise ValueError(f"{path}:{number}: not a plain KEY=VALUE line: {line!r}")
        values[key] = value
    return values


def load_entrypoint():
    """docker/serving/entrypoint.py as a module (it is a script in the image, not a package)."""
    spec = importlib.util.spec_from_file_location("serving_entrypoint", DOCKER / "serving" / "entrypoint.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# -- Dockerfiles -------------------------------------------------------------------------------

def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    instructions, current = [], ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        keyword, _, arguments = current.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        current = ""
    if current:
        raise ValueError(f"{path}: unterminated line continuation")
    return instructions


def copy_sources(instructions: list[tuple[str, str]]) -> list[str]:
    sources = []
    for keyword, arguments in instructions:
        if keyword == "COPY":
            words = [w for w in shlex.split(arguments) if not w.startswith("--")]
            sources += words[:-1]
    return sources


def dockerignore_excludes(patterns_file: Path, path: str) -> bool:
    """Whether Docker's context filter drops `path` (relative to the context): patterns in
    order, the last match wins, `!` re-includes, a pattern matching a parent folder covers
    everything under it, `**` spans folders."""
    excluded = False
    for raw in patterns_file.read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        if _matches(pattern, path):
            excluded = not negate
    return excluded


def _matches(pattern: str, path: str) -> bool:
    regex = ""
    for part in re.split(r"(\*\*/?|\*|\?)", pattern):
        if part in ("**", "**/"):
            regex += "(.*/)?" if part == "**/" else ".*"
        elif part == "*":
            regex += "[^/]*"
        elif part == "?":
            regex += "[^/]"
        else:
            regex += re.escape(part)
    parts = path.split("/")
    return any(re.fullmatch(regex, "/".join(parts[:n])) for n in range(1, len(parts) + 1))


# -- YAML --------------------------------------------------------------------------------------

def yaml_documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def kustomization_resources(folder: Path) -> Iterator[tuple[Path, dict]]:
    """Every Kubernetes object a kustomization folder lists (recursively through folders)."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    for entry in kustomization.get("resources", []):
        target = (folder / entry).resolve()
        if target.is_dir():
            yield from kustomization_resources(target)
        else:
            for document in yaml_documents(target):
                yield target, document


def pod_spec(resource: dict) -> dict | None:
    kind = resource["kind"]
    if kind == "Pod":
        return resource["spec"]
    if kind in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
        return resource["spec"]["template"]["spec"]
    return None


def strategic_merge(base: Any, patch: Any, path: str = "") -> Any:
    """Kubernetes' strategic merge for the lists these manifests patch: containers, env and
    volumes merge by name, volumeMounts by mountPath; maps merge; scalars replace."""
    keys = {"containers": "name", "env": "name", "volumes": "name", "volumeMounts": "mountPath"}
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = strategic_merge(base[key], value, key) if key in base else value
        return merged
    if isinstance(base, list) and isinstance(patch, list) and path in keys:
        key = keys[path]
        merged = [dict(item) for item in base]
        for item in patch:
            match = next((i for i, old in enumerate(merged) if old[key] == item[key]), None)
            if match is None:
                merged.append(item)
            else:
                merged[match] = strategic_merge(merged[match], item, "")
        return merged
    return patch


# -- PromQL ------------------------------------------------------------------------------------

_PROMQL_WORDS = {
    # aggregations, functions and keywords used in our queries (an unknown word fails the test:
    # add it here only if it is PromQL, never a metric)
    "sum", "max", "min", "avg", "count", "by", "without", "rate", "irate", "increase", "clamp_min",
    "clamp_max", "histogram_quantile", "on", "ignoring", "group_left", "group_right", "and", "or",
    "unless", "offset", "bool", "abs", "topk", "bottomk", "delta", "avg_over_time", "max_over_time",
}


def promql_metrics(expr: str) -> set[str]:
    """Metric names in a PromQL expression (label matchers, groupings, durations, strings,
    Grafana variables and prometheus-adapter templates removed)."""
    text = re.sub(r"<<[^>]*>>", "", expr)  # adapter templates: <<.LabelMatchers>>
    text = re.sub(r"\$__\w+|\$\{?\w+\}?", "", text)  # Grafana variables
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", text)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", text))
    return {name for name in names if name not in _PROMQL_WORDS and not re.fullmatch(r"\d+(e\d+)?", name)}


def promql_labels(expr: str) -> set[str]:
    """Label names a PromQL expression filters or groups on."""
    text = re.sub(r"<<[^>]*>>", "", expr)
    labels = set()
    for matchers in re.findall(r"\{([^}]*)\}", text):
        labels |= set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", matchers))
    for grouping in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", text):
        labels |= {g.strip() for g in grouping.split(",") if g.strip()}
    return labels


# Triton's Prometheus metrics (server docs/user_guide/metrics.md; docs/design.md §8)
# with their labels. GPU metrics exist only with a GPU and --allow-gpu-metrics.
TRITON_METRICS: dict[str, set[str]] = {
    **{name: {"model", "version"} for name in (
        "nv_inference_request_success", "nv_inference_count", "nv_inference_exec_count",
        "nv_inference_pending_request_count", "nv_inference_request_duration_us",
        "nv_inference_queue_duration_us", "nv_inference_compute_input_duration_us",
        "nv_inference_compute_infer_duration_us", "nv_inference_compute_output_duration_us")},
    "nv_inference_request_failure": {"model", "version", "reason"},
    **{name: {"gpu_uuid"} for name in (
        "nv_gpu_utilization", "nv_gpu_memory_total_bytes", "nv_gpu_memory_used_bytes",
        "nv_gpu_power_usage", "nv_gpu_power_limit", "nv_energy_consumption")},
    **{name: set() for name in ("nv_cpu_utilization", "nv_cpu_memory_total_bytes", "nv_cpu_memory_used_bytes",
                                "nv_pinned_memory_pool_total_bytes", "nv_pinned_memory_pool_used_bytes")},
}
GPU_ONLY_METRICS = {name for name in TRITON_METRICS if name.startswith("nv_gpu_") or name == "nv_energy_consumption"}
# Labels Prometheus adds when scraping (job, instance) or our relabelling does (namespace, pod).
SCRAPE_LABELS = {"job", "instance", "namespace", "pod"}


def face_detector_metrics() -> dict[str, set[str]]:
    """The counters face_detector registers (pb_utils.MetricFamily) and the label names of
    their metrics, read from its source."""
    tree = ast.parse((REPO / "model_repository" / "face_detector" / "1" / "model.py").read_text())
    families: dict[str, str] = {}  # attribute -> metric name
    metrics: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            call, target = node.value, node.targets[0]
            callee = ast.unparse(call.func)
            if callee.endswith("MetricFamily") and isinstance(target, ast.Attribute):
                name = next(k.value.value for k in call.keywords if k.arg == "name")
                families[target.attr] = name
                metrics.setdefault(name, set())
            elif callee.endswith(".Metric") and isinstance(call.func.value, ast.Attribute):
                family = families[call.func.value.attr]
                labels = next(k.value for k in call.keywords if k.arg == "labels")
                metrics[family] |= {key.value for key in labels.keys}
    return metrics


def face_detector_outcomes() -> set[str]:
    source = (REPO / "model_repository" / "face_detector" / "1" / "model.py").read_text()
    return set(re.findall(r'labels=\{"outcome": "(\w+)"\}', source))


# -- ONNX --------------------------------------------------------------------------------------

def _varint(handle) -> int:
    result, shift = 0, 0
    while True:
        byte = handle.read(1)
        if not byte:
            raise EOFError("truncated varint")
        result |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return result
        shift += 7


def _fields(handle, end: int) -> Iterator[tuple[int, int, int]]:
    """(field number, wire type, value-or-length) of a protobuf message up to `end`; for
    length-delimited fields the handle is left at the payload's start."""
    while handle.tell() < end:
        key = _varint(handle)
        number, wire = key >> 3, key & 7
        if wire == 0:
            yield number, wire, _varint(handle)
        elif wire == 1:
            handle.seek(8, 1)
        elif wire == 2:
            length = _varint(handle)
            start = handle.tell()
            yield number, wire, length
            handle.seek(start + length)
        elif wire == 5:
            handle.seek(4, 1)
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


def onnx_graph_io(path: Path):
    """(inputs, outputs) ValueInfoProtos of an ONNX model without loading its weights (the
    Effort model is 1.2 GB): ModelProto.graph (7) -> GraphProto.input (11) / output (12)."""
    import onnx

    inputs, outputs = [], []
    size = path.stat().st_size
    with open(path, "rb") as handle:
        for number, wire, length in _fields(handle, size):
            if number == 7 and wire == 2:
                for inner, inner_wire, inner_length in _fields(handle, handle.tell() + length):
                    if inner in (11, 12) and inner_wire == 2:
                        info = onnx.ValueInfoProto.FromString(handle.read(inner_length))
                        (inputs if inner == 11 else outputs).append(info)
    return inputs, outputs
