"""Out-of-scope flags (deepfake_client.scope): each flag is raised by the case it names and
not by a plain colour photo of a large face."""

from __future__ import annotations

import io
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from client_fakes import ensemble_outputs
from PIL import Image
from skimage import data as skdata

from deepfake_client import scope
from deepfake_client.results import parse_outputs

PICTURES = {"astronaut": skdata.astronaut, "coffee": skdata.coffee, "chelsea": skdata.chelsea}


def encoded(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.fixture(params=sorted(PICTURES))
def photo(request) -> Image.Image:
    return Image.fromarray(PICTURES[request.param]())


def test_a_plain_colour_photo_has_no_flag(photo):
    assert scope.image_flags(encoded(photo)) == ()
    assert scope.image_flags(encoded(photo, "JPEG", quality=90)) == ()


@pytest.mark.parametrize("quality", [10, 30, 45])
def test_strong_jpeg_compression_is_read_from_the_quantisation_tables(photo, quality):
    data = encoded(photo, "JPEG", quality=quality)
    assert scope.jpeg_quality(Image.open(io.BytesIO(data))) == pytest.approx(quality, abs=5)
    assert scope.STRONG_JPEG_COMPRESSION in scope.image_flags(data)


def test_light_jpeg_compression_and_png_are_not_flagged(photo):
    assert scope.jpeg_quality(Image.open(io.BytesIO(encoded(photo, "JPEG", quality=75)))) == pytest.approx(75, abs=1)
    assert scope.jpeg_quality(Image.open(io.BytesIO(encoded(photo)))) is None


@pytest.mark.parametrize("as_rgb", [False, True])
def test_greyscale_is_flagged_in_one_channel_and_in_three_equal_ones(photo, as_rgb):
    grey = photo.convert("L")
    data = encoded(grey.convert("RGB") if as_rgb else grey, "JPEG", quality=90)
    assert scope.GREYSCALE in scope.image_flags(data)


def test_a_faintly_coloured_photo_is_not_greyscale(photo):
    faded = Image.blend(photo.convert("L").convert("RGB"), photo, 0.25)  # a quarter of the colour left
    assert scope.GREYSCALE not in scope.image_flags(encoded(faded))


@pytest.mark.parametrize("factor", [2, 3])
def test_an_enlarged_image_is_flagged_upscaled(photo, factor):
    enlarged = photo.resize((photo.width * factor, photo.height * factor), Image.BICUBIC)
    assert scope.UPSCALED in scope.image_flags(encoded(enlarged))


def test_unreadable_bytes_give_no_flags_the_server_answers_for_them():
    assert scope.image_flags(b"not an image") == ()


def test_the_crop_eye_distance_is_the_servings():
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "model_repository"))
    from deepfake_serving.alignment import deepfakebench_template

    template = deepfakebench_template()
    assert np.linalg.norm(template[1] - template[0]) == pytest.approx(scope.CROP_EYE_DISTANCE_PX, abs=0.01)


def _face(eye_distance: float | None, box_width: float = 100.0):
    result = parse_outputs(ensemble_outputs([[0.3] * 4]))
    face = replace(result.faces[0], box=(10.0, 10.0, 10.0 + box_width, 10.0 + box_width))
    if eye_distance is None:
        return replace(face, landmarks=None)
    return replace(face, landmarks=((50.0, 50.0), (50.0 + eye_distance, 50.0), (60, 70), (55, 80), (65, 80)))


def test_a_face_the_crop_enlarges_more_than_twice_is_small():
    limit = scope.CROP_EYE_DISTANCE_PX / scope.SMALL_FACE_MAGNIFICATION
    assert scope.face_flags(_face(limit - 1)) == (scope.SMALL_FACE,)
    assert scope.face_flags(_face(limit + 1)) == ()
    assert scope.face_flags(_face(None, box_width=40)) == (scope.SMALL_FACE,)  # from the box without landmarks
    assert scope.face_flags(_face(None, box_width=200)) == ()


def test_faces_left_out_by_max_faces_flag_the_image_and_flags_reach_the_dict():
    result = parse_outputs(ensemble_outputs([[0.3] * 4, [0.4] * 4], faces_found=9))
    flagged = scope.with_flags(result, None)
    assert flagged.flags == (scope.TOO_MANY_FACES,)
    assert scope.with_flags(parse_outputs(ensemble_outputs([[0.3] * 4], faces_found=1)), None).flags == ()
    small = scope.with_flags(replace(result, faces=(_face(10.0),)), None)
    assert small.to_dict()["faces"][0]["flags"] == [scope.SMALL_FACE]
