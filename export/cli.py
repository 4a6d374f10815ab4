"""`deepfake-export`: published checkpoints → fixed checkpoints → ONNX → TensorRT plans.

Each subcommand is one `Command` (name, help, add_arguments, run); adding one is
one entry in COMMANDS. Errors a user can fix (ExportError) print one message and
exit 1 without a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from deepfake_models.errors import ModelFileError
from export import repository, triton_config
from export.errors import ExportError

log = logging.getLogger("export")


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _model_names(parser: argparse.ArgumentParser) -> None:
    from deepfake_models import CLASSIFIER_NAMES

    parser.add_argument(
        "--model", dest="models", action="append", choices=CLASSIFIER_NAMES,
        help="only this model (repeatable; default: every classifier)",
    )


def _selected(args: argparse.Namespace) -> list[str]:
    from deepfake_models import CLASSIFIER_NAMES

    return args.models or list(CLASSIFIER_NAMES)


# -- demo-weights -------------------------------------------------------------

def _demo_weights_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="folder to write the demo checkpoints to (one per classifier)")
    parser.add_argument("--seed", type=int, default=0)


def _demo_weights(args: argparse.Namespace) -> int:
    from export.demo_weights import write_demo_weights

    paths = write_demo_weights(args.out, args.seed)
    _banner(f"wrote untrained demo weights to {args.out}: {', '.join(p.name for p in paths)}")
    return 0


# -- fix ----------------------------------------------------------------------

def _fix_arguments(parser: argparse.ArgumentParser) -> None:
    from deepfake_models import CLASSIFIER_NAMES

    parser.add_argument("checkpoint", type=Path, help="a published checkpoint (.pth)")
    parser.add_argument("--out", type=Path, required=True, help="build folder")
    parser.add_argument(
        "--model", choices=CLASSIFIER_NAMES,
        help="the model the file must hold (default: from its published file name, else detected)",
    )


def _fix(args: argparse.Namespace) -> int:
    from deepfake_models import spec_by_name
    from export.artifacts import BuildArtifacts
    from export.fixing import fix_checkpoint

    expected = spec_by_name(args.model) if args.model else None
    manifest = fix_checkpoint(args.checkpoint, BuildArtifacts(args.out), expected)
    print(f"{manifest['model']}: fixed checkpoint in {BuildArtifacts(args.out).fixed_checkpoint(manifest['model'])}")
    _warn_licences({manifest["model"]: manifest["licence"]})
    return 0


# -- onnx ---------------------------------------------------------------------

def _onnx_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--artifacts", type=Path, required=True, help="build folder holding fixed checkpoints")
    _model_names(parser)


def _onnx(args: argparse.Namespace) -> int:
    from export.artifacts import BuildArtifacts
    from export.onnx_export import export_classifier

    artifacts = BuildArtifacts(args.artifacts)
    for name in _selected(args):
        export_classifier(name, artifacts)
    _print_onnx_summary(artifacts, _selected(args))
    _warn_licences({name: artifacts.licence(name) for name in _selected(args)})
    return 0


# -- tensorrt -----------------------------------------------------------------

def _tensorrt_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--artifacts", type=Path, required=True, help="build folder holding the ONNX files")
    parser.add_argument("--opt-batch", type=int, default=8, help="batch size TensorRT optimises for (default 8)")
    served = triton_config.FLAVOURS["tensorrt"].classifier_max_batch_size
    parser.add_argument("--max-batch", type=int, default=served,
                        help=f"largest batch the plan accepts (default {served}: the tensorrt flavour's max_batch_size, "
                             "which Triton warms up with; a smaller plan does not load there)")
    _model_names(parser)


def _tensorrt(args: argparse.Namespace) -> int:
    from export.artifacts import BuildArtifacts
    from export.tensorrt_build import Profile, build_plan

    artifacts = BuildArtifacts(args.artifacts)
    profile = Profile(min_batch=1, opt_batch=args.opt_batch, max_batch=args.max_batch)
    for name in _selected(args):
        sidecar = build_plan(name, artifacts, profile)
        print(f"{name}: {artifacts.plan(name, sidecar['cache_key'])} (TensorRT {sidecar['tensorrt_version']}, "
              f"{sidecar['gpu_name']}, compute capability {sidecar['compute_capability']})")
    return 0


# -- quantize -----------------------------------------------------------------

def _quantize_arguments(parser: argparse.ArgumentParser) -> None:
    from export.quantize import Gate

    parser.add_argument("--artifacts", type=Path, required=True, help="build folder holding the ONNX files")
    parser.add_argument("--max-diff", type=float, default=Gate().max_abs,
                        help=f"gate: largest |INT8 - FP32| fake probability on held-out crops (default {Gate().max_abs})")
    parser.add_argument("--mean-diff", type=float, default=Gate().mean_abs,
                        help=f"gate: largest mean |INT8 - FP32| fake probability (default {Gate().mean_abs})")
    _model_names(parser)


def _quantize(args: argparse.Namespace) -> int:
    from export.artifacts import BuildArtifacts
    from export.quantize import Gate, quantize_classifier

    try:
        gate = Gate(max_abs=args.max_diff, mean_abs=args.mean_diff)
    except ValueError as error:
        raise ExportError(str(error)) from None
    artifacts = BuildArtifacts(args.artifacts)
    names, refused = _selected(args), []
    for name in names:
        report = quantize_classifier(name, artifacts, gate)
        verdict = (f"INT8 {artifacts.int8_onnx(name)}" if report["passed"]
                   else "REFUSED by the gate, the cpu flavour keeps FP32")
        refused += [] if report["passed"] else [name]
        print(f"{name}: {verdict} (max |Δ fake probability| {report['max_abs_fake_probability_diff']:.4f}, "
              f"mean {report['mean_abs_fake_probability_diff']:.4f} on {report['holdout_crops']} held-out face crops)")
    # A refusal is the gate doing its job (that model keeps FP32), not a failed command: exit 0, say so last.
    print(f"INT8: {len(names) - len(refused)} of {len(names)} passed the gate"
          + (f"; refused, served in FP32: {', '.join(refused)}" if refused else ""))
    return 0


# -- all ----------------------------------------------------------------------

def _all_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoints", type=Path, required=True, help="folder holding the published checkpoints")
    parser.add_argument("--out", type=Path, required=True, help="build folder")
    parser.add_argument(
        "--demo-if-missing", action="store_true",
        help="when the folder holds none of the published checkpoints, build from untrained demo weights",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the demo weights")


def _all(args: argparse.Namespace) -> int:
    from deepfake_models import CLASSIFIERS
    from export.artifacts import BuildArtifacts
    from export.fixing import fix_checkpoint
    from export.onnx_export import export_classifier

    artifacts = BuildArtifacts(args.out)
    checkpoints = _checkpoint_folder(args.checkpoints, artifacts, args.demo_if_missing, args.seed)
    for spec in CLASSIFIERS:
        fix_checkpoint(checkpoints / spec.checkpoint_file, artifacts, expected=spec)
    for spec in CLASSIFIERS:
        export_classifier(spec.name, artifacts)
    _print_onnx_summary(artifacts, [spec.name for spec in CLASSIFIERS])
    _warn_licences({spec.name: artifacts.licence(spec.name) for spec in CLASSIFIERS})
    return 0


def _checkpoint_folder(folder: Path, artifacts, demo_if_missing: bool, seed: int) -> Path:
    """The folder to take every classifier's checkpoint from: `folder` when it holds all of
    them, the demo-weights folder when it holds none (and demo weights are allowed).
    Real and demo weights are never mixed."""
    from deepfake_models import CLASSIFIERS
    from export.demo_weights import write_demo_weights

    present = [spec for spec in CLASSIFIERS if (folder / spec.checkpoint_file).is_file()]
    if len(present) == len(CLASSIFIERS):
        return folder
    missing = [spec for spec in CLASSIFIERS if spec not in present]
    wanted = "\n".join(
        f"  {spec.checkpoint_file} (~{spec.approx_size_mb:,.0f} MB) from {spec.published_at}" for spec in missing
    )
    if present:
        raise ExportError(
            f"{folder} holds {len(present)} of the {len(CLASSIFIERS)} published checkpoints; missing:\n{wanted}\n"
            "Real and demo weights are never mixed: add the missing files, or empty the folder to use demo weights."
        )
    if not demo_if_missing:
        raise ExportError(
            f"{folder} holds none of the published checkpoints:\n{wanted}\n"
            "Download them there (see export/README.md), or pass --demo-if-missing to build untrained demo models."
        )
    _banner(
        f"{folder} holds none of the published checkpoints: building UNTRAINED DEMO MODELS from seeded "
        f"random weights in {artifacts.demo_weights_dir}. Their scores mean nothing. "
        f"Put the {len(CLASSIFIERS)} published files in {folder} (see export/README.md) and re-run for real detectors."
    )
    write_demo_weights(artifacts.demo_weights_dir, seed)
    return artifacts.demo_weights_dir


def _banner(message: str) -> None:
    bar = "!" * 78
    print(f"\n{bar}\n{message}\n{bar}\n", file=sys.stderr)


def _warn_licences(licences: dict[str, str]) -> None:
    """A banner when non-commercial (CC BY-NC) weights were exported."""
    from export.licences import non_commercial_warning

    warning = non_commercial_warning(licences)
    if warning:
        _banner(warning)


def _print_onnx_summary(artifacts, names: list[str]) -> None:
    from export.provenance import read_json

    for name in names:
        report = read_json(artifacts.onnx_parity(name)) or {}
        worst = max(batch["max_abs_fake_probability_diff"] for batch in report["batches"].values())
        untrained = " [UNTRAINED DEMO WEIGHTS]" if report["untrained"] else ""
        print(f"{name}: {artifacts.onnx(name)} (max |Δ fake probability| vs PyTorch {worst:.1e}){untrained}")


COMMANDS: tuple[Command, ...] = (
    Command("demo-weights", "write seeded random checkpoints in the released layouts", _demo_weights_arguments,
            _demo_weights),
    Command("fix", "strictly load a published checkpoint and write the fixed checkpoint", _fix_arguments, _fix),
    Command("onnx", "export fixed checkpoints to ONNX and check parity", _onnx_arguments, _onnx),
    Command("tensorrt", "build TensorRT FP16 plans (on the target GPU)", _tensorrt_arguments, _tensorrt),
    Command("quantize", "INT8 ONNX for the cpu flavour, kept only where it passes the accuracy gate",
            _quantize_arguments, _quantize),
    Command("all", "fix + onnx for every classifier's published checkpoint", _all_arguments, _all),
    Command("repository", "assemble a servable Triton model repository of one flavour", repository.add_arguments,
            repository.run),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepfake-export", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        subparser = subparsers.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(subparser)
        subparser.set_defaults(run=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    # The dynamo exporter's optimiser logs every pass and folded constant at INFO.
    for chatty in ("onnxscript", "onnx_ir"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        return args.run(args)
    except (ExportError, ModelFileError) as error:
        print(f"deepfake-export {args.command}: error: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # a full disk, a folder it may not write: the machine's, not a bug
        where = f": {error.filename}" if error.filename else ""
        print(f"deepfake-export {args.command}: error: {error.strerror or error}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("deepfake-export: interrupted", file=sys.stderr)
        return 130
