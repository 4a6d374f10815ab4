"""Released checkpoint → strictly loaded → fixed checkpoint (safetensors, canonical
keys) + a JSON manifest saying exactly what was done."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from torch import nn

from deepfake_contract import CLASSIFIER_INPUT, CLASSIFIER_OUTPUT
from deepfake_models import ClassifierSpec, registered
from deepfake_models.checkpoints import StateDict, check_keys, load_strict, shapes
from export.artifacts import BuildArtifacts
from export.checkpoints import read_checkpoint, require_file, write_fixed_checkpoint
from export.demo_weights import demo_record
from export.errors import ExportError
from export.layouts import (
    DDP_PREFIX,
    Conversion,
    ReleasedLayout,
    check_expected_layout,
    detect_layout,
    drop_known_extras,
    released_shapes,
    strip_ddp_prefix,
    to_canonical,
)
from export.licences import weights_licence
from export.provenance import code_fingerprint, read_json, sha256_file, tool_versions, write_json

log = logging.getLogger(__name__)


def identify(
    released: StateDict, source: str, expected_layout: ReleasedLayout | None = None
) -> tuple[StateDict, ReleasedLayout, Conversion]:
    """Strip `module.`, detect the layout (checking it is the expected one) and drop
    the layout's known unused extras."""
    stripped, had_prefix = strip_ddp_prefix(released, source)
    layout = detect_layout(stripped, source)
    if expected_layout is not None:
        check_expected_layout(layout, expected_layout, source)
    conversion = Conversion(layout=layout.name, stripped_ddp_prefix=had_prefix)
    return drop_known_extras(stripped, layout, conversion), layout, conversion


def canonicalize(
    state_dict: StateDict, layout: ReleasedLayout, conversion: Conversion, network: nn.Module, source: str
) -> StateDict:
    """Check an identified state_dict key by key (released names in errors) against
    `network`, then rename/fold it to the network's canonical keys."""
    shown_prefix = DDP_PREFIX if conversion.stripped_ddp_prefix else ""  # keys as written in the file
    check_keys(shapes(state_dict), released_shapes(layout, shapes(network.state_dict())), source, shown_prefix)
    return to_canonical(state_dict, layout, conversion)


def spec_for_layout(layout: ReleasedLayout) -> ClassifierSpec:
    return next(spec for spec in registered() if spec.layout == layout)


def fix_checkpoint(source: Path, artifacts: BuildArtifacts, expected: ClassifierSpec | None = None) -> dict[str, Any]:
    """Fix one released checkpoint into `artifacts`; returns its manifest.

    `expected` defaults to the model whose published file name `source` has; a
    file of another architecture is then an error. Skips the work when the
    manifest already records this exact source file and export code.
    """
    source = require_file(source)
    expected = expected or next((s for s in registered() if s.checkpoint_file == source.name), None)
    source_sha256 = sha256_file(source)
    fingerprint = code_fingerprint()
    if expected is not None:
        cached = read_json(artifacts.manifest_path(expected.name))
        if (
            cached is not None
            and cached["source"]["sha256"] == source_sha256
            and cached["code_fingerprint"] == fingerprint
            and artifacts.fixed_checkpoint(expected.name).is_file()
        ):
            log.info("%s: fixed checkpoint up to date", expected.name)
            return cached

    log.info("reading %s", source)
    released = read_checkpoint(source)
    state_dict, layout, conversion = identify(released, str(source), expected.layout if expected else None)
    spec = spec_for_layout(layout)
    log.info("%s: %s layout, %d keys; building the network", source.name, layout.name, len(released))
    network = spec.build_network(empty=True)
    canonical = canonicalize(state_dict, layout, conversion, network, str(source))
    load_strict(network, canonical, str(source))
    demo = demo_record(source, source_sha256)
    if demo is not None:
        log.warning("%s: %s holds UNTRAINED demo weights; scores from it mean nothing", spec.name, source)
    elif spec.published_sha256 is not None and source_sha256 != spec.published_sha256:
        raise ExportError(f"{source} has sha256 {source_sha256}, not that of the published {spec.name} checkpoint "
                          f"({spec.published_sha256}); download it again from {spec.published_at}")

    fixed_path = artifacts.fixed_checkpoint(spec.name)
    write_fixed_checkpoint(
        network.state_dict(),
        fixed_path,
        metadata={"model": spec.name, "layout": layout.name, "untrained": str(demo is not None).lower(),
                  "licence": weights_licence(spec, demo is not None)},
    )
    manifest = {
        "model": spec.name,
        "untrained": demo is not None,
        "licence": weights_licence(spec, demo is not None),
        "source": {"path": str(source.resolve()), "sha256": source_sha256, "size_bytes": source.stat().st_size},
        "layout": layout.name,
        "conversion": {
            "stripped_ddp_prefix": conversion.stripped_ddp_prefix,
            "renamed": conversion.renamed,
            "folded_svd_residuals": conversion.folded,
            "dropped": conversion.dropped,
            "source_keys": len(released),
            "fixed_keys": len(canonical),
        },
        "input": {
            "tensor": CLASSIFIER_INPUT,
            "datatype": "UINT8",
            "shape": [-1, spec.input_size, spec.input_size, 3],
            "layout": "NHWC",
            "channel_order": "RGB",
            "scale": "1/255",
            "mean": list(spec.mean),
            "std": list(spec.std),
        },
        "output": {"tensor": CLASSIFIER_OUTPUT, "datatype": "FP32", "shape": [-1, 2], "fake_index": 1},
        "fixed_checkpoint": {"file": fixed_path.name, "sha256": sha256_file(fixed_path)},
        "tool_versions": tool_versions(),
        "code_fingerprint": fingerprint,
    }
    write_json(artifacts.manifest_path(spec.name), manifest)
    log.info("%s: wrote %s (%d keys) and its manifest", spec.name, fixed_path, len(canonical))
    return manifest
