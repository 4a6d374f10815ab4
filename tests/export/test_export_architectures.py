"""Network definitions against their mathematical definitions and DeepfakeBench's
documented quirks (docs/design.md §4)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft
import torch
from torch import nn
from torch.nn import functional as F

from deepfake_models.classifiers.efficientnet_b4 import EfficientNetB4
from deepfake_models.classifiers.f3net import FADHead, band_mask, dct_matrix
from deepfake_models.classifiers.xception import Xception
from export.layouts import fold_svd_residual


def test_dct_matrix_is_the_orthonormal_dct_ii():
    d = dct_matrix(256).double()
    torch.testing.assert_close(d @ d.T, torch.eye(256, dtype=torch.float64), atol=1e-6, rtol=0)
    assert torch.allclose(d[0], torch.full((256,), 0.0625, dtype=torch.float64))
    signal = np.random.default_rng(0).normal(size=256)
    np.testing.assert_allclose(d.numpy() @ signal, scipy.fft.dct(signal, norm="ortho"), atol=1e-5)


def test_band_masks_have_the_documented_sizes():
    counts = [int(band_mask(start, end, 256).sum()) for start, end in
              [(0, 256 // 2.82), (256 // 2.82, 256 // 2), (256 // 2, 512), (0, 512)]]
    assert counts == [4186, 4290, 57280, 65536]


def test_fad_head_matches_band_filtering_in_the_dct_domain():
    torch.manual_seed(0)
    head = FADHead(256).eval()
    for band in head.filters:  # trained-looking corrections, not the N(0, 0.1) init
        band.learnable.data.normal_(0, 1.5)
    image = torch.rand(1, 3, 256, 256) * 2 - 1
    with torch.no_grad():
        output = head(image).numpy()
    spectrum = scipy.fft.dctn(image.numpy().astype(np.float64), axes=(-2, -1), norm="ortho")
    for index, band in enumerate(head.filters):
        filt = band.base.detach().double().numpy() + 2 / (1 + np.exp(-band.learnable.detach().double().numpy())) - 1
        expected = scipy.fft.idctn(spectrum * filt, axes=(-2, -1), norm="ortho")
        np.testing.assert_allclose(output[:, 3 * index : 3 * index + 3], expected, atol=2e-4)


def test_xception_features_at_256_are_8x8():
    network = Xception().eval()
    with torch.no_grad():
        assert network.features(torch.zeros(1, 3, 256, 256)).shape == (1, 2048, 8, 8)


def test_efficientnet_keeps_deepfakebench_paddings():
    network = EfficientNetB4()
    stem = network.efficientnet._conv_stem
    assert type(stem) is nn.Conv2d and stem.padding == (0, 0) and stem.stride == (2, 2)
    pads = {index: network.efficientnet._blocks[index]._depthwise_conv.static_padding.padding
            for index in (0, 2, 6, 10, 22)}
    assert pads == {0: (1, 1, 1, 1), 2: (0, 1, 0, 1), 6: (2, 2, 2, 2), 10: (0, 1, 0, 1), 22: (1, 2, 1, 2)}
    assert network.efficientnet._bn0.eps == pytest.approx(1e-3)
    assert isinstance(network.efficientnet._fc, nn.Identity)


class SVDResidualLinear(nn.Module):
    """Reference: Effort's forward pass of an SVD-residual projection, unfolded."""

    def __init__(self, weight_main, u_residual, s_residual, v_residual, bias):
        super().__init__()
        self.weight_main, self.bias = weight_main, bias
        self.u_residual, self.s_residual, self.v_residual = u_residual, s_residual, v_residual

    def forward(self, x):
        residual = self.u_residual @ torch.diag(self.s_residual) @ self.v_residual
        return F.linear(x, self.weight_main + residual, self.bias)


def test_fold_reproduces_the_svd_residual_forward():
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(1024, 1024, generator=generator) * 0.02
    u, s, vh = torch.linalg.svd(weight, full_matrices=False)
    rank = 1023  # Effort keeps r = 1023 of 1024 singular directions frozen
    weight_main = u[:, :rank] @ torch.diag(s[:rank]) @ vh[:rank]
    # The trained residual has moved away from the SVD's: perturb it.
    u_res = u[:, rank:] + 0.05 * torch.randn(1024, 1, generator=generator)
    s_res = s[rank:] + 0.5
    v_res = vh[rank:] + 0.05 * torch.randn(1, 1024, generator=generator)
    bias = torch.randn(1024, generator=generator)
    x = torch.randn(4, 257, 1024, generator=generator)

    reference = SVDResidualLinear(weight_main, u_res, s_res, v_res, bias)(x)
    folded = F.linear(x, fold_svd_residual(weight_main, u_res, s_res, v_res), bias)
    torch.testing.assert_close(folded, reference, atol=1e-5, rtol=0)

    # The mistakes this guards against are visible at this tolerance:
    transposed = F.linear(x, weight_main + (u_res @ torch.diag(s_res) @ v_res).T, bias)
    unfolded = F.linear(x, weight_main, bias)
    assert (transposed - reference).abs().max() > 1e-3
    assert (unfolded - reference).abs().max() > 1e-3
