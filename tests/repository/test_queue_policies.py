"""Admission at the entry, bounded inner queues without timeouts (issue: serving under load).

The public models' own queues are the only place where a request is refused for load; every
inner step's queue holds all that the entry admits, so nothing admitted is refused later.
"""

from __future__ import annotations

import pytest

import deepfake_contract as contract
from deepfake_models import CLASSIFIERS
from export import triton_config

mc = triton_config.mc


def _inner_steps(flavour: triton_config.Flavour):
    return [
        triton_config.face_detector_config(flavour, (256, 224), {"max_faces": "8"}),
        *(triton_config.classifier_config(spec, flavour, {}) for spec in CLASSIFIERS),
        triton_config.combiner_config(flavour, [s.name for s in CLASSIFIERS], {}),
        triton_config.explainer_config(flavour, [s.name for s in CLASSIFIERS], (256, 224), {}),
    ]


@pytest.mark.parametrize("flavour", sorted(triton_config.FLAVOURS))
def test_inner_queues_are_bounded_never_time_out_and_hold_all_that_is_admitted(flavour):
    flavour = triton_config.FLAVOURS[flavour]
    admitted = flavour.admission.admitted + triton_config.EXPLAINER_ADMISSION.admitted
    steps = _inner_steps(flavour)
    assert {c.name for c in steps} >= {contract.FACE_DETECTOR_NAME, contract.COMBINER_NAME, contract.EXPLAINER_NAME}
    for config in steps:
        policy = config.dynamic_batching.default_queue_policy
        assert policy.default_timeout_microseconds == 0, config.name  # no refusal for waiting
        # Each admitted image has at most one request waiting at a step.
        assert admitted <= policy.max_queue_size, config.name
        assert not config.dynamic_batching.priority_levels, config.name


@pytest.mark.parametrize("flavour", sorted(triton_config.FLAVOURS))
@pytest.mark.parametrize("explain", [False, True])
def test_the_public_models_admit_by_priority_level_and_never_time_out(flavour, explain):
    flavour = triton_config.FLAVOURS[flavour]
    config = triton_config.pipeline_config(flavour, CLASSIFIERS, explain=explain)
    admission = triton_config.EXPLAINER_ADMISSION if explain else flavour.admission
    assert config.name == (contract.EXPLAINER_ENSEMBLE_NAME if explain else contract.ENSEMBLE_NAME)
    assert sum(group.count for group in config.instance_group) == admission.in_flight
    batching = config.dynamic_batching
    assert batching.priority_levels == contract.PRIORITY_LEVELS
    assert batching.default_priority_level == contract.PRIORITY_BULK
    assert batching.default_queue_policy.max_queue_size == admission.bulk_queue
    assert batching.priority_queue_policy[contract.PRIORITY_INTERACTIVE].max_queue_size == admission.interactive_queue
    for policy in (batching.default_queue_policy, batching.priority_queue_policy[contract.PRIORITY_INTERACTIVE]):
        assert policy.default_timeout_microseconds == 0


def test_a_closed_loop_of_eight_clients_fits_the_cpu_admission_at_either_priority():
    admission = triton_config.FLAVOURS["cpu"].admission
    assert admission.in_flight + admission.bulk_queue >= 8
    assert admission.in_flight + admission.interactive_queue >= 8


def test_an_unbounded_queue_or_admission_is_refused():
    config = triton_config.combiner_config(triton_config.FLAVOURS["cpu"], [s.name for s in CLASSIFIERS], {})
    with pytest.raises(ValueError, match="needs a size"):
        triton_config.bound_queue(config, 0)
    with pytest.raises(ValueError, match=">= 1"):
        triton_config.Admission(in_flight=2, bulk_queue=0, interactive_queue=4)


def test_models_without_batching_get_a_queue_but_no_batches():
    # max_batch_size 0 + dynamic_batching: Triton's scheduler owns the queue, batches stay single.
    for config in _inner_steps(triton_config.FLAVOURS["cpu"]):
        if config.name in (contract.FACE_DETECTOR_NAME, contract.COMBINER_NAME):
            assert config.max_batch_size == 0 and not config.dynamic_batching.preferred_batch_size


def test_cpu_classifiers_run_one_request_at_a_time_gpu_ones_batch_freely():
    for spec in CLASSIFIERS:
        cpu = triton_config.classifier_config(spec, triton_config.FLAVOURS["cpu"], {})
        assert list(cpu.dynamic_batching.preferred_batch_size) == [1]
        gpu = triton_config.classifier_config(spec, triton_config.FLAVOURS["tensorrt"], {})
        assert list(gpu.dynamic_batching.preferred_batch_size) == []
