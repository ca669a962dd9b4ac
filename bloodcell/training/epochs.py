"""The data of each epoch a :class:`~bloodcell.training.Trainer` runs: batches, weights and step counts.

Epoch *e* of phase *p* is a function of ``(seed, p, e)`` only (:func:`epoch_seed`,
:func:`bloodcell.pipeline.make_epochs`), which is what makes a killed-and-resumed run end where an
uninterrupted one ends.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..errors import DataError
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


def tf_input(data, name: str, *, input_size: int, num_classes: int):
    """A ``tf.data`` dataset as ``Trainer.fit`` takes it, checked: batches of (images of values
    0..255, labels as class ids (N,) or one-hot (N, num_classes)). Images of another size are
    centre-cropped to a square and resized to ``input_size``."""
    import tensorflow as tf

    want = (f"a tf.data dataset of batches (images (N, {input_size}, {input_size}, 3) of values 0..255, "
            f"labels: class ids (N,) or one-hot (N, {num_classes}))")
    spec = data.element_spec
    if not isinstance(spec, tuple) or len(spec) != 2 or not all(isinstance(t, tf.TensorSpec) for t in spec):
        raise DataError(f"{name}: expected {want}, got elements {spec}; map it to (images, labels) pairs")
    images, labels = spec
    if images.shape.rank == 3:
        raise DataError(f"{name}: expected {want}, got single images {tuple(images.shape)} (an unbatched dataset); "
                        "call .batch(32) on it")
    if images.shape.rank != 4 or images.shape[-1] != 3:
        raise DataError(f"{name}: expected {want}, got images of shape {tuple(images.shape)}; give RGB images")
    if not ((labels.shape.rank == 1 and labels.dtype.is_integer)
            or (labels.shape.rank == 2 and labels.shape[-1] == num_classes)):
        raise DataError(f"{name}: expected {want}, got labels of shape {tuple(labels.shape)} ({labels.dtype.name}); "
                        f"use label_mode='int' or 'categorical' in keras.utils.image_dataset_from_directory, or "
                        f"map the labels with tf.one_hot(labels, {num_classes})")
    if int(data.cardinality()) == int(tf.data.INFINITE_CARDINALITY):
        raise DataError(f"{name}: the dataset repeats forever; drop its .repeat() (the Trainer runs the epochs)")
    if tuple(images.shape[1:3]) == (input_size, input_size):
        return data

    def square(x, y):
        h, w = tf.shape(x)[1], tf.shape(x)[2]
        side = tf.minimum(h, w)
        x = tf.image.crop_to_bounding_box(x, (h - side) // 2, (w - side) // 2, side, side)
        x = tf.image.resize(tf.cast(x, tf.float32), (input_size, input_size), antialias=True)
        return tf.clip_by_value(x, 0.0, 255.0), y

    from .._tf import parallel_calls

    return data.map(square, num_parallel_calls=parallel_calls(tf.data.AUTOTUNE))


def tf_arrays(data, class_names: Sequence[str]):
    """The images (uint8) and label ids of a ``tf.data`` dataset from :func:`tf_input`, as a
    :class:`bloodcell.data.Dataset` of ``class_names`` (one pass over it)."""
    from ..data import Dataset

    images, labels = [], []
    for x, y in data.as_numpy_iterator():
        images.append(np.clip(np.rint(x), 0, 255).astype(np.uint8))
        labels.append(np.asarray(y).argmax(axis=-1) if np.ndim(y) == 2 else np.asarray(y).reshape(-1))
    if not images:
        return Dataset(np.zeros((0, 1, 1, 3), np.uint8), np.zeros(0, np.int64), tuple(class_names))
    return Dataset(np.concatenate(images), np.concatenate(labels).astype(np.int64), tuple(class_names))


def tf_input_counts(data, num_classes: int) -> tuple[int, np.ndarray]:
    """Batches and images of each class in one pass over a ``tf.data`` dataset from :func:`tf_input`."""
    import tensorflow as tf

    one_hot = data.element_spec[1].shape.rank == 2

    def step(state, batch):
        y = batch[1]
        if one_hot:
            return state[0] + 1, state[1] + tf.reduce_sum(tf.cast(y, tf.float64), axis=0), state[2]
        ids = tf.cast(y, tf.int32)
        bad = tf.reduce_sum(tf.cast((ids < 0) | (ids >= num_classes), tf.int64))
        return state[0] + 1, state[1] + tf.reduce_sum(tf.one_hot(ids, num_classes, dtype=tf.float64), axis=0), state[2] + bad

    batches, counts, bad = data.reduce((tf.constant(0, tf.int64), tf.zeros(num_classes, tf.float64),
                                        tf.constant(0, tf.int64)), step)
    if int(bad):
        raise DataError(f"labels: {int(bad)} class ids are outside 0..{num_classes - 1}; check the labels, or give the "
                        f"Trainer class_names (or num_classes) for every class the data hold")
    return int(batches), counts.numpy()


def epochs_dataset(data, *, train: bool, seeds: Sequence[int], config: TrainConfig, input_size: int,
                   num_classes: int, class_weights: Optional[np.ndarray] = None,
                   processes: tuple[int, int] = (1, 0)):
    """The epochs ``seeds`` of ``data`` (a Dataset, or a ``tf.data`` dataset in its own order), one
    after the other: shuffled (a Dataset) and augmented when ``train``; per-sample class weights
    with the cross-entropy loss. ``processes`` = (count, this process's id): in a run of several, each
    process trains on its share of every global batch, and validates on all of the validation
    images (the same in each, so the metrics are those of one process).
    """
    import tensorflow as tf

    if isinstance(data, tf.data.Dataset):
        from ..pipeline import augment_dataset

        base = tf_input(data, "train" if train else "val", input_size=input_size, num_classes=num_classes)
        ds = augment_dataset(base, config.augment if train else None, num_classes=num_classes, seed=seeds[0])
        if train:  # each epoch's augmentation drawn from its own seed, as for a Dataset: a resumed run draws the same
            for seed in seeds[1:]:
                ds = ds.concatenate(augment_dataset(base, config.augment, num_classes=num_classes, seed=seed))
    else:
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
    (none from a ``tf.data`` dataset, or from fewer than ``MIN_FIT_IMAGES``: the check is then fitted
    to half of the validation images, when there are enough)."""
    from ..calibration import MIN_FIT_IMAGES

    if not hasattr(train, "images") or len(train.labels) < MIN_FIT_IMAGES:
        return {}
    n = len(train.labels)
    pick = np.sort(np.random.default_rng(seed).permutation(n)[:REFERENCE_IMAGES])
    return {"reference": np.asarray(train.images)[pick],
            "reference_description": f"{len(pick)} of the {n} training images" if len(pick) < n else f"the {n} training images"}
