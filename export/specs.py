"""The four detectors, described once.

Everything that differs between the classifiers (released file, crop size,
normalisation, the ensemble tensor that carries their logits) is written here
and nowhere else; export, repository assembly, tests and benchmarks read it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# Tensor names shared by every exported classifier (ONNX, TensorRT plan, Triton config).
from deepfake_contract import CLASSIFIER_INPUT, CLASSIFIER_OUTPUT  # noqa: F401

DEEPFAKEBENCH_MEAN_STD = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
CLIP_MEAN_STD = (
    (0.48145466, 0.4578275, 0.40821073),
    (0.26862954, 0.26130258, 0.27577711),
)


@dataclass(frozen=True)
class ClassifierSpec:
    name: str  # Triton model name (fixed public contract)
    checkpoint_file: str  # file name of the published checkpoint
    layout: str  # checkpoint layout id understood by export.layouts
    input_size: int  # square crop side the model was trained on
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    published_at: str  # where users download the checkpoint
    approx_size_mb: float  # expected checkpoint size, for the README and sanity checks

    @property
    def crop_tensor(self) -> str:
        """Ensemble tensor (emitted by face_detector) that feeds this classifier."""
        return f"FACES_{self.input_size}"

    @property
    def logits_tensor(self) -> str:
        """Ensemble tensor carrying this classifier's logits to weighted_average."""
        return f"{self.name.upper()}_LOGITS"


_DEEPFAKEBENCH_RELEASE = "https://github.com/SCLBD/DeepfakeBench/releases/tag/v1.0.1"
_EFFORT_DRIVE = "https://drive.google.com/file/d/1m4fyJecABU-Yk3bJ4b1WhUwQa0xCkMLI/view"

XCEPTION = ClassifierSpec(
    name="xception",
    checkpoint_file="xception_best.pth",
    layout="xception",
    input_size=256,
    mean=DEEPFAKEBENCH_MEAN_STD[0],
    std=DEEPFAKEBENCH_MEAN_STD[1],
    published_at=_DEEPFAKEBENCH_RELEASE,
    approx_size_mb=87.8,
)
EFFICIENTNET_B4 = ClassifierSpec(
    name="efficientnet_b4",
    checkpoint_file="effnb4_best.pth",
    layout="efficientnet_b4",
    input_size=256,
    mean=DEEPFAKEBENCH_MEAN_STD[0],
    std=DEEPFAKEBENCH_MEAN_STD[1],
    published_at=_DEEPFAKEBENCH_RELEASE,
    approx_size_mb=71.0,
)
F3NET = ClassifierSpec(
    name="f3net",
    checkpoint_file="f3net_best.pth",
    layout="f3net",
    input_size=256,
    mean=DEEPFAKEBENCH_MEAN_STD[0],
    std=DEEPFAKEBENCH_MEAN_STD[1],
    published_at=_DEEPFAKEBENCH_RELEASE,
    approx_size_mb=90.4,
)
EFFORT_CLIP = ClassifierSpec(
    name="effort_clip",
    checkpoint_file="effort_clip_L14_trainOn_FaceForensic.pth",
    layout="effort",
    input_size=224,
    mean=CLIP_MEAN_STD[0],
    std=CLIP_MEAN_STD[1],
    published_at=_EFFORT_DRIVE,
    approx_size_mb=1213.8,
)

# Column order of MODEL_FAKE_PROBABILITY / MODEL_NAMES in the ensemble output.
CLASSIFIERS: tuple[ClassifierSpec, ...] = (XCEPTION, EFFICIENTNET_B4, F3NET, EFFORT_CLIP)
CLASSIFIER_NAMES: tuple[str, ...] = tuple(spec.name for spec in CLASSIFIERS)


def crop_sizes(classifiers: Sequence[ClassifierSpec] = CLASSIFIERS) -> tuple[int, ...]:
    """The distinct crop sizes the face detector must emit for these classifiers, in order."""
    return tuple(dict.fromkeys(spec.input_size for spec in classifiers))


def spec_by_name(name: str) -> ClassifierSpec:
    for spec in CLASSIFIERS:
        if spec.name == name:
            return spec
    raise KeyError(f"unknown classifier {name!r}; known: {', '.join(CLASSIFIER_NAMES)}")
