"""The SDK reads config parameters through the one codec, deepfake_contract.parameters."""

from __future__ import annotations

from client_fakes import FakeTransport, fake_client, one_face

from deepfake_client.errors import ServerUnavailableError
from deepfake_contract.parameters import encode


class NoConfigTransport(FakeTransport):
    """A server whose ensemble configuration cannot be read: the SDK falls back to the combiner's `model_names`."""

    def model_config(self, model: str) -> dict:
        raise ServerUnavailableError("no config")


def members(model_names: str) -> tuple[str, ...]:
    parameters = {**FakeTransport(lambda _: one_face(0.5)).parameters, "model_names": model_names}
    with fake_client(NoConfigTransport(lambda _: one_face(0.5), parameters=parameters)) as client:
        return tuple(client.health().models)


def test_member_models_come_from_the_combiners_model_names_parameter():
    assert members(encode(["a", "b"])) == ("face_detector", "a", "b", "weighted_average")


def test_a_model_names_parameter_that_is_not_a_list_names_no_classifier():
    # A JSON string is not a list of models (json.loads then map(str, ...) split it into letters).
    assert members(encode("ab")) == ("face_detector", "weighted_average")
