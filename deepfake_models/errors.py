"""Errors about model files and inputs a user can act on: the message says what is wrong
and what to do (the export CLI prints it without a traceback)."""

from __future__ import annotations


class ModelFileError(Exception):
    """A checkpoint file is missing, unreadable or does not fit its network."""


class CheckpointReadError(ModelFileError):
    """The file is missing, truncated, corrupt or not a plain tensor state_dict."""


class CheckpointMismatchError(ModelFileError):
    """Keys or shapes differ from what the architecture needs (strict loading)."""

    def __init__(
        self,
        source: str,
        missing: list[str],
        unexpected: list[str],
        shape_mismatches: list[tuple[str, tuple[int, ...], tuple[int, ...]]],
    ) -> None:
        self.missing = missing
        self.unexpected = unexpected
        self.shape_mismatches = shape_mismatches
        lines = [f"{source} does not match the architecture (strict loading):"]
        if missing:
            lines.append(f"  missing keys ({len(missing)}): {_preview(missing)}")
        if unexpected:
            lines.append(f"  unexpected keys ({len(unexpected)}): {_preview(unexpected)}")
        for key, found, wanted in shape_mismatches[:10]:
            lines.append(f"  shape mismatch for {key}: checkpoint {list(found)}, model {list(wanted)}")
        if len(shape_mismatches) > 10:
            lines.append(f"  ... and {len(shape_mismatches) - 10} more shape mismatches")
        super().__init__("\n".join(lines))


class InvalidFacesError(ValueError):
    """Input crops with the wrong dtype or shape."""


def _preview(keys: list[str], limit: int = 10) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")
