"""Published checkpoints -> strictly loaded fixed checkpoints -> ONNX -> TensorRT plans,
and assembly of servable Triton model repositories."""
