"""DeepfakeBench-exact network definitions of the four detectors.

Each network takes the normalised NCHW float image and returns logits [N, 2]
(index 1 = fake); scaling and normalisation live in export.servable.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from export.architectures.efficientnet_b4 import EfficientNetB4
from export.architectures.effort import Effort
from export.architectures.f3net import F3Net
from export.architectures.xception import Xception
from export.specs import ClassifierSpec

_NETWORKS: dict[str, Callable[[], nn.Module]] = {
    "xception": Xception,
    "efficientnet_b4": EfficientNetB4,
    "f3net": F3Net,
    "effort": Effort,
}


def build_network(spec: ClassifierSpec) -> nn.Module:
    """The full-size network for `spec`, randomly initialised, in eval mode."""
    return _NETWORKS[spec.layout]().eval()
