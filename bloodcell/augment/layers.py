"""The augmentation layers (all registered serialisable, all computing in their own dtype)."""

from __future__ import annotations

import contextlib
import math
from typing import Callable, Sequence

import keras
import tensorflow as tf

from .. import corruptions as _c
from .._checks import check_range as _check_range
from ..errors import ConfigError, DataError
from ._kernels import (
    _FUSED_OPERATIONS,
    _WARP_FILL_MODES,
    _compiles_with_xla,
    _equalize,
    _fast_equalization,
    _fusable,
    _fused,
    _fused_transform,
    _pad_to_power_of_two,
    _paste_boxes,
    _per_group,
    _transform_colours,
    _warp_pixels,
)
from ._seeding import _next_seed, tf_seed_generator

_FLIP_MODES = ("horizontal", "vertical", "horizontal_and_vertical", None)


class _TFLayer(keras.layers.Layer):
    """Base of bloodcell's own augmentation layers: TensorFlow code for ``tf.data``. They take
    and give TensorFlow tensors and draw from a TensorFlow-held seed generator whatever Keras'
    backend (under JAX, Keras would turn their inputs into JAX arrays first)."""

    def __init__(self, seed: int | None, **kwargs):
        super().__init__(**kwargs)
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.seed = seed
        self.generator = tf_seed_generator(seed)

    def __call__(self, inputs, *args, **kwargs):
        if not isinstance(inputs, keras.KerasTensor):
            inputs = tf.convert_to_tensor(inputs)
        return super().__call__(inputs, *args, **kwargs)


def _as_batch(fn: Callable[[tf.Tensor], tf.Tensor], images: tf.Tensor) -> tf.Tensor:
    """Apply a batch function to a batch (N, H, W, C) or a single image (H, W, C)."""
    if images.shape.rank == 3:
        return fn(images[None])[0]
    return fn(images)


def _check_severity(severity) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in severity)
    except (TypeError, ValueError):
        raise ConfigError(f"severity must be a pair (low, high) within [0, 5], got {severity!r}") from None
    if not 0.0 <= low <= high <= 5.0:
        raise ConfigError(f"severity must be a pair (low, high) with 0 <= low <= high <= 5, got {severity!r}")
    return low, high


@keras.saving.register_keras_serializable(package="bloodcell")
class RandomAffine(_TFLayer):
    """Random flips, rotation, translation and zoom as one affine warp per image.

    Args:
        flip: ``"horizontal"``, ``"vertical"``, ``"horizontal_and_vertical"`` or None; each
            allowed flip happens with probability 0.5.
        rotation: largest rotation as a fraction of a full turn (0.5 = any angle), like
            ``keras.layers.RandomRotation``'s factor.
        translation: largest shift as a fraction of the image side, along each axis.
        zoom: largest relative change of scale (0.1: scale drawn in [0.9, 1.1]).
        magnify: largest magnification of the images that ``magnify_rate`` picks, drawn
            log-uniformly in [1, magnify] instead of ``zoom`` (another lab's camera or crop
            frames the cell tighter: 2.2 covers cells filling the frame).
        magnify_rate: share of the images magnified that way (0: none).
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
        magnify: float = 1.0,
        magnify_rate: float = 0.0,
        **kwargs,
    ):
        super().__init__(seed, **kwargs)
        if flip not in _FLIP_MODES:
            raise ConfigError(f"flip must be one of {_FLIP_MODES}, got {flip!r}")
        self.flip = flip
        self.rotation = _check_range("rotation", rotation, 0.0, 0.5)
        self.translation = _check_range("translation", translation, 0.0, 1.0)
        self.zoom = _check_range("zoom", zoom, 0.0, 0.9)
        self.magnify = _check_range("magnify", magnify, 1.0, 8.0)
        self.magnify_rate = _check_range("magnify_rate", magnify_rate, 0.0, 1.0)
        modes, interpolations = ("reflect", "wrap", "constant", "nearest"), ("bilinear", "nearest")
        if str(fill_mode).lower() not in modes:
            raise ConfigError(f"fill_mode must be one of {', '.join(modes)}, got {fill_mode!r}")
        if str(interpolation).lower() not in interpolations:
            raise ConfigError(f"interpolation must be one of {', '.join(interpolations)}, got {interpolation!r}")
        if isinstance(fill_value, bool) or not isinstance(fill_value, (int, float)):
            raise ConfigError(f"fill_value must be a number (a pixel value 0..255), got {fill_value!r}")
        self.fill_mode = str(fill_mode).lower()
        self.interpolation = str(interpolation).lower()
        self.fill_value = fill_value

    def call(self, images, training=True):
        if not training:
            return tf.cast(images, self.compute_dtype)
        return _as_batch(self._warp, images)

    def _warp(self, images):
        shape = tf.shape(images)
        n, h, w = shape[0], tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
        seed = _next_seed(self.generator)
        u = tf.random.stateless_uniform([n, 6], seed)
        ones = tf.ones([n])
        fx = tf.where(u[:, 0] < 0.5, -ones, ones) if self.flip in ("horizontal", "horizontal_and_vertical") else ones
        fy = tf.where(u[:, 1] < 0.5, -ones, ones) if self.flip in ("vertical", "horizontal_and_vertical") else ones
        angle = (2.0 * u[:, 2] - 1.0) * self.rotation * 2.0 * math.pi
        scale = 1.0 + (2.0 * u[:, 5] - 1.0) * self.zoom
        if self.magnify_rate > 0.0 and self.magnify > 1.0:  # drawn apart: the other draws stay as they were
            v = tf.random.stateless_uniform([n, 2], tf.random.experimental.stateless_fold_in(seed, 1))
            scale = tf.where(v[:, 0] < self.magnify_rate, tf.exp(v[:, 1] * math.log(self.magnify)), scale)
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
            # The op behind keras.ops.image.affine_transform on TensorFlow, whatever Keras' backend.
            out = tf.raw_ops.ImageProjectiveTransformV3(
                images=tf.cast(images, tf.float32),
                transforms=transform,
                output_shape=tf.shape(images)[1:3],
                fill_value=tf.cast(self.fill_value, tf.float32),
                interpolation=self.interpolation.upper(),
                fill_mode=self.fill_mode.upper(),
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
            "magnify": self.magnify,
            "magnify_rate": self.magnify_rate,
        }


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


@contextlib.contextmanager
def _folded_seeds(generator, seed: tf.Tensor):
    """Within the block, the k-th draw of ``generator`` is ``fold_in(seed, k)``."""
    counter = iter(range(1, 1 << 30))
    before = generator.__dict__.get("next")  # stateless_seeds' patch, or none (the class's method)
    generator.next = lambda ordered=True: tf.random.experimental.stateless_fold_in(seed, next(counter))
    try:
        yield
    finally:
        if before is None:
            del generator.next
        else:
            generator.next = before


@keras.saving.register_keras_serializable(package="bloodcell")
class PerImageRandAugment(keras.layers.RandAugment):
    """``keras.layers.RandAugment`` with the operations drawn for each image, not for each batch.

    Keras 3 draws ``num_ops`` operations per batch and applies them to every image (computing all
    eleven and keeping the drawn one with ``where``): a whole batch is then solarized or
    equalized, which swings the batch-norm statistics from batch to batch. Here each image draws
    its own operations, as in the RandAugment paper and in keras-cv's layer that the seed report
    used; each operation gathers and only runs on the images that drew it.
    The operations are Keras' own layers, with Keras' mapping of ``factor`` to strength, except
    that translation, brightness, contrast and sharpness go both ways (Keras draws them one-sided,
    in ``(0, factor)``: each cell moved down and right, only brighter...; rotation and shear stay
    one-sided, which the random flips in front of them make two-sided), and two whose strength
    Keras maps backwards: posterization keeps ``posterize_bits`` bits (Keras
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
            raise ConfigError(f"operations must name some of {all_ops}, got {operations!r}")
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
        if isinstance(num_ops, bool) or not isinstance(num_ops, int) or num_ops < 1:
            raise ConfigError(f"num_ops must be a whole number >= 1 (operations drawn per image), got {num_ops!r}")
        try:
            low, high = (int(b) for b in posterize_bits)
        except (TypeError, ValueError):
            raise ConfigError(f"posterize_bits must be (low, high), e.g. (4, 8), got {posterize_bits!r}") from None
        if not 1 <= low < high <= 8:
            raise ConfigError(f"posterize_bits must be (low, high) with 1 <= low < high <= 8, got {posterize_bits!r}")
        self.posterize_bits = (low, high)
        self.random_posterization = keras.layers.RandomPosterization(
            factor=self.posterize_bits,
            value_range=self.value_range,
            seed=self.seed,
            data_format=data_format,
            **kwargs,
        )
        # Keras gives these the one-sided range (0, factor): every cell moved down and right, only
        # brighter, only more contrast, only blurred. Both sides, as in the paper and keras-cv.
        f = float(self.factor[1])
        common = dict(seed=self.seed, data_format=data_format, **kwargs)
        self.random_translation = keras.layers.RandomTranslation(
            height_factor=(-f, f), width_factor=(-f, f), interpolation=interpolation, **common)
        self.random_brightness = keras.layers.RandomBrightness(factor=(-f, f), value_range=self.value_range, **common)
        self.random_contrast = keras.layers.RandomContrast(factor=(f, f), value_range=self.value_range, **common)
        self.random_sharpness = keras.layers.RandomSharpness(
            factor=(max(0.0, 0.5 - f), min(1.0, 0.5 + f)), value_range=self.value_range, **common)

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

        generator = self._get_seed_generator(self.backend._backend)

        def run(k, chosen, group):
            # Drawn whether or not the operation runs: eagerly tf.cond skips the branch of an operation
            # no image drew, traced it does not, and the draws after it must not depend on that.
            op_seed = _next_seed(generator)

            def branch():
                with _folded_seeds(generator, op_seed):
                    return self._run(self._AUGMENT_LAYERS[k], group)

            return tf.cond(tf.size(chosen) > 0, branch, lambda: group)

        for i in range(self.num_ops):
            part = tf.cast(layer_idxes[:, i], tf.int32)
            images = tf.ensure_shape(_per_group(images, part, len(self._AUGMENT_LAYERS), run), shape)
        return images

    def _run(self, name: str, images):
        layer = getattr(self, name)
        # Called outside its own __call__, the operation would compute on Keras' backend: this
        # runs inside tf.data, on TensorFlow (as Keras' RandAugment does it).
        layer.backend.set_backend("tensorflow")
        try:
            return self._run_operation(name, layer, images)
        finally:
            layer.backend.reset()

    def _run_operation(self, name: str, layer, images):
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

    def __init__(self, factor=1.0, seed=None, data_format=None, **kwargs):
        kwargs.setdefault("dtype", "float32")  # Keras' CutMix fails under a mixed_bfloat16 policy
        super().__init__(factor=factor, seed=seed, data_format=data_format, **kwargs)

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


class _SubsetLayer(_TFLayer):
    """Base of layers that change a random share ``rate`` of the images of a batch."""

    def __init__(self, rate: float, seed: int | None, **kwargs):
        super().__init__(seed, **kwargs)
        self.rate = _check_range("rate", rate, 0.0, 1.0)

    def call(self, images, training=True):
        if images.shape.rank not in (3, 4) or images.shape[-1] not in (None, 3):
            raise DataError(f"{type(self).__name__}: expected RGB images (N, H, W, 3) or (H, W, 3), got shape "
                            f"{images.shape}; convert greyscale or RGBA images to RGB first")
        if not training or self.rate == 0.0:
            return tf.cast(images, self.compute_dtype)
        # Computed in float32 whatever the dtype policy (the kernels' constants are float32).
        out = _as_batch(lambda x: self._apply(x, _next_seed(self.generator)), tf.cast(images, tf.float32))
        return tf.cast(out, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


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
            raise ConfigError(f"corruptions must name at least one of: {', '.join(_c.CORRUPTIONS)}")
        for name in corruptions:
            if name not in _c.CORRUPTIONS:
                raise ConfigError(f"unknown corruption {name!r}; expected any of: {', '.join(_c.CORRUPTIONS)}")
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


@keras.saving.register_keras_serializable(package="bloodcell")
class RandomStain(_SubsetLayer):
    """Stain and light variation of a share of the images, in optical density.

    Romanowsky stains (May-Grünwald-Giemsa, Wright) colour a smear by how much light each dye
    absorbs, so labs differ in optical density ``OD = -log((I + 1) / 256)`` rather than in pixel
    values: each chosen image gets ``OD' = M OD`` with ``M = g * diag(c) + off-diagonal mixing``,
    ``g`` drawn log-uniformly in ``strength`` (paler or darker staining), each channel's ``c``
    within ``1 +- channel`` (the dyes' balance), and the mixing within ``+- mix`` (a dye that
    absorbs in another band). The generalisation of HED stain jitter (Tellez et al. 2018) to stains
    without a fixed decomposition.
    """

    def __init__(self, strength=(0.5, 1.6), channel: float = 0.25, mix: float = 0.1, rate: float = 0.8,
                 seed=None, **kwargs):
        super().__init__(rate, seed, **kwargs)
        try:
            low, high = (float(v) for v in strength)
        except (TypeError, ValueError):
            raise ConfigError(f"strength must be a pair (low, high) of positive numbers, got {strength!r}") from None
        if not 0.0 < low <= high:
            raise ConfigError(f"strength must be a pair (low, high) with 0 < low <= high, got {strength!r}")
        self.strength = (low, high)
        self.channel = _check_range("channel", channel, 0.0, 1.0)
        self.mix = _check_range("mix", mix, 0.0, 0.5)

    def _apply(self, images, seed):
        n = tf.shape(images)[0]
        u = tf.random.stateless_uniform([n, 11], seed)
        chosen = tf.cast(u[:, 0] < self.rate, tf.float32)[:, None, None]
        low, high = math.log(self.strength[0]), math.log(self.strength[1])
        gain = tf.exp(low + (high - low) * u[:, 1])
        channel = tf.exp((2.0 * u[:, 2:5] - 1.0) * math.log1p(self.channel))
        off = (2.0 * u[:, 5:11] - 1.0) * self.mix
        zero = tf.zeros([n])
        mixing = tf.reshape(tf.stack([zero, off[:, 0], off[:, 1], off[:, 2], zero, off[:, 3],
                                      off[:, 4], off[:, 5], zero], axis=1), [-1, 3, 3])
        matrix = tf.linalg.diag(gain[:, None] * channel) + mixing
        matrix = chosen * matrix + (1.0 - chosen) * tf.eye(3)[None]
        od = -tf.math.log((tf.cast(images, tf.float32) + 1.0) / 256.0)
        out = 256.0 * tf.exp(-tf.einsum("nhwc,ndc->nhwd", od, matrix)) - 1.0
        return tf.clip_by_value(out, 0.0, 255.0)

    def get_config(self):
        return {**super().get_config(), "strength": list(self.strength), "channel": self.channel, "mix": self.mix}
