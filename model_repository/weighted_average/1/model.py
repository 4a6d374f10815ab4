"""Triton python model: per-face weighted average of the classifiers' fake probabilities."""

import json

import numpy as np
import triton_python_backend_utils as pb_utils

import deepfake_contract as contract
from deepfake_serving.combiner import CombinerSettings, combine, face_count
from deepfake_serving.guard import Failure, error_response, guarded
from deepfake_serving.runtime import model_parameters


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.settings = CombinerSettings.from_parameters(model_parameters(args))
        model_names = self.settings.model_names
        self.logits_inputs = [contract.logits_tensor(name).name for name in model_names]
        configured = [t["name"] for t in config["input"] if t["name"] != contract.NUM_FACES.name]
        if sorted(self.logits_inputs) != sorted(configured):
            raise pb_utils.TritonModelException(
                f"model_names {list(model_names)} do not match the configured inputs {configured}"
            )
        self.outputs = contract.combiner_outputs(len(model_names))
        self.model_names = np.array([n.encode() for n in model_names], dtype=np.object_)
        self.untrained = np.array([n in self.settings.untrained_models for n in model_names])
        if self.untrained.any():
            pb_utils.Logger.log_warn(
                "serving UNTRAINED demo weights for "
                + ", ".join(sorted(self.settings.untrained_models))
                + ": verdicts are meaningless until the published checkpoints are exported"
            )

    def execute(self, requests):
        # Reachable directly (not only through the ensemble): every input is checked.
        results = [guarded(contract.COMBINER_NAME, pb_utils.Logger.log_error, self._respond, r) for r in requests]
        return [error_response(pb_utils, r) if isinstance(r, Failure) else r for r in results]

    def _respond(self, request):
        num_faces = face_count(pb_utils.get_input_tensor_by_name(request, contract.NUM_FACES.name).as_numpy())
        logits = [pb_utils.get_input_tensor_by_name(request, name).as_numpy() for name in self.logits_inputs]
        verdict = combine(num_faces, logits, self.settings)
        values = (  # in the order of contract.combiner_outputs
            np.array([verdict.label.encode()], dtype=np.object_),
            np.array([verdict.fake_probability], np.float32),
            verdict.face_fake_probability,
            verdict.model_fake_probability,
            self.model_names,
            self.untrained,
            np.array([verdict.verdict.encode()], dtype=np.object_),
            np.array([v.encode() for v in verdict.face_verdicts], dtype=np.object_),
        )
        return pb_utils.InferenceResponse(
            output_tensors=[pb_utils.Tensor(spec.name, value) for spec, value in zip(self.outputs, values, strict=True)]
        )

