"""Augmentation presets for training, usable in ``tf.data`` pipelines.

Presets (``build_augmentation(preset)``), applied to float32 batches of values 0..255 with one-hot
labels:

- ``"seed"``: the seed report's pipeline: random flips, rotation, translation and zoom,
  RandAugment and CutMix (labels mixed by area).
- ``"robust"``: ``"seed"`` plus what microscope images suffer at test time: colour shifts
  (exposure, contrast, saturation, hue) and, on a share of the images, one of the corruptions of
  :mod:`bloodcell.corruptions` (blur, JPEG, pixelation, noise, stain blots, bubbles, ...) at a
  random severity, with the same code that :func:`bloodcell.corruptions.corrupt` evaluates with.
- ``None``: no augmentation.

RandAugment's eleven operations are Keras 3's own layers, and :class:`CutMix` is Keras 3's with a
faster paste; :class:`PerImageRandAugment`
draws the operations per image (Keras 3 draws them per batch). Flip, rotation, translation and
zoom are one :class:`RandomAffine` warp instead of Keras' four layers: one resampling blurs less
than four. Every layer is created with ``dtype="float32"``, so the presets keep working under a
``mixed_float16`` or ``mixed_bfloat16`` global policy.

Speed: the warps (``RandomAffine`` and RandAugment's rotation, shear and translation) gather whole
pixels in one function compiled with XLA, which TensorFlow ships (3-6x faster than TensorFlow's
``ImageProjectiveTransformV3`` on a CPU, uint8 images read as uint8; the same values within 0.02
grey levels); :class:`CutMix` is ``keras.layers.CutMix`` pasting its boxes in one fused function;
RandAugment's auto contrast, contrast, colour degeneration and posterization run XLA-compiled,
and equalization applies Keras' lookup tables in one fused function.
Where XLA is unavailable the same functions run unfused (equalization: Keras' own code).
"""

from __future__ import annotations

import contextlib
import functools
import math
import weakref
from typing import Callable, Iterator, Sequence

import keras
import numpy as np
import tensorflow as tf

from . import corruptions as _c

__all__ = [
    "PRESETS",
    "Augmentation",
    "CutMix",
    "PerImageRandAugment",
    "RandomAffine",
    "RandomColorShift",
    "RandomCorruptions",
    "build_augmentation",
    "describe_preset",
    "preview_grid",
    "stateless_seeds",
]

#: Names of the augmentation presets (``None`` means no augmentation).
PRESETS = ("seed", "robust")

_FLIP_MODES = ("horizontal", "vertical", "horizontal_and_vertical", None)
_BASE_CONFIG_KEYS = {"name", "trainable", "dtype", "seed", "data_format", "bounding_box_format"}


def _next_seed(generator: keras.random.SeedGenerator) -> tf.Tensor:
    """The next stateless seed (2,) int32 from a Keras seed generator."""
    return tf.cast(tf.math.floormod(generator.next(), 2**31 - 1), tf.int32)


_XLA: bool | None = None  # None: use XLA where this TensorFlow build can compile with it
_FUSED: dict[tuple, Callable] = {}
_WARP_FILL_MODES = ("reflect", "nearest", "constant")  # those _bilinear_warp computes


def _xla_available() -> bool:
    global _XLA
    if _XLA is None:
        try:
            with tf.init_scope():
                tf.function(lambda x: x + 1.0, jit_compile=True)(tf.constant(1.0))
            _XLA = True
        except Exception:  # a build or device without XLA: the same functions run unfused
            _XLA = False
    return _XLA


def _fused(fn: Callable) -> Callable:
    """``fn`` as a ``tf.function`` compiled with XLA (its element-wise ops and gathers fused into
    single loops over the pixels), or a plain ``tf.function`` where XLA is unavailable."""
    jit = _xla_available()
    key = (fn, jit)
    if key not in _FUSED:
        _FUSED[key] = tf.function(fn, jit_compile=jit)
    return _FUSED[key]


def _map_coordinate(coord, size: int, fill_mode: str):
    """``ImageProjectiveTransformV3``'s mapping of input coordinates outside ``[0, size - 1]``."""
    if fill_mode == "constant":
        return coord
    last = float(size - 1)
    if fill_mode == "nearest" or size == 1:
        return tf.clip_by_value(coord, 0.0, last)
    # reflect (d c b a | a b c d | d c b a)
    span = 2.0 * size
    low = tf.where(coord < -span, span * tf.cast(tf.cast(-coord / span, tf.int32), tf.float32) + coord, coord)
    low = tf.where(low < -size, low + span, -low - 1.0)
    high = coord - span * tf.cast(tf.cast(coord / span, tf.int32), tf.float32)
    high = tf.where(high >= size, span - high - 1.0, high)
    return tf.clip_by_value(tf.where(coord < 0.0, low, tf.where(coord > last, high, coord)), 0.0, last)


def _warp_pixels(images, transform, fill_mode: str, fill_value: float):
    """:func:`_bilinear_warp`, fused, with int32 pixel indices unless the batch holds 2**31
    pixels or more (int64 indices are about 15% slower)."""
    shape = tf.shape(images, out_type=tf.int64)
    small = shape[0] * shape[1] * shape[2] < 2**31
    return tf.cond(
        small,
        lambda: _fused(_bilinear_warp)(images, transform, fill_mode, fill_value, "int32"),
        lambda: _fused(_bilinear_warp)(images, transform, fill_mode, fill_value, "int64"),
    )


def _bilinear_warp(images, transform, fill_mode: str, fill_value, index_dtype: str = "int32"):
    """``ImageProjectiveTransformV3`` (bilinear, affine rows, ``fill_mode`` reflect, nearest or
    constant) as gathers of whole pixels; uint8 images are read as uint8. Returns float32."""
    n = tf.shape(images)[0]
    h, w, c = images.shape[1], images.shape[2], images.shape[3]
    pixels = tf.reshape(images, [-1, c])
    ys, xs = tf.meshgrid(tf.range(h, dtype=tf.float32), tf.range(w, dtype=tf.float32), indexing="ij")
    t = transform[:, :, None, None]
    x = _map_coordinate(t[:, 0] * xs + t[:, 1] * ys + t[:, 2], w, fill_mode)
    y = _map_coordinate(t[:, 3] * xs + t[:, 4] * ys + t[:, 5], h, fill_mode)
    x0, y0 = tf.floor(x), tf.floor(y)
    wx, wy = (x - x0)[..., None], (y - y0)[..., None]
    first = (tf.range(tf.cast(n, index_dtype)) * (h * w))[:, None, None]
    fill = tf.cast(fill_value, tf.float32)

    def read(row, col):
        if fill_mode != "constant":  # coordinates were mapped inside; a neighbour beyond has weight 0
            return tf.cast(tf.gather(pixels, first + tf.minimum(row, h - 1) * w + tf.minimum(col, w - 1)), tf.float32)
        inside = (row >= 0) & (row < h) & (col >= 0) & (col < w)
        index = first + tf.clip_by_value(row, 0, h - 1) * w + tf.clip_by_value(col, 0, w - 1)
        return tf.where(inside[..., None], tf.cast(tf.gather(pixels, index), tf.float32), fill)

    r0, c0 = tf.cast(y0, index_dtype), tf.cast(x0, index_dtype)
    if fill_mode == "constant":  # far-off coordinates, kept from overflowing
        r0 = tf.cast(tf.clip_by_value(y0, -2.0, h + 1.0), index_dtype)
        c0 = tf.cast(tf.clip_by_value(x0, -2.0, w + 1.0), index_dtype)
    top = read(r0, c0) * (1.0 - wx) + read(r0, c0 + 1) * wx
    bottom = read(r0 + 1, c0) * (1.0 - wx) + read(r0 + 1, c0 + 1) * wx
    return top * (1.0 - wy) + bottom * wy


def _paste_boxes(images, partners, x0, x1, y0, y1):
    """``images`` with the box ``[x0, x1) x [y0, y1)`` of each taken from ``partners[i]``."""
    h, w = images.shape[1], images.shape[2]
    cols = tf.range(w, dtype=tf.float32)[None]
    rows = tf.range(h, dtype=tf.float32)[None]
    inside_x = (cols >= x0[:, None]) & (cols < x1[:, None])
    inside_y = (rows >= y0[:, None]) & (rows < y1[:, None])
    box = inside_y[:, :, None, None] & inside_x[:, None, :, None]
    images = tf.cast(images, tf.float32)
    return tf.where(box, tf.gather(images, partners), images)


def _per_group(images, part, groups: int, run: Callable):
    """``images`` with each group ``k < groups`` (the rows where ``part == k``) replaced by
    ``run(k, rows, images[rows])``; rows of other parts stay as they are. Each group is gathered
    and the results stitched over the batch once (later indices win), so that unchanged images
    are copied once rather than partitioned and stitched back."""
    indices, outputs = [tf.range(tf.shape(images)[0])], [images]
    for k in range(groups):
        rows = tf.cast(tf.where(tf.equal(part, k))[:, 0], tf.int32)
        outputs.append(run(k, rows, tf.gather(images, rows)))
        indices.append(rows)
    return tf.dynamic_stitch(indices, outputs)


def _seed_generators(layers: Sequence[keras.layers.Layer]) -> list[keras.random.SeedGenerator]:
    """Every seed generator held by ``layers`` and their sub-layers."""
    found: dict[int, keras.random.SeedGenerator] = {}
    seen: set[int] = set()

    def visit(obj) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, keras.random.SeedGenerator):
            found[id(obj)] = obj
        elif isinstance(obj, keras.layers.Layer):
            for value in vars(obj).values():
                visit(value)
        elif isinstance(obj, (list, tuple)):
            for value in obj:
                visit(value)
        elif isinstance(obj, dict):
            for value in obj.values():
                visit(value)

    for layer in layers:
        visit(layer)
    return list(found.values())


@contextlib.contextmanager
def stateless_seeds(layers: Sequence[keras.layers.Layer], seed) -> Iterator[None]:
    """Make the random draws of ``layers`` a pure function of ``seed`` (a (2,) int tensor).

    Inside the block every seed generator of the layers hands out ``fold_in(seed, k)`` for the
    k-th draw instead of advancing its variable. In a ``tf.data`` map, where the block runs once
    while tracing, each batch's augmentation then depends only on its own seed, so parallel
    calls give the same result in any order.
    """
    base = tf.cast(tf.math.floormod(tf.cast(seed, tf.int64), 2**31 - 1), tf.int32)
    counter = iter(range(1, 1 << 30))
    generators = _seed_generators(layers)

    def draw(ordered: bool = True) -> tf.Tensor:
        return tf.random.experimental.stateless_fold_in(base, next(counter))

    for generator in generators:
        generator.next = draw
    try:
        yield
    finally:
        for generator in generators:
            del generator.next


def _as_batch(fn: Callable[[tf.Tensor], tf.Tensor], images: tf.Tensor) -> tf.Tensor:
    """Apply a batch function to a batch (N, H, W, C) or a single image (H, W, C)."""
    if images.shape.rank == 3:
        return fn(images[None])[0]
    return fn(images)


def _check_range(name: str, value: float, low: float, high: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{name} must be a number in [{low}, {high}], got {value!r}")
    return float(value)


def _check_severity(severity) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in severity)
    except (TypeError, ValueError):
        raise ValueError(f"severity must be a pair (low, high) within [0, 5], got {severity!r}") from None
    if not 0.0 <= low <= high <= 5.0:
        raise ValueError(f"severity must be a pair (low, high) with 0 <= low <= high <= 5, got {severity!r}")
    return low, high


@keras.saving.register_keras_serializable(package="bloodcell")
class RandomAffine(keras.layers.Layer):
    """Random flips, rotation, translation and zoom as one affine warp per image.

    Args:
        flip: ``"horizontal"``, ``"vertical"``, ``"horizontal_and_vertical"`` or None; each
            allowed flip happens with probability 0.5.
        rotation: largest rotation as a fraction of a full turn (0.5 = any angle), like
            ``keras.layers.RandomRotation``'s factor.
        translation: largest shift as a fraction of the image side, along each axis.
        zoom: largest relative change of scale (0.1: scale drawn in [0.9, 1.1]).
        fill_mode: how to fill pixels from outside the image: ``"reflect"``, ``"wrap"``,
            ``"constant"`` or ``"nearest"``.
        interpolation: ``"bilinear"`` or ``"nearest"``.
        fill_value: value for ``fill_mode="constant"``.
        seed: integer seed of the layer's random generator.
    """

    def __init__(
        self,
        flip: str | None = "horizontal_and_vertical",
        rotation: float = 0.5,
        translation: float = 0.1,
        zoom: float = 0.1,
        fill_mode: str = "reflect",
        interpolation: str = "bilinear",
        fill_value: float = 0.0,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if flip not in _FLIP_MODES:
            raise ValueError(f"flip must be one of {_FLIP_MODES}, got {flip!r}")
        self.flip = flip
        self.rotation = _check_range("rotation", rotation, 0.0, 0.5)
        self.translation = _check_range("translation", translation, 0.0, 1.0)
        self.zoom = _check_range("zoom", zoom, 0.0, 0.9)
        self.fill_mode = fill_mode
        self.interpolation = interpolation
        self.fill_value = fill_value
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=True):
        if not training:
            return tf.cast(images, self.compute_dtype)
        return _as_batch(self._warp, images)

    def _warp(self, images):
        shape = tf.shape(images)
        n, h, w = shape[0], tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
        u = tf.random.stateless_uniform([n, 6], _next_seed(self.generator))
        ones = tf.ones([n])
        fx = tf.where(u[:, 0] < 0.5, -ones, ones) if self.flip in ("horizontal", "horizontal_and_vertical") else ones
        fy = tf.where(u[:, 1] < 0.5, -ones, ones) if self.flip in ("vertical", "horizontal_and_vertical") else ones
        angle = (2.0 * u[:, 2] - 1.0) * self.rotation * 2.0 * math.pi
        scale = 1.0 + (2.0 * u[:, 5] - 1.0) * self.zoom
        tx = (2.0 * u[:, 3] - 1.0) * self.translation * w
        ty = (2.0 * u[:, 4] - 1.0) * self.translation * h
        # Output pixel p samples the input at c + A (p - c) + t with A = R(angle) F / scale.
        cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
        a00, a01, a10, a11 = cos * fx, -sin * fy, sin * fx, cos * fy
        cx, cy = (w - 1.0) / 2.0, (h - 1.0) / 2.0
        zeros = tf.zeros([n])
        transform = tf.stack(
            [a00, a01, cx - a00 * cx - a01 * cy + tx, a10, a11, cy - a10 * cx - a11 * cy + ty, zeros, zeros],
            axis=1,
        )
        if _fusable(images) and self.interpolation == "bilinear" and self.fill_mode in _WARP_FILL_MODES:
            out = _warp_pixels(images, transform, self.fill_mode, float(self.fill_value))
        else:
            out = keras.ops.image.affine_transform(
                tf.cast(images, tf.float32),
                transform,
                interpolation=self.interpolation,
                fill_mode=self.fill_mode,
                fill_value=self.fill_value,
            )
        return tf.ensure_shape(tf.cast(out, self.compute_dtype), images.shape)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "flip": self.flip,
            "rotation": self.rotation,
            "translation": self.translation,
            "zoom": self.zoom,
            "fill_mode": self.fill_mode,
            "interpolation": self.interpolation,
            "fill_value": self.fill_value,
            "seed": self.seed,
        }


# RandAugment's operations that run faster compiled with XLA (measured on pbc96 chunks: auto
# contrast 3.4x, contrast 2x, colour degeneration 1.4x, posterization 1.4x); brightness and
# sharpness run slower compiled; equalization has its own path (_equalize).
_FUSED_OPERATIONS = ("auto_contrast", "random_contrast", "random_color_degeneration", "random_posterization")
_XLA_LAYERS: dict[type, bool] = {}
_FUSED_TRANSFORMS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _fused_transform(layer) -> Callable:
    """``layer.transform_images`` compiled with XLA: one ``tf.function`` per layer, so that
    layers do not retrace each other's."""
    if layer not in _FUSED_TRANSFORMS:
        ref = weakref.ref(layer)
        _FUSED_TRANSFORMS[layer] = tf.function(
            lambda images, transformation: ref().transform_images(images, transformation, training=True),
            jit_compile=True,
        )
    return _FUSED_TRANSFORMS[layer]


def _pad_to_power_of_two(images):
    """``images`` followed by rows of zeros up to a power of two, and the original count.

    Groups vary in size from call to call; padded, XLA compiles a few shapes, not one per size.
    """
    count = tf.shape(images)[0]
    size = tf.cast(2.0 ** tf.math.ceil(tf.math.log(tf.cast(count, tf.float32)) / math.log(2.0)), tf.int32)
    size = tf.where(size < count, 2 * size, size)  # float rounding, either way
    size = tf.where(size // 2 >= count, size // 2, size)
    return tf.pad(images, [[0, size - count]] + [[0, 0]] * (images.shape.rank - 1)), count


def _fusable(images) -> bool:
    """Whether the fused functions apply: a batch with known height, width and channels."""
    return images.shape.rank == 4 and None not in images.shape[1:]


def _compiles_with_xla(layer) -> bool:
    """Whether ``layer.transform_images`` compiles with XLA (checked once per layer class)."""
    kind = type(layer)
    if kind not in _XLA_LAYERS:
        ok = _xla_available()
        if ok:
            try:
                with tf.init_scope():
                    probe = kind.from_config(layer.get_config())
                    images = tf.random.stateless_uniform([2, 8, 8, 3], [0, 1], 0.0, 255.0)
                    transformation = probe.get_random_transformation(images, training=True)
                    _fused_transform(probe)(images, transformation)
            except Exception:  # this Keras version's layer uses an operation XLA cannot compile
                ok = False
        _XLA_LAYERS[kind] = ok
    return _XLA_LAYERS[kind]


def _fast_equalization(layer) -> bool:
    return (
        isinstance(layer, keras.layers.Equalization)
        and tuple(layer.value_range) == (0, 255)
        and layer.data_format == "channels_last"
        and _xla_available()
    )


def _equalize(images, bins: int):
    """``keras.layers.Equalization`` (value range 0..255): one histogram per channel over the
    whole group, the same lookup table, applied by one fused function. Returns float32."""
    images = tf.cast(images, tf.float32)
    padded, count = _pad_to_power_of_two(images)
    channels = images.shape[-1]
    luts, flat = [], []
    for c in range(channels):
        index = tf.clip_by_value(tf.cast((images[..., c] - 0.0) * (bins - 1) / 255.0, tf.int32), 0, bins - 1)
        hist = tf.math.bincount(tf.reshape(index, [-1]), minlength=bins, maxlength=bins)
        cdf = tf.cumsum(hist)
        cdf_min = tf.gather(cdf, tf.argmax(cdf > 0, output_type=tf.int32))
        denominator = cdf[-1] - cdf_min
        denominator = tf.where(denominator == 0, 1, denominator)
        lut = tf.cast(cdf - cdf_min, tf.float32) * 255.0 / tf.cast(denominator, tf.float32)
        luts.append(tf.clip_by_value(tf.round(lut), 0.0, 255.0))
        flat.append(tf.math.count_nonzero(hist) <= 1)  # a flat channel stays as it is
    out = _fused(_apply_luts)(padded, tf.stack(luts), tf.stack(flat), bins)
    return out[:count]


def _apply_luts(images, luts, flat, bins: int):
    channels = images.shape[-1]
    index = tf.cast(tf.clip_by_value(images / 255.0 * (bins - 1), 0, bins - 1), tf.int32)
    out = tf.gather(tf.reshape(luts, [-1]), index + tf.range(channels) * bins)
    return tf.where(flat, images, out)


def _geometry_matrix(name: str, layer, transformation):
    """The warp matrices (N, 8) that RandAugment's rotation, shear or translation layer would pass
    to ``affine_transform``, where :func:`_bilinear_warp` can apply them; else None."""
    if name not in ("random_rotation", "random_shear", "random_translation"):
        return None
    if layer.interpolation != "bilinear" or layer.fill_mode not in _WARP_FILL_MODES:
        return None
    if layer.data_format != "channels_last":
        return None
    if name == "random_rotation":
        return transformation["rotation_matrix"]
    if name == "random_shear" and hasattr(layer, "_get_shear_matrix"):
        return layer._get_shear_matrix(transformation["shear_factor"])
    if name == "random_translation" and hasattr(layer, "_get_translation_matrix"):
        return layer._get_translation_matrix(transformation["translations"])
    return None


@keras.saving.register_keras_serializable(package="bloodcell")
class PerImageRandAugment(keras.layers.RandAugment):
    """``keras.layers.RandAugment`` with the operations drawn for each image, not for each batch.

    Keras 3 draws ``num_ops`` operations per batch and applies them to every image (computing all
    eleven and keeping the drawn one with ``where``): a whole batch is then solarized or
    equalized, which swings the batch-norm statistics from batch to batch. Here each image draws
    its own operations, as in the RandAugment paper and in keras-cv's layer that the seed report
    used; each operation gathers and only runs on the images that drew it.
    The operations are Keras' own layers, with Keras' mapping of ``factor`` to strength, except
    two whose strength Keras maps backwards: posterization keeps ``posterize_bits`` bits (Keras
    keeps ``1..int(8 * factor)`` bits: 1 bit for factors below 0.25, flat blotches), and
    solarization is left out of the default ``operations`` (Keras draws the threshold in
    ``[0, 255 * factor]``, which turns nearly every image into a colour negative at the usual
    factors; no microscope makes those).

    Args:
        rate: probability that each of the ``num_ops`` draws applies an operation (else the
            image is left as it is for that draw), as in keras-cv's RandAugment.
        operations: names of the operations to draw from (of ``keras.layers.RandAugment``'s
            eleven); by default all but ``"solarization"``.
        posterize_bits: (low, high): the number of bits kept is drawn in ``[low, high)``.
        Other arguments: as ``keras.layers.RandAugment``.
    """

    def __init__(self, value_range=(0, 255), num_ops=2, factor=0.5, interpolation="bilinear",
                 seed=None, data_format=None, rate=1.0, posterize_bits=(4, 8), operations=None, **kwargs):
        all_ops = keras.layers.RandAugment._AUGMENT_LAYERS
        operations = [op for op in all_ops if op != "solarization"] if operations is None else list(operations)
        unknown = [op for op in operations if op not in all_ops]
        if unknown or not operations:
            raise ValueError(f"operations must name some of {all_ops}, got {operations!r}")
        self._AUGMENT_LAYERS = operations
        super().__init__(
            value_range=value_range,
            num_ops=num_ops,
            factor=factor,
            interpolation=interpolation,
            seed=seed,
            data_format=data_format,
            **kwargs,
        )
        self.rate = _check_range("rate", rate, 0.0, 1.0)
        low, high = (int(b) for b in posterize_bits)
        if not 1 <= low < high <= 8:
            raise ValueError(f"posterize_bits must be (low, high) with 1 <= low < high <= 8, got {posterize_bits!r}")
        self.posterize_bits = (low, high)
        self.random_posterization = keras.layers.RandomPosterization(
            factor=self.posterize_bits,
            value_range=self.value_range,
            seed=self.seed,
            data_format=data_format,
            **kwargs,
        )

    def get_random_transformation(self, data, training=True, seed=None):
        if not training:
            return None
        images = data["images"] if isinstance(data, dict) else data
        shape = self.backend.shape(images)
        count = 1 if len(shape) == 3 else shape[0]
        seed = seed or self._get_seed_generator(self.backend._backend)
        # Operation indices (N, num_ops), the number of operations meaning "none"; each operation
        # draws its strengths when it runs.
        ops = len(self._AUGMENT_LAYERS)
        idxes = self.backend.random.randint((count, self.num_ops), 0, ops, seed=seed)
        applied = self.backend.random.uniform((count, self.num_ops), seed=seed) < self.rate
        return {"layer_idxes": self.backend.numpy.where(applied, idxes, ops)}

    def transform_images(self, images, transformation, training=True):
        images = tf.cast(images, self.compute_dtype)
        if not training or transformation is None:
            return images
        return _as_batch(lambda x: self._apply_ops(x, transformation["layer_idxes"]), images)

    def _apply_ops(self, images, layer_idxes):
        shape = images.shape

        def run(k, chosen, group):
            return tf.cond(
                tf.size(chosen) > 0, functools.partial(self._run, self._AUGMENT_LAYERS[k], group), lambda: group
            )

        for i in range(self.num_ops):
            part = tf.cast(layer_idxes[:, i], tf.int32)
            images = tf.ensure_shape(_per_group(images, part, len(self._AUGMENT_LAYERS), run), shape)
        return images

    def _run(self, name: str, images):
        layer = getattr(self, name)
        seed = self._get_seed_generator(self.backend._backend)
        fusable = _fusable(images)
        if fusable:
            if name == "equalization" and _fast_equalization(layer):
                return tf.cast(_equalize(images, layer.bins), self.compute_dtype)
            if name in _FUSED_OPERATIONS and _compiles_with_xla(layer):
                padded, count = _pad_to_power_of_two(images)
                transformation = layer.get_random_transformation(padded, training=True, seed=seed)
                out = _fused_transform(layer)(padded, transformation)
                return tf.cast(out[:count], self.compute_dtype)
        transformation = layer.get_random_transformation(images, training=True, seed=seed)
        matrix = _geometry_matrix(name, layer, transformation) if fusable else None
        if matrix is None:
            return tf.cast(layer.transform_images(images, transformation), self.compute_dtype)
        padded, count = _pad_to_power_of_two(images)
        out = _warp_pixels(
            padded,
            tf.pad(tf.cast(matrix, tf.float32), [[0, tf.shape(padded)[0] - count], [0, 0]]),
            layer.fill_mode,
            float(layer.fill_value),
        )
        return tf.cast(out[:count], self.compute_dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "rate": self.rate,
            "posterize_bits": self.posterize_bits,
            "operations": list(self._AUGMENT_LAYERS),
        }


@keras.saving.register_keras_serializable(package="bloodcell")
class CutMix(keras.layers.CutMix):
    """``keras.layers.CutMix`` with the same random draws and results, pasting the boxes faster.

    Keras builds a boolean mask of every pixel and channel and then selects; here the boxes are
    pasted by one fused function (compiled with XLA where TensorFlow has it), about 5 times
    faster on a CPU. Arguments: as ``keras.layers.CutMix``.
    """

    def _generate_batch_mask(self, images_shape, box_corners):
        if self.data_format != "channels_last":
            return super()._generate_batch_mask(images_shape, box_corners)
        x0, x1, y0, y1 = box_corners
        width = tf.cast(images_shape[self.width_axis], self.compute_dtype)
        height = tf.cast(images_shape[self.height_axis], self.compute_dtype)
        mix_weight = 1.0 - (x1 - x0) * (y1 - y0) / (width * height)
        return tf.stack([x0, x1, y0, y1]), mix_weight

    def transform_images(self, images, transformation=None, training=True):
        if not training or transformation is None or self.data_format != "channels_last":
            return super().transform_images(images, transformation, training)
        x0, x1, y0, y1 = tf.unstack(tf.cast(transformation["batch_masks"], tf.float32))
        out = _fused(_paste_boxes)(images, transformation["permutation_order"], x0, x1, y0, y1)
        return tf.cast(out, self.compute_dtype)


class _SubsetLayer(keras.layers.Layer):
    """Base of layers that change a random share ``rate`` of the images of a batch."""

    def __init__(self, rate: float, seed: int | None, **kwargs):
        super().__init__(**kwargs)
        self.rate = _check_range("rate", rate, 0.0, 1.0)
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=True):
        images = tf.cast(images, self.compute_dtype)
        if not training or self.rate == 0.0:
            return images
        return _as_batch(lambda x: self._apply(x, _next_seed(self.generator)), images)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


def _transform_colours(images, matrix, gain, contrast):
    """:func:`bloodcell.corruptions.color_transform` with ``color_matrix``'s matrices, clipped to
    0..255, as channel sums (one fused loop over the pixels rather than an einsum, an offset and
    a clip, each a pass over the batch)."""
    x = tf.cast(images, tf.float32)
    mean = tf.reduce_mean(x, axis=[1, 2, 3]) * gain
    m = matrix[:, None, None]
    out = x[..., 0:1] * m[..., 0] + x[..., 1:2] * m[..., 1] + x[..., 2:3] * m[..., 2]
    out = tf.clip_by_value(out + ((1.0 - contrast) * mean)[:, None, None, None], 0.0, 255.0)
    return tf.cast(out, images.dtype)


@keras.saving.register_keras_serializable(package="bloodcell")
class RandomColorShift(_SubsetLayer):
    """Exposure, contrast, saturation and hue changes of a share of the images.

    Each chosen image gets an independent severity in ``severity`` and a random direction for
    each of exposure (``brightness_up``/``brightness_down`` of :mod:`bloodcell.corruptions`),
    contrast (``contrast_up``/``contrast_down``) and saturation (``saturation``, or its inverse
    for more saturated), and a hue rotation in ``[-hue, hue]`` turns. All four are one colour
    matrix per image (:func:`bloodcell.corruptions.color_transform`).
    """

    def __init__(self, severity=(0.0, 3.0), hue: float = 0.03, rate: float = 0.5, seed=None, **kwargs):
        super().__init__(rate, seed, **kwargs)
        self.severity = _check_severity(severity)
        self.hue = _check_range("hue", hue, 0.0, 0.5)

    def _apply(self, images, seed):
        n = tf.shape(images)[0]
        low, high = self.severity
        u = tf.random.stateless_uniform([n, 8], seed)
        chosen = tf.cast(u[:, 0] < self.rate, tf.float32)
        sev = (low + (high - low) * u[:, 1:4]) * chosen[:, None]
        up = u[:, 4:7] < 0.5

        def pick(i, name_up, name_down):
            return tf.where(up[:, i], _c.param_tf(name_up, sev[:, i]), _c.param_tf(name_down, sev[:, i]))

        gain = pick(0, "brightness_up", "brightness_down")
        contrast = pick(1, "contrast_up", "contrast_down")
        faded = _c.param_tf("saturation", sev[:, 2])
        saturation = tf.where(up[:, 2], 1.0 / faded, faded)
        hue = (2.0 * u[:, 7] - 1.0) * self.hue * chosen
        if not _fusable(images):
            out = _c.color_transform(images, gain=gain, contrast=contrast, saturation=saturation, hue=hue)
            return tf.clip_by_value(out, 0.0, 255.0)
        matrix, gain, contrast = _c.color_matrix(n, gain, contrast, saturation, hue)
        return _fused(_transform_colours)(images, matrix, gain, contrast)

    def get_config(self):
        return {**super().get_config(), "severity": self.severity, "hue": self.hue}


@keras.saving.register_keras_serializable(package="bloodcell")
class RandomCorruptions(_SubsetLayer):
    """Each image, with probability ``rate``, gets one of ``corruptions`` at a random severity.

    The corruption is drawn uniformly from ``corruptions`` (names of
    :data:`bloodcell.corruptions.CORRUPTIONS`), the severity uniformly in ``severity`` (continuous,
    parameters interpolated between the severity table's rows). Each corruption gathers and only
    computes on the images it was drawn for.
    """

    def __init__(self, corruptions: Sequence[str] = tuple(_c.CORRUPTIONS), severity=(1.0, 5.0),
                 rate: float = 0.35, seed=None, **kwargs):
        super().__init__(rate, seed, **kwargs)
        if isinstance(corruptions, str):
            corruptions = [corruptions]
        corruptions = list(corruptions)
        if not corruptions:
            raise ValueError(f"corruptions must name at least one of: {', '.join(_c.CORRUPTIONS)}")
        for name in corruptions:
            if name not in _c.CORRUPTIONS:
                raise ValueError(f"unknown corruption {name!r}; expected any of: {', '.join(_c.CORRUPTIONS)}")
        self.corruptions = corruptions
        self.severity = _check_severity(severity)

    def _apply(self, images, seed):
        n = tf.shape(images)[0]
        k = len(self.corruptions)
        s_rate, s_pick, s_sev, s_apply = (tf.random.experimental.stateless_fold_in(seed, i) for i in range(4))
        chosen = tf.random.stateless_uniform([n], s_rate) < self.rate
        pick = tf.random.stateless_uniform([n], s_pick, 0, k, dtype=tf.int32)
        low, high = self.severity
        severity = tf.random.stateless_uniform([n], s_sev, low, high)

        def run(i, index, group):
            fold = tf.random.experimental.stateless_fold_in(s_apply, i)
            return _c.corrupt_tf(group, self.corruptions[i], tf.gather(severity, index), fold)

        part = tf.where(chosen, pick, -1)
        return tf.ensure_shape(_per_group(images, part, k, run), images.shape)

    def get_config(self):
        return {**super().get_config(), "corruptions": list(self.corruptions), "severity": self.severity}


def _preset_layers(preset: str | None, seed: int | None) -> list[keras.layers.Layer]:
    """The layers of a preset, in the order they are applied, all computing in float32."""
    if preset is None:
        return []
    if preset not in PRESETS:
        raise ValueError(f"unknown augmentation preset {preset!r}; expected one of: {', '.join(PRESETS)} or None")

    def s(i: int) -> int | None:
        return None if seed is None else seed + i

    f32 = {"dtype": "float32"}
    layers: list[keras.layers.Layer] = [
        RandomAffine(flip="horizontal_and_vertical", rotation=0.5, translation=0.1, zoom=0.1, seed=s(0), **f32),
        PerImageRandAugment(value_range=(0, 255), num_ops=2, factor=0.3, rate=0.5, seed=s(1), **f32),
        CutMix(factor=1.0, seed=s(2), **f32),
    ]
    if preset == "robust":
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
            self._traced[key] = tf.function(lambda x, y, s: self(x, y, seed=s)).get_concrete_function(*spec)
        return self._traced[key]

    def __repr__(self) -> str:
        names = ", ".join(type(layer).__name__ for layer in self.layers) or "identity"
        return f"Augmentation(preset={self.preset!r}: {names})"


def build_augmentation(preset: str | None, *, num_classes: int = 8, seed: int | None = None) -> Augmentation:
    """Build preset ``"seed"``, ``"robust"`` or ``None`` as an :class:`Augmentation` callable."""
    if isinstance(preset, str) and preset.lower() == "none":
        preset = None
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


def preview_grid(images: np.ndarray, preset: str | None, *, n: int = 16, seed: int = 0,
                 columns: int = 8, views: int = 1) -> np.ndarray:
    """A uint8 picture of ``n`` images (first row of each block) and their augmented views.

    ``images``: uint8 (N, S, S, 3). Each block of ``columns`` images is followed by ``views``
    rows of augmented versions, the images augmented together as one batch (so CutMix pastes
    patches between them). Tiles are separated by 2-pixel white lines.
    """
    arr = np.asarray(images)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3 or len(arr) == 0:
        raise ValueError(f"images: expected a non-empty uint8 batch (N, S, S, 3), got {arr.dtype} {arr.shape}")
    if n < 1 or columns < 1 or views < 1:
        raise ValueError(f"n, columns and views must be at least 1, got n={n}, columns={columns}, views={views}")
    arr = arr[:n]
    count = len(arr)
    augmentation = build_augmentation(preset, seed=seed)
    labels = tf.one_hot(np.arange(count) % 8, 8)
    augmented = []
    for v in range(views):
        out, _ = augmentation(arr, labels, seed=tf.constant([seed, v]))
        augmented.append(np.clip(np.rint(out.numpy()), 0, 255).astype(np.uint8))
    size, gap = arr.shape[1], 2
    cols = min(columns, count)
    blocks = math.ceil(count / cols)
    rows = blocks * (1 + views)
    grid = np.full((rows * (size + gap) - gap, cols * (size + gap) - gap, 3), 255, np.uint8)
    for i in range(count):
        block, col = divmod(i, cols)
        for r, tile in enumerate([arr[i]] + [a[i] for a in augmented]):
            top = (block * (1 + views) + r) * (size + gap)
            left = col * (size + gap)
            grid[top : top + size, left : left + size] = tile
    return grid
