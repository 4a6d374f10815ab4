"""DeepfakeBench alignment on the GPU: the same similarity transform as alignment.py,
applied with torch's affine_grid/grid_sample, and JPEG decoding with nvJPEG.

For a face_detector instance on a GPU the image is decoded there and never comes
back to the CPU: only the five points per face do (MTCNN's output). The crops
equal the OpenCV path (cv2.warpAffine, bilinear, black border, then INTER_CUBIC
resize) within the tolerance tests/perf/test_alignment_torch.py checks; why it is
not exact is said there.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .alignment import DEEPFAKEBENCH_SCALE, DEEPFAKEBENCH_SIZE, deepfakebench_template, estimate_similarity
from .images import ImageLimits, decode_image


def decode_jpeg(data: bytes, device: str | torch.device) -> torch.Tensor:
    """(H, W, 3) uint8 RGB on `device`; nvJPEG when it is a CUDA device."""
    from torchvision.io import ImageReadMode
    from torchvision.io import decode_jpeg as tv_decode_jpeg

    encoded = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    image = tv_decode_jpeg(encoded, mode=ImageReadMode.RGB, device=torch.device(device), apply_exif_orientation=True)
    return image.permute(1, 2, 0).contiguous()


def decode_on_device(data: bytes, limits: ImageLimits, device: str | torch.device) -> torch.Tensor:
    """images.decode_image's result as a tensor on `device`: baseline RGB or grayscale
    JPEGs within the limits decode there (nvJPEG on a GPU); anything else, including
    every file images.py rejects, goes through decode_image (same errors)."""
    header = bytes(memoryview(data)[:3])
    if header == b"\xff\xd8\xff" and memoryview(data).nbytes <= limits.max_bytes:
        try:
            with Image.open(io.BytesIO(bytes(data))) as probe:
                plain = probe.format == "JPEG" and probe.mode in ("RGB", "L")
                size_ok = max(probe.size) <= limits.max_side and probe.size[0] * probe.size[1] <= limits.max_pixels
        except Exception:  # noqa: BLE001 - anything odd takes the checked CPU path
            plain = size_ok = False
        if plain and size_ok:
            try:
                return decode_jpeg(bytes(data), device)
            except RuntimeError:
                pass  # corrupt: decode_image says why
    return torch.from_numpy(decode_image(data, limits)).to(device)


def placeholder(device: torch.device) -> torch.Tensor:
    """The no-face placeholder row (black), as detection.face_detection makes it."""
    return torch.zeros((1, DEEPFAKEBENCH_SIZE, DEEPFAKEBENCH_SIZE, 3), dtype=torch.uint8, device=device)


def _normalised_theta(matrix: np.ndarray, source_hw: tuple[int, int], size: int) -> np.ndarray:
    """affine_grid's theta for cv2.warpAffine(image, matrix, (size, size)).

    warpAffine samples source = M^-1 · destination, pixel centres at integers;
    affine_grid (align_corners=False) works in [-1, 1] with pixel i's centre at
    (2i + 1)/n - 1. theta = N_source · M^-1 · N_destination^-1."""
    height, width = source_hw
    forward = np.vstack([matrix, [0.0, 0.0, 1.0]])
    inverse = np.linalg.inv(forward)
    to_source = np.array([[2.0 / width, 0.0, 1.0 / width - 1.0], [0.0, 2.0 / height, 1.0 / height - 1.0],
                          [0.0, 0.0, 1.0]])
    from_destination = np.array([[size / 2.0, 0.0, (size - 1) / 2.0], [0.0, size / 2.0, (size - 1) / 2.0],
                                 [0.0, 0.0, 1.0]])
    return (to_source @ inverse @ from_destination)[:2]


def align_faces(
    image: torch.Tensor,
    points: Sequence[np.ndarray],
    size: int = DEEPFAKEBENCH_SIZE,
    scale: float = DEEPFAKEBENCH_SCALE,
) -> torch.Tensor:
    """(N, size, size, 3) uint8 crops of one (H, W, 3) uint8 image, on its device:
    one per five-point set in `points`, as alignment.align_face makes them."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != torch.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.dtype} {tuple(image.shape)}")
    if not len(points):
        return torch.zeros((0, size, size, 3), dtype=torch.uint8, device=image.device)
    template = deepfakebench_template(size, scale)
    hw = (int(image.shape[0]), int(image.shape[1]))
    theta = np.stack([_normalised_theta(estimate_similarity(p, template), hw, size) for p in points])
    theta_t = torch.as_tensor(theta, dtype=torch.float32, device=image.device)
    grid = F.affine_grid(theta_t, [len(points), 3, size, size], align_corners=False)
    source = image.permute(2, 0, 1).unsqueeze(0).float().expand(len(points), -1, -1, -1)
    crops = F.grid_sample(source, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return crops.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def resize_crops(crops: torch.Tensor, size: int) -> torch.Tensor:
    """(N, S, S, 3) uint8 -> (N, size, size, 3) uint8, bicubic (a = -0.75, as cv2.INTER_CUBIC)."""
    if crops.shape[1] == size:
        return crops
    resized = F.interpolate(crops.permute(0, 3, 1, 2).float(), size=(size, size), mode="bicubic", align_corners=False)
    return resized.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
