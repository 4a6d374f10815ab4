"""Plain tritonclient calls used by the integration tests (no SDK in between)."""

from __future__ import annotations

import numpy as np
import tritonclient.grpc as grpcclient

import deepfake_contract as contract
from deepfake_models import CLASSIFIERS

OUTPUTS = [t.name for t in contract.ensemble_outputs(len(CLASSIFIERS))]


def infer_image(url: str, data: bytes, model: str = contract.ENSEMBLE_NAME) -> dict[str, np.ndarray]:
    """All ensemble outputs for one encoded image."""
    client = grpcclient.InferenceServerClient(url)
    image = grpcclient.InferInput("IMAGE", [len(data)], "UINT8")
    image.set_data_from_numpy(np.frombuffer(data, dtype=np.uint8))
    result = client.infer(model, [image], outputs=[grpcclient.InferRequestedOutput(n) for n in OUTPUTS])
    return {name: result.as_numpy(name) for name in OUTPUTS}
