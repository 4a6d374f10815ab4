"""The deepfake_explainer ensemble and explainer configs (no server)."""

from __future__ import annotations

import json

import deepfake_contract as contract
from deepfake_models import CLASSIFIERS, crop_sizes
from export import triton_config


def configs(flavour: str = "cpu"):
    names = [spec.name for spec in CLASSIFIERS]
    flavour_config = triton_config.FLAVOURS[flavour]
    weights = json.dumps(dict.fromkeys(names, 1.0))
    return {c.name: c for c in (
        triton_config.face_detector_config(flavour_config, crop_sizes(CLASSIFIERS), triton_config.face_detector_parameters()),
        *(triton_config.classifier_config(spec, flavour_config, {}) for spec in CLASSIFIERS),
        triton_config.combiner_config(flavour_config, names, {}),
        triton_config.ensemble_config(CLASSIFIERS),
        triton_config.explainer_config(flavour_config, names, crop_sizes(CLASSIFIERS), {"weights": weights}),
        triton_config.explainer_ensemble_config(CLASSIFIERS),
    )}


def test_the_explainer_ensemble_is_wired_and_the_plain_one_is_unchanged():
    built = configs()
    assert triton_config.check_ensemble(built, contract.EXPLAINER_ENSEMBLE_NAME) == []
    assert triton_config.check_ensemble(built) == []
    plain = built[contract.ENSEMBLE_NAME]
    explainer = built[contract.EXPLAINER_ENSEMBLE_NAME]
    # Every plain step and output is there, in the same order, plus the explainer's.
    assert list(explainer.ensemble_scheduling.step)[:-1] == list(plain.ensemble_scheduling.step)
    assert explainer.ensemble_scheduling.step[-1].model_name == contract.EXPLAINER_NAME
    assert [t.name for t in explainer.output] == [t.name for t in contract.explainer_ensemble_outputs(4)]
    assert [t.name for t in plain.output] == [t.name for t in contract.ensemble_outputs(4)]
    assert all(step.model_name != contract.EXPLAINER_NAME for step in plain.ensemble_scheduling.step)


def test_both_public_pipelines_skip_the_classifiers_alike(tmp_path):
    """Else the cpu flavour's classifiers would run the placeholder crop of a no-face image for
    explanations (the pipeline skips them without a face, and marks the placeholder for the
    liveness probe the same way in both)."""
    from export.artifacts import BuildArtifacts
    from export.repository import RepositoryOptions, assemble

    artifacts = BuildArtifacts(tmp_path / "build")
    for spec in CLASSIFIERS:  # stand-in export outputs: assembly only links them
        for path in (artifacts.onnx(spec.name), artifacts.fixed_checkpoint(spec.name)):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(spec.name.encode())
        artifacts.manifest_path(spec.name).write_text(json.dumps({"untrained": True, "source": {"sha256": "0" * 64}}))
    out = assemble(artifacts.root, tmp_path / "cpu", RepositoryOptions(explainer=True, int8=False))
    built = {p.parent.name: triton_config.parse(p.read_text()) for p in out.glob("*/config.pbtxt")}
    plain, explainer = built[contract.ENSEMBLE_NAME], built[contract.EXPLAINER_ENSEMBLE_NAME]
    for key in ("model_names", "crop_sizes", "mark_placeholders", "parallel_classifiers"):
        assert plain.parameters[key] == explainer.parameters[key], key
    assert json.loads(plain.parameters["mark_placeholders"].string_value) is True  # python classifiers here
    assert [json.loads(c.parameters["explain"].string_value) for c in (plain, explainer)] == [False, True]


def test_the_explainer_is_bounded_and_follows_the_flavour_device():
    for flavour in ("cpu", "pytorch"):
        config = configs(flavour)[contract.EXPLAINER_NAME]
        policy = config.dynamic_batching.default_queue_policy
        assert policy.max_queue_size >= triton_config.EXPLAINER_ADMISSION.admitted
        assert policy.default_timeout_microseconds == 0
        public = triton_config.pipeline_config(triton_config.FLAVOURS[flavour], CLASSIFIERS, explain=True)
        assert public.dynamic_batching.default_queue_policy.max_queue_size == triton_config.EXPLAINER_ADMISSION.bulk_queue
        assert json.loads(public.parameters["explain"].string_value) is True
        assert config.instance_group[0].kind == triton_config.FLAVOURS[flavour].instance_kind
        assert json.loads(config.parameters["model_names"].string_value) == [s.name for s in CLASSIFIERS]
