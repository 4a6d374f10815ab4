"""One module per classifier (timm style): network, checkpoint layout, preprocessing and
tolerances, registered once with deepfake_models.registry.register.

Every module in this folder is imported here, so adding a classifier is adding a file.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
