"""The augmentation presets, the :class:`Augmentation` that applies one, and their description."""

from __future__ import annotations

import contextlib
import functools
from typing import Callable, Sequence

import keras
import tensorflow as tf

from .. import corruptions as _c
from .._checks import check_positive_int
from .._choices import PRESETS
from .._classes import CLASS_NAMES
from ..errors import ConfigError, DataError
from ._seeding import stateless_seeds
from .layers import CutMix, PerImageRandAugment, RandomAffine, RandomColorShift, RandomCorruptions, RandomStain

_BASE_CONFIG_KEYS = {"name", "trainable", "dtype", "seed", "data_format", "bounding_box_format"}


def _preset_layers(preset: str | None, seed: int | None) -> list[keras.layers.Layer]:
    """The layers of a preset, in the order they are applied, all computing in float32."""
    if preset is None:
        return []
    if preset not in PRESETS:
        raise ConfigError(f"unknown augmentation preset {preset!r}; expected one of: {', '.join(PRESETS)} or None")

    def s(i: int) -> int | None:
        return None if seed is None else seed + i

    f32 = {"dtype": "float32"}
    domain = preset == "domain"
    layers: list[keras.layers.Layer] = [
        RandomAffine(flip="horizontal_and_vertical", rotation=0.5, translation=0.1, zoom=0.1, seed=s(0),
                     **({"magnify": 2.0, "magnify_rate": 0.25} if domain else {}), **f32),
    ]
    if domain:  # what differs between labs: stain and light, magnification and framing (above), focus
        layers += [
            # At about half the rates that served BCCD best: those cost PBC accuracy (bench_ablation.py).
            RandomStain(strength=(0.5, 1.6), channel=0.25, mix=0.1, rate=0.5, seed=s(5), **f32),
            RandomCorruptions(("defocus_blur", "motion_blur"), severity=(0.0, 5.0), rate=0.15, seed=s(6), **f32),
        ]
    layers += [
        PerImageRandAugment(value_range=(0, 255), num_ops=2, factor=0.3, rate=0.5, seed=s(1), **f32),
        CutMix(factor=1.0, seed=s(2), **f32),
    ]
    if preset in ("robust", "domain"):
        layers += [
            RandomColorShift(severity=(0.0, 3.0), hue=0.03, rate=0.5, seed=s(3), **f32),
            RandomCorruptions(tuple(_c.CORRUPTIONS), severity=(1.0, 5.0), rate=0.35, seed=s(4), **f32),
        ]
    return layers


_LABEL_MIXERS = (keras.layers.CutMix, keras.layers.MixUp)


class Augmentation:
    """A preset's layers as one callable ``(images, labels) -> (images, labels)``.

    ``images``: float32 (or uint8) batch (N, S, S, 3) of values 0..255; ``labels``: one-hot
    (N, num_classes). Returns float32 images in 0..255 and float32 labels (mixed by CutMix).
    Pass ``seed`` (a (2,) int tensor) to make the result a pure function of it (see
    :func:`stateless_seeds`); without it the layers' own random generators advance.
    """

    def __init__(self, preset: str | None, layers: Sequence[keras.layers.Layer], num_classes: int):
        self.preset = preset
        self.layers = list(layers)
        self.num_classes = num_classes
        self._traced: dict[tuple, Callable] = {}

    def __call__(self, images, labels, seed=None):
        if seed is not None:
            seed = tf.convert_to_tensor(seed)
            if seed.shape.rank != 1 or seed.shape[0] not in (None, 2) or not seed.dtype.is_integer:
                raise ConfigError(f"seed: expected a (2,) integer tensor, got {seed.dtype.name} of shape {seed.shape}; "
                                  "e.g. tf.constant([5, 0])")
        images, labels = tf.convert_to_tensor(images), tf.convert_to_tensor(labels)
        self._check_images(images, labels)
        if labels.shape.rank != 2 or labels.shape[-1] not in (None, self.num_classes):
            raise ConfigError(f"labels: expected one-hot labels (N, {self.num_classes}), got shape {labels.shape}; "
                              f"pass tf.one_hot(class_ids, {self.num_classes}) (or build the augmentation with "
                              "num_classes=... for another number of classes)")
        scope = contextlib.nullcontext() if seed is None else stateless_seeds(self.layers, seed)
        with scope:
            labels = tf.cast(labels, tf.float32)
            for layer in self.layers:
                # RandomAffine reads uint8 images as they are (a quarter of the memory traffic).
                if not isinstance(layer, RandomAffine):
                    images = tf.cast(images, tf.float32)
                if isinstance(layer, _LABEL_MIXERS):
                    out = layer({"images": images, "labels": labels}, training=True)
                    images, labels = out["images"], out["labels"]
                else:
                    images = layer(images, training=True)
            return tf.cast(images, tf.float32), tf.cast(labels, tf.float32)

    @staticmethod
    def _check_images(images: tf.Tensor, labels: tf.Tensor) -> None:
        if images.shape.rank != 4 or images.shape[-1] not in (None, 3):
            raise DataError(f"images: expected a batch of RGB images (N, H, W, 3), got shape {images.shape}"
                            + ("; for one image use images[None]" if images.shape.rank == 3 and images.shape[-1] == 3
                               else "; convert greyscale or RGBA images to RGB first"))
        if images.shape[0] is not None and labels.shape.rank and labels.shape[0] is not None \
                and images.shape[0] != labels.shape[0]:
            raise DataError(f"labels: expected one row per image ({images.shape[0]}), got {labels.shape[0]}")
        wide = images.dtype.is_floating or images.dtype.size > 1  # uint16, int32...: may hold more than 8 bits
        if tf.executing_eagerly() and wide and tf.size(images) > 0:
            low, top = float(tf.reduce_min(images)), float(tf.reduce_max(images))
            if images.dtype.is_floating and 0 < top <= 1.0:
                raise DataError(f"images: values are in 0..{top:g}, the 0..1 convention, but the augmentation expects "
                                "0..255; multiply the images by 255")
            if low < 0 or top > 255:
                raise DataError(f"images: values reach {low:g}..{top:g}, but the augmentation expects 8-bit values in "
                                "0..255; scale 16-bit images to 8 bits (bloodcell.imageio.load_images reads them so)")

    def traced(self, image_shape: Sequence[int], dtype=tf.uint8) -> Callable:
        """This augmentation as a concrete function ``(images, labels, seed) -> (images, labels)``.

        Traced once per image shape (H, W, 3) and dtype and kept, so that callers in parallel
        threads never trace concurrently. ``seed``: (2,) int64.
        """
        key = (tuple(int(d) for d in image_shape), tf.as_dtype(dtype).name)
        if key not in self._traced:
            spec = (
                tf.TensorSpec((None, *key[0]), tf.as_dtype(dtype)),
                tf.TensorSpec((None, self.num_classes), tf.float32),
                tf.TensorSpec((2,), tf.int64),
            )
            # A partial: counted apart from other Augmentations' (a lambda would be counted by its code).
            fn = functools.partial(lambda aug, x, y, s: aug(x, y, seed=s), self)
            self._traced[key] = tf.function(fn).get_concrete_function(*spec)
        return self._traced[key]

    def __repr__(self) -> str:
        names = ", ".join(type(layer).__name__ for layer in self.layers) or "identity"
        return f"Augmentation(preset={self.preset!r}: {names})"


def _no_none(preset):
    """``preset`` with the name ``"none"`` (the command line's) as None."""
    return None if isinstance(preset, str) and preset.lower() == "none" else preset


def build_augmentation(preset: str | None, *, num_classes: int = len(CLASS_NAMES), seed: int | None = None) -> Augmentation:
    """Build a preset (``bloodcell.augment.PRESETS``: ``"seed"``, ``"robust"``, ``"domain"``; ``None`` or
    ``"none"`` for none) as an :class:`Augmentation` callable for labels of ``num_classes`` classes."""
    preset = _no_none(preset)
    num_classes = check_positive_int(num_classes, "num_classes", minimum=2)
    if seed is not None:
        seed = check_positive_int(seed, "seed", minimum=0)
    return Augmentation(preset, _preset_layers(preset, seed), num_classes)


def _layer_label(layer: keras.layers.Layer) -> str:
    module = "keras.layers" if type(layer).__module__.startswith("keras") else "bloodcell.augment"
    return f"{module}.{type(layer).__name__}"


def _public_config(layer: keras.layers.Layer) -> dict:
    config = layer.get_config()
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.items() if k not in _BASE_CONFIG_KEYS}


def _share(layer: keras.layers.Layer) -> float:
    """The chance that ``layer`` changes an image."""
    if isinstance(layer, PerImageRandAugment):
        return 1.0 - (1.0 - layer.rate) ** layer.num_ops
    return float(getattr(layer, "rate", 1.0))


def describe_preset(preset: str | None) -> list[dict]:
    """Rows for a docs table: each layer's name, parameters and the share of images it changes.

    ``probability`` is the chance that an image is changed by the row's layer (CutMix: every
    image receives a patch of a partner; RandAugment: the chance that at least one of its draws
    applies an operation).
    """
    preset = _no_none(preset)
    rows: list[dict] = []
    for layer in _preset_layers(preset, seed=0):
        params = _public_config(layer)
        if isinstance(layer, RandomCorruptions):
            share = layer.rate / len(layer.corruptions)
            for name in layer.corruptions:
                spans = {
                    key: f"{values[0]}..{values[-1]} (severity 1..5)"
                    for key, values in _c.SEVERITY_PARAMS[name]["parameters"].items()
                }
                rows.append({
                    "layer": f"{_layer_label(layer)}[{name}]",
                    "parameters": {"severity": list(layer.severity), **spans},
                    "probability": share,
                    "description": _c.SEVERITY_PARAMS[name]["description"],
                })
            continue
        rows.append({
            "layer": _layer_label(layer),
            "parameters": params,
            "probability": _share(layer),
            "description": (type(layer).__doc__ or "").strip().splitlines()[0],
        })
    return rows
