"""bloodcell: a model zoo for classifying microscope images of single peripheral blood cells."""

import os as _os

# TensorFlow's C++ start-up chatter hides real messages from command-line users.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from ._classes import CLASS_NAMES  # noqa: E402
from ._version import __version__  # noqa: E402
from .classifier import DEFAULT_MODEL, Classifier, load_classifier  # noqa: E402
from .errors import BloodcellError, ChecksumError, HubError, ImageReadError, ModelNotFoundError  # noqa: E402
from .models import build_model  # noqa: E402
from .registry import PretrainedCfg, list_models, list_pretrained, pretrained_entry  # noqa: E402

__all__ = [
    "CLASS_NAMES",
    "DEFAULT_MODEL",
    "BloodcellError",
    "ChecksumError",
    "Classifier",
    "HubError",
    "ImageReadError",
    "ModelNotFoundError",
    "PretrainedCfg",
    "__version__",
    "build_model",
    "list_models",
    "list_pretrained",
    "load_classifier",
    "pretrained_entry",
]
