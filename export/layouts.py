"""Converting released checkpoints to canonical keys with each classifier's ReleasedLayout.

Canonical keys are the `state_dict()` keys of the networks in deepfake_models.
Each layout (declared in its classifier's file) lists the prefix renames that take a
released key to its canonical key, the extra keys it may carry that no architecture
uses (dropped by exact pattern, nothing else), and, for Effort, the SVD-residual
projections that are folded into plain weights (docs/design.md, "Checkpoints").
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from deepfake_models.layout import ReleasedLayout
from deepfake_models.registry import registered
from export.errors import UnknownLayoutError, WrongArchitectureError

log = logging.getLogger(__name__)

DDP_PREFIX = "module."
# The SVD-residual attention projections of Effort, and the parts each is stored as.
_SVD_WEIGHT = re.compile(r"backbone\.encoder\.layers\.\d+\.self_attn\.(q|k|v|out)_proj\.weight")
_SVD_PARTS = ("weight_main", "U_residual", "S_residual", "V_residual")
SVD_RESIDUAL_RANK = 1

StateDict = dict[str, torch.Tensor]


def _layouts() -> tuple[ReleasedLayout, ...]:
    return tuple(spec.layout for spec in registered())


def layout_by_name(name: str) -> ReleasedLayout:
    for layout in _layouts():
        if layout.name == name:
            return layout
    raise KeyError(f"unknown layout {name!r}")


def model_of(layout: ReleasedLayout) -> str:
    """The classifier (Triton model name) whose checkpoint has this layout, for messages."""
    return next(spec.name for spec in registered() if spec.layout == layout)


@dataclass
class Conversion:
    """What was done to a released state_dict to make it canonical (for the manifest)."""

    layout: str
    stripped_ddp_prefix: bool = False
    renamed: dict[str, str] = field(default_factory=dict)  # released key -> canonical key
    folded: list[str] = field(default_factory=list)  # canonical weights built from SVD parts
    dropped: list[str] = field(default_factory=list)


def strip_ddp_prefix(state_dict: Mapping[str, torch.Tensor], source: str) -> tuple[StateDict, bool]:
    """Remove `module.` when every key has it; a partly prefixed file is an error."""
    prefixed = [key.startswith(DDP_PREFIX) for key in state_dict]
    if not any(prefixed):
        return dict(state_dict), False
    if not all(prefixed):
        unprefixed = [key for key in state_dict if not key.startswith(DDP_PREFIX)]
        raise UnknownLayoutError(
            f"{source}: only some keys carry the {DDP_PREFIX!r} prefix "
            f"(e.g. {unprefixed[0]!r} does not); a released checkpoint has it on all or none"
        )
    return {key[len(DDP_PREFIX) :]: tensor for key, tensor in state_dict.items()}, True


def detect_layout(state_dict: Mapping[str, torch.Tensor], source: str) -> ReleasedLayout:
    """Identify the released layout of a state_dict whose `module.` prefix is stripped: the
    matching layout with the most signature keys (see ReleasedLayout.signature_keys)."""
    matches = [layout for layout in _layouts() if all(key in state_dict for key in layout.signature_keys)]
    if matches:
        return max(matches, key=lambda layout: len(layout.signature_keys))
    sample = ", ".join(list(state_dict)[:5]) or "(no keys)"
    files = ", ".join(spec.checkpoint_file for spec in registered())
    raise UnknownLayoutError(
        f"{source} is not one of the supported DeepfakeBench/Effort checkpoints ({files}); its first keys are: {sample}"
    )


def check_expected_layout(layout: ReleasedLayout, expected: ReleasedLayout, source: str) -> None:
    if layout != expected:
        raise WrongArchitectureError(
            f"{source} is a checkpoint of the {model_of(layout)} model, not of the {model_of(expected)} model"
        )


def drop_known_extras(state_dict: StateDict, layout: ReleasedLayout, conversion: Conversion) -> StateDict:
    kept = {}
    for key, tensor in state_dict.items():
        if layout.is_droppable(key):
            log.info("dropping %s: a known extra that the %s model does not use", key, layout.name)
            conversion.dropped.append(key)
        else:
            kept[key] = tensor
    return kept


def released_shapes(layout: ReleasedLayout, canonical_shapes: Mapping[str, torch.Size]) -> dict[str, torch.Size]:
    """The keys and shapes a released file must hold (after stripping `module.`)
    for a network whose canonical state_dict has `canonical_shapes`."""
    shapes = {}
    for key, shape in canonical_shapes.items():
        released = layout.released_key(key)
        if layout.svd_residual and _SVD_WEIGHT.fullmatch(key):
            stem = released[: -len("weight")]
            out_features, in_features = shape
            shapes[stem + "weight_main"] = shape
            shapes[stem + "U_residual"] = torch.Size([out_features, SVD_RESIDUAL_RANK])
            shapes[stem + "S_residual"] = torch.Size([SVD_RESIDUAL_RANK])
            shapes[stem + "V_residual"] = torch.Size([SVD_RESIDUAL_RANK, in_features])
        else:
            shapes[released] = shape
    return shapes


def fold_svd_residual(
    weight_main: torch.Tensor, u_residual: torch.Tensor, s_residual: torch.Tensor, v_residual: torch.Tensor
) -> torch.Tensor:
    """The weight Effort's SVDResidualLinear applies: W = W_main + U @ diag(S) @ V.

    float32, evaluated left to right like the original; V is stored as rows of
    Vh and is used as is (no transpose).
    """
    residual = u_residual.float() @ torch.diag(s_residual.float()) @ v_residual.float()
    return weight_main.float() + residual


def to_canonical(state_dict: StateDict, layout: ReleasedLayout, conversion: Conversion) -> StateDict:
    """Rename released keys to canonical ones and fold SVD residuals.

    Expects a state_dict already checked against `released_shapes`.
    """
    canonical = {}
    for key, tensor in state_dict.items():
        part = key.rsplit(".", 1)[-1]
        if layout.svd_residual and part in _SVD_PARTS:
            if part != "weight_main":
                continue
            stem = key[: -len(part)]
            folded_key = layout.canonical_key(stem + "weight")
            canonical[folded_key] = fold_svd_residual(*(state_dict[stem + name] for name in _SVD_PARTS))
            conversion.folded.append(folded_key)
            continue
        new_key = layout.canonical_key(key)
        if new_key != key:
            conversion.renamed[key] = new_key
        canonical[new_key] = tensor
    return canonical


def to_released(canonical: Mapping[str, torch.Tensor], layout: ReleasedLayout, generator: torch.Generator) -> StateDict:
    """The inverse of `to_canonical`, for demo weights: released key names and, for
    Effort, each projection split into weight_main plus a random rank-1 residual
    that folds back to (almost exactly) the same weight. Adds `module.` where the
    released file has it."""
    released = {}
    for key, tensor in canonical.items():
        new_key = layout.released_key(key)
        if layout.svd_residual and _SVD_WEIGHT.fullmatch(key):
            stem = new_key[: -len("weight")]
            out_features, in_features = tensor.shape
            u = _unit(torch.randn(out_features, 1, generator=generator))
            v = _unit(torch.randn(1, in_features, generator=generator))
            s = torch.rand(1, generator=generator) + 0.5
            released[stem + "weight_main"] = tensor - u @ torch.diag(s) @ v
            released[stem + "U_residual"] = u
            released[stem + "S_residual"] = s
            released[stem + "V_residual"] = v
        else:
            released[new_key] = tensor
    if layout.saved_with_ddp:
        released = {DDP_PREFIX + key: tensor for key, tensor in released.items()}
    return released


def _unit(vector: torch.Tensor) -> torch.Tensor:
    return vector / vector.norm()
