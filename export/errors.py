"""Errors a user can act on. The CLI prints their message and exits non-zero
without a traceback; anything else is a bug and keeps its traceback."""

from __future__ import annotations


class ExportError(Exception):
    """Base class: the message alone tells the user what is wrong and what to do."""


class CheckpointReadError(ExportError):
    """The file is missing, truncated, corrupt or not a plain tensor state_dict."""


class UnknownLayoutError(ExportError):
    """The state_dict matches none of the four released checkpoint layouts."""


class WrongArchitectureError(ExportError):
    """The file holds a known layout, but not the one expected for this model."""


class CheckpointMismatchError(ExportError):
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


class MissingArtifactError(ExportError):
    """A previous export step has not produced the file this step needs."""


class ParityError(ExportError):
    """An exported model disagrees with its reference beyond the tolerance."""


class TensorRTUnavailableError(ExportError):
    """TensorRT (or a GPU) is not available where the command runs."""


def _preview(keys: list[str], limit: int = 10) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")
