"""The toy fifth classifier file and how tests install it (deepfake_models/classifiers/toy.py)."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

import deepfake_models
from deepfake_models.registry import ClassifierSpec, unregister

SPEC_FILE = Path(__file__).with_name("toy.py")
MODULE = "deepfake_models.classifiers.toy"


@contextmanager
def toy_registered():
    """Import the toy file as deepfake_models/classifiers/toy.py would be imported (it registers
    itself); unregister it afterwards."""
    spec = importlib.util.spec_from_file_location(MODULE, SPEC_FILE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE] = module
    spec.loader.exec_module(module)
    toy: ClassifierSpec = module.TOY
    try:
        yield toy
    finally:
        unregister(toy.name)
        del sys.modules[MODULE]


def packages_with_toy(folder: Path) -> Path:
    """Copies under `folder` of the packages the python models import (this checkout's, not an
    installed one's), the toy file added to deepfake_models' classifiers: what a developer adding
    a fifth classifier has. Returns `folder`."""
    import deepfake_contract
    import deepfake_serving

    for package in (deepfake_models, deepfake_serving, deepfake_contract):
        source = Path(package.__file__).parent
        shutil.copytree(source, folder / source.name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(SPEC_FILE, folder / "deepfake_models" / "classifiers" / "toy.py")
    return folder
