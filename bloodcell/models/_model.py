"""The generic classifier model: input normalisation, a named backbone sub-model and the head.

:class:`ClassifierModel` is a ``keras.Model`` whose config holds what identifies it (the
architecture's registered name, the input size, the class names and the head settings), so a
``.keras`` file or a folder reloads as the same class with the same classes. Each family module
only builds the backbone (:class:`bloodcell.models.Backbone`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

import keras
import numpy as np

from .._checks import check_class_names, is_real
from .._classes import CLASS_NAMES, class_index
from .._registry import _ARCHITECTURES, unknown as _unknown
from ..errors import ConfigError
from ._backbone import BACKBONE_NAME, Backbone, batchnorm_layers, check_weights_file, set_batchnorm_momentum
from .layers import StainNormalization

HEAD_NAME = "predictions"
NORMALIZATION_NAME = "stain_normalization"
#: What ``normalization="stain"`` stands for: :class:`StainNormalization` with its defaults.
NORMALIZATIONS = ("stain",)


@dataclass(frozen=True)
class ModelSpec:
    """How a model was built: its architecture and the options of :func:`build_model`."""

    architecture: str
    num_classes: int = len(CLASS_NAMES)
    input_size: int = 96
    dropout: float = 0.2
    bn_momentum: Optional[float] = None
    #: where the backbone's weights started: None (random), "imagenet" or "file"
    weights: Optional[str] = None
    #: the input normalisation's settings (StainNormalization's config), or None
    normalization: Optional[dict] = None

    def to_config(self) -> dict[str, Any]:
        """The spec as saved in ``config.json``'s ``build`` (``weights`` records where the weights started)."""
        d = dataclasses.asdict(self)
        d.pop("architecture")
        return d

    @classmethod
    def from_config(cls, architecture: str, config: dict[str, Any], source: str = "config.json") -> "ModelSpec":
        """The spec saved by :meth:`to_config`; unknown keys or bad values raise a one-line error."""
        if architecture not in _ARCHITECTURES:
            error = _unknown("architecture", architecture, _ARCHITECTURES)
            raise type(error)(f"{source}: {error} Saved by a newer bloodcell? pip install -U bloodcell")
        fields = {f.name for f in dataclasses.fields(cls)} - {"architecture"}
        unknown = sorted(set(config) - fields)
        if unknown:
            raise ConfigError(
                f"{source}: unknown model build option(s) {unknown} (known: {sorted(fields)}); the model was "
                "saved by a newer bloodcell: pip install -U bloodcell"
            )
        for key, value in config.items():
            types, wanted = _BUILD_TYPES[key]
            if isinstance(value, bool) or not isinstance(value, types):
                raise ConfigError(f"{source}: build.{key} must be {wanted}, got {json.dumps(value)}; re-save the model "
                                  "with save_pretrained")
        return cls(architecture=architecture, **config)


_NONE = type(None)
#: What each ``build`` option of config.json may hold (as JSON gives it).
_BUILD_TYPES = {"num_classes": (int, "an integer"), "input_size": (int, "an integer"),
                "dropout": ((int, float), "a number"), "bn_momentum": ((int, float, _NONE), "a number or null"),
                "weights": ((str, _NONE), "a string or null"), "normalization": ((dict, _NONE), "an object or null")}


def _builder(architecture: str):
    try:
        return _ARCHITECTURES[architecture]
    except (KeyError, TypeError):
        raise _unknown("architecture", architecture, _ARCHITECTURES) from None


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}{' (pixels)' if name == 'input_size' else ''}, got {value!r}")
    return int(value)


def _normalization_config(normalization) -> Optional[dict]:
    if normalization is None or normalization == "none":
        return None
    if normalization in NORMALIZATIONS:
        normalization = {}
    if not isinstance(normalization, dict):
        raise ConfigError(
            f"normalization={normalization!r}: expected None (or 'none'), 'stain' or a dict of StainNormalization "
            "settings"
        )
    try:
        layer = StainNormalization(**normalization)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"normalization={normalization!r}: not valid StainNormalization settings ({exc})") from None
    return {k: v for k, v in layer.get_config().items() if k in ("low", "high", "target_low", "target_high", "grid")}


def _checked_backbone(architecture: str, backbone, input_size: int) -> Backbone:
    """A builder's result, checked against the contract of :class:`Backbone`; its model named ``"backbone"``."""
    model = getattr(backbone, "model", None)
    if not isinstance(backbone, Backbone) or not isinstance(model, keras.Model):
        raise ConfigError(f"architecture {architecture!r}: its builder must return bloodcell.models.Backbone(model) "
                          f"with a keras.Model, got {type(backbone).__name__}")
    if getattr(model, "outputs", None):
        shape = tuple(model.outputs[0].shape)
    elif model.name == BACKBONE_NAME:
        return backbone  # a subclassed model or an unbuilt Sequential, named as the classifier looks it up
    else:  # its output shape shows once it is called
        x = keras.Input((input_size, input_size, 3))
        for layer in backbone.preprocessing:
            x = layer(x)
        shape = tuple(model(x).shape)
    if len(shape) != 4:
        raise ConfigError(f"architecture {architecture!r}: its backbone must output a feature map (N, H, W, C), got "
                          f"shape {shape}; leave out its pooling and head (the classifier adds them)")
    if model.name != BACKBONE_NAME:  # the classifier finds it by this name
        if not getattr(model, "inputs", None):
            raise ConfigError(f"architecture {architecture!r}: name its backbone model {BACKBONE_NAME!r} "
                              f"(keras.Model(..., name={BACKBONE_NAME!r})), got {model.name!r}")
        backbone = dataclasses.replace(backbone, model=keras.Model(model.input, model.output, name=BACKBONE_NAME))
    return backbone


def _frozen_paths(model: keras.Model) -> list[list]:
    """Where the frozen layers of ``model`` are: ``[name]`` for its own layers (named by the classifier),
    ``[name, i, j...]`` for layers nested in them, by position (Keras numbers unnamed layers per
    process, so their names differ between two builds of one network)."""
    def walk(layer, path):
        found = []
        for i, child in enumerate(getattr(layer, "layers", ())):
            here = [*path, i]
            if not child.trainable:
                found.append(here)
            elif getattr(child, "layers", None):
                found += walk(child, here)
        return found

    paths = []
    for layer in model.layers:
        if not layer.trainable:
            paths.append([layer.name])
        elif getattr(layer, "layers", None):
            paths += walk(layer, [layer.name])
    return paths


def _freeze(model: keras.Model, paths) -> None:
    """Freeze the layers at ``paths`` (:func:`_frozen_paths`); a path this network lacks is skipped
    (a new head may drop the normalisation layer)."""
    for path in paths:
        try:
            layer = model.get_layer(path[0])
            for i in path[1:]:
                layer = layer.layers[i]
        except (ValueError, IndexError, TypeError, AttributeError):
            continue
        layer.trainable = False


@keras.saving.register_keras_serializable(package="bloodcell")
class ClassifierModel(keras.Model):
    """A blood-cell classifier network: [input normalisation] -> backbone -> pooling -> dropout -> softmax.

    Takes RGB images with values 0..255 (uint8 or float) of shape (N, input_size, input_size, 3)
    and returns softmax probabilities (N, len(class_names)). The backbone (a registered
    architecture, built with random weights: trained or ImageNet weights are loaded afterwards) is
    the sub-model named ``"backbone"``; the head is the Dense layer named ``"predictions"``.

    Args:
        architecture: a registered architecture name (``bloodcell.list_models()``).
        class_names: one name per output, in output order.
        input_size: side of the square input, in pixels.
        dropout: dropout rate before the output layer (None: the family's default).
        bn_momentum: momentum of every batch-norm layer of the backbone (None: the family's own,
            or 0.9 when ``init`` is None, which trains from random init much faster).
        normalization: None, ``"stain"`` or a dict of :class:`StainNormalization` settings: the
            per-image colour normalisation in front of the backbone.
        init: where the backbone's weights started, recorded for the model card: None (random),
            ``"imagenet"`` or ``"file"``. It loads nothing (:func:`build_model` does).
    """

    def __init__(
        self,
        architecture: str,
        *,
        class_names: Sequence[str] = CLASS_NAMES,
        input_size: int = 96,
        dropout: Optional[float] = None,
        bn_momentum: Optional[float] = None,
        normalization: Union[str, dict, None] = None,
        init: Optional[str] = None,
        **kwargs,
    ):
        info = _builder(architecture)
        class_names = check_class_names(class_names)
        input_size = _check_int("input_size", input_size, 32)
        normalization = _normalization_config(normalization)
        if init not in (None, "imagenet", "file"):
            raise ConfigError(f"init={init!r}: expected None (random), 'imagenet' or 'file'")
        backbone = _checked_backbone(architecture, info.builder(input_size=input_size, weights=None), input_size)
        if dropout is None:
            dropout = backbone.default_dropout
        if not is_real(dropout) or not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {dropout!r}")
        if bn_momentum is None and init is None:
            bn_momentum = 0.9
        if bn_momentum is not None:
            if not is_real(bn_momentum) or not 0.0 <= bn_momentum < 1.0:
                raise ConfigError(f"bn_momentum must be a number in [0, 1) (e.g. 0.99), got {bn_momentum!r}")
            set_batchnorm_momentum(backbone.model, float(bn_momentum))
        else:
            momenta = {float(layer.momentum) for layer in batchnorm_layers(backbone.model)}
            bn_momentum = momenta.pop() if len(momenta) == 1 else None

        inputs = keras.Input((input_size, input_size, 3), name="image")
        x = inputs
        if normalization is not None:
            x = StainNormalization(**normalization, name=NORMALIZATION_NAME)(x)
        for layer in backbone.preprocessing:
            x = layer(x)
        x = backbone.model(x)
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dropout(float(dropout), name="head_dropout")(x)
        outputs = keras.layers.Dense(len(class_names), activation="softmax", dtype="float32", name=HEAD_NAME)(x)
        kwargs.setdefault("name", architecture)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.architecture = architecture
        self.class_names = class_names
        self.input_size = input_size
        self.dropout = float(dropout)
        self.bn_momentum = None if bn_momentum is None else float(bn_momentum)
        self.normalization = normalization
        self.init = init

    # -- identity ------------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trainable": self.trainable,
            "architecture": self.architecture,
            "class_names": list(self.class_names),
            "input_size": self.input_size,
            "dropout": self.dropout,
            "bn_momentum": self.bn_momentum,
            "normalization": self.normalization,
            "init": self.init,
            "frozen": _frozen_paths(self),
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        trainable = config.pop("trainable", True)
        frozen = config.pop("frozen", [])
        model = cls(**config)
        model.trainable = trainable
        _freeze(model, frozen)  # before Keras builds an optimizer for the trainable variables
        return model

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def spec(self) -> ModelSpec:
        """The build options as a :class:`ModelSpec` (what ``config.json`` records under ``build``)."""
        return ModelSpec(self.architecture, self.num_classes, self.input_size, self.dropout, self.bn_momentum,
                         self.init, self.normalization)

    #: The same as :attr:`spec` (the name of the attribute that bloodcell 0.1 pinned on models).
    bloodcell_spec = spec

    @property
    def backbone(self) -> keras.Model:
        """The backbone sub-model (named ``"backbone"``)."""
        return self.get_layer(BACKBONE_NAME)

    @property
    def head(self) -> keras.layers.Dense:
        """The output layer (named ``"predictions"``)."""
        return self.get_layer(HEAD_NAME)

    # -- copies --------------------------------------------------------------------------------
    def copy(self) -> "ClassifierModel":
        """A new model with the same config and weights and no optimizer.

        Its variables are created under the current dtype policy and distribution scope: this
        is how a model leaves mixed precision, a strategy or optimizer state behind.
        """
        model = type(self).from_config(self.get_config())
        model.set_weights([np.asarray(w) for w in self.get_weights()])
        return model

    def with_classes(self, class_names: Sequence[str], *, input_size: Optional[int] = None,
                     normalization: Union[str, dict, None] = "keep", keep_shared: bool = True) -> "ClassifierModel":
        """The same network with an output layer for ``class_names`` (optionally at another input
        size, or with another input normalisation: it has no weights; ``"keep"`` keeps this one's).

        Everything but the head keeps its weights (convolutions do not depend on the input
        size). With ``keep_shared``, the output units of classes this model already has keep
        theirs (a class's row of weights and its bias; names match ignoring case, and PBC's aliases
        such as ``ig``); the others start from Keras' default initialisation. The same classes in
        the same order keep the whole head.
        """
        class_names = check_class_names(class_names)
        size = self.input_size if input_size is None else _check_int("input_size", input_size, 32)
        norm = self.normalization if normalization == "keep" else _normalization_config(normalization)
        if tuple(class_names) == self.class_names and size == self.input_size and norm == self.normalization:
            return self.copy()
        model = type(self).from_config({**self.get_config(), "class_names": list(class_names), "input_size": size,
                                        "normalization": norm})
        shared = [class_index(name, self.class_names) for name in class_names]  # ignoring case and aliases
        same = shared == list(range(len(self.class_names)))
        targets = {layer.name: layer for layer in model.layers}
        for src in self.layers:  # by name: a normalisation layer (no weights) may come or go
            if src.weights and (src.name != HEAD_NAME or same):
                targets[src.name].set_weights([np.asarray(w) for w in src.get_weights()])
        if keep_shared and not same:
            kernel, bias = (np.asarray(w) for w in self.head.get_weights())
            new_kernel, new_bias = (np.asarray(w).copy() for w in model.head.get_weights())
            for j, i in enumerate(shared):
                if i is not None:
                    new_kernel[:, j], new_bias[j] = kernel[:, i], bias[i]
            model.head.set_weights([new_kernel, new_bias])
        return model


def build_model(
    name: str,
    *,
    num_classes: Optional[int] = None,
    class_names: Optional[Sequence[str]] = None,
    input_size: int = 96,
    weights: Optional[str] = None,
    dropout: Optional[float] = None,
    bn_momentum: Optional[float] = None,
    normalization: Union[str, dict, None] = None,
) -> ClassifierModel:
    """Build a registered architecture with the bloodcell head, as a :class:`ClassifierModel`.

    ``class_names`` names the outputs (default: the 8 PBC classes); ``num_classes`` alone gives
    outputs named ``class_0``, ``class_1``, ... (8: the PBC classes). ``weights``: None (random init), ``"imagenet"``
    (fetched by ``keras.applications``) or the path of a Keras ``..._notop.h5`` weights file of
    the backbone. With ``weights=None`` the batch-norm momentum defaults to 0.9 so that training
    from random init converges quickly (Keras' 0.99 leaves validation accuracy near chance for
    many epochs); pass ``bn_momentum`` to override.
    """
    info = _builder(name)
    if num_classes is not None:
        _check_int("num_classes", num_classes, 2)
    if class_names is None:
        class_names = CLASS_NAMES if num_classes in (None, len(CLASS_NAMES)) else [f"class_{i}" for i in range(num_classes)]
    elif num_classes is not None and num_classes != len(class_names):
        raise ConfigError(f"num_classes={num_classes} but class_names has {len(class_names)} names; give one or the other")
    init = None if weights is None else ("imagenet" if weights == "imagenet" else "file")
    pretrained = None
    if weights is not None:
        _check_int("input_size", input_size, 32)
        check_weights_file(name, weights)  # a missing file or another type named as such, whatever the builder
        pretrained = info.builder(input_size=input_size, weights=weights).model
    model = ClassifierModel(name, class_names=class_names, input_size=input_size, dropout=dropout,
                            bn_momentum=bn_momentum, normalization=normalization, init=init)
    if pretrained is not None:
        model.backbone.set_weights(pretrained.get_weights())
    return model


def build_from_spec(spec: ModelSpec, weights: Optional[list] = None,
                    class_names: Optional[Sequence[str]] = None, source: str = "") -> ClassifierModel:
    """The model a spec describes (nothing is fetched), with ``weights`` if given; ``source``: where the
    spec was read, for errors."""
    names = class_names if class_names is not None else (
        CLASS_NAMES if spec.num_classes == len(CLASS_NAMES) else [f"class_{i}" for i in range(spec.num_classes)])
    try:
        model = ClassifierModel(spec.architecture, class_names=names, input_size=spec.input_size, dropout=spec.dropout,
                                bn_momentum=spec.bn_momentum, normalization=spec.normalization, init=spec.weights)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source + ': ' if source else ''}model build options {spec.to_config()} are not valid "
                          f"({exc})") from None
    if weights is not None:
        model.set_weights(weights)
    return model


def rebuild_model(model: keras.Model) -> ClassifierModel:
    """A fresh copy of a :class:`ClassifierModel` with the same weights (see :meth:`ClassifierModel.copy`)."""
    return as_classifier_model(model).copy()


def average_models(models: Sequence[keras.Model], names: Optional[Sequence[str]] = None) -> ClassifierModel:
    """A new model each of whose weights, batch-norm statistics included, is the mean of ``models``'.

    This is a model soup (Wortsman et al., ICML 2022): models fine-tuned from one parent stay in one
    basin of the loss, so their average is a model of its own, often better than each of them;
    models trained apart are not. The models must share architecture, build and classes; ``names``
    (one per model, default "model 0", ...) name them in errors.
    """
    names = list(names) if names is not None else [f"model {i}" for i in range(len(models))]
    if len(names) != len(models):
        raise ConfigError(f"average_models: got {len(models)} models and {len(names)} names; give one name a model")
    models = [as_classifier_model(m, name) for m, name in zip(models, names)]
    if not models:
        raise ConfigError("average_models: got no models; give the models to average")

    def build(m: ClassifierModel):
        return m.architecture, m.spec.to_config(), tuple(m.class_names), [tuple(w.shape) for w in m.weights]

    for name, m in zip(names[1:], models[1:]):
        if build(m) != build(models[0]):
            raise ConfigError(f"average_models: {name} ({m.architecture}, classes {', '.join(m.class_names)}) "
                              f"differs in architecture, build or classes from {names[0]} ({models[0].architecture}, "
                              f"classes {', '.join(models[0].class_names)}); average only models fine-tuned from one parent")
    soup = models[0].copy()
    soup.set_weights([np.mean(np.stack(ws), axis=0).astype(ws[0].dtype) for ws in zip(*(m.get_weights() for m in models))])
    return soup


def as_classifier_model(model, what: str = "model") -> ClassifierModel:
    """``model`` if it is a :class:`ClassifierModel`, else a one-line error saying how to make one."""
    if not isinstance(model, ClassifierModel):
        raise ConfigError(
            f"{what} {getattr(model, 'name', model)!r} was not made by bloodcell.build_model (got a "
            f"{type(model).__name__}); build it with bloodcell.build_model(name)"
        )
    return model


def get_backbone(model: keras.Model) -> keras.Model:
    """The backbone sub-model of a model made by :func:`build_model`."""
    try:
        return model.get_layer(BACKBONE_NAME)
    except ValueError:
        raise ConfigError(
            f"model {model.name!r} has no sub-model named {BACKBONE_NAME!r}; expected a model made by "
            "bloodcell.build_model"
        ) from None
