"""Errors a user can act on. The CLI prints their message and exits non-zero
without a traceback; anything else is a bug and keeps its traceback. (Errors about
model files themselves are deepfake_models.errors.ModelFileError.)"""

from __future__ import annotations


class ExportError(Exception):
    """Base class: the message alone tells the user what is wrong and what to do."""


class UnknownLayoutError(ExportError):
    """The state_dict matches none of the registered classifiers' released layouts."""


class WrongArchitectureError(ExportError):
    """The file holds a known layout, but not the one expected for this model."""


class MissingArtifactError(ExportError):
    """A previous export step has not produced the file this step needs."""


class ParityError(ExportError):
    """An exported model disagrees with its reference beyond the tolerance."""


class TensorRTUnavailableError(ExportError):
    """TensorRT (or a GPU) is not available where the command runs."""
