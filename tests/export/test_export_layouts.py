"""The released layouts: key counts, element totals and sample keys as documented in
docs/design.md §4 (numbers measured on DeepfakeBench's own code)."""

from __future__ import annotations

import pytest
import torch
from released_files import float_elements

from deepfake_models.checkpoints import shapes
from deepfake_models.classifiers.efficientnet_b4 import EFFICIENTNET_B4
from deepfake_models.classifiers.effort_clip import EFFORT_CLIP, Effort
from deepfake_models.classifiers.f3net import F3NET
from deepfake_models.classifiers.xception import XCEPTION
from export.demo_weights import demo_state_dict
from export.errors import UnknownLayoutError
from export.layouts import detect_layout, layout_by_name, released_shapes, strip_ddp_prefix

DOCUMENTED = {  # spec: (keys, float elements) of the released file
    XCEPTION: (283, 21_916_714),
    EFFICIENTNET_B4: (706, 17_677_402),
    F3NET: (293, 22_574_666),
}

SAMPLE_KEYS = {
    XCEPTION: {
        "backbone.conv1.weight": [32, 3, 3, 3],
        "backbone.block1.rep.0.conv1.weight": [64, 1, 3, 3],
        "backbone.block1.rep.0.pointwise.weight": [128, 64, 1, 1],
        "backbone.block4.rep.7.pointwise.weight": [728, 728, 1, 1],
        "backbone.block12.skipbn.running_var": [1024],
        "backbone.block12.rep.4.pointwise.weight": [1024, 728, 1, 1],
        "backbone.conv4.pointwise.weight": [2048, 1536, 1, 1],
        "backbone.adjust_channel.0.weight": [512, 2048, 1, 1],
        "backbone.adjust_channel.1.running_mean": [512],
        "backbone.last_linear.weight": [2, 2048],
        "backbone.bn1.num_batches_tracked": [],
    },
    EFFICIENTNET_B4: {
        "backbone.efficientnet._conv_stem.weight": [48, 3, 3, 3],
        "backbone.efficientnet._blocks.0._depthwise_conv.weight": [48, 1, 3, 3],
        "backbone.efficientnet._blocks.2._expand_conv.weight": [144, 24, 1, 1],
        "backbone.efficientnet._blocks.6._depthwise_conv.weight": [192, 1, 5, 5],
        "backbone.efficientnet._blocks.31._se_reduce.weight": [112, 2688, 1, 1],
        "backbone.efficientnet._blocks.31._project_conv.weight": [448, 2688, 1, 1],
        "backbone.efficientnet._conv_head.weight": [1792, 448, 1, 1],
        "backbone.last_layer.weight": [2, 1792],
    },
    F3NET: {
        "backbone.conv1.weight": [32, 12, 3, 3],
        "backbone.last_linear.1.weight": [2, 2048],
        "backbone.adjust_channel.0.bias": [512],
        "FAD_head._DCT_all": [256, 256],
        "FAD_head._DCT_all_T": [256, 256],
        "FAD_head.filters.3.learnable": [256, 256],
        "FAD_head.filters.0.base": [256, 256],
    },
}


@pytest.mark.parametrize("spec", list(DOCUMENTED), ids=lambda spec: spec.name)
def test_cnn_released_layout_matches_the_documented_file(spec):
    released = demo_state_dict(spec, seed=0)
    keys, elements = DOCUMENTED[spec]
    assert len(released) == keys
    assert float_elements(released) == elements
    for key, shape in SAMPLE_KEYS[spec].items():
        assert list(released[key].shape) == shape, key
    assert all(tensor.dtype == torch.int64 for key, tensor in released.items() if key.endswith("num_batches_tracked"))
    assert not any(key.startswith("module.") for key in released)


def test_efficientnet_has_no_expand_conv_in_its_first_two_blocks():
    released = demo_state_dict(EFFICIENTNET_B4, seed=0)
    blocks_with_expand = {int(key.split(".")[3]) for key in released if "_expand_conv" in key}
    assert blocks_with_expand == set(range(2, 32))


def test_f3net_head_is_indexed_behind_its_dropout():
    released = demo_state_dict(F3NET, seed=0)
    assert "backbone.last_linear.weight" not in released
    assert released["FAD_head._DCT_all_T"].is_contiguous() is False  # a transposed view, as released


def test_effort_full_size_layout_has_681_keys_and_303m_elements():
    with torch.device("meta"):  # shapes only: no 1.2 GB allocation
        network = Effort()
    released = released_shapes(layout_by_name("effort"), shapes(network.state_dict()))
    assert len(released) == 681
    assert sum(shape.numel() for shape in released.values()) == 303_378_530
    prefix = "backbone.encoder.layers.23.self_attn.out_proj."
    assert released[prefix + "weight_main"] == (1024, 1024)
    assert released[prefix + "U_residual"] == (1024, 1)
    assert released[prefix + "S_residual"] == (1,)
    assert released[prefix + "V_residual"] == (1, 1024)  # rows of Vh: not transposed
    assert "backbone.pre_layrnorm.weight" in released and "head.weight" in released
    assert sum(key.endswith("weight_main") for key in released) == 96
    assert len(network.state_dict()) == 393


@pytest.mark.slow
def test_effort_demo_weights_have_the_released_layout():
    released = demo_state_dict(EFFORT_CLIP, seed=0)
    assert len(released) == 681
    assert all(key.startswith("module.") for key in released)
    assert float_elements(released) == 303_378_530


@pytest.mark.parametrize("spec", [XCEPTION, EFFICIENTNET_B4, F3NET, EFFORT_CLIP], ids=lambda spec: spec.name)
def test_detect_layout_identifies_each_architecture(spec):
    with torch.device("meta"):
        network = spec.build_network()
    released = released_shapes(spec.layout, shapes(network.state_dict()))
    assert detect_layout(released, "file") == spec.layout


def test_unknown_layout_is_a_clear_error():
    timm_xception = {"conv1.weight": torch.zeros(32, 3, 3, 3), "fc.weight": torch.zeros(1000, 2048)}
    with pytest.raises(UnknownLayoutError, match="not one of the supported.*conv1.weight, fc.weight"):
        detect_layout(timm_xception, "timm.pth")


def test_ddp_prefix_is_stripped_only_when_every_key_has_it():
    stripped, had_prefix = strip_ddp_prefix({"module.a": torch.zeros(1), "module.b": torch.zeros(1)}, "f")
    assert had_prefix and list(stripped) == ["a", "b"]
    with pytest.raises(UnknownLayoutError, match="only some keys carry the 'module.' prefix.*'b'"):
        strip_ddp_prefix({"module.a": torch.zeros(1), "b": torch.zeros(1)}, "f")
