"""Tensor names, types and shapes of the models, written once.

The ensemble's public inputs/outputs are a fixed contract (docs/design.md §3);
the generated configs and the python models both read these tables.
"""

from __future__ import annotations

from dataclasses import dataclass

ENSEMBLE_NAME = "deepfake_detector"
FACE_DETECTOR_NAME = "face_detector"
COMBINER_NAME = "weighted_average"

# Request priorities of the public models (Triton: 1 is served first; 0 means the model's
# default, PRIORITY_BULK). People waiting on one answer (a single image, a webcam frame) go
# ahead of bulk work (batches, videos, folders, calibration), which the SDK sends at BULK.
PRIORITY_INTERACTIVE = 1
PRIORITY_BULK = 2
PRIORITY_LEVELS = 2
# Request parameter (JSON true) of the liveness probe: the public pipeline calls every step even
# for an image without a face, so that a dead classifier fails the probe.
RUN_ALL_STEPS = "run_all_steps"

# Every classifier (ONNX, TensorRT plan, Triton config) has one input and one output.
CLASSIFIER_INPUT = "FACES"  # UINT8 [N, H, W, 3], RGB aligned face crops
CLASSIFIER_OUTPUT = "LOGITS"  # FP32 [N, 2], index 1 = fake


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # Triton data type without the TYPE_ prefix: UINT8, FP32, INT32, BYTES, BOOL
    dims: tuple[int, ...]


def crop_tensor(size: int) -> TensorSpec:
    """Aligned RGB face crops of one size; at least one (placeholder) row."""
    return TensorSpec(f"FACES_{size}", "UINT8", (-1, size, size, 3))


def logits_tensor(model_name: str) -> TensorSpec:
    return TensorSpec(f"{model_name.upper()}_LOGITS", "FP32", (-1, 2))


IMAGE = TensorSpec("IMAGE", "UINT8", (-1,))
NUM_FACES = TensorSpec("NUM_FACES", "INT32", (1,))
FACE_BOXES = TensorSpec("FACE_BOXES", "FP32", (-1, 4))
FACE_SCORES = TensorSpec("FACE_SCORES", "FP32", (-1,))
FACE_LANDMARKS = TensorSpec("FACE_LANDMARKS", "FP32", (-1, 5, 2))
# Faces the detector found before its max_faces cut (>= NUM_FACES; larger: some were left out).
NUM_FACES_FOUND = TensorSpec("NUM_FACES_FOUND", "INT32", (1,))
# Internal (detector -> python classifiers, never an ensemble output): True where a crop row is a
# face, False for the no-face placeholder row, which those classifiers skip (zero logits).
FACE_PRESENT = TensorSpec("FACE_PRESENT", "BOOL", (-1, 1))


def combiner_outputs(num_models: int) -> tuple[TensorSpec, ...]:
    return (
        TensorSpec("LABEL", "BYTES", (1,)),
        TensorSpec("FAKE_PROBABILITY", "FP32", (1,)),
        TensorSpec("FACE_FAKE_PROBABILITY", "FP32", (-1,)),
        TensorSpec("MODEL_FAKE_PROBABILITY", "FP32", (-1, num_models)),
        TensorSpec("MODEL_NAMES", "BYTES", (num_models,)),
        TensorSpec("MODEL_UNTRAINED", "BOOL", (num_models,)),
        # Added outputs: LABEL with UNCERTAIN where the score lies in the served uncertain band
        # (equal to LABEL when no band is served), per image and per face.
        TensorSpec("VERDICT", "BYTES", (1,)),
        TensorSpec("FACE_VERDICT", "BYTES", (-1,)),
    )


def detector_outputs(crop_sizes: tuple[int, ...]) -> tuple[TensorSpec, ...]:
    return tuple(crop_tensor(s) for s in crop_sizes) + (
        NUM_FACES,
        FACE_BOXES,
        FACE_SCORES,
        FACE_LANDMARKS,
        NUM_FACES_FOUND,
        FACE_PRESENT,
    )


def ensemble_outputs(num_models: int) -> tuple[TensorSpec, ...]:
    """The ensemble's outputs: what the detector reports about faces, then the verdict."""
    return (NUM_FACES, FACE_BOXES, FACE_SCORES, FACE_LANDMARKS) + combiner_outputs(num_models) + (NUM_FACES_FOUND,)


# Explanations (issue 11): a second ensemble with every deepfake_detector output plus
# Grad-CAM heatmaps. F rows = min(faces found, the explainer's max_faces), most
# confident faces first; heatmaps live on the 256 aligned crop's pixel grid.
EXPLAINER_NAME = "explainer"
EXPLAINER_ENSEMBLE_NAME = "deepfake_explainer"
HEATMAP_SIZE = 256


def explainer_outputs(num_models: int) -> tuple[TensorSpec, ...]:
    return (
        TensorSpec("HEATMAPS", "FP32", (-1, num_models, HEATMAP_SIZE, HEATMAP_SIZE)),
        TensorSpec("ENSEMBLE_HEATMAP", "FP32", (-1, HEATMAP_SIZE, HEATMAP_SIZE)),
        TensorSpec("CROP_TO_IMAGE", "FP32", (-1, 2, 3)),
        TensorSpec("HEATMAP_WEIGHTS", "FP32", (num_models,)),
    )


def explainer_ensemble_outputs(num_models: int) -> tuple[TensorSpec, ...]:
    return ensemble_outputs(num_models) + explainer_outputs(num_models)
