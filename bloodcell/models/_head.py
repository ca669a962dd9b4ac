"""The generic classifier: preprocessing, a named backbone sub-model and the shared head."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import keras
import numpy as np

from .._classes import CLASS_NAMES
from ..errors import BloodcellError
from ..registry import architecture_info

BACKBONE_NAME = "backbone"


@dataclass(frozen=True)
class ModelSpec:
    """How a model was built: enough to rebuild it with :func:`build_model`."""

    architecture: str
    num_classes: int = len(CLASS_NAMES)
    input_size: int = 96
    dropout: float = 0.2
    bn_momentum: Optional[float] = None
    weights: Optional[str] = None

    def to_config(self) -> dict[str, Any]:
        """The spec as saved in ``config.json`` (``weights`` records where the weights started)."""
        d = dataclasses.asdict(self)
        d.pop("architecture")
        return d

    def build_kwargs(self) -> dict[str, Any]:
        """:func:`build_model` arguments of a rebuild, which loads trained weights on top and
        never refetches ImageNet (restore ``weights`` on the rebuilt spec)."""
        return {**self.to_config(), "weights": None}

    @classmethod
    def from_config(cls, architecture: str, config: dict[str, Any], source: str = "config.json") -> "ModelSpec":
        """The spec saved by :meth:`to_config`; unknown keys or bad values raise a one-line error."""
        fields = {f.name for f in dataclasses.fields(cls)} - {"architecture"}
        unknown = sorted(set(config) - fields)
        if unknown:
            raise BloodcellError(
                f"{source}: unknown model build option(s) {unknown} (known: {sorted(fields)}); the model was "
                "saved by a newer bloodcell: pip install -U bloodcell"
            )
        return cls(architecture=architecture, **config)


@dataclass(frozen=True)
class Backbone:
    """What a family builder returns: the feature extractor and the layers that feed it."""

    model: keras.Model
    preprocessing: Sequence[keras.layers.Layer] = ()
    default_dropout: float = 0.2


def _imagenet_error(architecture: str, exc: Exception) -> BloodcellError:
    return BloodcellError(
        f"could not fetch the ImageNet weights of {architecture!r} ({type(exc).__name__}: "
        f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}); download the Keras "
        "'..._notop.h5' weights file elsewhere and pass its path as weights='/path/to/file.h5', "
        "or use weights=None to train from random init"
    )


def load_backbone(constructor, architecture: str, weights, **kwargs) -> keras.Model:
    """Call a ``keras.applications`` constructor, turning a failed weight download into a clear error."""
    if weights not in (None, "imagenet"):
        import os

        if not os.path.isfile(str(weights)):
            raise BloodcellError(
                f"weights={weights!r}: expected None, 'imagenet' or the path of a Keras '.h5' weights "
                f"file of {architecture!r} without its top; no such file"
            )
    try:
        model = constructor(include_top=False, weights=weights, **kwargs)
    except BloodcellError:
        raise
    except Exception as exc:  # keras raises bare Exceptions for URL and HTTP failures
        if weights is None:
            raise
        raise _imagenet_error(architecture, exc) from None
    # Some constructors derive their block layout from `name`, so rename by re-wrapping the graph.
    return keras.Model(model.input, model.output, name=BACKBONE_NAME)


def set_batchnorm_momentum(model: keras.Model, momentum: float) -> int:
    """Set the momentum of every BatchNormalization layer inside ``model``; returns how many."""
    count = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum
            count += 1
    return count


def build_model(
    name: str,
    *,
    num_classes: int = len(CLASS_NAMES),
    input_size: int = 96,
    weights: Optional[str] = None,
    dropout: Optional[float] = None,
    bn_momentum: Optional[float] = None,
) -> keras.Model:
    """Build a registered architecture with the bloodcell head.

    The model takes RGB images with values 0..255 (uint8 or float) of shape
    (N, input_size, input_size, 3) and returns softmax probabilities (N, num_classes). The
    backbone's own preprocessing is inside the model and the backbone is the sub-model named
    ``"backbone"``. With ``weights=None`` the batch-norm momentum defaults to 0.9 so that training
    from random init converges quickly (Keras' 0.99 leaves validation accuracy near chance for
    many epochs); pass ``bn_momentum`` to override.
    """
    info = architecture_info(name)
    if not isinstance(num_classes, int) or num_classes < 2:
        raise BloodcellError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    if not isinstance(input_size, int) or input_size < 32:
        raise BloodcellError(f"input_size must be an integer >= 32 (pixels), got {input_size!r}")
    backbone: Backbone = info.builder(input_size=input_size, weights=weights)
    if dropout is None:
        dropout = backbone.default_dropout
    if not 0.0 <= dropout < 1.0:
        raise BloodcellError(f"dropout must be in [0, 1), got {dropout!r}")
    if bn_momentum is None and weights is None:
        bn_momentum = 0.9
    if bn_momentum is not None:
        set_batchnorm_momentum(backbone.model, bn_momentum)
    else:
        # Pretrained: keep the constructor's momentum and record it, so a rebuild (which starts
        # from weights=None) uses the same one instead of the random-init default.
        momenta = {float(layer.momentum) for layer in backbone.model._flatten_layers(include_self=False)
                   if isinstance(layer, keras.layers.BatchNormalization)}
        if len(momenta) == 1:
            bn_momentum = momenta.pop()

    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = inputs
    for layer in backbone.preprocessing:
        x = layer(x)
    x = backbone.model(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)
    model = keras.Model(inputs, outputs, name=name)
    model.bloodcell_spec = ModelSpec(
        architecture=name,
        num_classes=num_classes,
        input_size=input_size,
        dropout=float(dropout),
        bn_momentum=bn_momentum,
        weights=weights if weights in (None, "imagenet") else "file",
    )
    return model


def rebuild_model(model: keras.Model) -> keras.Model:
    """A fresh copy of a :func:`build_model` model with the same weights and spec.

    Variables are created under the current dtype policy and distribution scope, and the copy
    has no optimizer: callers use it to leave mixed precision, a strategy or optimizer state behind.
    """
    spec: Optional[ModelSpec] = getattr(model, "bloodcell_spec", None)
    if spec is None:
        raise BloodcellError(
            f"model {model.name!r} was not made by bloodcell.build_model, so it cannot be rebuilt; "
            "build it with bloodcell.build_model(name)"
        )
    return build_from_spec(spec, [np.asarray(w) for w in model.get_weights()])


def build_from_spec(spec: ModelSpec, weights: Optional[list] = None) -> keras.Model:
    """Build the model a spec describes (without fetching ImageNet), with ``weights`` if given."""
    try:
        model = build_model(spec.architecture, **spec.build_kwargs())
    except TypeError as exc:
        raise BloodcellError(f"model build options {spec.to_config()} are not valid ({exc})") from None
    if weights is not None:
        model.set_weights(weights)
    model.bloodcell_spec = spec
    return model


def get_backbone(model: keras.Model) -> keras.Model:
    """The backbone sub-model of a model made by :func:`build_model`."""
    try:
        return model.get_layer(BACKBONE_NAME)
    except ValueError:
        raise BloodcellError(
            f"model {model.name!r} has no sub-model named {BACKBONE_NAME!r}; expected a model made by "
            "bloodcell.build_model"
        ) from None
