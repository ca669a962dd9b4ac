"""Why a cell got its class: class-activation heatmaps.

Every bloodcell model ends in global average pooling and one dense layer, so Grad-CAM (Selvaraju
et al. 2017) reduces exactly to CAM (Zhou et al. 2016): the gradient of a class logit with
respect to the last feature map is that class's dense weights divided by the map's area, so the
heatmap of class ``c`` is ``ReLU(sum_k w[k, c] * A_k)``, computed in the forward pass, with no
gradient and no approximation. It is upsampled (bilinear) to the input size and scaled to 0..1
per image (minimum to maximum). ``benchmarks/bench_explain.py`` measures its faithfulness with a deletion test.
"""

from __future__ import annotations

from . import _tf  # noqa: F401,I001  (TensorFlow without its start-up log lines)
from typing import Sequence, Union

import keras
import numpy as np
import tensorflow as tf

from ._checks import check_positive_int, is_real
from ._classes import class_index
from ._util import pad_batch
from .errors import ConfigError
from .models import as_classifier_model

__all__ = ["class_activation_maps", "overlay"]

_FEATURES = "avg_pool"  # the pooling layer whose input is the last feature map


def _feature_model(classifier) -> keras.Model:
    """The model from images to (last feature map, probabilities), built once per classifier model
    (a new Keras model for every call would trace its predict function again every call)."""
    model = classifier.model
    cached = getattr(classifier, "_cam_model", None)
    if cached is None or cached[0] is not model:
        inner = as_classifier_model(model)
        cached = classifier._cam_model = (model, keras.Model(inner.inputs, [inner.get_layer(_FEATURES).input,
                                                                           inner.output]))
    return cached[1]


def class_activation_maps(classifier, images, *, target: Union[None, str, Sequence[str]] = None,
                          batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps (N, S, S) in 0..1 at the classifier's input size, and the class index each shows.

    ``target``: None explains each image's predicted class; a class name explains that class for
    every image; a list gives one class name per image.
    """
    batch_size = check_positive_int(batch_size, "batch_size")
    x = classifier.preprocess(images)
    names = list(classifier.class_names)
    if target is None:
        wanted = None
    else:
        if isinstance(target, str):
            targets = [target] * len(x)
        elif isinstance(target, (list, tuple, np.ndarray)) and all(isinstance(t, str) for t in target):
            targets = list(target)
        else:
            raise ConfigError(f"target: expected None, a class name or one class name per image, got {target!r:.80}"
                              + (f"; for a class by its position, pass classifier.class_names[{target}]"
                                 if isinstance(target, (int, np.integer)) else ""))
        if len(targets) != len(x):
            raise ConfigError(f"target: expected one class name per image ({len(x)}), got {len(targets)}")
        positions = [class_index(t, names) for t in targets]  # case ignored, as classes= does
        unknown = sorted({t for t, i in zip(targets, positions) if i is None})
        if unknown:
            from ._registry import did_you_mean

            raise ConfigError(f"target: unknown class(es) {unknown}; expected some of: {', '.join(names)}"
                              + did_you_mean(unknown[0], names))
        wanted = np.array(positions, np.int64)
    features = _feature_model(classifier)
    kernel = np.asarray(keras.ops.convert_to_numpy(as_classifier_model(classifier.model).head.kernel), np.float32)  # (K, classes)
    size = classifier.input_size
    maps = np.zeros((len(x), size, size), np.float32)
    classes = np.zeros(len(x), np.int64)
    for start in range(0, len(x), batch_size):
        chunk = x[start : start + batch_size].astype(np.float32)
        n = len(chunk)
        fmap, proba = features.predict_on_batch(pad_batch(chunk, batch_size))
        fmap, proba = np.asarray(fmap, np.float32)[:n], np.asarray(proba)[:n]
        c = proba.argmax(axis=1) if wanted is None else wanted[start : start + n]
        cam = np.maximum(np.einsum("nhwk,kn->nhw", fmap, kernel[:, c]), 0.0)
        up = tf.image.resize(cam[..., None], (size, size), method="bilinear").numpy()[..., 0]
        low = up.reshape(len(up), -1).min(axis=1)[:, None, None]
        span = up.reshape(len(up), -1).max(axis=1)[:, None, None] - low
        maps[start : start + len(chunk)] = (up - low) / np.where(span > 0, span, 1.0)
        classes[start : start + len(chunk)] = c
    return maps, classes


def overlay(image: np.ndarray, heatmap: np.ndarray, *, alpha: float = 0.45) -> np.ndarray:
    """``image`` (S, S, 3) uint8 with ``heatmap`` (S, S, 0..1) drawn over it in the jet colours.

    The image is checked as the classifier's inputs are (greyscale and RGBA converted, 0..1 floats
    refused); the heatmap is one of :func:`class_activation_maps`' maps.
    """
    from matplotlib import colormaps

    from .imageio import as_rgb_array

    heatmap = np.asarray(heatmap)
    if heatmap.ndim != 2:
        raise ConfigError(f"overlay: expected one heatmap (S, S), got shape {heatmap.shape}"
                          + ("; pass one map of the batch, e.g. maps[i]" if heatmap.ndim == 3 else ""))
    image = as_rgb_array(image, "overlay: image")
    if image.shape[:2] != heatmap.shape:
        raise ConfigError(f"overlay: the image is {image.shape[1]}x{image.shape[0]} but the heatmap "
                          f"{heatmap.shape[1]}x{heatmap.shape[0]}; draw it over the image as the model saw it "
                          "(classifier.preprocess(image)[0])")
    if not is_real(alpha) or not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"overlay: alpha must be a number in [0, 1] (the heatmap's opacity), got {alpha!r}")
    if heatmap.dtype.kind not in "biuf" or not np.all(np.isfinite(heatmap)) or heatmap.size and (
            heatmap.min() < -1e-6 or heatmap.max() > 1 + 1e-6):
        raise ConfigError("overlay: expected a heatmap of values in 0..1 (as class_activation_maps gives), got "
                          + (f"values {float(heatmap.min()):g}..{float(heatmap.max()):g}" if heatmap.dtype.kind in "biuf"
                             and np.all(np.isfinite(heatmap)) else f"{heatmap.dtype} values that are not all finite"))
    colours = colormaps["jet"](np.clip(heatmap, 0.0, 1.0))[..., :3] * 255.0
    return np.clip((1 - alpha) * image.astype(np.float32) + alpha * colours, 0, 255).astype(np.uint8)
