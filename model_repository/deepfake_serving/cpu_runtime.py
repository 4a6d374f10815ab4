"""Which runtime serves the cpu flavour's classifiers: OpenVINO, or onnxruntime as the fallback.

`openvino` falls back to onnxruntime when the openvino package is not installed (a lighter
image); `onnxruntime` is always onnxruntime. The caller logs which one it got.
"""

from __future__ import annotations

from pathlib import Path

from deepfake_serving.onnx_classifier import OnnxClassifier

OPENVINO = "openvino"
ONNXRUNTIME = "onnxruntime"
RUNTIMES = (OPENVINO, ONNXRUNTIME)


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def open_classifier(path: Path, runtime: str = OPENVINO, threads: int = 0, streams: int = 1):
    """The classifier of ONNX file `path` on `runtime`; `.runtime` says which one serves it."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown cpu runtime {runtime!r}; choose from {', '.join(RUNTIMES)}")
    if runtime == OPENVINO and openvino_available():
        from deepfake_serving.openvino_classifier import OpenVinoClassifier

        return OpenVinoClassifier(path, threads=threads, streams=streams)
    return OnnxClassifier(path, intra_op_threads=threads)
