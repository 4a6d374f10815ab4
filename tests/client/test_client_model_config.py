"""Writing calibrated weights into weighted_average/config.pbtxt, every other line intact."""

from __future__ import annotations

import json

import pytest
from client_fakes import MODEL_NAMES, rendered_config
from tritonclient.grpc import model_config_pb2 as mc

from deepfake_client import InvalidInputError
from deepfake_client.model_config import (
    config_path,
    parse_config,
    read_settings,
    set_string_parameters,
    write_calibration,
)

NEW_WEIGHTS = {"xception": 0.7, "efficientnet_b4": 0.1, "f3net": 0.2, "effort_clip": 0.0}


def changed_lines(old: str, new: str) -> list[tuple[str, str]]:
    old_lines, new_lines = old.splitlines(), new.splitlines()
    assert len(old_lines) == len(new_lines)
    return [(a, b) for a, b in zip(old_lines, new_lines, strict=True) if a != b]


def test_only_the_two_values_change_in_a_rendered_config(tmp_path):
    path = tmp_path / "config.pbtxt"
    path.write_text(rendered_config())
    old = path.read_text()
    write_calibration(path, NEW_WEIGHTS, 0.4375)
    new = path.read_text()

    changes = changed_lines(old, new)
    assert len(changes) == 2 and all("string_value" in b for _, b in changes)
    settings = read_settings(path)
    assert settings.weights == NEW_WEIGHTS
    assert settings.threshold == 0.4375
    assert settings.image_score == "max" and settings.untrained_models == MODEL_NAMES
    parsed = parse_config(new)
    assert json.loads(parsed.parameters["model_names"].string_value) == list(MODEL_NAMES)
    assert parsed.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU


HAND_WRITTEN = """# weighted_average, tuned by hand
name: "weighted_average"   # the combiner
backend: "python"
parameters: [
  { key: "threshold", value: { string_value: "0.5" } },
  {
    value { string_value: '{"xception": 1, "efficientnet_b4": 1, ' "\\"f3net\\": 1, \\"effort_clip\\": 1}" }
    key: "weights"
  }
]
parameters { key: "image_score" value { string_value: "mean" } }  # faces averaged
instance_group [ { kind: KIND_CPU } ]
"""


def test_hand_written_syntax_and_comments_survive():
    new = set_string_parameters(HAND_WRITTEN, {"weights": json.dumps(NEW_WEIGHTS), "threshold": "0.25"})
    changes = changed_lines(HAND_WRITTEN, new)
    assert [a for a, _ in changes] == [HAND_WRITTEN.splitlines()[4], HAND_WRITTEN.splitlines()[6]]
    assert "# the combiner" in new and "# faces averaged" in new and new.startswith("# weighted_average")
    parsed = parse_config(new)
    assert json.loads(parsed.parameters["weights"].string_value) == NEW_WEIGHTS
    assert parsed.parameters["threshold"].string_value == "0.25"
    assert parsed.parameters["image_score"].string_value == "mean"


def test_a_missing_parameter_is_appended(tmp_path):
    text = 'name: "weighted_average"\nparameters { key: "weights" value { string_value: "{}" } }'
    path = tmp_path / "config.pbtxt"
    path.write_text(text)
    new = write_calibration(path, NEW_WEIGHTS, 0.6)
    assert new.startswith(text.splitlines()[0] + "\n")
    settings = read_settings(path)
    assert settings.threshold == 0.6 and settings.weights == NEW_WEIGHTS


def test_values_that_need_escaping_round_trip():
    value = 'quote " backslash \\ unicode é'
    new = set_string_parameters('parameters { key: "x" value { string_value: "" } }', {"x": value})
    assert parse_config(new).parameters["x"].string_value == value


def test_nested_parameters_of_other_messages_are_not_touched():
    text = (
        'optimization { execution_accelerators { gpu_execution_accelerator { name: "tensorrt"\n'
        '  parameters { key: "threshold" value: "9" } } } }\n'
    )
    new = set_string_parameters(text, {"threshold": "0.3"})
    assert new.startswith(text)  # the nested one is left alone; a top-level entry is appended
    assert parse_config(new).parameters["threshold"].string_value == "0.3"


def test_an_invalid_config_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "config.pbtxt"
    path.write_text('name: "weighted_average"\nparameters { key: "weights" value { string_value: "{}" }\n')
    with pytest.raises(InvalidInputError):
        write_calibration(path, NEW_WEIGHTS, 0.5)
    assert path.read_text().endswith('"{}" }\n')


def test_config_path_accepts_a_repository_or_the_file(tmp_path):
    (tmp_path / "weighted_average").mkdir()
    config = tmp_path / "weighted_average" / "config.pbtxt"
    config.write_text(rendered_config())
    assert config_path(tmp_path) == config
    assert config_path(config) == config
    with pytest.raises(InvalidInputError, match="no weighted_average/config.pbtxt"):
        config_path(tmp_path / "weighted_average" / "1")
