"""The cpu flavour's OpenVINO path (deepfake_serving.openvino_classifier) in FP32 against
PyTorch, to 1e-4 in fake probability, as the ONNX export is held to on onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from released_files import SMALL_EFFORT_SPEC, small_effort

from deepfake_models import CLASSIFIERS
from deepfake_models.servable import build_servable, load_servable
from deepfake_serving.openvino_classifier import OpenVinoClassifier
from export.artifacts import BuildArtifacts
from export.onnx_export import export_onnx
from export.parity import fake_probability, measure, parity_faces, torch_runner, worst


@pytest.mark.parametrize("streams", [1, 2])
def test_openvino_fp32_matches_pytorch_at_batch_1_and_8(tmp_path, streams):
    servable = build_servable(SMALL_EFFORT_SPEC, small_effort(seed=0))
    path = tmp_path / "effort_small.onnx"
    export_onnx(servable, path, {"model_name": "effort_clip", "untrained": "true"})
    results = measure(torch_runner(servable), OpenVinoClassifier(path, threads=1, streams=streams), 28)
    assert set(results) == {"1", "8"}
    assert worst(results) <= 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("spec", CLASSIFIERS, ids=lambda spec: spec.name)
def test_full_size_openvino_fp32_parity(export_artifacts, spec):
    artifacts = BuildArtifacts(export_artifacts)
    servable = load_servable(spec, artifacts.fixed_checkpoint(spec.name))
    classifier = OpenVinoClassifier(artifacts.onnx(spec.name), threads=0, streams=2)
    for batch in (1, 8):
        faces = parity_faces(spec.input_size, batch, seed=321)
        with torch.inference_mode():
            reference = servable(torch.from_numpy(faces)).numpy()
        difference = np.abs(fake_probability(reference) - fake_probability(classifier(faces))).max()
        print(f"{spec.name} batch {batch}: OpenVINO FP32 max |Δ fake probability| = {difference:.2e}")
        assert difference <= 1e-4
