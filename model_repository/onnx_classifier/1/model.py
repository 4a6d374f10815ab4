"""Triton python model: one exported classifier on onnxruntime (the `cpu` flavour).

The pip-installable Triton has no onnxruntime backend, so this runs the same
ONNX file the `onnxruntime` flavour serves. The dynamic batcher hands over
several requests at once; their crops run as one onnxruntime batch.
"""

from pathlib import Path

import triton_python_backend_utils as pb_utils

from deepfake_contract import CLASSIFIER_INPUT, CLASSIFIER_OUTPUT, FACE_PRESENT
from deepfake_contract.parameters import decode
from deepfake_serving.onnx_classifier import OnnxClassifier
from deepfake_serving.placeholders import run_faces_in_one_batch
from deepfake_serving.runtime import model_parameters


class TritonPythonModel:
    def initialize(self, args):
        params = model_parameters(args)
        onnx_path = Path(args["model_repository"]) / args["model_version"] / "model.onnx"
        self.classifier = OnnxClassifier(onnx_path, decode(params, "intra_op_threads", 0, kind=int))
        if self.classifier.metadata.get("untrained") == "true":
            pb_utils.Logger.log_warn(
                f"{args['model_name']}: serving UNTRAINED demo weights; scores are meaningless"
            )

    def execute(self, requests):
        crops = [pb_utils.get_input_tensor_by_name(r, CLASSIFIER_INPUT).as_numpy() for r in requests]
        present = [_present(r) for r in requests]  # no-face placeholder rows are skipped
        logits = run_faces_in_one_batch(crops, present, self.classifier)
        return [
            pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(CLASSIFIER_OUTPUT, rows)])
            for rows in logits
        ]


def _present(request):
    """The request's FACE_PRESENT rows (None when the caller did not send it)."""
    tensor = pb_utils.get_input_tensor_by_name(request, FACE_PRESENT.name)
    return None if tensor is None else tensor.as_numpy()
