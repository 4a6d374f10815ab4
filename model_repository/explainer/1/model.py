"""Triton python model: Grad-CAM heatmaps of the classifiers for the first
`max_faces` faces (deepfake_serving/explain.py says what they mean).

Runs the fixed checkpoints in PyTorch FP32 with gradients, on the instance's GPU
for KIND_GPU, else on the CPU with `torch_threads` threads. A request whose
tensors do not fit fails alone with INVALID_ARG.
"""

from pathlib import Path

import numpy as np
import torch
import triton_python_backend_utils as pb_utils

import deepfake_contract as contract
from deepfake_contract.parameters import decode, from_parameters
from deepfake_serving.explain import Explainer, ExplainerSettings, parse_weights
from deepfake_serving.explain_models import load_classifier
from deepfake_serving.guard import BadRequest, Failure, error_response, guarded
from deepfake_serving.runtime import model_parameters


class TritonPythonModel:
    def initialize(self, args):
        params = model_parameters(args)
        settings = from_parameters(ExplainerSettings, params)
        names = decode(params, "model_names", kind=list)
        self.crop_sizes = tuple(decode(params, "crop_sizes", kind=list))
        gpu = args["model_instance_kind"] == "GPU"
        device = torch.device(f"cuda:{args['model_instance_device_id']}" if gpu else "cpu")
        if not gpu and settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)
        version = Path(args["model_repository"]) / args["model_version"]
        models = {name: load_classifier(name, version / f"{name}.safetensors", device) for name in names}
        weights = parse_weights(params, names)
        self.explainer = Explainer(models, weights, settings.max_faces)
        # The weights the ensemble map uses, renormalised over the enabled models.
        self.weights = np.array(weights, dtype=np.float32) / np.float32(sum(weights))
        self.outputs = contract.explainer_outputs(len(names))
        pb_utils.Logger.log_info(f"explainer: {names} on {device}, {settings}")

    def execute(self, requests):
        return [self._respond(request) for request in requests]

    def _respond(self, request):
        explanation = guarded(contract.EXPLAINER_NAME, pb_utils.Logger.log_error, self._explain, request)
        if isinstance(explanation, Failure):
            return error_response(pb_utils, explanation)
        values = (explanation.heatmaps, explanation.ensemble, explanation.crop_to_image, self.weights)
        return pb_utils.InferenceResponse(
            output_tensors=[pb_utils.Tensor(spec.name, value) for spec, value in zip(self.outputs, values)])

    def _explain(self, request):
        def tensor(spec):
            return pb_utils.get_input_tensor_by_name(request, spec.name).as_numpy()

        crops = {size: tensor(contract.crop_tensor(size)) for size in self.crop_sizes}
        try:
            return self.explainer.explain(crops, int(tensor(contract.NUM_FACES)[0]), tensor(contract.FACE_LANDMARKS))
        except ValueError as error:  # inputs that do not fit together: the caller's fault
            raise BadRequest(str(error)) from None
