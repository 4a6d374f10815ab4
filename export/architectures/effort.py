"""Effort: a CLIP ViT-L/14 vision tower + Linear(1024, 2) on its pooler output.

The released checkpoint stores each attention projection as an SVD residual
(`weight_main`, `U_residual`, `S_residual`, `V_residual`); export.layouts folds
them into plain `weight`s, so this module is a stock Hugging Face
`CLIPVisionModel` built from its config (no download) with eager attention,
which exports to ONNX cleanly.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel


def vit_l14_config() -> CLIPVisionConfig:
    """openai/clip-vit-large-patch14 vision config (the values Effort was trained with)."""
    return CLIPVisionConfig(
        hidden_size=1024,
        intermediate_size=4096,
        projection_dim=768,
        num_hidden_layers=24,
        num_attention_heads=16,
        num_channels=3,
        image_size=224,
        patch_size=14,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
    )


class Effort(nn.Module):
    def __init__(self, config: CLIPVisionConfig | None = None, num_classes: int = 2) -> None:
        super().__init__()
        config = config or vit_l14_config()
        config._attn_implementation = "eager"
        self.backbone = CLIPVisionModel(config)
        self.head = nn.Linear(config.hidden_size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(pixel_values=x).pooler_output)
