"""The cpu flavour's onnxruntime session (deepfake_serving.onnx_classifier) on a tiny linear
model: it runs the contract's tensors, and its idle pool threads sleep instead of spinning."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from deepfake_contract import CLASSIFIER_INPUT, CLASSIFIER_OUTPUT
from deepfake_serving.onnx_classifier import OnnxClassifier


def _linear_model(path, weights: np.ndarray) -> None:
    graph = helper.make_graph(
        [helper.make_node("Cast", [CLASSIFIER_INPUT], ["pixels"], to=TensorProto.FLOAT),
         helper.make_node("Flatten", ["pixels"], ["flat"], axis=1),
         helper.make_node("MatMul", ["flat", "weights"], [CLASSIFIER_OUTPUT])],
        "linear",
        [helper.make_tensor_value_info(CLASSIFIER_INPUT, TensorProto.UINT8, ["batch", 2, 2, 3])],
        [helper.make_tensor_value_info(CLASSIFIER_OUTPUT, TensorProto.FLOAT, ["batch", 2])],
        [numpy_helper.from_array(weights, "weights")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, str(path))


def test_the_session_answers_and_does_not_spin(tmp_path):
    weights = np.random.default_rng(0).normal(size=(12, 2)).astype(np.float32)
    _linear_model(tmp_path / "linear.onnx", weights)
    classifier = OnnxClassifier(tmp_path / "linear.onnx", intra_op_threads=2)
    faces = np.random.default_rng(1).integers(0, 256, (3, 2, 2, 3), dtype=np.uint8)
    np.testing.assert_allclose(classifier(faces), faces.reshape(3, 12).astype(np.float32) @ weights, rtol=1e-5)
    options = classifier.session.get_session_options()
    assert options.intra_op_num_threads == 2
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
