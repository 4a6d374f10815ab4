"""What every classifier file declares (ClassifierSpec), and the registry they declare it in.

A classifier is one module in deepfake_models/classifiers/: its network, its released
checkpoint's layout (key renames), its preprocessing (crop size, mean/std), its parity
tolerances, its threads, its Grad-CAM target layer, its licence and its published file's
checksum, registered once with `register`. Export, repository assembly, serving
(pytorch_classifier, the explainer), tests and benchmarks read the registry; no module
outside deepfake_models/classifiers/ names a classifier.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

from torch import nn

from deepfake_models.checkpoints import parameters_on_meta
from deepfake_models.layout import ReleasedLayout

# Where the three CNN checkpoints are published, and the normalisation they were trained with.
DEEPFAKEBENCH_RELEASE = "https://github.com/SCLBD/DeepfakeBench/releases/tag/v1.0.1"
DEEPFAKEBENCH_MEAN_STD = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
# The licence of the four published checkpoints (DeepfakeBench's and Effort's releases).
CC_BY_NC_4_0 = "CC BY-NC 4.0"
CLIP_MEAN_STD = (
    (0.48145466, 0.4578275, 0.40821073),
    (0.26862954, 0.26130258, 0.27577711),
)


@dataclass(frozen=True)
class Tolerances:
    """Largest |Δ fake probability| an exported runtime may show against its reference."""

    onnx: float = 1e-4  # ONNX FP32 (onnxruntime CPU) vs PyTorch FP32
    reduced_precision: float = 1e-2  # FP16 mixed-precision ONNX and TensorRT plans vs ONNX FP32


@dataclass(frozen=True)
class ClassifierSpec:
    name: str  # Triton model name (fixed public contract)
    column: int  # order of MODEL_FAKE_PROBABILITY / MODEL_NAMES columns (ascending; gaps allowed)
    network: Callable[[], nn.Module]  # the full-size network, randomly initialised
    layout: ReleasedLayout  # how the published checkpoint's keys map to network.state_dict()
    checkpoint_file: str  # file name of the published checkpoint
    input_size: int  # square crop side the model was trained on
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    published_at: str  # where users download the checkpoint
    approx_size_mb: float  # expected checkpoint size, for the README and sanity checks
    # The module of the network whose output Grad-CAM explains (its last spatial feature map),
    # given the network built by `network` (the explainer calls it on the loaded network).
    gradcam_layer: Callable[[nn.Module], nn.Module]
    licence: str  # of the published checkpoint (its weights), shown to whoever downloads it
    # sha256 of the published file when known: `fix` refuses a file that differs. None: not checked.
    published_sha256: str | None = None
    tolerances: Tolerances = Tolerances()
    cpu_threads: int = 1  # onnxruntime intra-op threads in the cpu flavour (0 = every core)

    def build_network(self, empty: bool = False) -> nn.Module:
        """The full-size network in eval mode, randomly initialised; with `empty`, its parameters
        are on the `meta` device instead, for `load_strict` to assign from a checkpoint."""
        with parameters_on_meta() if empty else nullcontext():
            return self.network().eval()


_REGISTRY: dict[str, ClassifierSpec] = {}


def register(spec: ClassifierSpec) -> ClassifierSpec:
    """Add a classifier (each classifier module calls this once, at import)."""
    for other in _REGISTRY.values():
        clashes = [what for what, a, b in (("name", spec.name, other.name), ("column", spec.column, other.column),
                                           ("checkpoint file", spec.checkpoint_file, other.checkpoint_file),
                                           ("layout name", spec.layout.name, other.layout.name)) if a == b]
        if clashes:
            raise ValueError(f"classifier {spec.name!r} has the same {', '.join(clashes)} as {other.name!r}")
    _REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a classifier registered at run time (tests)."""
    del _REGISTRY[name]


def registered() -> tuple[ClassifierSpec, ...]:
    """Every registered classifier, in column order."""
    return tuple(sorted(_REGISTRY.values(), key=lambda spec: spec.column))


def spec_by_name(name: str) -> ClassifierSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(spec.name for spec in registered())
        raise KeyError(f"unknown classifier {name!r}; known: {known}") from None


def crop_sizes(classifiers: Sequence[ClassifierSpec]) -> tuple[int, ...]:
    """The distinct crop sizes the face detector must emit for these classifiers, in order."""
    return tuple(dict.fromkeys(spec.input_size for spec in classifiers))
