"""Seeding: stateless random draws for augmentation layers inside ``tf.data`` maps."""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import keras
import tensorflow as tf

def _next_seed(generator: keras.random.SeedGenerator) -> tf.Tensor:
    """The next stateless seed (2,) int32 from a Keras seed generator."""
    return tf.cast(tf.math.floormod(generator.next(), 2**31 - 1), tf.int32)


def tf_seed_generator(seed: int | None) -> keras.random.SeedGenerator:
    """A seed generator whose state is a TensorFlow variable, whatever Keras' backend: the
    augmentation layers draw from it inside ``tf.data``, which runs on TensorFlow."""
    if keras.backend.backend() == "tensorflow":
        return keras.random.SeedGenerator(seed)
    from keras.src.utils.backend_utils import DynamicBackend

    return keras.random.SeedGenerator(seed, backend=DynamicBackend("tensorflow"))


def _make_tf_generator(layer: keras.layers.Layer) -> None:
    """Under another backend than TensorFlow, make the TensorFlow-held generator that a Keras
    data layer (``RandAugment``, ``CutMix``...) draws from inside ``tf.data``; Keras makes it
    lazily at the first draw, which would be too late for :func:`stateless_seeds`."""
    if keras.backend.backend() == "tensorflow" or not hasattr(layer, "generator"):
        return
    make, backend = getattr(layer, "_get_seed_generator", None), getattr(layer, "backend", None)
    if not callable(make) or not hasattr(backend, "set_backend"):
        return
    backend.set_backend("tensorflow")
    try:
        make("tensorflow")
    finally:
        backend.reset()


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
            _make_tf_generator(obj)
            for value in list(vars(obj).values()):
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
