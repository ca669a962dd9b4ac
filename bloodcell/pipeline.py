"""The training input pipeline: shuffle, batch, augment, prefetch, with ``tf.data``.

- :func:`make_dataset`: from images in memory (uint8 arrays, e.g. ``load_dataset(...).images``).
  Batches are gathered from one tensor by shuffled indices, so no per-image copies are made.
- :func:`dataset_from_files`: decodes and resizes image files while iterating, for data that
  does not fit in memory. Files are read with :func:`bloodcell.imageio.load_image` (PIL and the
  one resize function of training and inference), so the pixels equal those at prediction time.
- :func:`augment_dataset`: applies a preset to any batched ``(images, labels)`` dataset.

Augmentation runs on chunks of up to 32 batches (fewer for large images: about as many pixels as
2,048 images of 96x96, but at least one batch), which are then split into batches again, so that a
call's fixed costs (RandAugment's and the corruptions' per-operation branches, the random draws)
are shared by more images. Images stay uint8 until the first warp reads them. Measured on the
2-CPU development machine with pbc96 (batch 64, ``benchmarks/bench_pipeline.py``), ``make_dataset``
delivers 2.30x (``"seed"``) and 2.30x (``"robust"``) the throughput of
``image_dataset_from_directory`` with the same augmentation mapped per batch; one batch per call,
1.61x and 1.88x. At most four chunks (one per CPU, if fewer) are augmented at once, which bounds
the memory in use.
CutMix pastes patches between images of a chunk rather than of a batch. Each chunk gets its own
stateless seed from ``tf.data.Dataset.random(seed)``, so a seeded pipeline yields the same batches
on every run while chunks are augmented in parallel, and different augmentations in each epoch.

The augmentation runs as a traced ``tf.function`` called through ``tf.py_function``, not as the
function that ``Dataset.map`` traces itself. Measured on the 2-CPU development machine: with idle
CPUs both run at the same speed; while other TensorFlow work competes for the CPUs (as the
training step does), the called function was up to 1.6x faster alone and training with it up to
1.3x faster (RandAugment's ``switch_case`` and the per-corruption branches suffer most in a
``Dataset.map`` function). The price: a dataset with augmentation cannot be serialised
(``tf.data`` service, ``Dataset.save``).
"""

from __future__ import annotations

from . import _tf  # noqa: F401,I001  (TensorFlow without its start-up log lines)
import atexit
import functools
import os
import threading
import time
from typing import Sequence, Union

import numpy as np
import tensorflow as tf

from ._classes import CLASS_NAMES
from ._checks import check_image_batch, check_labels, check_positive_int
from ._tf import parallel_calls
from .augment import Augmentation, build_augmentation
from .errors import DataError, InputNotFoundError
from .imageio import check_image_header, load_image

__all__ = ["augment_dataset", "dataset_from_files", "make_dataset", "make_epochs"]

AugmentSpec = Union[str, None, Augmentation]
AUTOTUNE = tf.data.AUTOTUNE
_CHUNK_BATCHES = 32
_CHUNK_PIXELS = 2048 * 96 * 96
_CHUNK_CALLS = min(4, os.cpu_count() or 1)


class _PythonCalls:
    """Counts the pipelines' calls into Python, and refuses new ones once the interpreter exits.

    A ``tf.data`` iterator still alive when Python shuts down keeps calling its ``py_function``s
    from TensorFlow's threads; a thread that asks for the interpreter lock then is stopped
    without returning, and the process waits for its result forever. At exit, a variable that
    every call checks first is set, so that new calls fail without entering Python (the
    pipelines' buffers fill with the errors and stop asking), and the exit waits briefly for the
    calls already running.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.running = 0
        self.last = time.monotonic()
        self.closed = False
        self.open = None  # a tf.Variable, True until exit, once a pipeline calls into Python

    def call(self, fn, inputs, dtypes, *, numpy: bool = False):
        """``fn(*inputs)`` in a ``tf.data`` function, through ``tf.py_function`` (or
        ``tf.numpy_function``); once the interpreter exits, it fails before reaching Python."""
        with self.lock:
            if self.open is None:
                with tf.init_scope(), tf.device("CPU:0"):
                    self.open = tf.Variable(not self.closed, trainable=False, name="bloodcell_python_calls_open")
        check = tf.debugging.Assert(self.open.read_value(), ["the Python interpreter is shutting down"])
        with tf.control_dependencies([check]):
            if numpy:
                return tf.numpy_function(self.wrap(fn), inputs, dtypes, stateful=False)
            return tf.py_function(self.wrap(fn), inputs, dtypes)

    def wrap(self, fn):
        @functools.wraps(fn)
        def call(*args):
            with self.lock:
                if self.closed:
                    raise RuntimeError("the Python interpreter is shutting down")
                self.running += 1
            try:
                return fn(*args)
            finally:
                with self.lock:
                    self.running -= 1
                    self.last = time.monotonic()

        return call

    def close(self, quiet: float = 0.05, timeout: float = 5.0) -> None:
        with self.lock:
            self.closed = True
            if self.open is not None:
                self.open.assign(False)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.running == 0 and time.monotonic() - self.last >= quiet:
                    return
            time.sleep(0.01)


_python_calls = _PythonCalls()
atexit.register(_python_calls.close)


@functools.lru_cache(maxsize=None)
def _shared(preset: str | None, num_classes: int) -> Augmentation:
    # The pipeline hands every chunk its own seed, so the layers' seeds play no part and one
    # Augmentation (with its traced functions) serves every dataset of a preset.
    return build_augmentation(preset, num_classes=num_classes)


def _resolve(augment: AugmentSpec, num_classes: int) -> Augmentation | None:
    if isinstance(augment, Augmentation):
        return augment if augment.layers else None
    if isinstance(augment, str) and augment.lower() == "none":
        augment = None
    aug = _shared(augment, num_classes)
    return aug if aug.layers else None


def _check_common(batch_size: int, num_classes: int) -> None:
    check_positive_int(batch_size, "batch_size")
    check_positive_int(num_classes, "num_classes", minimum=2)


def _augment_fn(aug: Augmentation, image_shape: tuple, dtype: tf.DType):
    """Map function (images, one-hot labels, seed) -> augmented float32 batch."""
    concrete = aug.traced(image_shape, dtype)

    def apply(images, labels, seed):
        out_images, out_labels = _python_calls.call(concrete, [images, labels, seed], [tf.float32, tf.float32])
        out_images.set_shape((None,) + tuple(image_shape))
        out_labels.set_shape((None, aug.num_classes))
        return out_images, out_labels

    return apply


def _chunk_size(aug: Augmentation | None, batch_size: int, image_size: tuple) -> int:
    """How many images to augment per call: a whole number of batches (see the module docs)."""
    if aug is None:
        return batch_size
    pixels = max(1, int(image_size[0]) * int(image_size[1]))
    return batch_size * max(1, min(_CHUNK_BATCHES, _CHUNK_PIXELS // (batch_size * pixels)))


def _stateful_map(ds: tf.data.Dataset, fn, calls) -> tf.data.Dataset:
    """``ds.map(fn)`` for a stateful ``fn`` (a Python call): ``calls`` in parallel, in order, or one
    at a time under op determinism (:func:`bloodcell._tf.parallel_calls`)."""
    calls = parallel_calls(calls)
    return ds.map(fn, num_parallel_calls=calls, deterministic=None if calls is None else True)


def _finish(chunks: tf.data.Dataset, aug: Augmentation | None, num_classes: int, seed: int | None,
            batch_size: int | None = None, drop_remainder: bool = False, count: int | None = None,
            rerandomize: bool = True) -> tf.data.Dataset:
    """Augment a dataset of (images 0..255, one-hot labels) chunks, split them into batches of
    ``batch_size`` (None: the chunks are the batches) and prefetch. ``count``: the number of
    images (None: repeating forever), which keeps the number of batches known (for progress bars).
    ``rerandomize``: draw new augmentation seeds each time the dataset is iterated."""
    if aug is None:
        ds = chunks.map(lambda x, y: (tf.cast(x, tf.float32), y), num_parallel_calls=AUTOTUNE)
    else:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=rerandomize).batch(2)
        spec = chunks.element_spec[0]
        apply = _augment_fn(aug, tuple(spec.shape[1:]), spec.dtype)
        ds = _stateful_map(tf.data.Dataset.zip((chunks, seeds)), lambda chunk, s: apply(chunk[0], chunk[1], s),
                           AUTOTUNE if batch_size is None else _CHUNK_CALLS)
    if batch_size is not None:
        ds = ds.rebatch(batch_size, drop_remainder=drop_remainder)
        if count is None:
            batches = tf.data.INFINITE_CARDINALITY
        else:
            batches = count // batch_size if drop_remainder else -(-count // batch_size)
        ds = ds.apply(tf.data.experimental.assert_cardinality(batches))
    return ds.prefetch(AUTOTUNE)


def _in_memory(images, labels, num_classes: int, batch_size: int):
    _check_common(batch_size, num_classes)
    arr = check_image_batch(images, empty=False, hint="load images with bloodcell.data.load_dataset or "
                            "bloodcell.imageio.load_images")
    ids = check_labels(labels, len(arr), num_classes).astype(np.int32)
    return arr, tf.convert_to_tensor(arr), tf.convert_to_tensor(ids)


def _epoch(pixels, classes, count: int, *, num_classes: int, batch_size: int, aug: Augmentation | None,
           shuffle: bool, seed: int | None, repeat: bool, drop_remainder: bool,
           reshuffle: bool = True, shard: tuple[int, int] | None = None) -> tf.data.Dataset:
    order = tf.data.Dataset.range(count)
    if shuffle:
        order = order.shuffle(count, seed=seed, reshuffle_each_iteration=reshuffle)
    if shard is not None:
        shards, index = shard
        count = count // (batch_size * shards) * batch_size  # whole global batches, this shard's part
        # This shard's block of each global batch: the blocks, in shard order, are the global batch.
        order = order.take(count * shards).batch(batch_size * shards)
        order = order.map(lambda ids: ids[index * batch_size:(index + 1) * batch_size]).unbatch()
        if seed is not None and index:
            seed = (seed * 1_000_003 + index) % 2**31  # the shards draw other augmentations
    if repeat:
        order = order.repeat()
    chunk = _chunk_size(aug, batch_size, pixels.shape[1:3])
    chunks = order.batch(chunk).map(
        lambda i: (tf.gather(pixels, i), tf.one_hot(tf.gather(classes, i), num_classes)),
        num_parallel_calls=AUTOTUNE if aug is None else parallel_calls(AUTOTUNE),
    )
    return _finish(chunks, aug, num_classes, seed, batch_size, drop_remainder, None if repeat else count,
                   rerandomize=reshuffle)


def make_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    num_classes: int = len(CLASS_NAMES),
    batch_size: int = 64,
    augment: AugmentSpec = None,
    shuffle: bool = True,
    seed: int | None = 42,
    repeat: bool = False,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Batches ``(float32 images 0..255, one-hot float32 labels)`` of in-memory images.

    Args:
        images: uint8 (N, H, W, 3).
        labels: integer class ids (N,) or (N, 1).
        augment: a preset (``"seed"``, ``"robust"``, ``"domain"``), None or an
            :class:`~bloodcell.augment.Augmentation`.
        shuffle: reshuffle the images in every epoch.
        seed: seeds the shuffling and the augmentation: the same seed gives the same batches in
            the same order (each epoch differs from the last). None: unseeded.
        repeat: repeat forever (then pass ``steps_per_epoch`` to ``fit``).
        drop_remainder: drop the last, smaller batch.
    """
    arr, pixels, classes = _in_memory(images, labels, num_classes, batch_size)
    return _epoch(pixels, classes, len(arr), num_classes=num_classes, batch_size=batch_size,
                  aug=_resolve(augment, num_classes), shuffle=shuffle, seed=seed, repeat=repeat,
                  drop_remainder=drop_remainder)


def make_epochs(
    images: np.ndarray,
    labels: np.ndarray,
    seeds: Sequence[int],
    *,
    num_classes: int = len(CLASS_NAMES),
    batch_size: int = 64,
    augment: AugmentSpec = None,
    shuffle: bool = True,
    drop_remainder: bool = False,
    shard: tuple[int, int] | None = None,
) -> tf.data.Dataset:
    """One epoch per seed, one after the other, as :func:`make_dataset` would shuffle and augment
    them, but each epoch a pure function of its own seed (and of TensorFlow's global seed, which
    the Trainer sets from its own): the same batches however often the dataset is iterated.

    For one ``model.fit`` over several epochs (``steps_per_epoch`` = the batches of an epoch)
    whose every epoch is a function of its own seed, so that a run resumed at any epoch sees the
    data an uninterrupted run sees, also where Keras reads a first batch to build the model and
    then starts the dataset over (the JAX trainer). The images are held once, whatever the number
    of epochs.

    ``shard=(count, index)``: one process's part of a data-parallel run over ``count`` processes,
    each holding all the images. Every process shuffles an epoch alike; of its whole global
    batches (``batch_size * count`` images; the rest is left out of that epoch) this one keeps
    block ``index`` of ``batch_size`` images, so that the processes' batches, one after the other,
    are the global batch of one process. Each shard draws its own augmentations.
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise DataError("seeds: expected one seed per epoch, got none")
    arr, pixels, classes = _in_memory(images, labels, num_classes, batch_size)
    aug = _resolve(augment, num_classes)
    epochs = [_epoch(pixels, classes, len(arr), num_classes=num_classes, batch_size=batch_size, aug=aug,
                     shuffle=shuffle, seed=s, repeat=False, drop_remainder=drop_remainder, reshuffle=False,
                     shard=shard) for s in seeds]
    ds = epochs[0]
    for epoch in epochs[1:]:
        ds = ds.concatenate(epoch)
    return ds


def dataset_from_files(
    paths: Sequence[Union[str, os.PathLike]],
    labels: np.ndarray,
    *,
    image_size: int = 96,
    num_classes: int = len(CLASS_NAMES),
    batch_size: int = 64,
    augment: AugmentSpec = None,
    shuffle: bool = True,
    seed: int | None = 42,
    repeat: bool = False,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Like :func:`make_dataset`, but reading image files while iterating.

    Each file is decoded and resized to ``image_size`` by :func:`bloodcell.imageio.load_image`
    (PIL; centre crop, Lanczos), in parallel threads. An empty or non-image file is an
    :class:`~bloodcell.errors.ImageReadError` naming it here; one whose pixels turn out damaged
    stops the iteration with an error naming it.
    """
    _check_common(batch_size, num_classes)
    if isinstance(paths, (str, bytes, os.PathLike)):
        raise DataError(f"paths: expected a list of image files, got the single path {os.fsdecode(paths)!r}; for a "
                        "folder's images use bloodcell.imageio.find_image_files([folder])")
    names = [os.fspath(p) for p in paths]
    if not names:
        raise DataError("paths: expected at least one image file, got none")
    folders = [p for p in names if os.path.isdir(p)]
    if folders:
        raise DataError(f"{folders[0]}: is a folder, expected an image file; list its images with "
                        "bloodcell.imageio.find_image_files([folder])")
    missing = [p for p in names if not os.path.isfile(p)]
    if missing:
        raise InputNotFoundError(
            f"{missing[0]}: no such file ({len(missing)} of {len(names)} paths are missing); check the paths"
        )
    ids = check_labels(labels, len(names), num_classes).astype(np.int32)
    aug = _resolve(augment, num_classes)
    # An unreadable file inside tf.data surfaces as a long TensorFlow error holding a traceback: the
    # headers are checked here (about 0.1 ms a file), so only a file damaged after them can.
    for name in names:
        check_image_header(name)

    def read(path: bytes) -> np.ndarray:
        return load_image(path.decode(), image_size)

    def decode(path, label):
        image = _python_calls.call(read, [path], tf.uint8, numpy=True)
        image.set_shape((image_size, image_size, 3))
        return image, tf.one_hot(label, num_classes)

    files = tf.data.Dataset.from_tensor_slices((names, ids))
    if shuffle:
        files = files.shuffle(len(names), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        files = files.repeat()
    chunk = _chunk_size(aug, batch_size, (image_size, image_size))
    chunks = _stateful_map(files, decode, AUTOTUNE).batch(chunk)
    return _finish(chunks, aug, num_classes, seed, batch_size, drop_remainder, None if repeat else len(names))


def augment_dataset(
    dataset: tf.data.Dataset,
    augment: AugmentSpec,
    *,
    num_classes: int = len(CLASS_NAMES),
    seed: int | None = 42,
) -> tf.data.Dataset:
    """Augment a batched dataset of ``(images, labels)`` the way :func:`make_dataset` does.

    ``images``: (N, H, W, 3) of values 0..255 (uint8 or float); ``labels``: class ids (N,) or
    one-hot (N, num_classes). Yields float32 images and one-hot float32 labels, prefetched.
    """
    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) != 2:
        got = f"{len(spec)} components" if isinstance(spec, tuple) else f"a {type(spec).__name__}"
        raise DataError(f"dataset: expected (images, labels) elements, got {got}; map it to (images, labels) (class "
                        "weights: the Trainer's class_weights, not per-sample weights)")
    images_spec, labels_spec = spec
    if images_spec.shape.rank != 4:
        raise DataError(f"dataset: expected batches of images (N, H, W, 3), got {images_spec.shape}; batch the dataset first")
    if images_spec.shape[-1] != 3:
        raise DataError(f"dataset: expected RGB images with 3 channels, got {images_spec.shape}; convert them to RGB "
                        "(tf.image.grayscale_to_rgb for greyscale)")
    if None in images_spec.shape[1:]:
        raise DataError(f"dataset: expected images of one known size (N, H, W, 3), got {images_spec.shape}; resize them "
                        "(tf.image.resize, or image_dataset_from_directory's image_size)")
    if not (labels_spec.dtype.is_integer or labels_spec.dtype.is_floating):
        raise DataError(f"dataset: expected numeric labels (class ids or one-hot), got {labels_spec.dtype.name}; map "
                        "class names to ids first")
    one_hot = labels_spec.shape.rank == 2 and labels_spec.shape[-1] != 1
    if one_hot and labels_spec.shape[-1] not in (None, num_classes):
        raise DataError(f"dataset: one-hot labels of {labels_spec.shape[-1]} classes, but num_classes is {num_classes}; "
                        f"pass num_classes={labels_spec.shape[-1]}")

    def standardise(x, y):
        x = x if x.dtype == tf.uint8 else tf.cast(x, tf.float32)
        if one_hot:
            y = tf.cast(y, tf.float32)
        else:
            ids = tf.reshape(tf.cast(y, tf.int32), [-1])
            tf.debugging.assert_non_negative(ids, message="labels: class ids must be >= 0")
            tf.debugging.assert_less(ids, num_classes,
                                     message=f"labels: class ids must be below num_classes = {num_classes}")
            y = tf.one_hot(ids, num_classes)
        return x, y

    aug = _resolve(augment, num_classes)
    if aug is not None and aug.num_classes != num_classes:
        raise DataError(f"augment: an Augmentation built for {aug.num_classes} classes, but num_classes is {num_classes}; "
                        f"build it with build_augmentation(..., num_classes={num_classes})")
    batches = dataset.map(standardise, num_parallel_calls=AUTOTUNE if aug is None else parallel_calls(AUTOTUNE))
    return _finish(batches, aug, num_classes, seed)
