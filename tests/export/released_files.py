"""Helpers that write checkpoint files the way the published ones were written."""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path

import torch
from transformers import CLIPVisionConfig

from deepfake_models.classifiers.effort_clip import EFFORT_CLIP, Effort
from export.layouts import layout_by_name, to_released


def small_clip_config() -> CLIPVisionConfig:
    """A 2-layer CLIP vision tower: the same module and key structure as ViT-L/14."""
    return CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, projection_dim=16, num_hidden_layers=2, num_attention_heads=4,
        image_size=28, patch_size=14, hidden_act="quick_gelu", layer_norm_eps=1e-5,
    )


SMALL_EFFORT_SPEC = dataclasses.replace(EFFORT_CLIP, input_size=28)


def small_effort(seed: int = 0) -> Effort:
    torch.manual_seed(seed)
    return Effort(small_clip_config()).eval()


def released_effort_state_dict(network: Effort, seed: int = 0) -> dict[str, torch.Tensor]:
    """`network` in the released Effort layout (`module.` prefix, SVD residuals)."""
    return to_released(network.state_dict(), layout_by_name("effort"), torch.Generator().manual_seed(seed))


def save(state_dict: dict[str, torch.Tensor], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state_dict, path)
    return path


def tag_storages_cuda(path: Path) -> None:
    """Rewrite a torch.save zip so that every storage is tagged 'cuda:0', as in a
    file saved from a GPU model. The location is a pickled string in data.pkl."""
    # Pickle protocol 2 BINUNICODE: opcode "X", 4-byte little-endian length, text.
    cpu, cuda = b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0"
    with zipfile.ZipFile(path) as archive:
        entries = [(info, archive.read(info)) for info in archive.infolist()]
    pickles = [data for info, data in entries if info.filename.endswith("data.pkl")]
    assert len(pickles) == 1 and cpu in pickles[0], "unexpected torch.save layout"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for info, data in entries:
            archive.writestr(info, data.replace(cpu, cuda) if info.filename.endswith("data.pkl") else data)


def float_elements(state_dict: dict[str, torch.Tensor]) -> int:
    """Elements of floating-point tensors: the documented totals leave out the
    int64 `num_batches_tracked` counters."""
    return sum(tensor.numel() for tensor in state_dict.values() if tensor.is_floating_point())
