"""The combiner (weighted_average), called directly, refuses a face count over its cap with a
clear INVALID_ARG reason instead of taking 2,000,000 rows."""

from __future__ import annotations

import numpy as np
import pytest

from deepfake_serving.combiner import MAX_FACES, CombinerInputError, face_count


def test_a_face_count_over_max_faces_is_refused_before_any_row_is_read():
    assert face_count(np.array([MAX_FACES], np.int32)) == MAX_FACES
    for claimed in (MAX_FACES + 1, 2_000_000, np.iinfo(np.int32).max):
        with pytest.raises(CombinerInputError, match=f"NUM_FACES must be at most {MAX_FACES}"):
            face_count(np.array([claimed], np.int32))
