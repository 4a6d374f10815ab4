"""Triton python model: the public `deepfake_detector` (and `deepfake_explainer`) pipeline.

Face detector -> classifiers -> combiner (-> explainer) as BLS calls, one image per
request (deepfake_serving/pipeline.py says why this is not an ensemble). Admission happens
before execute() is called: the instances bound the images in flight, the queue policy
(per priority level) those waiting.
"""

import traceback

import triton_python_backend_utils as pb_utils

from deepfake_contract.parameters import from_parameters
from deepfake_serving.pipeline import PipelineSettings, answer
from deepfake_serving.runtime import model_parameters


class TritonPythonModel:
    def initialize(self, args):
        self.settings = from_parameters(PipelineSettings, model_parameters(args))
        self.name = args["model_name"]

    async def execute(self, requests):
        responses = []
        for request in requests:
            try:
                responses.append(await answer(pb_utils, request, self.settings))
            except Exception as exc:  # a bug: logged here, never a traceback to the client
                pb_utils.Logger.log_error(f"{self.name}: unexpected {type(exc).__name__}:\n{traceback.format_exc()}")
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(
                    f"{self.name}: internal error ({type(exc).__name__}); the details are in the server log",
                    pb_utils.TritonError.INTERNAL)))
        return responses
