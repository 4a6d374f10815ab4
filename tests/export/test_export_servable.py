"""The servable wrapper's input contract: UINT8 NHWC RGB, /255, the spec's mean/std."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from released_files import save
from torch import nn

from deepfake_models.classifiers.effort_clip import EFFORT_CLIP
from deepfake_models.classifiers.xception import XCEPTION
from deepfake_models.errors import InvalidFacesError
from deepfake_models.registry import CLIP_MEAN_STD, DEEPFAKEBENCH_MEAN_STD
from deepfake_models.servable import build_servable, load_servable
from export.artifacts import BuildArtifacts
from export.demo_weights import demo_state_dict
from export.fixing import fix_checkpoint

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


class Recorder(nn.Module):
    """A stand-in network that remembers what it was fed."""

    def forward(self, x):
        self.seen = x
        return torch.zeros(x.shape[0], 2)


def normalise(faces: np.ndarray, mean, std) -> np.ndarray:
    """The reference pipeline: ToTensor (HWC→CHW, /255) then Normalize(mean, std)."""
    chw = faces.astype(np.float64).transpose(0, 3, 1, 2) / 255.0
    return (chw - np.array(mean)[None, :, None, None]) / np.array(std)[None, :, None, None]


@pytest.mark.parametrize("spec", [XCEPTION, EFFORT_CLIP], ids=lambda spec: spec.name)
def test_normalisation_matches_the_checkpoint_config(spec):
    size = spec.input_size
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, size=(2, size, size, 3), dtype=np.uint8)
    faces[..., 0] = 255  # a red cast, so channel order matters
    recorder = Recorder()
    build_servable(spec, recorder)(torch.from_numpy(faces))
    fed = recorder.seen.double().numpy()

    np.testing.assert_allclose(fed, normalise(faces, spec.mean, spec.std), atol=1e-5)
    # The classic mistakes would be caught:
    assert np.abs(fed - normalise(faces[..., ::-1], spec.mean, spec.std)).max() > 0.5  # BGR
    assert np.abs(fed - normalise(faces, *IMAGENET)).max() > 0.1  # ImageNet statistics
    other_family = DEEPFAKEBENCH_MEAN_STD if spec is EFFORT_CLIP else CLIP_MEAN_STD
    assert np.abs(fed - normalise(faces, *other_family)).max() > 0.1


def test_effort_uses_clip_statistics():
    assert (EFFORT_CLIP.mean, EFFORT_CLIP.std) == CLIP_MEAN_STD


@pytest.mark.parametrize(
    "faces, problem",
    [
        (torch.zeros(1, 256, 256, 3, dtype=torch.float32), "float32"),
        (torch.zeros(1, 3, 256, 256, dtype=torch.uint8), r"\[1, 3, 256, 256\]"),
        (torch.zeros(1, 224, 224, 3, dtype=torch.uint8), r"\[1, 224, 224, 3\]"),
        (torch.zeros(0, 256, 256, 3, dtype=torch.uint8), r"\[0, 256, 256, 3\]"),
        (np.zeros((1, 256, 256, 3), dtype=np.uint8), "ndarray"),
    ],
)
def test_bad_input_is_a_typed_error(faces, problem):
    servable = build_servable(XCEPTION, Recorder())
    with pytest.raises(InvalidFacesError, match=r"expected .*UINT8 faces of shape \[N, 256, 256, 3\].*" + problem):
        servable(faces)


def test_load_servable_gives_the_checkpoint_model(tmp_path):
    released = demo_state_dict(XCEPTION, seed=4)
    artifacts = BuildArtifacts(tmp_path / "build")
    fix_checkpoint(save(released, tmp_path / XCEPTION.checkpoint_file), artifacts)
    servable = load_servable(XCEPTION, artifacts.fixed_checkpoint("xception"))
    assert not servable.training

    reference = XCEPTION.build_network()
    reference.load_state_dict({key.removeprefix("backbone."): value for key, value in released.items()})
    faces = torch.randint(0, 256, (2, 256, 256, 3), dtype=torch.uint8)
    with torch.inference_mode():
        logits = servable(faces)
        expected = reference((faces.permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5)
    assert logits.dtype == torch.float32 and logits.shape == (2, 2)
    torch.testing.assert_close(logits, expected)


# slow: a full-size xception in bfloat16 on a CPU without bfloat16 units (133 s of test-fast on 2 busy
# cores, 2026-12-08); make test runs it.
@pytest.mark.slow
def test_reduced_precision_servable_keeps_uint8_in_fp32_out(tmp_path):
    """The dtype path of the PyTorch-FP16 flavour (bfloat16 here: it runs on CPU)."""
    artifacts = BuildArtifacts(tmp_path / "build")
    fix_checkpoint(save(demo_state_dict(XCEPTION, seed=4), tmp_path / XCEPTION.checkpoint_file), artifacts)
    full = load_servable(XCEPTION, artifacts.fixed_checkpoint("xception"))
    reduced = load_servable(XCEPTION, artifacts.fixed_checkpoint("xception"), dtype=torch.bfloat16)
    assert next(reduced.network.parameters()).dtype == torch.bfloat16
    faces = torch.randint(0, 256, (2, 256, 256, 3), dtype=torch.uint8)
    with torch.inference_mode():
        expected, actual = full(faces).softmax(1)[:, 1], reduced(faces)
    assert actual.dtype == torch.float32
    assert (actual.softmax(1)[:, 1] - expected).abs().max() < 0.05
