"""The data of each epoch a :class:`~bloodcell.training.Trainer` runs: batches, weights and step counts.

Epoch *e* of phase *p* is a function of ``(seed, p, e)`` only (:func:`epoch_seed`,
:func:`bloodcell.pipeline.make_epochs`), which is what makes a killed-and-resumed run end where an
uninterrupted one ends.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .config import TrainConfig


def epoch_seed(seed: int, phase: int, epoch: int) -> int:
    """The seed of one epoch's shuffle and augmentation."""
    return seed * 1000 + phase * 500 + epoch


def _images(data, input_size: int) -> tuple[np.ndarray, np.ndarray]:
    images = np.asarray(data.images)
    if images.shape[1:3] != (input_size, input_size):
        from ..imageio import resize_images

        images = resize_images(images, input_size)
    return images, np.asarray(data.labels)


def _weighted(ds, class_weights: Optional[np.ndarray]):
    import tensorflow as tf

    from .._tf import parallel_calls

    w = tf.constant(class_weights)
    # Per-sample weight = sum_c w_c * y_c, so mixed (CutMix/MixUp) labels are weighted too.
    return ds.map(lambda x, y: (x, y, tf.linalg.matvec(y, w)), num_parallel_calls=parallel_calls(tf.data.AUTOTUNE))


def epochs_dataset(data, *, train: bool, seeds: Sequence[int], config: TrainConfig, input_size: int,
                   num_classes: int, class_weights: Optional[np.ndarray] = None,
                   processes: tuple[int, int] = (1, 0)):
    """The epochs ``seeds`` of ``data`` (a Dataset; a ``tf.data`` dataset is used as it is), one after
    the other: shuffled and augmented when ``train``; per-sample class weights with the
    cross-entropy loss. ``processes`` = (count, this process's id): in a run of several, each
    process trains on its share of every global batch, and validates on all of the validation
    images (the same in each, so the metrics are those of one process).
    """
    import tensorflow as tf

    if isinstance(data, tf.data.Dataset):
        return data.repeat(len(seeds)) if train and len(seeds) > 1 else data
    from ..pipeline import make_epochs

    count, pid = processes
    images, labels = _images(data, input_size)
    ds = make_epochs(images, labels, seeds, num_classes=num_classes, batch_size=config.batch_size // count,
                     augment=config.augment if train else None, shuffle=train,
                     shard=(count, pid) if count > 1 and train else None)
    if train and config.loss == "crossentropy" and class_weights is not None:
        ds = _weighted(ds, class_weights)
    return ds


def steps_per_epoch(data, batch_size: int, num_processes: int = 1) -> Optional[int]:
    """Batches in one epoch of ``data`` (whole global batches only across processes; None: unknown)."""
    n = len(data.labels) if hasattr(data, "labels") else None
    if n is None:
        n_batches = int(data.cardinality())
        return n_batches if n_batches > 0 else None
    if num_processes > 1:
        return n // batch_size
    return -(-n // batch_size)


#: Training images the out-of-distribution check is fitted to at the end of training, at most.
REFERENCE_IMAGES = 2000


def reference_images(train, seed: int) -> dict:
    """``calibrate``'s reference arguments: up to :data:`REFERENCE_IMAGES` training images, unaugmented
    (none from a ``tf.data`` dataset: the check is then fitted to half of the validation images)."""
    if not hasattr(train, "images") or len(train.labels) < 2:
        return {}
    n = len(train.labels)
    pick = np.sort(np.random.default_rng(seed).permutation(n)[:REFERENCE_IMAGES])
    return {"reference": np.asarray(train.images)[pick],
            "reference_description": f"{len(pick)} of the {n} training images" if len(pick) < n else f"the {n} training images"}
