"""The SDK side of explanations without a server: parsing the explainer's tensors,
placing heatmaps back on the photo, and the overlay PNG."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import deepfake_contract as contract
from deepfake_client.errors import ServerError
from deepfake_client.explain import parse_explanation
from deepfake_client.overlay import render_overlay

NAMES = ("xception", "efficientnet_b4", "f3net", "effort_clip")
SIZE = contract.HEATMAP_SIZE
BOX = (100.0, 60.0, 200.0, 180.0)
# Crop pixel (x, y) -> image (0.5 x + 80, 0.5 y + 50): the crop shows a 128 x 128 region.
TRANSFORM = np.array([[0.5, 0.0, 80.0], [0.0, 0.5, 50.0]], np.float32)


def outputs(weights=(0.25, 0.25, 0.25, 0.25), explained: int = 1, hot=(64, 192)) -> dict[str, np.ndarray]:
    heatmaps = np.zeros((explained, 4, SIZE, SIZE), np.float32)
    heatmaps[:, :, hot[1] - 8:hot[1] + 8, hot[0] - 8:hot[0] + 8] = 1.0  # hot square around crop pixel `hot`
    for column, w in enumerate(weights):
        if w == 0:
            heatmaps[:, column] = np.nan
    ensemble = np.nanmean(heatmaps, axis=1) if explained else np.zeros((0, SIZE, SIZE), np.float32)
    return {
        "LABEL": np.array([b"FAKE"], dtype=object),
        "FAKE_PROBABILITY": np.array([0.8], np.float32),
        "NUM_FACES": np.array([1], np.int32),
        "FACE_BOXES": np.array([BOX], np.float32),
        "FACE_SCORES": np.array([0.99], np.float32),
        "FACE_FAKE_PROBABILITY": np.array([0.8], np.float32),
        "MODEL_FAKE_PROBABILITY": np.array([[0.7, 0.8, 0.9, 0.6]], np.float32),
        "MODEL_NAMES": np.array([n.encode() for n in NAMES], dtype=object),
        "MODEL_UNTRAINED": np.zeros(4, bool),
        "HEATMAPS": heatmaps,
        "ENSEMBLE_HEATMAP": ensemble.astype(np.float32),
        "CROP_TO_IMAGE": np.tile(TRANSFORM, (explained, 1, 1)),
        "HEATMAP_WEIGHTS": np.array(weights, np.float32) / np.float32(sum(weights)),
    }


def photo_bytes(width: int = 320, height: int = 240) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), 90, np.uint8)).save(out, format="PNG")
    return out.getvalue()


def test_parse_gives_the_detection_and_one_map_per_enabled_model():
    result = parse_explanation(outputs(weights=(1, 1, 0, 2)))
    assert result.detection.label.value == "FAKE" and len(result.detection.faces) == 1
    (face,) = result.faces
    assert set(face.heatmaps) == {"xception", "efficientnet_b4", "effort_clip"}  # f3net disabled
    assert face.heatmaps["xception"].shape == (SIZE, SIZE) and face.heatmaps["xception"].dtype == np.float32
    assert result.weights["effort_clip"] == pytest.approx(0.5) and result.weights["f3net"] == 0.0
    np.testing.assert_allclose(face.crop_to_image, TRANSFORM)


def test_the_heatmap_lands_where_the_transform_puts_it():
    (face,) = parse_explanation(outputs(hot=(64, 192))).faces
    warped = face.to_image(face.ensemble, 320, 240)
    y, x = np.unravel_index(np.argmax(warped), warped.shape)
    # Crop pixel (64, 192) -> image (112, 146); the hot square is 16 crop = 8 image pixels wide.
    assert abs(x - 112) <= 4 and abs(y - 146) <= 4
    assert warped[:, :70].max() == 0.0  # nothing left of the crop's region


def test_no_face_gives_no_explained_faces():
    raw = outputs(explained=0)
    raw.update(LABEL=np.array([b"NO_FACE"], dtype=object), FAKE_PROBABILITY=np.array([np.nan], np.float32),
               NUM_FACES=np.array([0], np.int32), FACE_BOXES=np.zeros((0, 4), np.float32),
               FACE_SCORES=np.zeros(0, np.float32), FACE_FAKE_PROBABILITY=np.zeros(0, np.float32),
               MODEL_FAKE_PROBABILITY=np.zeros((0, 4), np.float32))
    result = parse_explanation(raw)
    assert result.faces == () and result.to_dict()["explained_faces"] == []
    assert render_overlay(photo_bytes(), result).startswith(b"\x89PNG")


@pytest.mark.parametrize("broken", ["missing", "out_of_range", "too_many_rows"])
def test_answers_outside_the_contract_are_server_errors(broken):
    raw = outputs()
    if broken == "missing":
        del raw["CROP_TO_IMAGE"]
    elif broken == "out_of_range":
        raw["ENSEMBLE_HEATMAP"] = raw["ENSEMBLE_HEATMAP"] * 2
    else:
        raw = {**outputs(explained=2), "NUM_FACES": raw["NUM_FACES"]}
    with pytest.raises(ServerError):
        parse_explanation(raw)


def test_overlay_is_a_png_with_the_heatmap_on_the_face():
    result = parse_explanation(outputs(hot=(128, 128)))
    png = render_overlay(photo_bytes(), result)
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert image.shape[1] > 320 and image.shape[0] > 240  # photo, strip and legend
    # The photo is grey (90, 90, 90) except where the ensemble map is blended in: the
    # crop's centre (128, 128) maps to image (144, 114), which now has the map's colour.
    grey = np.all(image == 90, axis=2)
    coloured = ~grey & (image.std(axis=2) > 20)
    assert coloured.any()
    assert result.to_dict()["explained_faces"][0]["peak"]["ensemble"] == pytest.approx([144.0, 114.0], abs=4)


def test_the_overlay_header_says_uncertain_in_its_colour():
    from deepfake_client.overlay import FAKE_INK, UNCERTAIN_INK

    def header_inks(extra: dict) -> set[tuple[int, ...]]:
        result = parse_explanation({**outputs(), **extra})
        image = np.asarray(Image.open(io.BytesIO(render_overlay(photo_bytes(), result))).convert("RGB"))
        return {tuple(int(v) for v in pixel) for pixel in image[8:30, :200].reshape(-1, 3)}

    uncertain = {"VERDICT": np.array([b"UNCERTAIN"], dtype=object), "FACE_VERDICT": np.array([b"UNCERTAIN"], dtype=object)}
    assert UNCERTAIN_INK in header_inks(uncertain) and FAKE_INK not in header_inks(uncertain)
    assert FAKE_INK in header_inks({}) and UNCERTAIN_INK not in header_inks({})
