"""The generated configs: valid protobuf text, consistent ensemble wiring, per-flavour choices."""

import pytest
from tritonclient.grpc import model_config_pb2 as mc

import deepfake_contract as contract
from deepfake_models import CLASSIFIERS
from export import triton_config

FIXED_OUTPUTS = {
    # docs/design.md §3 (fixed): name -> (type, dims)
    "LABEL": ("TYPE_STRING", [1]),
    "FAKE_PROBABILITY": ("TYPE_FP32", [1]),
    "NUM_FACES": ("TYPE_INT32", [1]),
    "FACE_BOXES": ("TYPE_FP32", [-1, 4]),
    "FACE_SCORES": ("TYPE_FP32", [-1]),
    "FACE_FAKE_PROBABILITY": ("TYPE_FP32", [-1]),
    "MODEL_FAKE_PROBABILITY": ("TYPE_FP32", [-1, 4]),
    "MODEL_NAMES": ("TYPE_STRING", [4]),
}


def all_configs(flavour_name: str) -> dict[str, mc.ModelConfig]:
    flavour = triton_config.FLAVOURS[flavour_name]
    configs = [
        triton_config.face_detector_config(flavour, (256, 224), {"max_faces": "8"}),
        *(triton_config.classifier_config(spec, flavour, {}) for spec in CLASSIFIERS),
        triton_config.combiner_config(flavour, [s.name for s in CLASSIFIERS], {}),
        triton_config.ensemble_config(CLASSIFIERS),
    ]
    return {c.name: c for c in configs}


@pytest.mark.parametrize("flavour", sorted(triton_config.FLAVOURS))
def test_ensemble_wiring_is_consistent(flavour):
    assert triton_config.check_ensemble(all_configs(flavour)) == []


@pytest.mark.parametrize("flavour", sorted(triton_config.FLAVOURS))
def test_rendered_configs_parse_back_identically(flavour):
    for config in all_configs(flavour).values():
        assert triton_config.parse(triton_config.render(config)) == config


@pytest.mark.parametrize("flavour", sorted(triton_config.FLAVOURS))
def test_the_served_pipeline_keeps_the_fixed_contract_of_its_data_flow(flavour):
    served = triton_config.pipeline_config(triton_config.FLAVOURS[flavour], CLASSIFIERS)
    flow = all_configs(flavour)[contract.ENSEMBLE_NAME]
    assert (served.name, served.backend, served.max_batch_size) == (contract.ENSEMBLE_NAME, "python", 0)
    assert list(served.input) == list(flow.input) and list(served.output) == list(flow.output)


def test_ensemble_keeps_the_fixed_contract():
    ensemble = all_configs("cpu")[contract.ENSEMBLE_NAME]
    assert ensemble.max_batch_size == 0
    assert [(t.name, mc.DataType.Name(t.data_type), list(t.dims)) for t in ensemble.input] == [
        ("IMAGE", "TYPE_UINT8", [-1])
    ]
    outputs = {t.name: (mc.DataType.Name(t.data_type), list(t.dims)) for t in ensemble.output}
    for name, expected in FIXED_OUTPUTS.items():
        assert outputs[name] == expected, name


def test_every_classifier_runs_on_the_crops_of_its_size():
    steps = {s.model_name: s for s in all_configs("cpu")[contract.ENSEMBLE_NAME].ensemble_scheduling.step}
    assert dict(steps["effort_clip"].input_map) == {"FACES": "FACES_224"}
    for name in ("xception", "efficientnet_b4", "f3net"):
        assert dict(steps[name].input_map) == {"FACES": "FACES_256"}
    assert set(steps) == {"face_detector", "weighted_average", *(s.name for s in CLASSIFIERS)}


def test_wiring_check_catches_mistakes():
    configs = all_configs("cpu")
    broken = mc.ModelConfig()
    broken.CopyFrom(configs["effort_clip"])
    broken.input[0].dims[:] = [256, 256, 3]  # fed 224 crops
    configs["effort_clip"] = broken
    ensemble = mc.ModelConfig()
    ensemble.CopyFrom(configs[contract.ENSEMBLE_NAME])
    ensemble.output.add(name="EXTRA", data_type=mc.TYPE_FP32, dims=[1])
    configs[contract.ENSEMBLE_NAME] = ensemble
    problems = triton_config.check_ensemble(configs)
    assert any("effort_clip.FACES expects TYPE_UINT8 [-1, 256, 256, 3]" in p for p in problems), problems
    assert any("'EXTRA' is produced by no step" in p for p in problems), problems


@pytest.mark.parametrize("flavour, backend, platform", [
    ("cpu", "python", ""),
    ("onnxruntime", "onnxruntime", ""),
    ("tensorrt", "", "tensorrt_plan"),
    ("pytorch", "python", ""),
])
def test_classifier_runtime_per_flavour(flavour, backend, platform):
    for spec in CLASSIFIERS:
        config = all_configs(flavour)[spec.name]
        assert (config.backend, config.platform) == (backend, platform)
        assert config.max_batch_size >= 8  # the detector's default max_faces
        assert config.dynamic_batching.default_queue_policy.max_queue_size > 0  # bounded queue
        gpu = triton_config.FLAVOURS[flavour].gpu
        assert config.instance_group[0].kind == (mc.ModelInstanceGroup.KIND_GPU if gpu else mc.ModelInstanceGroup.KIND_CPU)


def test_gpu_flavours_warm_up_at_full_batch():
    config = all_configs("tensorrt")["effort_clip"]
    batches = sorted(w.batch_size for w in config.model_warmup)
    assert batches == [1, config.max_batch_size]
    assert list(config.model_warmup[0].inputs["FACES"].dims) == [224, 224, 3]


def test_combiner_is_cpu_only_everywhere():
    for flavour in triton_config.FLAVOURS:
        group = all_configs(flavour)[contract.COMBINER_NAME].instance_group[0]
        assert group.kind == mc.ModelInstanceGroup.KIND_CPU
