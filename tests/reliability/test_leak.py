"""Rejected uploads leak nothing: 200 non-image uploads of 19 MiB, then the server's memory
(tritonserver + stubs) and its /dev/shm files are back within 5% of their level before.

Before the fix, each rejected upload stayed referenced by its error's traceback (a reference
cycle only the cyclic GC frees): 40 of them added 2.9 GB RSS and 660 MiB of /dev/shm."""

from __future__ import annotations

import numpy as np
import pytest
from hostile import MIB, image, post

import deepfake_contract as contract

pytestmark = pytest.mark.integration

UPLOADS = 200


def _reject(server, data: bytes) -> None:
    status, body = post(server.http_url, contract.ENSEMBLE_NAME, (image(data),))
    assert status == 400 and b"not an image" in body, body[:300]


def test_200_rejected_19_mib_uploads_leave_memory_and_shm_where_they_were(deepfake_server):
    data = np.random.default_rng(9).bytes(19 * MIB)
    for _ in range(5):  # first uploads grow the shm regions to their working size once
        _reject(deepfake_server, data)
    rss_before, shm_before = deepfake_server.footprint()
    for _ in range(UPLOADS):
        _reject(deepfake_server, data)
    rss_after, shm_after = deepfake_server.footprint()
    print(f"RSS {rss_before / MIB:.0f} -> {rss_after / MIB:.0f} MiB, /dev/shm {shm_before / MIB:.0f} -> "
          f"{shm_after / MIB:.0f} MiB after {UPLOADS} rejected 19 MiB uploads")
    assert rss_after <= rss_before * 1.05
    assert shm_after <= shm_before * 1.05
