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

from deepfake_models.gradcam import vit_token_grid
from deepfake_models.layout import ReleasedLayout
from deepfake_models.registry import CC_BY_NC_4_0, CLIP_MEAN_STD, ClassifierSpec, register


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


def gradcam_layer(network: Effort) -> nn.Module:
    """The patch tokens entering the last transformer block (its `layer_norm1` output,
    16 x 16 patches of 14 pixels, class token dropped). The last block's *output* patch
    tokens do not reach the pooled class token, so their gradient is zero; the input to
    the last block is the last place where patch tokens feed the decision through attention."""
    return vit_token_grid(network.backbone.encoder.layers[-1].layer_norm1)


EFFORT_CLIP = register(ClassifierSpec(
    name="effort_clip",
    column=40,
    network=Effort,
    layout=ReleasedLayout(
        name="effort",
        signature_keys=("backbone.embeddings.class_embedding",),
        droppable=(
            # Persistent buffer in transformers <= 4.30; recomputed by the model.
            r"backbone\.embeddings\.position_ids",
            # Effort-repo-only tensors feeding a training loss, unused in forward.
            r"backbone\.encoder\.layers\.\d+\.self_attn\.(q|k|v|out)_proj\.(S_r|U_r|V_r)",
        ),
        svd_residual=True,
        saved_with_ddp=True,
    ),
    checkpoint_file="effort_clip_L14_trainOn_FaceForensic.pth",
    input_size=224,
    mean=CLIP_MEAN_STD[0],
    std=CLIP_MEAN_STD[1],
    published_at="https://drive.google.com/file/d/1m4fyJecABU-Yk3bJ4b1WhUwQa0xCkMLI/view",
    approx_size_mb=1213.8,
    gradcam_layer=gradcam_layer,
    licence=CC_BY_NC_4_0,
    # ViT-L/14 is 85% of the FLOPs and scales on onnxruntime's threads (2 cores: 853 vs
    # 1,725 ms/face at all cores vs 1 thread), so it gets every core; the CNNs take one each.
    cpu_threads=0,
))
