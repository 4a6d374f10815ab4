"""Parsing the ensemble's output arrays into typed results."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from client_fakes import MODEL_NAMES, ensemble_outputs

from deepfake_client import DetectionResult, Label, ServerError
from deepfake_client.results import parse_outputs


def test_two_faces_parse_into_faces_with_per_model_probabilities():
    outputs = ensemble_outputs([[0.1, 0.2, 0.3, 0.4], [0.9, 0.8, 0.7, 0.6]], untrained=(True, False, True, False))
    result = parse_outputs(outputs)

    assert isinstance(result, DetectionResult)
    assert result.label is Label.FAKE and result.is_fake and result.has_face
    assert result.fake_probability == pytest.approx(0.75)  # the most-fake face: mean of 0.9..0.6
    assert result.model_names == MODEL_NAMES
    assert len(result.faces) == 2
    first, second = result.faces
    assert first.box == (10.0, 20.0, 90.0, 120.0)
    assert second.box == (110.0, 20.0, 190.0, 120.0)
    assert first.detector_score == pytest.approx(0.999)
    assert first.fake_probability == pytest.approx(0.25)
    assert second.model_probabilities == pytest.approx(
        {"xception": 0.9, "efficientnet_b4": 0.8, "f3net": 0.7, "effort_clip": 0.6}
    )
    assert second.landmarks[0] == (10.0, 11.0) and len(second.landmarks) == 5
    # Image level per model: each model's most-fake face.
    assert result.model_probabilities == pytest.approx(
        {"xception": 0.9, "efficientnet_b4": 0.8, "f3net": 0.7, "effort_clip": 0.6}
    )
    assert result.untrained and result.untrained_models == ("xception", "f3net")


def test_no_face_is_its_own_label_never_real():
    result = parse_outputs(ensemble_outputs([]))
    assert result.label is Label.NO_FACE
    assert result.label != Label.REAL and not result.is_fake and not result.has_face
    assert math.isnan(result.fake_probability)
    assert result.faces == () and result.model_probabilities == {}


def test_to_dict_is_json_with_null_for_a_missing_score():
    data = json.loads(json.dumps(parse_outputs(ensemble_outputs([])).to_dict()))
    assert data["label"] == "NO_FACE" and data["fake_probability"] is None and data["num_faces"] == 0
    data = json.loads(json.dumps(parse_outputs(ensemble_outputs([[0.2] * 4])).to_dict()))
    assert data["label"] == "REAL" and data["fake_probability"] == pytest.approx(0.2)
    assert data["faces"][0]["model_probabilities"]["effort_clip"] == pytest.approx(0.2)


def test_optional_extras_may_be_absent():
    outputs = ensemble_outputs([[0.7] * 4], with_landmarks=False)
    del outputs["MODEL_UNTRAINED"]
    result = parse_outputs(outputs)
    assert result.faces[0].landmarks is None
    assert result.untrained_models == ()


def test_label_prints_as_its_value():
    assert str(Label.FAKE) == "FAKE" and f"{Label.NO_FACE}" == "NO_FACE"


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda o: o.update(NUM_FACES=np.array([3], np.int32)), "NUM_FACES is 3"),
        (lambda o: o.update(LABEL=np.array([b"MAYBE"], np.object_)), "MAYBE"),
        (lambda o: o.update(LABEL=np.array([b"NO_FACE"], np.object_)), "NO_FACE with 1 faces"),
        (lambda o: o.pop("FACE_BOXES"), "FACE_BOXES is missing"),
        (lambda o: o.update(MODEL_UNTRAINED=np.array([True, False], bool)), "zip"),
        # What a numpy-2 python backend sends: the right shape, no data.
        (lambda o: o.update(FAKE_PROBABILITY=np.array([], np.float32)), "index"),
    ],
)
def test_answers_outside_the_contract_are_server_errors(corrupt, message):
    outputs = ensemble_outputs([[0.7] * 4])
    corrupt(outputs)
    with pytest.raises(ServerError, match="does not follow the deepfake_detector contract") as error:
        parse_outputs(outputs)
    assert message in str(error.value)


def test_the_verdict_is_uncertain_where_the_server_says_so_and_the_label_keeps_its_side():
    result = parse_outputs(ensemble_outputs([[0.2] * 4, [0.55] * 4], band=(0.4, 0.6)))
    assert result.label is Label.FAKE and result.verdict is Label.UNCERTAIN and result.is_uncertain
    assert [face.verdict for face in result.faces] == [Label.REAL, Label.UNCERTAIN]
    data = json.loads(json.dumps(result.to_dict()))
    assert data["label"] == "FAKE" and data["verdict"] == "UNCERTAIN"
    assert [face["verdict"] for face in data["faces"]] == ["REAL", "UNCERTAIN"]


def test_an_older_server_without_verdicts_gives_the_label_as_verdict():
    result = parse_outputs(ensemble_outputs([[0.55] * 4]))
    assert result.verdict is Label.FAKE and not result.is_uncertain and result.faces[0].verdict is None


@pytest.mark.parametrize("change, message", [
    (lambda o: o.update(LABEL=np.array([b"UNCERTAIN"], dtype=np.object_)), "VERDICT"),
    (lambda o: o.update(VERDICT=np.array([b"REAL"], dtype=np.object_)), "VERDICT REAL with LABEL FAKE"),
    (lambda o: o.update(FACE_VERDICT=np.array([b"FAKE", b"NO_FACE"], dtype=np.object_)), "FACE_VERDICT"),
    (lambda o: o.update(FACE_VERDICT=np.array([b"FAKE"], dtype=np.object_)), "FACE_VERDICT"),
])
def test_verdicts_that_contradict_the_answer_are_refused(change, message):
    outputs = ensemble_outputs([[0.2] * 4, [0.7] * 4], band=(0.4, 0.6))
    change(outputs)
    with pytest.raises(ServerError, match=message):
        parse_outputs(outputs)
