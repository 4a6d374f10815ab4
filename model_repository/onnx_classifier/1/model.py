"""Triton python model: one exported classifier on OpenVINO or onnxruntime (the `cpu` flavour).

The pip-installable Triton has no onnxruntime or OpenVINO backend, so this runs the same
ONNX file the `onnxruntime` flavour serves, through the runtime its `runtime` parameter
names (OpenVINO by default; onnxruntime when asked, or when openvino is not installed).
The dynamic batcher hands over several requests at once; their crops run as one batch.
"""

from pathlib import Path

import triton_python_backend_utils as pb_utils

from deepfake_contract.parameters import decode
from deepfake_serving.cpu_runtime import OPENVINO, open_classifier
from deepfake_serving.guard import execute_classifier
from deepfake_serving.runtime import model_parameters


class TritonPythonModel:
    def initialize(self, args):
        params = model_parameters(args)
        self.name = args["model_name"]
        onnx_path = Path(args["model_repository"]) / args["model_version"] / "model.onnx"
        asked = decode(params, "runtime", OPENVINO, kind=str)
        self.classifier = open_classifier(onnx_path, asked, decode(params, "intra_op_threads", 0, kind=int),
                                          decode(params, "streams", 1, kind=int))
        level = pb_utils.Logger.log_info if self.classifier.runtime == asked else pb_utils.Logger.log_warn
        level(f"{self.name}: serving {params.get('precision', 'fp32')} on {self.classifier.runtime}"
              + ("" if self.classifier.runtime == asked else f" ({asked} is not installed)"))
        if self.classifier.metadata.get("untrained") == "true":
            pb_utils.Logger.log_warn(
                f"{args['model_name']}: serving UNTRAINED demo weights; scores are meaningless"
            )

    def execute(self, requests):
        return execute_classifier(pb_utils, self.name, requests, self.classifier)
