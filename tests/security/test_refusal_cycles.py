"""A request Triton refuses leaves no reference cycle behind in the SDK: a cycle through a frame
would hold that frame's upload until the cyclic garbage collector happens to run (issue 18: the
gateway grew by 1 GB over 200 refused 19 MiB uploads). No Triton: a gRPC client that answers
every inference with Triton's INVALID_ARGUMENT, on a thread as gRPC does."""

from __future__ import annotations

import gc
import threading
import types

import pytest
from tritonclient.utils import InferenceServerException

from deepfake_client import DeepfakeClient
from deepfake_client.errors import InvalidInputError
from deepfake_client.transport import GrpcTransport


class RefusingGrpc:
    def async_infer(self, model, inputs, callback, **options):  # priority, parameters
        error = InferenceServerException("image is too large", status="StatusCode.INVALID_ARGUMENT")
        threading.Thread(target=callback, args=(None, error)).start()

    def close(self):
        pass


def cyclic_frames(action) -> list[str]:
    """The frames that only the cyclic GC could free after `action()`, as file:function."""
    gc.collect()
    gc.disable()
    try:
        action()
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        return [f"{o.f_code.co_filename.rsplit('/', 1)[-1]}:{o.f_code.co_name}"
                for o in gc.garbage if isinstance(o, types.FrameType)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def test_a_refused_grpc_request_leaves_no_cycle_holding_the_upload():
    transport = GrpcTransport("127.0.0.1:1", timeout_s=10)
    transport._grpc.close()
    transport._grpc = RefusingGrpc()
    client = DeepfakeClient("127.0.0.1:1", transport=transport)
    upload = b"\x89PNG\r\n\x1a\n" + bytes(1 << 20)

    def refused() -> None:
        with pytest.raises(InvalidInputError):
            client.detect(upload)

    refused()  # first calls import and cache things
    assert cyclic_frames(refused) == []
