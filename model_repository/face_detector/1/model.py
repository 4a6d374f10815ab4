"""Triton python model: decode the image, find faces (MTCNN), emit DeepfakeBench-aligned crops.

A bad image fails only its own request (INVALID_ARG with the reason); the
others in the same execution are answered normally.
"""

import torch
import triton_python_backend_utils as pb_utils

import deepfake_contract as contract
from deepfake_contract.parameters import decode, from_parameters
from deepfake_serving.detection import detect_faces
from deepfake_serving.faces import DetectorSettings, FaceDetector
from deepfake_serving.guard import Failure, error_response, guarded, guarded_batch
from deepfake_serving.images import ImageLimits, InvalidImageError
from deepfake_serving.runtime import model_parameters


class TritonPythonModel:
    def initialize(self, args):
        params = model_parameters(args)
        self.crop_sizes = tuple(decode(params, "crop_sizes", kind=list))
        gpu = args["model_instance_kind"] == "GPU"
        # One thread per instance: several instances (and the classifiers) share the CPU,
        # and MTCNN's small convolutions slow down badly when threads oversubscribe cores.
        torch.set_num_threads(decode(params, "torch_threads", 1, kind=int))
        device = f"cuda:{args['model_instance_device_id']}" if gpu else "cpu"
        settings = from_parameters(DetectorSettings, params, device=device)
        self.limits = from_parameters(ImageLimits, params)
        self.detector = FaceDetector(settings)
        self.metrics = _Metrics()
        pb_utils.Logger.log_info(f"face_detector ready: {settings}, {self.limits}")

    def execute(self, requests):
        log = pb_utils.Logger.log_error
        # A view of the input, not a copy: an oversized file is refused before anything is copied.
        images = [guarded(contract.FACE_DETECTOR_NAME, log, _image, r) for r in requests]
        results = guarded_batch(contract.FACE_DETECTOR_NAME, log, images, self._detect)
        return [self._respond(result) for result in results]

    def _detect(self, images):
        return detect_faces(images, self.detector, self.limits, self.crop_sizes)

    def _respond(self, result):
        if isinstance(result, InvalidImageError):
            result = Failure(str(result), invalid=True)
        if isinstance(result, Failure):
            (self.metrics.invalid if result.invalid else self.metrics.failed).increment(1)
            return error_response(pb_utils, result)
        faces = int(result.num_faces[0])
        (self.metrics.with_faces if faces else self.metrics.no_face).increment(1)
        self.metrics.faces.increment(faces)
        tensors = [pb_utils.Tensor(contract.crop_tensor(size).name, result.crops[size]) for size in self.crop_sizes]
        tensors += [
            pb_utils.Tensor(contract.NUM_FACES.name, result.num_faces),
            pb_utils.Tensor(contract.FACE_BOXES.name, result.boxes),
            pb_utils.Tensor(contract.FACE_SCORES.name, result.scores),
            pb_utils.Tensor(contract.FACE_LANDMARKS.name, result.landmarks),
            pb_utils.Tensor(contract.NUM_FACES_FOUND.name, result.num_found),
            pb_utils.Tensor(contract.FACE_PRESENT.name, result.present),
        ]
        return pb_utils.InferenceResponse(output_tensors=tensors)


class _Metrics:
    """Prometheus counters on Triton's metrics endpoint (dashboards, NO_FACE rate)."""

    def __init__(self):
        # The families must outlive their metrics, so they are kept on self.
        self.images_family = pb_utils.MetricFamily(
            name="deepfake_images_total",
            description="Images seen by face_detector, by outcome",
            kind=pb_utils.MetricFamily.COUNTER,
        )
        self.faces_family = pb_utils.MetricFamily(
            name="deepfake_faces_total",
            description="Faces found and sent to the classifiers",
            kind=pb_utils.MetricFamily.COUNTER,
        )
        self.with_faces = self.images_family.Metric(labels={"outcome": "faces"})
        self.no_face = self.images_family.Metric(labels={"outcome": "no_face"})
        self.invalid = self.images_family.Metric(labels={"outcome": "invalid"})
        self.failed = self.images_family.Metric(labels={"outcome": "failed"})
        self.faces = self.faces_family.Metric(labels={})


def _image(request):
    return memoryview(pb_utils.get_input_tensor_by_name(request, contract.IMAGE.name).as_numpy())
