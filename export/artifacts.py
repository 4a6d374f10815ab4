"""Where every export output lives under a build folder (documented in export/README.md).

Other parts (the repository assembler, benchmarks, serving flavours) locate files
through this class instead of hard-coding paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepfake_models import spec_by_name
from export.errors import MissingArtifactError
from export.provenance import read_json


@dataclass(frozen=True)
class BuildArtifacts:
    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def demo_weights_dir(self) -> Path:
        return self.root / "demo_weights"

    def fixed_checkpoint(self, name: str) -> Path:
        return self.root / "fixed" / f"{_known(name)}.safetensors"

    def manifest_path(self, name: str) -> Path:
        return self.root / "fixed" / f"{_known(name)}.json"

    def onnx(self, name: str) -> Path:
        return self.root / "onnx" / f"{_known(name)}.onnx"

    def onnx_parity(self, name: str) -> Path:
        return self.root / "onnx" / f"{_known(name)}.parity.json"

    def mixed_precision_onnx(self, name: str) -> Path:
        return self.root / "onnx" / f"{_known(name)}.fp16.onnx"

    def mixed_precision_parity(self, name: str) -> Path:
        return self.root / "onnx" / f"{_known(name)}.fp16.parity.json"

    def int8_onnx(self, name: str) -> Path:
        """INT8 (QDQ) variant for CPU hosts; present only when it passed the accuracy gate."""
        return self.root / "onnx" / f"{_known(name)}.int8.onnx"

    def int8_report(self, name: str) -> Path:
        return self.root / "onnx" / f"{_known(name)}.int8.json"

    def plan(self, name: str, cache_key: str) -> Path:
        return self.root / "plans" / _known(name) / f"{cache_key}.plan"

    def plan_sidecar(self, name: str, cache_key: str) -> Path:
        return self.plan(name, cache_key).with_suffix(".json")

    def manifest(self, name: str) -> dict[str, Any]:
        """The fixed-checkpoint manifest; raises when `fix` has not run for `name`."""
        record = read_json(self.manifest_path(name))
        if record is None:
            raise MissingArtifactError(
                f"no fixed checkpoint for {name} under {self.root} "
                f"(run: deepfake-export fix <checkpoint> --out {self.root})"
            )
        return record

    def licence(self, name: str) -> str:
        """The licence of the weights `name` was exported from (its manifest's)."""
        return self.manifest(name)["licence"]

    def existing_onnx(self, name: str) -> Path:
        """The ONNX file of `name`; raises when `onnx` has not run for it."""
        path = self.onnx(name)
        if not path.is_file():
            raise MissingArtifactError(f"{path} does not exist (run: deepfake-export onnx --artifacts {self.root})")
        return path

    def is_untrained(self, name: str) -> bool:
        """True when the model was built from untrained demo weights."""
        return bool(self.manifest(name)["untrained"])

    def plans(self, name: str) -> list[dict[str, Any]]:
        """Sidecars of the TensorRT plans built for `name` (any TensorRT version or
        GPU), each with its `plan` path; the caller picks the one matching its server."""
        folder = self.root / "plans" / _known(name)
        found = []
        for sidecar in sorted(folder.glob("*.json")):
            record = read_json(sidecar)
            if record is not None and sidecar.with_suffix(".plan").is_file():
                found.append({**record, "plan": str(sidecar.with_suffix(".plan"))})
        return found


def _known(name: str) -> str:
    return spec_by_name(name).name
