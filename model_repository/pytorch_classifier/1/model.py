"""Triton python model: one classifier as a PyTorch model (the `pytorch` flavour).

For GPUs without TensorRT at hand: the fixed checkpoint runs in FP16 on the
instance's GPU (FP32 on a CPU instance, which is how CI tests this file).
The dynamic batcher's requests run as one batch.
"""

from pathlib import Path

import torch
import triton_python_backend_utils as pb_utils

from deepfake_contract import CLASSIFIER_INPUT, CLASSIFIER_OUTPUT, FACE_PRESENT
from deepfake_models import spec_by_name
from deepfake_models.servable import load_servable
from deepfake_serving.placeholders import run_faces_in_one_batch


class TritonPythonModel:
    def initialize(self, args):
        gpu = args["model_instance_kind"] == "GPU"
        self.device = torch.device(f"cuda:{args['model_instance_device_id']}" if gpu else "cpu")
        dtype = torch.float16 if gpu else torch.float32
        checkpoint = Path(args["model_repository"]) / args["model_version"] / "model.safetensors"
        self.model = load_servable(spec_by_name(args["model_name"]), checkpoint, self.device, dtype)
        pb_utils.Logger.log_info(f"{args['model_name']}: PyTorch {dtype} on {self.device}")

    @torch.inference_mode()
    def _infer(self, faces):
        return self.model(torch.from_numpy(faces).to(self.device)).cpu().numpy()

    def execute(self, requests):
        crops = [pb_utils.get_input_tensor_by_name(r, CLASSIFIER_INPUT).as_numpy() for r in requests]
        return [
            pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(CLASSIFIER_OUTPUT, rows)])
            # no-face placeholder rows are skipped
            for rows in run_faces_in_one_batch(crops, [_present(r) for r in requests], self._infer)
        ]


def _present(request):
    """The request's FACE_PRESENT rows (None when the caller did not send it)."""
    tensor = pb_utils.get_input_tensor_by_name(request, FACE_PRESENT.name)
    return None if tensor is None else tensor.as_numpy()
