"""Deterministic image corruptions for robustness evaluation and the ``"robust"`` augmentation.

Twelve corruptions of what microscope images suffer between the slide and the model, each at five
severities calibrated like ImageNet-C (Hendrycks & Dietterich, ICLR 2019): severity 1 is mild,
severity 5 is strong while a haematologist still recognises the cell. :data:`SEVERITY_PARAMS`
lists every parameter per severity. Lengths (blur radii and lengths, blot and bubble sizes) are
given for 96x96 images and scale with the image side, so a corruption hides the same share of a
cell at any resolution; blur kernels are capped at 63x63 pixels, so blurs scale exactly up to
sides of about 640 pixels. Pixelation (the image shrunk to a share of its side: blocks of the same
number of pixels at any side), JPEG (8x8-pixel blocks) and noise act at the pixel scale, as a
camera's do.

The TensorFlow functions behind :func:`corrupt` take one severity per image, continuous in
``[0, 5]`` (0 is the identity, parameters are interpolated linearly between the table's rows);
:mod:`bloodcell.augment` uses the same functions as random-severity training layers, so training
and evaluation share one physics.
"""

from __future__ import annotations

from . import _tf  # noqa: F401,I001  (TensorFlow without its start-up log lines)
import functools
import math
from typing import Callable

import numpy as np
import tensorflow as tf

from ._checks import check_image_batch
from ._colour import RGB_TO_YIQ as _RGB_TO_YIQ
from ._colour import YIQ_TO_RGB as _YIQ_TO_RGB
from ._severity import REFERENCE_SIZE, SEVERITY_PARAMS, table
from ._severity import STAIN_COLOURS as _STAIN_COLOURS
from .errors import ConfigError
from .imageio import MIN_SIDE

__all__ = [
    "CORRUPTIONS",
    "REFERENCE_SIZE",
    "SEVERITIES",
    "SEVERITY_PARAMS",
    "color_matrix",
    "color_transform",
    "corrupt",
    "corrupt_tf",
    "param_tf",
]

SEVERITIES = (1, 2, 3, 4, 5)
#: Images per TensorFlow call in :func:`corrupt` (bounds memory). Each chunk has its own seed, so
#: an image's random draws depend on its position in the batch; the same batch and seed always give
#: the same result.
_CHUNK = 256



def _table(name: str, index: int) -> tf.Tensor:
    """Values of one parameter at severities 0..5 as a float32 tensor of shape (6,)."""
    return tf.constant(table(name, index), tf.float32)


def param_tf(name: str, severity: tf.Tensor, index: int = 0) -> tf.Tensor:
    """Parameter ``index`` of corruption ``name`` at severities in ``[0, 5]`` (interpolated).

    Severity 0 gives the parameter that leaves an image unchanged.
    """
    table = _table(name, index)
    s = tf.clip_by_value(tf.cast(severity, tf.float32), 0.0, 5.0)
    lo = tf.minimum(tf.floor(s), 4.0)
    frac = s - lo
    lo = tf.cast(lo, tf.int32)
    return tf.gather(table, lo) * (1.0 - frac) + tf.gather(table, lo + 1) * frac


def _scale(images: tf.Tensor) -> tf.Tensor:
    """Image side relative to :data:`REFERENCE_SIZE` (pixel lengths scale with it)."""
    shape = tf.shape(images)
    return tf.cast(tf.minimum(shape[1], shape[2]), tf.float32) / REFERENCE_SIZE


def _seeds(seed: tf.Tensor, count: int) -> list[tf.Tensor]:
    """``count`` independent stateless seeds derived from one."""
    seed = tf.cast(seed, tf.int32)
    return [tf.random.experimental.stateless_fold_in(seed, i) for i in range(count)]


# --------------------------------------------------------------------------------------- blurs


def _per_image_conv(images: tf.Tensor, kernels: tf.Tensor) -> tf.Tensor:
    """Convolve each image (n, H, W, 3) with its own kernel (n, k, k), reflecting the borders.

    The batch is folded into channels so that one depthwise convolution applies n kernels.
    """
    shape = tf.shape(images)
    n, h, w = shape[0], shape[1], shape[2]
    r = tf.shape(kernels)[1] // 2
    x = tf.reshape(tf.transpose(images, [1, 2, 0, 3]), [1, h, w, n * 3])
    x = tf.pad(x, [[0, 0], [r, r], [r, r], [0, 0]], mode="REFLECT")
    k = tf.transpose(tf.repeat(kernels, 3, axis=0), [1, 2, 0])[..., None]
    y = tf.nn.depthwise_conv2d(x, k, strides=[1, 1, 1, 1], padding="VALID")
    return tf.transpose(tf.reshape(y, [h, w, n, 3]), [2, 0, 1, 3])


def _kernel_grid(extent: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Coordinates (1, k, k) of a square kernel that holds ``extent`` pixels from its centre."""
    r = tf.cast(tf.math.ceil(tf.reduce_max(extent)), tf.int32)
    r = tf.minimum(r, 31)
    coords = tf.cast(tf.range(-r, r + 1), tf.float32)
    v, u = tf.meshgrid(coords, coords, indexing="ij")
    return u[None], v[None]


def _normalise(kernels: tf.Tensor) -> tf.Tensor:
    return kernels / tf.reduce_sum(kernels, axis=[1, 2], keepdims=True)


def _defocus_blur(images, severity, seed):
    radius = param_tf("defocus_blur", severity) * _scale(images)
    u, v = _kernel_grid(radius + 1.0)
    # Anti-aliased disk: full weight inside the radius, a one-pixel soft edge.
    disk = tf.clip_by_value(radius[:, None, None] + 0.5 - tf.sqrt(u * u + v * v), 0.0, 1.0)
    return _per_image_conv(images, _normalise(disk))


def _motion_blur(images, severity, seed):
    half = 0.5 * param_tf("motion_blur", severity) * _scale(images)
    angle = tf.random.stateless_uniform(tf.shape(half), _seeds(seed, 1)[0], 0.0, math.pi)
    c, s = tf.cos(angle)[:, None, None], tf.sin(angle)[:, None, None]
    u, v = _kernel_grid(half + 1.0)
    # Distance of each kernel cell to the centred segment of the blur direction.
    t = tf.clip_by_value(u * c + v * s, -half[:, None, None], half[:, None, None])
    dist = tf.sqrt((u - t * c) ** 2 + (v - t * s) ** 2)
    return _per_image_conv(images, _normalise(tf.clip_by_value(1.0 - dist, 0.0, 1.0)))


# ----------------------------------------------------------------------------- digitisation


def _jpeg(images, severity, seed):
    quality = tf.cast(tf.round(param_tf("jpeg", severity)), tf.int32)

    def one(args):
        image, q = args
        pixels = tf.cast(tf.round(tf.clip_by_value(image, 0.0, 255.0)), tf.uint8)
        # Quality 100 (severity 0) stands for "not re-compressed".
        return tf.cond(q >= 100, lambda: image, lambda: tf.cast(tf.image.adjust_jpeg_quality(pixels, q), tf.float32))

    out = tf.map_fn(one, (images, quality), fn_output_signature=tf.float32)
    return tf.ensure_shape(out, images.shape)


def _pixelate(images, severity, seed):
    scale = param_tf("pixelate", severity)
    size = tf.shape(images)[1:3]

    def one(args):
        image, f = args
        small = tf.maximum(tf.cast(tf.round(tf.cast(size, tf.float32) * f), tf.int32), 1)
        small = tf.image.resize(image, small, method="area")
        return tf.image.resize(small, size, method="nearest")

    out = tf.map_fn(one, (images, scale), fn_output_signature=tf.float32)
    return tf.ensure_shape(out, images.shape)


def _gaussian_noise(images, severity, seed):
    sigma = param_tf("gaussian_noise", severity) * 255.0
    noise = tf.random.stateless_normal(tf.shape(images), _seeds(seed, 1)[0])
    return images + sigma[:, None, None, None] * noise


# --------------------------------------------------------------------------------- colour


def color_transform(images, gain=None, contrast=None, saturation=None, hue=None):
    """Per-image colour change, as one 3x3 matrix and an offset per image.

    ``gain`` multiplies pixel values (exposure), ``contrast`` scales them about the image mean,
    ``saturation`` scales the chroma plane of YIQ (luma kept), ``hue`` rotates it (in turns).
    Each is a vector with one value per image, or None for no change. Not clipped.
    """
    matrix, gain, contrast = color_matrix(tf.shape(images)[0], gain, contrast, saturation, hue)
    # The matrix keeps grey grey, so contrast about the mean is this per-image offset.
    mean = tf.reduce_mean(images, axis=[1, 2, 3]) * gain
    out = tf.einsum("nhwc,ndc->nhwd", images, matrix)
    return out + ((1.0 - contrast) * mean)[:, None, None, None]


def color_matrix(n, gain=None, contrast=None, saturation=None, hue=None):
    """The matrices (n, 3, 3) of :func:`color_transform` (output channel, input channel), with
    ``gain`` and ``contrast`` as vectors (ones where None)."""
    ones, zeros = tf.ones([n]), tf.zeros([n])
    gain = ones if gain is None else gain
    contrast = ones if contrast is None else contrast
    saturation = ones if saturation is None else saturation
    hue = zeros if hue is None else hue
    angle = 2.0 * math.pi * hue
    cs, sn = saturation * tf.cos(angle), saturation * tf.sin(angle)
    chroma = tf.reshape(
        tf.stack([ones, zeros, zeros, zeros, cs, -sn, zeros, sn, cs], axis=1), [-1, 3, 3]
    )
    matrix = tf.matmul(tf.matmul(_YIQ_TO_RGB[None], chroma), _RGB_TO_YIQ[None])
    return matrix * (gain * contrast)[:, None, None], gain, contrast


def _brightness_up(images, severity, seed):
    return color_transform(images, gain=param_tf("brightness_up", severity))


def _brightness_down(images, severity, seed):
    return color_transform(images, gain=param_tf("brightness_down", severity))


def _contrast_up(images, severity, seed):
    return color_transform(images, contrast=param_tf("contrast_up", severity))


def _contrast_down(images, severity, seed):
    return color_transform(images, contrast=param_tf("contrast_down", severity))


def _saturation(images, severity, seed):
    return color_transform(images, saturation=param_tf("saturation", severity))


# ------------------------------------------------------------------------------- artefacts


def _stain_blots(images, severity, seed):
    coverage = param_tf("stain_blots", severity, 0)
    opacity = param_tf("stain_blots", severity, 1)
    n = tf.shape(images)[0]
    size = tf.shape(images)[1:3]
    s_coarse, s_fine, s_colour, s_jitter, s_density = _seeds(seed, 5)
    grid = 24
    # Smooth low-frequency field with finer noise on top: irregular, lobed blob outlines.
    field = tf.image.resize(tf.random.stateless_normal([n, 5, 5, 1], s_coarse), [grid, grid], "bicubic")
    fine = tf.image.resize(tf.random.stateless_normal([n, 12, 12, 1], s_fine), [grid, grid], "bilinear")
    field = field + 0.4 * fine
    # Threshold each image's field at the quantile that covers the requested area.
    ordered = tf.sort(tf.reshape(field, [n, grid * grid]), axis=1, direction="DESCENDING")
    k = tf.clip_by_value(tf.cast(tf.round(coverage * grid * grid), tf.int32), 0, grid * grid - 1)
    threshold = tf.gather(ordered, k, batch_dims=1)
    mask = tf.sigmoid((field - threshold[:, None, None, None]) / 0.08)
    mask = mask * tf.cast(coverage > 0, tf.float32)[:, None, None, None]
    density = 0.75 + 0.25 * tf.tanh(fine)
    mask = tf.image.resize(mask * density, size, "bilinear")
    colour = tf.gather(
        _STAIN_COLOURS,
        tf.random.stateless_uniform([n], s_colour, 0, len(_STAIN_COLOURS), dtype=tf.int32),
    )
    colour = tf.clip_by_value(colour + tf.random.stateless_uniform([n, 3], s_jitter, -0.05, 0.05), 0.0, 1.0)
    absorbed = opacity[:, None, None, None] * mask * (1.0 - colour[:, None, None, :])
    return images * (1.0 - absorbed)


def _bubbles(images, severity, seed):
    max_count = int(max(SEVERITY_PARAMS["bubbles"]["parameters"]["count"]))
    count = tf.floor(param_tf("bubbles", severity, 0) + 0.5)
    radius = param_tf("bubbles", severity, 1)
    shape = tf.shape(images)
    n, h, w = shape[0], shape[1], shape[2]
    hf, wf = tf.cast(h, tf.float32), tf.cast(w, tf.float32)
    s_centre, s_size = _seeds(seed, 2)
    centre = tf.random.stateless_uniform([n, max_count, 2], s_centre, 0.1, 0.9) * tf.stack([hf, wf])
    jitter = tf.random.stateless_uniform([n, max_count], s_size, 0.8, 1.2)
    r = radius[:, None] * tf.minimum(hf, wf) * jitter * tf.cast(count[:, None] > tf.range(max_count, dtype=tf.float32), tf.float32)
    yy = tf.range(hf)[None, :, None]
    xx = tf.range(wf)[None, None, :]
    white = tf.zeros([n, h, w])
    dark = tf.zeros([n, h, w])
    for j in range(max_count):
        rj = tf.maximum(r[:, j], 1e-3)[:, None, None]
        dy = (yy - centre[:, j, 0][:, None, None]) / rj
        dx = (xx - centre[:, j, 1][:, None, None]) / rj
        d = tf.sqrt(dy * dy + dx * dx)
        # Washed-out interior, a bright refraction halo inside the edge, a thin dark rim on it.
        halo = 0.55 * tf.exp(-(((d - 0.88) / 0.07) ** 2)) + 0.15 * tf.cast(d < 1.0, tf.float32)
        rim = 0.45 * tf.exp(-(((d - 1.02) / 0.035) ** 2))
        white = 1.0 - (1.0 - white) * (1.0 - halo)
        dark = 1.0 - (1.0 - dark) * (1.0 - rim)
    out = images * ((1.0 - dark) * (1.0 - white))[..., None]
    return out + 255.0 * white[..., None]


_TF_CORRUPTIONS: dict[str, Callable] = {
    "defocus_blur": _defocus_blur,
    "motion_blur": _motion_blur,
    "jpeg": _jpeg,
    "pixelate": _pixelate,
    "gaussian_noise": _gaussian_noise,
    "brightness_up": _brightness_up,
    "brightness_down": _brightness_down,
    "contrast_up": _contrast_up,
    "contrast_down": _contrast_down,
    "saturation": _saturation,
    "stain_blots": _stain_blots,
    "bubbles": _bubbles,
}


def _check_name(name: str) -> None:
    if name not in _TF_CORRUPTIONS:
        raise ConfigError(
            f"unknown corruption {name!r}; expected one of: {', '.join(_TF_CORRUPTIONS)}"
        )


def corrupt_tf(images: tf.Tensor, name: str, severity: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Corrupt a float32 batch (n, H, W, 3) of values 0..255 inside a TensorFlow graph.

    ``severity`` holds one value per image (or one for all) in ``[0, 5]`` (continuous; 0 leaves the
    image unchanged), ``seed`` is a stateless seed of shape (2,). Returns float32 clipped to 0..255;
    an empty batch is returned as is.
    """
    _check_name(name)
    fn = _TF_CORRUPTIONS[name]
    images = tf.cast(images, tf.float32)
    severity = tf.cast(severity, tf.float32)
    if severity.shape.rank == 0:  # one severity for the whole batch
        severity = tf.fill(tf.shape(images)[:1], severity)
    out = tf.cond(
        tf.shape(images)[0] > 0,
        lambda: fn(images, severity, seed),
        lambda: images,
    )
    return tf.ensure_shape(tf.clip_by_value(out, 0.0, 255.0), images.shape)


@functools.lru_cache(maxsize=None)
def _compiled(name: str) -> Callable:
    spec = (
        tf.TensorSpec([None, None, None, 3], tf.uint8),
        tf.TensorSpec([None], tf.float32),
        tf.TensorSpec([2], tf.int32),
    )

    def run(images, severity, seed):
        out = corrupt_tf(tf.cast(images, tf.float32), name, severity, seed)
        return tf.cast(tf.round(out), tf.uint8)

    # A partial is counted as a function of its own; ``run`` itself would be counted by its code,
    # and one trace per corruption would read as retracing (a false warning).
    return tf.function(functools.partial(run), input_signature=spec)


def corrupt(images: np.ndarray, name: str, severity: int, *, seed: int = 0) -> np.ndarray:
    """Apply corruption ``name`` at ``severity`` (1..5) to uint8 images (N, H, W, 3) or (H, W, 3).

    Deterministic: the same images, name, severity and seed give the same result. Returns uint8
    of the input's shape.
    """
    _check_name(name)
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or severity not in SEVERITIES:
        raise ConfigError(f"severity must be an integer in 1..5, got {severity!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    single = np.ndim(images) == 3
    batch = check_image_batch(images, single=True, min_side=MIN_SIDE, hint="convert with bloodcell.imageio.load_images")
    out = np.empty_like(batch)
    fn = _compiled(name)
    base = int(seed) % 2**31  # every seed the command line takes (0..2**31 - 1) is its own
    for chunk, start in enumerate(range(0, len(batch), _CHUNK)):
        part = batch[start : start + _CHUNK]
        result = fn(part, tf.fill([len(part)], float(severity)), tf.constant([base, chunk], tf.int32))
        out[start : start + len(part)] = result.numpy()
    return out[0] if single else out


def _named(name: str) -> Callable[..., np.ndarray]:
    def apply(images: np.ndarray, severity: int, *, seed: int = 0) -> np.ndarray:
        return corrupt(images, name, severity, seed=seed)

    apply.__name__ = name
    apply.__doc__ = f"{SEVERITY_PARAMS[name]['description']}; see :func:`corrupt`."
    return apply


#: Name -> ``fn(images, severity, *, seed=0) -> images``, each :func:`corrupt` with its name.
CORRUPTIONS: dict[str, Callable[..., np.ndarray]] = {name: _named(name) for name in _TF_CORRUPTIONS}
