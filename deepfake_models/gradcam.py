"""Grad-CAM target layers that a network does not have as one module (ViT patch tokens).

A classifier's spec names the module whose output Grad-CAM explains (`gradcam_layer`);
for a CNN that is a layer of the network, for a ViT it is a TokenGrid this module hooks in.
"""

from __future__ import annotations

import torch
from torch import nn


class TokenGrid(nn.Module):
    """Identity on a [N, C, g, g] grid of ViT patch tokens: the module Grad-CAM
    hooks, so that captum sees channels and a spatial layout."""

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        return grid.view_as(grid)


def vit_token_grid(block_input: nn.Module) -> TokenGrid:
    """Route `block_input`'s output ([N, 1 + g*g, C]: class token, then patches)
    through a TokenGrid and return it (once per module). Values are unchanged."""
    existing = getattr(block_input, "_explain_token_grid", None)
    if existing is not None:
        return existing
    grid_module = TokenGrid()

    def hook(_module, _inputs, tokens):
        n, count, channels = tokens.shape
        side = int(round((count - 1) ** 0.5))
        patches = tokens[:, 1:].transpose(1, 2).reshape(n, channels, side, side)
        patches = grid_module(patches).reshape(n, channels, side * side).transpose(1, 2)
        return torch.cat([tokens[:, :1], patches], dim=1)

    block_input.register_forward_hook(hook)
    block_input._explain_token_grid = grid_module
    return grid_module
