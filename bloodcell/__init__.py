"""bloodcell: a model zoo for classifying microscope images of single peripheral blood cells.

The public names below are imported on first use, so ``import bloodcell`` stays fast until a
model is needed.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import os as _os
import sys as _sys
from typing import TYPE_CHECKING

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from ._classes import CLASS_NAMES  # noqa: E402
from ._version import __version__  # noqa: E402

_EXPORTS = {
    "DEFAULT_MODEL": "classifier",
    "Classifier": "classifier",
    "load_classifier": "classifier",
    "BloodcellError": "errors",
    "BusyError": "errors",
    "ChecksumError": "errors",
    "ConfigError": "errors",
    "DataError": "errors",
    "HubError": "errors",
    "ImageReadError": "errors",
    "InputNotFoundError": "errors",
    "ModelNotFoundError": "errors",
    "OutputExistsError": "errors",
    "ClassifierModel": "models",
    "build_model": "models",
    "PretrainedCfg": "registry",
    "list_models": "registry",
    "list_pretrained": "registry",
    "pretrained_entry": "registry",
    "Trainer": "training",
    "TrainConfig": "training",
    "evaluate": "evaluation",
    "evaluate_robustness": "evaluation",
    "Dataset": "data",
    "load_dataset": "data",
    "split": "data",
    "clean": "cleaning",
    "find_duplicates": "cleaning",
    "find_outliers": "cleaning",
}
_SUBMODULES = {"augment", "calibration", "card", "classifier", "cleaning", "corruptions", "data", "errors", "evaluation",
               "explain", "export", "folder", "hub", "imageio", "models", "ood", "outliers", "pipeline", "registry",
               "training", "zoo"}

__all__ = ["CLASS_NAMES", "__version__", *_EXPORTS]

if TYPE_CHECKING:
    from .classifier import DEFAULT_MODEL, Classifier, load_classifier
    from .errors import (BloodcellError, BusyError, ChecksumError, ConfigError, DataError, HubError, ImageReadError,
                         InputNotFoundError, ModelNotFoundError, OutputExistsError)
    from .models import ClassifierModel, build_model
    from .cleaning import clean, find_duplicates, find_outliers
    from .data import Dataset, load_dataset, split
    from .evaluation import evaluate, evaluate_robustness
    from .registry import PretrainedCfg, list_models, list_pretrained, pretrained_entry
    from .training import TrainConfig, Trainer


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
    return sorted({*__all__, *_SUBMODULES})


class _RegisterWithKeras(importlib.abc.MetaPathFinder):
    """Registers bloodcell's Keras classes (``ClassifierModel`` and its layers) once Keras is imported.

    It also imports TensorFlow first, quietly (:mod:`bloodcell._tf`), as it does when TensorFlow
    itself is imported after bloodcell. ``import bloodcell`` does
    not import Keras (the command line parses its arguments before TensorFlow loads), yet ``keras.saving.load_model`` must find the classes a ``.keras`` file
    of a bloodcell model names: when the ``keras`` package finishes loading, ``bloodcell.models``
    (which registers them) is imported too.
    """

    busy = False

    def find_spec(self, fullname, path, target=None):
        if fullname not in ("keras", "tensorflow") or _RegisterWithKeras.busy:
            return None
        _RegisterWithKeras.busy = True
        try:
            from ._tf import quiet_import_tensorflow

            quiet_import_tensorflow()  # Keras imports TensorFlow: without its start-up log lines
        finally:
            _RegisterWithKeras.busy = False
        if "keras" in _sys.modules:  # TensorFlow imported Keras: the import machinery takes that module
            _register()
            return None
        if fullname != "keras":
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader

        class _Loader(importlib.abc.Loader):
            def create_module(self, spec):
                return loader.create_module(spec)

            def exec_module(self, module):
                loader.exec_module(module)
                _register()

        spec.loader = _Loader()
        return spec


def _register() -> None:
    try:
        importlib.import_module(".models", __name__)
    except Exception:  # noqa: BLE001  (never break `import keras`; the first model use registers them)
        pass


if "keras" in _sys.modules:
    _register()
elif not any(isinstance(f, _RegisterWithKeras) for f in _sys.meta_path):
    _sys.meta_path.insert(0, _RegisterWithKeras())
