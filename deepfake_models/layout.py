"""How a published checkpoint's keys relate to the network's own `state_dict()` keys.

Each classifier file declares its ReleasedLayout; export.layouts converts with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class ReleasedLayout:
    name: str  # recorded in manifests and ONNX metadata
    # Keys only this layout has (after stripping `module.`): a file holding all of them is of this
    # layout. When several layouts match, the one with the most signature keys wins, so a model
    # that extends another's network (F3Net's Xception backbone) lists the key it adds.
    signature_keys: tuple[str, ...]
    # (released prefix, canonical prefix), first match wins.
    renames: tuple[tuple[str, str], ...] = ()
    # Full-match patterns of known unused extras, dropped (and logged) when present.
    droppable: tuple[str, ...] = ()
    # Attention projections stored as weight_main + U @ diag(S) @ V (Effort).
    svd_residual: bool = False
    # The released file has every key under `module.` (saved from a DDP model).
    saved_with_ddp: bool = False

    def released_key(self, canonical: str) -> str:
        for released_prefix, canonical_prefix in self.renames:
            if canonical.startswith(canonical_prefix):
                return released_prefix + canonical[len(canonical_prefix) :]
        return canonical

    def canonical_key(self, released: str) -> str:
        for released_prefix, canonical_prefix in self.renames:
            if released.startswith(released_prefix):
                return canonical_prefix + released[len(released_prefix) :]
        return released

    def is_droppable(self, key: str) -> bool:
        return any(re.fullmatch(pattern, key) for pattern in self.droppable)
