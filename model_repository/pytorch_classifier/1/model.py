"""Triton python model: one classifier as a PyTorch model (the `pytorch` flavour).

For GPUs without TensorRT at hand: the fixed checkpoint runs in FP16 on the
instance's GPU (FP32 on a CPU instance, which is how CI tests this file).
The dynamic batcher's requests run as one batch.
"""

from pathlib import Path

import torch
import triton_python_backend_utils as pb_utils

from deepfake_models import spec_by_name
from deepfake_models.servable import load_servable
from deepfake_serving.guard import execute_classifier


class TritonPythonModel:
    def initialize(self, args):
        self.name = args["model_name"]
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
        return execute_classifier(pb_utils, self.name, requests, self._infer)

