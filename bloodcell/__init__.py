"""bloodcell: a model zoo for classifying microscope images of single peripheral blood cells.

The public names below are imported on first use, so ``import bloodcell`` stays fast until a
model is needed.
"""

from __future__ import annotations

import importlib
import os as _os
from typing import TYPE_CHECKING

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from ._classes import CLASS_NAMES  # noqa: E402
from ._version import __version__  # noqa: E402

_EXPORTS = {
    "DEFAULT_MODEL": "classifier",
    "Classifier": "classifier",
    "load_classifier": "classifier",
    "BloodcellError": "errors",
    "ChecksumError": "errors",
    "HubError": "errors",
    "ImageReadError": "errors",
    "ModelNotFoundError": "errors",
    "build_model": "models",
    "PretrainedCfg": "registry",
    "list_models": "registry",
    "list_pretrained": "registry",
    "pretrained_entry": "registry",
    "Trainer": "training",
    "evaluate": "evaluation",
    "evaluate_robustness": "evaluation",
    "Dataset": "data",
    "load_dataset": "data",
    "split": "data",
    "clean": "cleaning",
    "find_duplicates": "cleaning",
    "find_outliers": "cleaning",
}
_SUBMODULES = {"augment", "card", "cleaning", "corruptions", "data", "evaluation", "export", "hub", "imageio",
               "models", "outliers", "pipeline", "registry", "training"}

__all__ = ["CLASS_NAMES", "__version__", *_EXPORTS]

if TYPE_CHECKING:
    from .classifier import DEFAULT_MODEL, Classifier, load_classifier
    from .errors import BloodcellError, ChecksumError, HubError, ImageReadError, ModelNotFoundError
    from .models import build_model
    from .cleaning import clean, find_duplicates, find_outliers
    from .data import Dataset, load_dataset, split
    from .evaluation import evaluate, evaluate_robustness
    from .registry import PretrainedCfg, list_models, list_pretrained, pretrained_entry
    from .training import Trainer


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bloodcell' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
