"""Backbone families and the generic classifier model; importing this package registers every
architecture and pretrained entry."""

from .. import _tf  # noqa: F401,I001  (TensorFlow without its start-up log lines)
from . import efficientnet, microcell, mobilenet, vgg  # noqa: F401  (registration side effects)
from ._backbone import Backbone, batchnorm_layers, load_backbone, set_batchnorm_momentum, walk_layers
from ._model import ClassifierModel, ModelSpec, as_classifier_model, average_models, build_from_spec, build_model, get_backbone, rebuild_model
from .layers import StainNormalization

__all__ = [
    "Backbone",
    "ClassifierModel",
    "ModelSpec",
    "StainNormalization",
    "as_classifier_model",
    "average_models",
    "batchnorm_layers",
    "build_from_spec",
    "build_model",
    "get_backbone",
    "load_backbone",
    "rebuild_model",
    "set_batchnorm_momentum",
    "walk_layers",
]
