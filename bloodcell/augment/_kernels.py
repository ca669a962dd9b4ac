"""Fused kernels of the augmentation layers: warps, pastes, colour and RandAugment operations
compiled with XLA (``tf.function(jit_compile=True)``) where TensorFlow has it, plain
``tf.function`` elsewhere."""

from __future__ import annotations

import math
import weakref
from typing import Callable

import keras
import tensorflow as tf

from .._tf import SHAPE_TRACED

_XLA: bool | None = None  # None: use XLA where this TensorFlow build can compile with it
_FUSED: dict[tuple, Callable] = {}
_WARP_FILL_MODES = ("reflect", "nearest", "constant")  # those _bilinear_warp computes


def _xla_probe(x):
    return x + 1.0


def _xla_available() -> bool:
    global _XLA
    if _XLA is None:
        try:
            with tf.init_scope():
                SHAPE_TRACED.add(_xla_probe.__qualname__)
                tf.function(_xla_probe, jit_compile=True)(tf.constant(1.0))
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
        SHAPE_TRACED.add(fn.__qualname__)
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
        SHAPE_TRACED.add(_Transform.__qualname__)
        _FUSED_TRANSFORMS[layer] = tf.function(_Transform(layer), jit_compile=True)
    return _FUSED_TRANSFORMS[layer]


class _Transform:
    """``layer.transform_images`` as a callable object of its own: TensorFlow counts the traces of
    a plain function by its code, so one lambda per layer would read as one function retraced
    (a false "triggered tf.function retracing" warning) once a few layers have traced."""

    def __init__(self, layer):
        self._layer = weakref.ref(layer)

    def __call__(self, images, transformation):
        return self._layer().transform_images(images, transformation, training=True)


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
