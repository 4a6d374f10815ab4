"""What the Triton models import at serve time loads without `export` (and without the dev
tools, benchmarks or the client): serving never imports the export pipeline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NOT_AT_SERVE_TIME = ("export", "deepfake_dev", "benchmarks", "deepfake_client")

SCRIPT = r"""
import importlib, importlib.abc, pathlib, pkgutil, runpy, sys, types

REFUSED = set(sys.argv[2].split(","))

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in REFUSED:
            raise ImportError(f"imported {name} at serve time")
        return None

sys.meta_path.insert(0, Refuse())
try:
    import export  # noqa: F401
    sys.exit("the refusal does not work")
except ImportError:
    pass
sys.modules["triton_python_backend_utils"] = types.ModuleType("triton_python_backend_utils")  # Triton's own
import deepfake_serving
for module in pkgutil.iter_modules(deepfake_serving.__path__):
    importlib.import_module(f"deepfake_serving.{module.name}")
models = sorted(pathlib.Path(sys.argv[1]).glob("*/1/model.py"))
for model in models:
    runpy.run_path(str(model))  # every import a model file makes, as the python backend loads it
print(len(models), "models")
"""


def test_the_runtime_imports_without_export():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(REPO / "model_repository"), ",".join(NOT_AT_SERVE_TIME)],
        capture_output=True, text=True, timeout=300, cwd="/",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[0] == str(len(list((REPO / "model_repository").glob("*/1/model.py"))))
