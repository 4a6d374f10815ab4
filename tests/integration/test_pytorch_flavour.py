"""The `pytorch` flavour (GPU serving without TensorRT) run on CPU instances.

Its classifier model is GPU code in production; here it runs the same python
model in FP32 on CPU, and must agree with the onnxruntime-served cpu flavour.
"""

from __future__ import annotations

import numpy as np
import pytest
from triton_calls import infer_image

from deepfake_dev import samples
from deepfake_dev.local_server import LocalTritonServer, Ports
from export.repository import RepositoryOptions, assemble

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pytorch_server(export_artifacts, tmp_path_factory):
    out = tmp_path_factory.mktemp("repository") / "pytorch"
    assemble(export_artifacts, out, RepositoryOptions(flavour="pytorch", cpu_instances=True))
    with LocalTritonServer(out, Ports.free(),
                           log_path=out.parent / "tritonserver.log") as server:
        yield server


def test_pytorch_flavour_agrees_with_the_onnx_flavour(pytorch_server, deepfake_server, sample_media):
    data = (sample_media / samples.FACE_IMAGE).read_bytes()
    torch_served = infer_image(pytorch_server.grpc_url, data)
    onnx_served = infer_image(deepfake_server.grpc_url, data)
    assert torch_served["NUM_FACES"].tolist() == [1]
    np.testing.assert_allclose(torch_served["MODEL_FAKE_PROBABILITY"], onnx_served["MODEL_FAKE_PROBABILITY"],
                               atol=1e-4)
    assert torch_served["LABEL"].tolist() == onnx_served["LABEL"].tolist()
