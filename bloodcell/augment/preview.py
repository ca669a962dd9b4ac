"""A picture of images and their augmented views."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from .._checks import check_image_batch, check_positive_int
from .._classes import CLASS_NAMES
from .presets import build_augmentation

def preview_grid(images: np.ndarray, preset: str | None, *, n: int = 16, seed: int = 0,
                 columns: int = 8, views: int = 1) -> np.ndarray:
    """A uint8 picture of ``n`` images (first row of each block) and their augmented views.

    ``images``: uint8 (N, S, S, 3). Each block of ``columns`` images is followed by ``views``
    rows of augmented versions, the images augmented together as one batch (so CutMix pastes
    patches between them). Tiles are separated by 2-pixel white lines.
    """
    arr = check_image_batch(images, empty=False)
    n, columns, views = (check_positive_int(value, name) for value, name in ((n, "n"), (columns, "columns"),
                                                                               (views, "views")))
    seed = check_positive_int(seed, "seed", minimum=0)
    arr = arr[:n]
    count = len(arr)
    augmentation = build_augmentation(preset, seed=seed)
    labels = tf.one_hot(np.arange(count) % len(CLASS_NAMES), len(CLASS_NAMES))  # CutMix mixes some labels
    augmented = []
    for v in range(views):
        out, _ = augmentation(arr, labels, seed=tf.constant([seed, v]))
        augmented.append(np.clip(np.rint(out.numpy()), 0, 255).astype(np.uint8))
    (h, w), gap = arr.shape[1:3], 2
    cols = min(columns, count)
    blocks = math.ceil(count / cols)
    rows = blocks * (1 + views)
    grid = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap, 3), 255, np.uint8)
    for i in range(count):
        block, col = divmod(i, cols)
        for r, tile in enumerate([arr[i]] + [a[i] for a in augmented]):
            top = (block * (1 + views) + r) * (h + gap)
            left = col * (w + gap)
            grid[top : top + h, left : left + w] = tile
    return grid
