"""Triton python model: one exported classifier on onnxruntime (the `cpu` flavour).

The pip-installable Triton has no onnxruntime backend, so this runs the same
ONNX file the `onnxruntime` flavour serves. The dynamic batcher hands over
several requests at once; their crops run as one onnxruntime batch.
"""

from pathlib import Path

import triton_python_backend_utils as pb_utils

from deepfake_contract.parameters import decode
from deepfake_serving.guard import execute_classifier
from deepfake_serving.onnx_classifier import OnnxClassifier
from deepfake_serving.runtime import model_parameters


class TritonPythonModel:
    def initialize(self, args):
        params = model_parameters(args)
        self.name = args["model_name"]
        onnx_path = Path(args["model_repository"]) / args["model_version"] / "model.onnx"
        self.classifier = OnnxClassifier(onnx_path, decode(params, "intra_op_threads", 0, kind=int))
        if self.classifier.metadata.get("untrained") == "true":
            pb_utils.Logger.log_warn(
                f"{args['model_name']}: serving UNTRAINED demo weights; scores are meaningless"
            )

    def execute(self, requests):
        return execute_classifier(pb_utils, self.name, requests, self.classifier)

