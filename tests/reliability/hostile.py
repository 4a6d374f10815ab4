"""The hostile-input corpus and raw calls to the server (no SDK, no tritonclient in between).

Every case is one HTTP request to one model, built by hand with Triton's binary tensor
extension so that declared shapes, datatypes and byte counts can disagree on purpose. Each
must be refused with HTTP 400 and a message without a traceback or a server path.
"""

from __future__ import annotations

import gzip
import json
import struct
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass, field

import numpy as np

import deepfake_contract as contract
from deepfake_dev import samples
from deepfake_models import CLASSIFIERS
from deepfake_serving.images import ImageLimits
from export.triton_config import FLAVOURS

MIB = 1 << 20
LIMITS = ImageLimits()
MAX_BATCH = FLAVOURS["cpu"].classifier_max_batch_size
# What a refusal must never show a client.
LEAKS = ("Traceback", "File \"", ".py", "/tmp/", "/work/", "/home/", "site-packages")


@dataclass(frozen=True)
class Tensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    data: bytes


@dataclass(frozen=True)
class Case:
    name: str
    model: str
    inputs: tuple[Tensor, ...]
    encoding: str | None = None  # HTTP Content-Encoding of the body
    fragment: str = ""  # expected in the message, when the model (not Triton) refuses
    # HTTP statuses accepted: 400, except where Triton itself answers otherwise (its JSON
    # parser answers a negative dimension with 500 and a clean message on 2.51).
    statuses: tuple[int, ...] = (400,)
    outputs: tuple[str, ...] = field(default=())


def request_body(inputs: tuple[Tensor, ...]) -> tuple[bytes, int]:
    header = json.dumps({"inputs": [
        {"name": t.name, "datatype": t.datatype, "shape": list(t.shape), "parameters": {"binary_data_size": len(t.data)}}
        for t in inputs]}).encode()
    return header + b"".join(t.data for t in inputs), len(header)


def post(http_url: str, model: str, inputs: tuple[Tensor, ...], encoding: str | None = None,
         timeout_s: float = 120.0) -> tuple[int, bytes]:
    """(HTTP status, body) of one binary-extension inference request."""
    body, header_length = request_body(inputs)
    headers = {"Inference-Header-Content-Length": str(header_length), "Content-Type": "application/octet-stream"}
    if encoding == "gzip":
        body = gzip.compress(body, 9)
    elif encoding == "deflate":
        body = zlib.compress(body, 9)
    if encoding:
        headers["Content-Encoding"] = encoding
    request = urllib.request.Request(f"http://{http_url}/v2/models/{model}/infer", data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def image(data: bytes, datatype: str = "UINT8", shape: tuple[int, ...] | None = None) -> Tensor:
    return Tensor(contract.IMAGE.name, datatype, shape if shape is not None else (len(data),), data)


def _webp_declaring(width: int, height: int) -> bytes:
    """A VP8X WebP header that declares a canvas of width x height, and nothing else."""
    chunk = b"\x00\x00\x00\x00" + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + b"VP8X" + struct.pack("<I", len(chunk)) + chunk
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _bmp_declaring(width: int, height: int) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(info), 0, 0, 14 + len(info)) + info


def _image_cases(model: str) -> list[Case]:
    jpeg = samples.encode_image(samples.face_image())
    files = {name: data for name, data in samples.invalid_images(LIMITS).items() if name != "empty"}
    files.update({
        "heic": b"\x00\x00\x00\x18ftypheic" + bytes(64),
        "jpeg2000": b"\x00\x00\x00\x0cjP  \r\n\x87\n" + bytes(64),
        "webp_declares_16k_by_16k": _webp_declaring(16_000, 16_000),
        "bmp_declares_100k_wide": _bmp_declaring(100_000, 10),
        "one_byte": b"\xff",
        "jpeg_magic_only": b"\xff\xd8\xff",
        "limit_edge_exactly_max_bytes_not_an_image": bytes(LIMITS.max_bytes),
        "limit_edge_max_bytes_plus_one": jpeg + bytes(LIMITS.max_bytes + 1 - len(jpeg)),
        "nineteen_mib_of_noise": np.random.default_rng(1).bytes(19 * MIB),
    })
    cases = [Case(f"{model}:{name}", model, (image(data),)) for name, data in files.items()]
    small = samples.encode_image(samples.face_image()[::4, ::4])
    cases += [
        Case(f"{model}:empty_tensor", model, (image(b"", shape=(0,)),)),
        Case(f"{model}:fp32_image", model, (image(small[: len(small) // 4 * 4], "FP32", (len(small) // 4,)),)),
        Case(f"{model}:bytes_datatype", model, (image(struct.pack("<I", len(small)) + small, "BYTES", (1,)),)),
        Case(f"{model}:two_dimensional", model, (image(small[: len(small) // 2 * 2], shape=(2, len(small) // 2)),)),
        Case(f"{model}:declared_longer_than_data", model, (image(small, shape=(len(small) * 2,)),)),
        Case(f"{model}:declared_2_to_the_40", model, (image(small, shape=(1 << 40,)),)),
        Case(f"{model}:negative_dimension", model, (image(small, shape=(-5,)),), statuses=(400, 500)),
        Case(f"{model}:missing_input", model, ()),
        Case(f"{model}:unknown_extra_input", model, (image(small), Tensor("EXTRA", "UINT8", (3,), b"abc"))),
    ]
    return cases


def _classifier_cases() -> list[Case]:
    cases = []
    for spec in CLASSIFIERS:
        size = spec.input_size
        one = bytes(size * size * 3)

        def crops(rows: int, side: int = size, datatype: str = "UINT8", data: bytes | None = None) -> Tensor:
            width = 4 if datatype == "FP32" else 1
            payload = data if data is not None else bytes(rows * side * side * 3 * width)
            return Tensor(contract.CLASSIFIER_INPUT, datatype, (rows, side, side, 3), payload)

        cases += [
            Case(f"{spec.name}:zero_rows", spec.name, (crops(0),)),
            Case(f"{spec.name}:wrong_crop_size", spec.name, (crops(1, side=size + 32),)),
            Case(f"{spec.name}:fp32_crops", spec.name, (crops(1, datatype="FP32"),)),
            Case(f"{spec.name}:batch_over_max", spec.name, (crops(MAX_BATCH + 1),)),
            Case(f"{spec.name}:declared_more_rows_than_data", spec.name, (crops(4, data=one),)),
            Case(f"{spec.name}:no_batch_dimension", spec.name,
                 (Tensor(contract.CLASSIFIER_INPUT, "UINT8", (size, size, 3), one),)),
        ]
    return cases


def _combiner_cases() -> list[Case]:
    names = [spec.name for spec in CLASSIFIERS]

    def logits(rows: np.ndarray, name: str) -> Tensor:
        rows = np.asarray(rows, np.float32)
        return Tensor(contract.logits_tensor(name).name, "FP32", rows.shape, rows.tobytes())

    def faces(values, datatype: str = "INT32") -> Tensor:
        array = np.asarray(values, np.int32 if datatype == "INT32" else np.float64)
        return Tensor(contract.NUM_FACES.name, datatype, array.shape, array.tobytes())

    good = np.array([[0.0, 1.0]], np.float32)

    def call(name: str, num_faces: Tensor | None, rows: dict[str, np.ndarray], fragment: str = "") -> Case:
        tensors = ([num_faces] if num_faces else []) + [logits(rows.get(n, good), n) for n in names]
        return Case(f"{contract.COMBINER_NAME}:{name}", contract.COMBINER_NAME, tuple(tensors), fragment=fragment)

    first = names[0]
    return [
        call("nan_logits", faces([1]), {first: [[np.nan, 0.0]]}, "finite"),
        call("infinite_logits", faces([1]), {first: [[0.0, np.inf]]}, "finite"),
        call("negative_face_count", faces([-1]), {}, "NUM_FACES must be >= 0"),
        call("face_count_beyond_rows", faces([3]), {}, "logit rows for NUM_FACES=3"),
        call("rows_beyond_face_count", faces([1]), dict.fromkeys(names, np.zeros((3, 2))), "logit rows"),
        call("rows_differ_between_models", faces([1]), {first: np.zeros((2, 2))}, "logit rows"),
        call("three_logit_columns", faces([1]), {first: np.zeros((1, 3))}),
        call("two_face_counts", faces([1, 1]), {}),
        call("fp64_face_count", faces([1], "FP64"), {}),
        call("missing_face_count", None, {}),
    ]


def corpus() -> list[Case]:
    """Every hostile case: images to the ensemble and to face_detector, crops to every
    classifier, inconsistent tensors to the combiner, compressed bombs."""
    bomb = image(bytes(25 * MIB))  # inflates past max_bytes; gzip shrinks it to ~25 kB
    return (_image_cases(contract.ENSEMBLE_NAME) + _image_cases(contract.FACE_DETECTOR_NAME)
            + _classifier_cases() + _combiner_cases() + [
                Case("gzip_bomb", contract.ENSEMBLE_NAME, (bomb,), encoding="gzip"),
                Case("deflate_bomb", contract.ENSEMBLE_NAME, (bomb,), encoding="deflate"),
            ])
