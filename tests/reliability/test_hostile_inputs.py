"""The hostile-input corpus against the real server: every case refused with HTTP 400 and a
clean message, and the server keeps serving good requests, alone and mixed with bad ones."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from hostile import LEAKS, Case, corpus, image, post

import deepfake_contract as contract
from deepfake_dev import samples

pytestmark = pytest.mark.integration

CASES = corpus()


def test_the_corpus_is_big_and_reaches_every_model():
    assert len(CASES) >= 60
    models = {case.model for case in CASES}
    assert {contract.ENSEMBLE_NAME, contract.FACE_DETECTOR_NAME, contract.COMBINER_NAME} <= models
    assert len({case.name for case in CASES}) == len(CASES)


def _error(body: bytes) -> str:
    try:
        return json.loads(body)["error"]
    except (ValueError, KeyError):
        return body.decode(errors="replace")


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_hostile_input_is_refused_cleanly(deepfake_server, case: Case):
    status, body = post(deepfake_server.http_url, case.model, case.inputs, case.encoding)
    message = _error(body)
    assert status in case.statuses, (status, message[:500])
    assert message and not any(leak in message for leak in LEAKS), message
    assert case.fragment in message


def _good_or_bad(server, data: bytes) -> tuple[int, bytes]:
    return post(server.http_url, contract.ENSEMBLE_NAME, (image(data),))


def test_good_and_bad_requests_at_once_do_not_disturb_each_other(deepfake_server, sample_media):
    good = (sample_media / samples.FACE_IMAGE).read_bytes()
    bad = [case.inputs[0].data for case in CASES
           if case.model == contract.ENSEMBLE_NAME and case.inputs and case.inputs[0].datatype == "UINT8"
           and len(case.inputs[0].data) < (1 << 20) and case.encoding is None][:6]
    # Few in flight: the cpu flavour's queues are short on purpose (overload is refused, not queued).
    jobs = [good, bad[0], bad[1], good, bad[2], bad[3], bad[4], bad[5]]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda data: _good_or_bad(deepfake_server, data), jobs))
    for data, (status, body) in zip(jobs, results):
        if data is good:
            assert status == 200, _error(body)[:300]
        else:
            assert status == 400 and not any(leak in _error(body) for leak in LEAKS)
    assert deepfake_server.problems() == []


def test_the_server_still_serves_after_the_corpus(deepfake_server, sample_media):
    # Runs after the parametrised cases (file order): nothing they sent broke an instance.
    status, body = _good_or_bad(deepfake_server, (sample_media / samples.FACE_IMAGE).read_bytes())
    assert status == 200, _error(body)
    assert deepfake_server.problems() == []
