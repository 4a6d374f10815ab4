"""Licences of the exported weights: in the manifest and the fixed checkpoint's metadata, from
the spec when it declares one, and a warning from `deepfake-export` when CC BY-NC weights are
exported (never for the project's own demo weights)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import safetensors
from cli_in_process import cli
from released_files import save

from deepfake_models import CLASSIFIERS
from deepfake_models.classifiers.xception import XCEPTION
from deepfake_models.registry import CC_BY_NC_4_0 as CC_BY_NC_4
from export.demo_weights import demo_state_dict, sidecar_path
from export.licences import (
    DEMO_WEIGHTS,
    checkpoint_licence,
    is_non_commercial,
    non_commercial_warning,
    weights_licence,
)
from export.onnx_export import onnx_metadata
from export.provenance import sha256_file, write_json


def test_every_published_checkpoint_has_a_licence():
    assert {spec.name: checkpoint_licence(spec) for spec in CLASSIFIERS} == {spec.name: CC_BY_NC_4 for spec in CLASSIFIERS}


def test_the_spec_declares_the_licence_and_a_spec_without_one_is_an_error():
    assert checkpoint_licence(SimpleNamespace(name="xception", licence="Apache-2.0")) == "Apache-2.0"
    with pytest.raises(KeyError, match="no licence is known for 'xception'"):
        checkpoint_licence(SimpleNamespace(name="xception", licence=None))
    with pytest.raises(KeyError, match="no licence is known for 'mystery'"):
        checkpoint_licence(SimpleNamespace(name="mystery"))
    assert weights_licence(XCEPTION, untrained=True) == DEMO_WEIGHTS


@pytest.mark.parametrize("licence, restricted", [
    ("CC BY-NC 4.0", True), ("CC-BY-NC-SA-4.0", True), ("cc by-nc-nd 4.0", True),
    ("CC BY 4.0", False), ("MIT", False), (DEMO_WEIGHTS, False),
])
def test_non_commercial_licences_are_recognised(licence, restricted):
    assert is_non_commercial(licence) is restricted
    assert (non_commercial_warning({"m": licence}) is not None) is restricted


def test_fixing_a_published_checkpoint_records_its_licence_and_warns(tmp_path):
    path = save(demo_state_dict(XCEPTION, seed=0), tmp_path / XCEPTION.checkpoint_file)  # no demo sidecar: "real"
    result = cli("fix", str(path), "--out", str(tmp_path / "build"))
    assert result.returncode == 0, result.stderr
    assert "NON-COMMERCIAL WEIGHTS: xception (CC BY-NC 4.0)" in result.stderr
    manifest = json.loads((tmp_path / "build" / "fixed" / "xception.json").read_text())
    assert manifest["licence"] == CC_BY_NC_4 and onnx_metadata(manifest)["licence"] == CC_BY_NC_4
    fixed = safetensors.safe_open(str(tmp_path / "build" / "fixed" / "xception.safetensors"), "pt")
    assert fixed.metadata()["licence"] == CC_BY_NC_4


def test_demo_weights_carry_no_third_party_licence_and_no_warning(tmp_path):
    path = save(demo_state_dict(XCEPTION, seed=0), tmp_path / XCEPTION.checkpoint_file)
    write_json(sidecar_path(path), {"untrained": True, "sha256": sha256_file(path)})
    result = cli("fix", str(path), "--out", str(tmp_path / "build"))
    assert result.returncode == 0, result.stderr
    assert "NON-COMMERCIAL" not in result.stderr
    assert json.loads((tmp_path / "build" / "fixed" / "xception.json").read_text())["licence"] == DEMO_WEIGHTS


def test_the_readme_weights_table_states_each_licence():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for spec in CLASSIFIERS:
        row = next(line for line in readme.splitlines() if line.startswith("|") and f"`{spec.checkpoint_file}`" in line)
        assert row.rstrip(" |").endswith(checkpoint_licence(spec)), row
