"""Every step of the pipeline has a bounded queue and a queue timeout (issue: overload)."""

from __future__ import annotations

import pytest

import deepfake_contract as contract
from deepfake_models import CLASSIFIERS
from export import triton_config

mc = triton_config.mc


def _steps(flavour_name: str):
    flavour = triton_config.FLAVOURS[flavour_name]
    return [
        triton_config.face_detector_config(flavour, (256, 224), {"max_faces": "8"}),
        *(triton_config.classifier_config(spec, flavour, {}) for spec in CLASSIFIERS),
        triton_config.combiner_config([s.name for s in CLASSIFIERS], {}),
    ]


@pytest.mark.parametrize("flavour", sorted(triton_config.FLAVOURS))
def test_every_step_rejects_when_full_or_after_its_timeout(flavour):
    steps = _steps(flavour)
    assert {c.name for c in steps} >= {contract.FACE_DETECTOR_NAME, contract.COMBINER_NAME}
    for config in steps:
        policy = config.dynamic_batching.default_queue_policy
        assert policy.timeout_action == mc.ModelQueuePolicy.REJECT, config.name
        assert 0 < policy.max_queue_size and 0 < policy.default_timeout_microseconds <= 5_000_000, config.name


def test_models_without_batching_get_a_queue_but_no_batches():
    # max_batch_size 0 + dynamic_batching: Triton's scheduler owns the queue, batches stay single.
    for config in _steps("cpu"):
        if config.name in (contract.FACE_DETECTOR_NAME, contract.COMBINER_NAME):
            assert config.max_batch_size == 0 and not config.dynamic_batching.preferred_batch_size


def test_an_unbounded_queue_is_refused():
    config = triton_config.combiner_config([s.name for s in CLASSIFIERS], {})
    for size, timeout in ((0, 1), (1, 0)):
        with pytest.raises(ValueError, match="size and a timeout"):
            triton_config.bound_queue(config, size, timeout)


def test_cpu_classifiers_run_one_request_at_a_time_gpu_ones_batch_freely():
    # A batch runs to its end whatever the queue timeout: on a CPU a big batch is many seconds.
    for spec in CLASSIFIERS:
        cpu = triton_config.classifier_config(spec, triton_config.FLAVOURS["cpu"], {})
        assert list(cpu.dynamic_batching.preferred_batch_size) == [1]
        gpu = triton_config.classifier_config(spec, triton_config.FLAVOURS["tensorrt"], {})
        assert list(gpu.dynamic_batching.preferred_batch_size) == []
