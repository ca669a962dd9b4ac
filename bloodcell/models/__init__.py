"""Backbone families; importing this package registers every architecture and pretrained entry."""

from . import efficientnet, microcell, mobilenet, vgg  # noqa: F401  (registration side effects)
from ._head import ModelSpec, build_from_spec, build_model, get_backbone, rebuild_model, set_batchnorm_momentum

__all__ = ["ModelSpec", "build_from_spec", "build_model", "get_backbone", "rebuild_model", "set_batchnorm_momentum"]
