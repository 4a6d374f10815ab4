"""An exported classifier (UINT8 NHWC crops -> FP32 logits) on onnxruntime's CPU provider."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from deepfake_contract import CLASSIFIER_INPUT, CLASSIFIER_OUTPUT


class OnnxClassifier:
    runtime = "onnxruntime"

    def __init__(self, path: Path, intra_op_threads: int = 0) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads  # 0 = onnxruntime's default (all cores)
        # Idle pool threads sleep instead of spinning: the four classifiers and the detectors share
        # the same cores, and a spinning pool steals them from the others (2-core `cpu` flavour:
        # ~18% more images/s, benchmarks/README.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        (logits,) = self.session.run([CLASSIFIER_OUTPUT], {CLASSIFIER_INPUT: faces})
        return logits
