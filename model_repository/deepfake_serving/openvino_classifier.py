"""An exported classifier (UINT8 NHWC crops -> FP32 logits) on the OpenVINO runtime.

It reads the same ONNX file the onnxruntime path serves: FP32, or the INT8 QDQ file that
passed the gate (export/quantize.py), which OpenVINO runs as INT8. Compiled for throughput:
the batch is split over `streams` infer requests that run at once; `threads` (0: every core)
is what the model may use in all, so the ensemble's models together do not oversubscribe
the cores (their threads come from each spec's `cpu_threads`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx


def onnx_metadata(path: Path) -> dict[str, str]:
    """The ONNX file's metadata (untrained flag, licence); the weights are not read."""
    model = onnx.load(str(path), load_external_data=False)
    return {prop.key: prop.value for prop in model.metadata_props}


class OpenVinoClassifier:
    runtime = "openvino"

    def __init__(self, path: Path, threads: int = 0, streams: int = 1) -> None:
        import openvino as ov

        if threads < 0 or streams < 1:
            raise ValueError(f"need threads >= 0 and streams >= 1, got {threads}, {streams}")
        config = {
            "PERFORMANCE_HINT": "THROUGHPUT",
            "NUM_STREAMS": streams,
            # f32, not OpenVINO's bf16 default on CPUs with AMX/AVX512-BF16: the gate and the
            # parity tests measured f32 (INT8 files stay INT8 either way).
            "INFERENCE_PRECISION_HINT": "f32",
            # Threads sleep when idle and are not pinned: the detector and the other
            # classifiers share the same cores.
            "ENABLE_CPU_PINNING": False,
        }
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self.compiled = ov.Core().compile_model(str(path), "CPU", config)
        self.streams = streams
        self.queue = ov.AsyncInferQueue(self.compiled, streams)
        self.metadata = onnx_metadata(path)

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        chunks = np.array_split(faces, min(self.streams, len(faces))) if len(faces) else [faces]
        results: list[np.ndarray | None] = [None] * len(chunks)

        def done(request, index: int) -> None:
            results[index] = request.get_output_tensor(0).data.copy()

        self.queue.set_callback(done)
        for index, chunk in enumerate(chunks):
            self.queue.start_async({0: np.ascontiguousarray(chunk)}, index)
        self.queue.wait_all()
        return np.concatenate(results)
