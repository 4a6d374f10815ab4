"""Assemble a servable Triton model repository of one flavour from the export outputs.

    deepfake-export repository --flavour cpu --artifacts build --out build/repository/cpu \
        [--settings ensemble-settings.json]

Every config is generated (export/triton_config.py); python models are copied
from model_repository/; model files (ONNX, plans) are hard-linked when possible.
The combiner's weights, threshold and image score come from the ensemble settings
file (deepfake_contract.settings, written by `deepfake calibrate`) when one is given;
repository.json records the served settings and the file's sha256.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import deepfake_contract as contract
from deepfake_contract import settings as ensemble_settings
from deepfake_contract.parameters import encode
from deepfake_contract.settings import EnsembleSettings, SettingsError
from deepfake_models import CLASSIFIERS, ClassifierSpec, crop_sizes
from deepfake_serving import cpu_runtime
from deepfake_serving.combiner import CombinerConfigError, CombinerSettings
from export import triton_config
from export.artifacts import BuildArtifacts
from export.errors import ExportError
from export.provenance import sha256_file

SOURCES = Path(__file__).resolve().parent.parent / "model_repository"
MARKER = "repository.json"  # written last; marks a directory this command may overwrite


class RepositoryError(ExportError):
    """The repository cannot be assembled as asked."""


def default_settings(classifiers: Sequence[ClassifierSpec] = CLASSIFIERS) -> EnsembleSettings:
    """Equal weights, the default threshold and image score."""
    return EnsembleSettings(weights={spec.name: 1.0 for spec in classifiers})


@dataclass(frozen=True)
class SettingsSource:
    """Where the served ensemble settings were read from (recorded in repository.json)."""

    path: str
    sha256: str


def read_settings(path: Path) -> tuple[EnsembleSettings, SettingsSource]:
    try:
        settings = ensemble_settings.load(path)
    except SettingsError as exc:
        raise RepositoryError(str(exc)) from None
    return settings, SettingsSource(path=str(Path(path).resolve()), sha256=sha256_file(Path(path)))


@dataclass(frozen=True)
class RepositoryOptions:
    flavour: str = "cpu"
    # What the combiner serves: weights, threshold, image score (deepfake_contract.settings).
    ensemble: EnsembleSettings = field(default_factory=default_settings)
    ensemble_source: SettingsSource | None = None  # the settings file `ensemble` was read from
    face_detector: Mapping[str, str] = field(default_factory=dict)  # overrides of detector parameters
    ort_tensorrt: bool = False  # onnxruntime flavour: use the TensorRT execution provider
    # tensorrt flavour: sidecar fields a plan must match (e.g. tensorrt_version, compute_capability)
    plan_filter: Mapping[str, str] = field(default_factory=dict)
    # Run a GPU flavour's models on CPU instances (tests the pytorch flavour without a GPU).
    cpu_instances: bool = False
    # Also serve `deepfake_explainer` (Grad-CAM heatmaps; model_repository/README.md).
    explainer: bool = False
    # cpu flavour: serve a classifier's INT8 file where it passed the gate (export/quantize.py).
    int8: bool = True
    # cpu flavour: the classifiers' runtime (deepfake_serving.cpu_runtime; OpenVINO falls back to
    # onnxruntime where openvino is not installed).
    cpu_runtime: str = "openvino"
    # The public model's admission bounds; None: the flavour's (export/triton_config.py).
    admission: triton_config.Admission | None = None


def _place(source: Path, target: Path) -> None:
    """Hard-link a large model file (no copy of 1.2 GB), or copy across filesystems."""
    if not source.exists():
        raise RepositoryError(f"missing export output {source}: run `deepfake-export all` first")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _select_plan(artifacts: BuildArtifacts, name: str, plan_filter: Mapping[str, str], max_batch_size: int) -> Path:
    """The one plan built for this server from the current ONNX file.

    A plan only loads on the TensorRT version and GPU architecture that built it, and
    must accept the config's max_batch_size, so an ambiguous choice is an error, not a guess."""
    onnx_sha256 = sha256_file(artifacts.existing_onnx(name))
    built = artifacts.plans(name)
    usable = [p for p in built if p.get("onnx_sha256") == onnx_sha256
              and p.get("flags", {}).get("profile", {}).get("max_batch", 0) >= max_batch_size]
    chosen = [p for p in usable if all(str(p.get(key)) == str(value) for key, value in plan_filter.items())]
    if len(chosen) != 1:
        found = [{k: p.get(k) for k in ("tensorrt_version", "compute_capability", "gpu_name")} for p in usable]
        raise RepositoryError(
            f"{name}: {len(chosen)} TensorRT plans match {dict(plan_filter) or 'no filter'} among the "
            f"{len(usable)} built from the current ONNX with max batch >= {max_batch_size} "
            f"({len(built) - len(usable)} stale or too small): {found or 'run deepfake-export tensorrt on the target GPU'}; "
            "pass --plan-filter tensorrt_version=...,compute_capability=... to pick one"
        )
    return Path(chosen[0]["plan"])


def _write_model(out: Path, config, python_source: str | None = None) -> Path:
    model_dir = out / config.name
    version_dir = model_dir / "1"
    version_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "config.pbtxt").write_text(triton_config.render(config))
    if python_source:
        shutil.copy2(SOURCES / python_source / "1" / "model.py", version_dir / "model.py")
    return version_dir


def _classifier(out: Path, spec: ClassifierSpec, flavour: triton_config.Flavour, artifacts: BuildArtifacts,
                options: RepositoryOptions):
    runtime = flavour.classifier_runtime
    parameters: dict[str, str] = {}
    if runtime == triton_config.PYTHON_ONNX:
        # Threads per model come from its spec (a ViT may take every core; measured in
        # benchmarks/README.md).
        parameters["intra_op_threads"] = encode(spec.cpu_threads)
        parameters["runtime"] = encode(options.cpu_runtime)
    config = triton_config.classifier_config(spec, flavour, parameters)
    if runtime == triton_config.ONNXRUNTIME and options.ort_tensorrt:
        triton_config.add_ort_tensorrt_accelerator(config, cache_dir=f"/tmp/ort_trt_cache/{spec.name}")
    python_source = {triton_config.PYTHON_ONNX: "onnx_classifier",
                     triton_config.PYTORCH: "pytorch_classifier"}.get(runtime)
    version_dir = _write_model(out, config, python_source)
    if runtime == triton_config.PYTHON_ONNX and options.int8:
        from export.quantize import served_cpu_onnx

        source, precision = served_cpu_onnx(spec.name, artifacts)
        _place(source, version_dir / "model.onnx")
        config.parameters["precision"].string_value = precision  # shown in repository.json
    elif runtime in (triton_config.PYTHON_ONNX, triton_config.ONNXRUNTIME):
        _place(artifacts.onnx(spec.name), version_dir / "model.onnx")
    elif runtime == triton_config.TENSORRT:
        _place(_select_plan(artifacts, spec.name, options.plan_filter, flavour.classifier_max_batch_size),
               version_dir / "model.plan")
    else:
        _place(artifacts.fixed_checkpoint(spec.name), version_dir / "model.safetensors")
    return config


def _explainer(out: Path, flavour: triton_config.Flavour, classifiers: Sequence[ClassifierSpec],
               artifacts: BuildArtifacts, weights: Mapping[str, float]) -> list:
    """The explainer model (the fixed checkpoints of every classifier) and its ensemble."""
    from deepfake_contract.parameters import encode, to_parameters
    from deepfake_serving.explain import ExplainerSettings

    names = [spec.name for spec in classifiers]
    parameters = {**to_parameters(ExplainerSettings()), "weights": encode({n: weights[n] for n in names})}
    config = triton_config.explainer_config(flavour, names, crop_sizes(classifiers), parameters)
    version_dir = _write_model(out, config, "explainer")
    for name in names:
        _place(artifacts.fixed_checkpoint(name), version_dir / f"{name}.safetensors")
    pipeline = triton_config.pipeline_config(flavour, classifiers, explain=True)
    _write_model(out, pipeline, "pipeline")
    return [config, pipeline]


def assemble(artifacts_dir: Path, out: Path, options: RepositoryOptions = RepositoryOptions(),
             classifiers: Sequence[ClassifierSpec] = CLASSIFIERS) -> Path:
    if options.flavour not in triton_config.FLAVOURS:
        raise RepositoryError(f"unknown flavour {options.flavour!r}; choose from {sorted(triton_config.FLAVOURS)}")
    flavour = triton_config.FLAVOURS[options.flavour]
    if options.cpu_instances:
        if flavour.classifier_runtime not in (triton_config.PYTHON_ONNX, triton_config.PYTORCH):
            raise RepositoryError(f"the {flavour.name} flavour's classifiers need a GPU")
        flavour = replace(flavour, gpu=False, warmup=False)
    if options.cpu_runtime not in cpu_runtime.RUNTIMES:
        raise RepositoryError(f"unknown cpu runtime {options.cpu_runtime!r}; choose from {', '.join(cpu_runtime.RUNTIMES)}")
    if options.admission is not None:
        flavour = replace(flavour, admission=options.admission)
    artifacts = BuildArtifacts(Path(artifacts_dir))
    names = [spec.name for spec in classifiers]
    manifests = {name: artifacts.manifest(name) for name in names}
    untrained = frozenset(name for name, manifest in manifests.items() if manifest["untrained"])
    try:
        combiner = CombinerSettings.from_settings(options.ensemble, names, untrained)
    except CombinerConfigError as exc:
        raise RepositoryError(f"refusing to build: {exc}") from None

    try:
        detector_parameters = triton_config.face_detector_parameters(options.face_detector)
    except ValueError as exc:
        raise RepositoryError(f"face_detector: {exc}") from None
    max_faces = int(detector_parameters["max_faces"])
    if max_faces > flavour.classifier_max_batch_size:
        raise RepositoryError(
            f"max_faces={max_faces} exceeds the classifiers' max batch size {flavour.classifier_max_batch_size}"
        )

    out = Path(out)
    if out.exists() and not (out / MARKER).exists():
        raise RepositoryError(f"{out} exists and was not built by this command; refusing to overwrite it")
    # Built beside the target and swapped in at the end: a failed build leaves no half repository.
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        configs = [triton_config.face_detector_config(flavour, crop_sizes(classifiers), detector_parameters)]
        _write_model(staging, configs[-1], "face_detector")
        for spec in classifiers:
            configs.append(_classifier(staging, spec, flavour, artifacts, options))
        configs.append(triton_config.combiner_config(flavour, names, combiner.to_parameters()))
        _write_model(staging, configs[-1], "weighted_average")
        configs.append(triton_config.pipeline_config(flavour, classifiers))
        _write_model(staging, configs[-1], "pipeline")
        if options.explainer:
            configs += _explainer(staging, flavour, classifiers, artifacts, combiner.weights)
        problems = triton_config.check_pipelines({c.name: c for c in configs}, classifiers)
        if problems:
            raise RepositoryError("inconsistent pipeline (a bug):\n  " + "\n  ".join(problems))
        summary = {
            "flavour": flavour.name,
            "models": {name: {"untrained": name in untrained, "source_sha256": manifests[name]["source"]["sha256"]}
                       for name in names},
            "weights": dict(combiner.weights),
            "threshold": combiner.threshold,
            "image_score": combiner.image_score,
            "settings": options.ensemble.to_dict(),
            "settings_file": None if options.ensemble_source is None else vars(options.ensemble_source),
            "cpu_runtime": options.cpu_runtime if flavour.classifier_runtime == triton_config.PYTHON_ONNX else None,
            "precision": {c.name: c.parameters["precision"].string_value for c in configs if "precision" in c.parameters},
            # What the public models admit (model_repository/README.md, "Admission").
            "admission": {contract.ENSEMBLE_NAME: vars(flavour.admission),
                          **({contract.EXPLAINER_ENSEMBLE_NAME: vars(triton_config.EXPLAINER_ADMISSION)}
                             if options.explainer else {})},
        }
        (staging / MARKER).write_text(json.dumps(summary, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--flavour", default="cpu", choices=sorted(triton_config.FLAVOURS))
    parser.add_argument("--artifacts", type=Path, default=Path("build"), help="export output folder")
    parser.add_argument("--out", type=Path, required=True, help="repository folder to write")
    parser.add_argument("--settings", type=Path,
                        help="ensemble settings file (weights, threshold, image score) written by "
                             "`deepfake calibrate`; default: equal weights, threshold "
                             f"{ensemble_settings.DEFAULT_THRESHOLD}")
    parser.add_argument("--weights", type=json.loads,
                        help='instead of --settings: JSON object, model name -> weight >= 0 (every classifier)')
    parser.add_argument("--threshold", type=float, help="instead of --settings")
    parser.add_argument("--image-score", choices=ensemble_settings.IMAGE_SCORES, help="instead of --settings")
    parser.add_argument("--max-faces", type=int, help="faces scored per image (default 8)")
    parser.add_argument("--ort-tensorrt", action="store_true",
                        help="onnxruntime flavour: run through the TensorRT execution provider (FP16)")
    parser.add_argument("--cpu-instances", action="store_true",
                        help="pytorch flavour: CPU instances (to test it on a machine without a GPU)")
    parser.add_argument("--explainer", action="store_true",
                        help="also serve deepfake_explainer (Grad-CAM heatmaps, PyTorch on the fixed checkpoints)")
    parser.add_argument("--plan-filter", type=_key_values, default={},
                        help="tensorrt flavour: pick plans whose build record matches, "
                             "e.g. tensorrt_version=10.5.0,compute_capability=9.0")
    parser.add_argument("--admission", type=_admission, metavar="IN_FLIGHT,BULK,INTERACTIVE",
                        help="deepfake_detector's admission bounds: images in flight, then the queue of "
                             "each priority level (default: the flavour's, e.g. cpu 2,8,8); a request beyond "
                             "them is refused at once as overloaded")
    parser.add_argument("--cpu-runtime", default="openvino", choices=cpu_runtime.RUNTIMES,
                        help="cpu flavour: run the classifiers on OpenVINO (default; onnxruntime where openvino "
                             "is not installed) or on onnxruntime")
    parser.add_argument("--fp32", dest="int8", action="store_false",
                        help="cpu flavour: serve FP32 even where an INT8 file passed the gate (deepfake-export quantize)")


def _key_values(text: str) -> dict[str, str]:
    pairs = [item.split("=", 1) for item in text.split(",") if item]
    if any(len(pair) != 2 for pair in pairs):
        raise argparse.ArgumentTypeError(f"expected key=value[,key=value...], got {text!r}")
    return dict(pairs)


def _admission(text: str) -> triton_config.Admission:
    try:
        return triton_config.Admission(*(int(part) for part in text.split(",")))
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"expected three integers >= 1 (in flight, bulk queue, interactive "
                                         f"queue), got {text!r}: {exc}") from None


def _ensemble(args: argparse.Namespace) -> tuple[EnsembleSettings, SettingsSource | None]:
    given = {k: v for k, v in (("weights", args.weights), ("threshold", args.threshold),
                               ("image_score", args.image_score)) if v is not None}
    if args.settings is not None:
        if given:
            raise RepositoryError(f"--settings and --{'/--'.join(given)} both set the ensemble: "
                                  "edit the settings file instead")
        return read_settings(args.settings)
    try:
        return replace(default_settings(), **given), None
    except SettingsError as exc:
        raise RepositoryError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    ensemble, source = _ensemble(args)
    options = RepositoryOptions(
        flavour=args.flavour,
        ensemble=ensemble,
        ensemble_source=source,
        face_detector={"max_faces": str(args.max_faces)} if args.max_faces else {},
        cpu_instances=args.cpu_instances,
        ort_tensorrt=args.ort_tensorrt,
        plan_filter=args.plan_filter,
        explainer=args.explainer,
        int8=args.int8,
        cpu_runtime=args.cpu_runtime,
        admission=args.admission,
    )
    out = assemble(args.artifacts, args.out, options)
    summary = json.loads((out / MARKER).read_text())
    print(f"assembled the {summary['flavour']} repository in {out}")
    origin = f"the settings file {source.path}" if source else "the defaults and options"
    band = summary["settings"].get("uncertain_band")
    print(f"ensemble settings from {origin}: weights {summary['weights']}, threshold {summary['threshold']}, "
          f"uncertain band {'none' if band is None else [band['low'], band['high']]}")
    bounds = summary["admission"][contract.ENSEMBLE_NAME]
    print(f"admission: {bounds['in_flight']} images in flight, queues of {bounds['bulk_queue']} (bulk) and "
          f"{bounds['interactive_queue']} (interactive); beyond that, refused at once as overloaded")
    untrained = [name for name, model in summary["models"].items() if model["untrained"]]
    if untrained:
        print(f"WARNING: untrained demo weights for {', '.join(untrained)}: scores are meaningless")
    return 0
