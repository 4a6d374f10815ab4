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


def test_openvino_answers_the_same_in_one_stream_or_split_over_two(tmp_path):
    from deepfake_serving.openvino_classifier import OpenVinoClassifier

    weights = np.random.default_rng(0).normal(size=(12, 2)).astype(np.float32)
    _linear_model(tmp_path / "linear.onnx", weights)
    faces = np.random.default_rng(1).integers(0, 256, (5, 2, 2, 3), dtype=np.uint8)
    expected = faces.reshape(5, 12).astype(np.float32) @ weights
    for streams in (1, 2):
        classifier = OpenVinoClassifier(tmp_path / "linear.onnx", threads=1, streams=streams)
        assert classifier.runtime == "openvino"
        # Row order survives the split over streams; a single row goes to one stream.
        np.testing.assert_allclose(classifier(faces), expected, rtol=1e-5)
        np.testing.assert_allclose(classifier(faces[:1]), expected[:1], rtol=1e-5)


def test_openvino_reads_the_onnx_metadata(tmp_path):
    from deepfake_serving.cpu_runtime import open_classifier

    weights = np.ones((12, 2), np.float32)
    _linear_model(tmp_path / "linear.onnx", weights)
    model = onnx.load(str(tmp_path / "linear.onnx"))
    model.metadata_props.add(key="untrained", value="true")
    onnx.save(model, str(tmp_path / "linear.onnx"))
    assert open_classifier(tmp_path / "linear.onnx", "openvino").metadata["untrained"] == "true"
    assert open_classifier(tmp_path / "linear.onnx", "onnxruntime").metadata["untrained"] == "true"


FALLBACK = r"""
import importlib.abc, pathlib, sys

class NoOpenVino(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "openvino":
            raise ImportError(name="openvino")
        return None

sys.meta_path.insert(0, NoOpenVino())
from deepfake_serving.cpu_runtime import open_classifier, openvino_available
assert not openvino_available()
print(open_classifier(pathlib.Path(sys.argv[1]), "openvino").runtime)
"""


def test_without_openvino_the_openvino_runtime_falls_back_to_onnxruntime(tmp_path):
    """An image without the openvino package (the lighter install) still serves."""
    import subprocess
    import sys

    _linear_model(tmp_path / "linear.onnx", np.ones((12, 2), np.float32))
    result = subprocess.run([sys.executable, "-c", FALLBACK, str(tmp_path / "linear.onnx")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["onnxruntime"]


def test_an_unknown_runtime_is_refused(tmp_path):
    import pytest

    from deepfake_serving.cpu_runtime import open_classifier

    _linear_model(tmp_path / "linear.onnx", np.ones((12, 2), np.float32))
    with pytest.raises(ValueError, match="unknown cpu runtime 'tensorflow'"):
        open_classifier(tmp_path / "linear.onnx", "tensorflow")
