"""No-face images cost no classifier time: the placeholder row is marked and skipped (issue 13.1),
and the detector reports how many faces it found before the max_faces cut (13.2)."""

from __future__ import annotations

import numpy as np
import pytest

import deepfake_contract as contract
from deepfake_dev import samples
from deepfake_models import CLASSIFIERS
from deepfake_serving.detection import detect_faces
from deepfake_serving.faces import DetectorSettings, FaceDetector
from deepfake_serving.placeholders import infer_present_rows, run_faces_in_one_batch
from export import triton_config


class CountingModel:
    """Logits = (mean pixel, row count seen); records every batch it is given."""

    def __init__(self):
        self.batches: list[np.ndarray] = []

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        self.batches.append(faces)
        return np.stack([faces.reshape(len(faces), -1).mean(1), np.full(len(faces), len(faces))], 1).astype(np.float32)


def crops(values):
    return np.stack([np.full((4, 4, 3), v, np.uint8) for v in values])


def test_placeholder_rows_get_zero_logits_and_never_reach_the_model():
    model = CountingModel()
    logits = infer_present_rows(crops([7, 0, 9]), np.array([[True], [False], [True]]), model)
    assert len(model.batches) == 1 and len(model.batches[0]) == 2
    np.testing.assert_array_equal(logits, [[7, 2], [0, 0], [9, 2]])


def test_a_batch_of_placeholders_only_runs_no_model():
    model = CountingModel()
    logits = infer_present_rows(crops([0, 0]), np.array([[False], [False]]), model)
    assert model.batches == [] and logits.shape == (2, 2) and not logits.any()


def test_without_marks_every_row_is_classified():
    model = CountingModel()
    logits = infer_present_rows(crops([1, 2]), None, model)
    np.testing.assert_array_equal(logits[:, 0], [1, 2])


def test_a_mark_per_row_is_required():
    with pytest.raises(ValueError, match="2 rows for 3 crops"):
        infer_present_rows(crops([1, 2, 3]), np.array([True, False]), CountingModel())


def test_several_requests_run_as_one_batch_of_faces_only():
    model = CountingModel()
    requests = [crops([5]), crops([0]), crops([3, 4])]
    present = [np.array([[True]]), np.array([[False]]), None]  # the last caller sent no marks
    per_request = run_faces_in_one_batch(requests, present, model)
    assert len(model.batches) == 1 and len(model.batches[0]) == 3
    assert [r.shape for r in per_request] == [(1, 2), (1, 2), (2, 2)]
    np.testing.assert_array_equal(per_request[1], [[0, 0]])
    np.testing.assert_array_equal(per_request[2][:, 0], [3, 4])


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


def test_the_detector_marks_the_no_face_placeholder(detector):
    (no_face,) = detect_faces([samples.encode_image(samples.no_face_image(), "PNG")], detector)
    assert no_face.num_faces[0] == 0 and no_face.num_found.tolist() == [0]
    assert no_face.present.shape == (1, 1) and no_face.present.dtype == np.bool_ and not no_face.present.any()
    (two,) = detect_faces([samples.encode_image(samples.two_face_image(), "PNG")], detector)
    assert two.num_found.tolist() == [2] and two.present.shape == (2, 1) and two.present.all()


def test_faces_found_counts_the_faces_max_faces_left_out():
    one_face = FaceDetector(DetectorSettings(max_faces=1))
    (result,) = detect_faces([samples.encode_image(samples.two_face_image(), "PNG")], one_face)
    assert result.num_faces.tolist() == [1]
    assert result.num_found.dtype == np.int32 and result.num_found.tolist() == [2]
    assert result.present.shape == (1, 1) and result.crops[256].shape[0] == 1


def _configs(flavour_name: str):
    flavour = triton_config.FLAVOURS[flavour_name]
    sizes = tuple(sorted({s.input_size for s in CLASSIFIERS}, reverse=True))
    configs = [triton_config.face_detector_config(flavour, sizes, triton_config.face_detector_parameters())]
    configs += [triton_config.classifier_config(spec, flavour, {}) for spec in CLASSIFIERS]
    configs.append(triton_config.combiner_config(flavour, [s.name for s in CLASSIFIERS], {}))
    configs.append(triton_config.ensemble_config(CLASSIFIERS))
    return {c.name: c for c in configs}


@pytest.mark.parametrize("flavour", ["cpu", "pytorch"])
def test_python_classifiers_accept_the_marks_from_direct_callers(flavour):
    # The pipeline never calls a classifier for a no-face image (deepfake_serving/pipeline.py);
    # a direct caller may still mark placeholder rows, which these classifiers skip.
    configs = _configs(flavour)
    assert triton_config.check_ensemble(configs) == []
    for spec in CLASSIFIERS:
        (present,) = [t for t in configs[spec.name].input if t.name == contract.FACE_PRESENT.name]
        assert present.optional and list(present.dims) == [1]


@pytest.mark.parametrize("flavour", ["tensorrt", "onnxruntime"])
def test_batching_backends_keep_the_placeholder(flavour):
    configs = _configs(flavour)
    assert triton_config.check_ensemble(configs) == []
    for spec in CLASSIFIERS:
        assert [t.name for t in configs[spec.name].input] == [contract.CLASSIFIER_INPUT]
    steps = configs[contract.ENSEMBLE_NAME].ensemble_scheduling.step
    assert all(contract.FACE_PRESENT.name not in s.output_map and contract.FACE_PRESENT.name not in s.input_map
               for s in steps)


def test_faces_found_is_an_ensemble_output_and_the_marks_are_not():
    names = [t.name for t in _configs("cpu")[contract.ENSEMBLE_NAME].output]
    assert contract.NUM_FACES_FOUND.name in names and contract.FACE_PRESENT.name not in names
