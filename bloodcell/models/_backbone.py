"""What a family builder returns, and the helpers family modules share."""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from dataclasses import dataclass
from typing import Iterator, Sequence

import keras

from .._fs import bloodcell_config
from ..errors import ConfigError

BACKBONE_NAME = "backbone"


@dataclass(frozen=True)
class Backbone:
    """What a family builder returns: the feature extractor and the layers that feed it.

    ``model`` takes images (N, S, S, 3) as ``preprocessing`` leaves them (values 0..255 when it is
    empty) and outputs a feature map (N, H, W, C), without pooling or head: the classifier adds
    global average pooling, dropout (``default_dropout``) and the output layer. A builder is a
    function ``(*, input_size, weights=None) -> Backbone`` registered with
    :func:`bloodcell.registry.register_model`.
    """

    model: keras.Model
    preprocessing: Sequence[keras.layers.Layer] = ()
    default_dropout: float = 0.2


class _DownloadFailed(ConfigError):
    """The ImageNet weights could not be fetched: an input that failed while working (exit 1), not a bad option."""

    exit_code = 1


def _imagenet_error(architecture: str, exc: Exception) -> ConfigError:
    return _DownloadFailed(
        f"could not fetch the ImageNet weights of {architecture!r} ({type(exc).__name__}: "
        f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}); download the Keras "
        "'..._notop.h5' weights file elsewhere and pass its path as weights='/path/to/file.h5' "
        "(bloodcell train: --init /path/to/file.h5), or use weights=None (--init random) to train from random init"
    )


def _is_model_folder_weights(path: str) -> bool:
    """Whether ``path`` is the weights file of a bloodcell model folder (beside its config.json)."""
    config = os.path.join(os.path.dirname(os.path.abspath(path)), "config.json")
    return os.path.basename(path) == "model.weights.h5" and bloodcell_config(config) is not None


def check_weights_file(architecture: str, weights) -> None:
    """Refuse ``weights`` (not None or ``"imagenet"``) unless it is a Keras weights file, not a model folder's."""
    if weights not in (None, "imagenet"):
        if not isinstance(weights, (str, os.PathLike)):
            raise ConfigError(f"weights={weights!r}: expected None, 'imagenet' or the path of a Keras '.h5' weights "
                              f"file of {architecture!r} without its top; got a value of type {type(weights).__name__}")
        if not os.path.isfile(str(weights)):
            raise ConfigError(
                f"weights={weights!r}: expected None, 'imagenet' or the path of a Keras '.h5' weights "
                f"file of {architecture!r} without its top; no such file"
            )
        if _is_model_folder_weights(str(weights)):
            raise ConfigError(
                f"weights={weights!r}: is the weights file of a bloodcell model folder, not a Keras backbone's; "
                "start from the folder itself: load_classifier(folder), Trainer(weights=folder) or --init FOLDER"
            )


def load_backbone(constructor, architecture: str, weights, **kwargs) -> keras.Model:
    """Call a ``keras.applications`` constructor, turning a failed weight download into a clear error."""
    check_weights_file(architecture, weights)
    try:
        # Keras prints its download notice on stdout (where `--json` output goes) and warns that ImageNet
        # weights come from 224-pixel training at any other input size: the notice goes to stderr, the warning away.
        with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*input_shape.*", category=UserWarning)
            if weights not in (None, "imagenet"):  # a mismatched file: one warning per layer, then our error
                warnings.simplefilter("ignore", UserWarning)
            model = constructor(include_top=False, weights=weights, **kwargs)
    except ConfigError:
        raise
    except Exception as exc:  # keras raises bare Exceptions for URL and HTTP failures
        if weights is None:
            raise
        if weights != "imagenet":
            raise ConfigError(
                f"weights={weights!r}: the file could not be read as {architecture!r} weights without the top "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'}); it is damaged or "
                "belongs to another architecture: download the Keras '..._notop.h5' file again"
            ) from None
        raise _imagenet_error(architecture, exc) from None
    # Some constructors derive their block layout from `name`, so rename by re-wrapping the graph.
    return keras.Model(model.input, model.output, name=BACKBONE_NAME)


def walk_layers(layer: keras.layers.Layer) -> Iterator[keras.layers.Layer]:
    """Every layer nested inside ``layer`` (sub-models' layers too), depth first, by the public
    ``layers`` property of models."""
    for child in getattr(layer, "layers", ()):
        yield child
        yield from walk_layers(child)


def batchnorm_layers(model: keras.layers.Layer) -> list[keras.layers.BatchNormalization]:
    """The BatchNormalization layers inside ``model``."""
    return [layer for layer in walk_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]


def set_batchnorm_momentum(model: keras.layers.Layer, momentum: float) -> int:
    """Set the momentum of every BatchNormalization layer inside ``model``; returns how many."""
    layers = batchnorm_layers(model)
    for layer in layers:
        layer.momentum = momentum
    return len(layers)
