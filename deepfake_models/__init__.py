"""The classifiers of the ensemble, each described once (deepfake_models/classifiers/*.py).

Importable by export, repository assembly and serving alike: it imports nothing
from `export`. `CLASSIFIERS` is every classifier file's spec, in column order.
"""

from deepfake_models import classifiers  # noqa: F401  (imports, so registers, every classifier file)
from deepfake_models.registry import ClassifierSpec, Tolerances, crop_sizes, register, registered, spec_by_name

CLASSIFIERS: tuple[ClassifierSpec, ...] = registered()
CLASSIFIER_NAMES: tuple[str, ...] = tuple(spec.name for spec in CLASSIFIERS)

__all__ = ["CLASSIFIERS", "CLASSIFIER_NAMES", "ClassifierSpec", "Tolerances", "crop_sizes", "register", "registered",
           "spec_by_name"]
