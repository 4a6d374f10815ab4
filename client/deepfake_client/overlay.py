"""Draw an explanation for a person: `render_overlay(image_bytes, explanation) -> PNG bytes`.

The picture: a header with the verdict; the photo with each explained face's
ensemble heatmap blended in place (warped back through the face's crop-to-image
transform), every face's box and score; per explained face a strip of the
aligned crop, the ensemble map and each model's map with its score and weight;
a colour legend and one line on how to read it. OpenCV and Pillow only.
"""

from __future__ import annotations

import io
import math

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

import deepfake_contract as contract

from .explain import ExplanationResult, FaceExplanation
from .images import encode_image

TILE = 150  # side of a strip tile, pixels
GAP = 10
WIDTH = 6 * TILE + 7 * GAP  # crop, ensemble, four models
MAX_PHOTO_HEIGHT = 640
ALPHA = 0.65  # opacity of the colour at heatmap value 1
# Opacity grows with the square of the value: weak evidence fades out, so the crop's
# square edge does not show on the photo where a map is faint but not zero.
OPACITY_POWER = 2.0
COLORMAP = cv2.COLORMAP_JET
BACKGROUND = (250, 250, 250)
INK = (20, 20, 20)
BOX = (255, 215, 0)
FAKE_INK = (200, 30, 30)
REAL_INK = (20, 120, 40)
UNCERTAIN_INK = (230, 119, 0)
READING = ("Colour (fading out towards 0): where a model found evidence for FAKE, relative to that map's "
           "strongest point. Not a score, not a mask of manipulated pixels.")


def colourise(heatmap: np.ndarray) -> np.ndarray:
    """[H, W] values in [0, 1] -> [H, W, 3] RGB uint8 in the legend's colour map."""
    levels = np.clip(np.nan_to_num(heatmap, nan=0.0) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(levels, COLORMAP), cv2.COLOR_BGR2RGB)


def blend(rgb: np.ndarray, heatmap: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """The heatmap's colours over `rgb`, more opaque where the value is higher (0: untouched)."""
    weight = (alpha * np.clip(np.nan_to_num(heatmap, nan=0.0), 0.0, 1.0) ** OPACITY_POWER)[..., None]
    return (rgb.astype(np.float32) * (1.0 - weight) + colourise(heatmap).astype(np.float32) * weight).round().astype(
        np.uint8)


def stretched(ensemble: np.ndarray) -> np.ndarray:
    """The ensemble map divided by its peak, drawn like the per-model maps (1 = strongest
    point). Its peak, shown beside it, says how much the models agree (1: all on one spot)."""
    peak = float(np.nanmax(ensemble)) if ensemble.size else 0.0
    return ensemble / peak if peak > 0 else ensemble


def render_overlay(image_bytes: bytes, explanation: ExplanationResult) -> bytes:
    """The explanation drawn over the photo it explains, as PNG bytes."""
    rgb = _decode(image_bytes)
    height, width = rgb.shape[:2]
    photo = rgb.copy()
    for face in explanation.faces:
        photo = blend(photo, face.to_image(stretched(face.ensemble), width, height))

    scale = min((WIDTH - 2 * GAP) / width, MAX_PHOTO_HEIGHT / height)
    shown = cv2.resize(photo, (max(1, round(width * scale)), max(1, round(height * scale))),
                       interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    font, small = _font(18), _font(13)
    header_h, caption_h, strip_h = 58, 24, TILE + 44
    legend_h = 86
    photo_top = header_h
    strips_top = photo_top + shown.shape[0] + GAP
    total_h = strips_top + len(explanation.faces) * (caption_h + strip_h) + legend_h
    canvas = Image.new("RGB", (WIDTH, total_h), BACKGROUND)
    draw = ImageDraw.Draw(canvas)

    _header(draw, explanation, font, small)
    left = (WIDTH - shown.shape[1]) // 2
    canvas.paste(Image.fromarray(shown), (left, photo_top))
    for index, face in enumerate(explanation.detection.faces):
        x1, y1, x2, y2 = (v * scale for v in face.box)
        box = (left + x1, photo_top + y1, left + x2, photo_top + y2)
        draw.rectangle(box, outline=(0, 0, 0), width=4)
        draw.rectangle(box, outline=BOX, width=2)
        label = f"face {index + 1}: {face.fake_probability:.2f}"
        text_y = max(photo_top, box[1] - 22)
        draw.rectangle(draw.textbbox((box[0], text_y), label, font=small), fill=(0, 0, 0))
        draw.text((box[0], text_y), label, fill=BOX, font=small)

    top = strips_top
    for face in explanation.faces:
        top = _strip(canvas, draw, rgb, explanation, face, top, font, small, caption_h)
    _legend(canvas, draw, top, small)

    out = io.BytesIO()
    canvas.save(out, format="PNG")
    return out.getvalue()


def _decode(image_bytes: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(encode_image(image_bytes))) as image:
        return np.asarray(image.convert("RGB"))


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _header(draw: ImageDraw.ImageDraw, explanation: ExplanationResult, font, small) -> None:
    detection = explanation.detection
    verdict = detection.verdict.value  # UNCERTAIN inside the served band, as the page and CLI say
    score = "" if math.isnan(detection.fake_probability) else f"   image score {detection.fake_probability:.2f}"
    ink = (UNCERTAIN_INK if detection.is_uncertain else FAKE_INK if detection.is_fake
           else REAL_INK if detection.has_face else INK)
    draw.text((GAP, 8), verdict + score, fill=ink, font=font)
    detail = f"{len(detection.faces)} face(s), {len(explanation.faces)} explained (most confident first)"
    if detection.untrained:
        detail += "   UNTRAINED demo weights: scores and maps are meaningless"
    draw.text((GAP, 34), detail, fill=FAKE_INK if detection.untrained else INK, font=small)


def _strip(canvas, draw, rgb, explanation: ExplanationResult, face: FaceExplanation, top, font, small,
           caption_h) -> int:
    detected = explanation.detection.faces[face.index]
    draw.text((GAP, top + 2), f"face {face.index + 1}: ensemble {detected.fake_probability:.2f}", fill=INK, font=font)
    top += caption_h
    size = contract.HEATMAP_SIZE
    crop = cv2.warpAffine(rgb, face.crop_to_image, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    peak = float(face.ensemble.max())
    tiles = [("aligned crop", "", crop), ("ensemble", f"weighted mean, peak {peak:.2f}",
                                          blend(crop, stretched(face.ensemble)))]
    for name in explanation.detection.model_names:
        weight = explanation.weights.get(name, 0.0)
        score = detected.model_probabilities.get(name, float("nan"))
        if name in face.heatmaps:
            tiles.append((name, f"p {score:.2f}  w {weight:.2f}", blend(crop, face.heatmaps[name])))
        else:
            tiles.append((name, "disabled (w 0)", (crop * 0.3).astype(np.uint8)))
    for column, (title, detail, tile) in enumerate(tiles):
        x = GAP + column * (TILE + GAP)
        canvas.paste(Image.fromarray(cv2.resize(tile, (TILE, TILE), interpolation=cv2.INTER_AREA)), (x, top))
        draw.text((x, top + TILE + 4), title, fill=INK, font=small)
        draw.text((x, top + TILE + 22), detail, fill=INK, font=small)
    return top + TILE + 44


def _legend(canvas, draw, top, small) -> None:
    bar_w, bar_h = WIDTH - 2 * GAP - 150, 16
    ramp = np.tile(np.linspace(0.0, 1.0, bar_w, dtype=np.float32), (bar_h, 1))
    x0, y0 = GAP + 60, top + 8
    canvas.paste(Image.fromarray(colourise(ramp)), (x0, y0))
    draw.rectangle((x0 - 1, y0 - 1, x0 + bar_w, y0 + bar_h), outline=INK)
    draw.text((GAP, y0), "none", fill=INK, font=small)
    draw.text((x0 + bar_w + 8, y0), "strongest", fill=INK, font=small)
    for value in (0.0, 0.5, 1.0):
        x = x0 + round(value * (bar_w - 1))
        draw.line((x, y0 + bar_h, x, y0 + bar_h + 4), fill=INK)
        draw.text((x - 8, y0 + bar_h + 5), f"{value:g}", fill=INK, font=small)
    draw.text((GAP, y0 + bar_h + 26), READING, fill=INK, font=small)
