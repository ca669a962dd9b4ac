"""Import TensorFlow without its start-up chatter.

TensorFlow's C++ start-up messages (oneDNN notes, CPU-feature notes, and on a machine without a
GPU a ``failed call to cuInit`` line logged as an error) are written before its logging can be
configured, so ``TF_CPP_MIN_LOG_LEVEL`` cannot hide them. When bloodcell is the first to import
TensorFlow, it does so with the process's stderr pointed at /dev/null, and probes the devices
there too (where the cuInit line comes from). Errors still raise: an exception is not a log line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Iterator


@contextlib.contextmanager
def silenced_output(fds: tuple[int, ...] = (2,)) -> Iterator[None]:
    """Point file descriptors ``fds`` at /dev/null for the block: C++ log lines go to them even
    where ``sys.stderr`` was replaced (pytest, notebooks)."""
    open_fds = []
    for fd in fds:
        try:
            os.fstat(fd)
            open_fds.append(fd)
        except OSError:  # not open at all
            pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    saved = [os.dup(fd) for fd in open_fds]
    try:
        with open(os.devnull, "w") as devnull:
            for fd in open_fds:
                os.dup2(devnull.fileno(), fd)
            yield
    finally:
        for fd, copy in zip(open_fds, saved):
            os.dup2(copy, fd)
            os.close(copy)


def quiet_import_tensorflow() -> None:
    """Import TensorFlow (and list its devices) with stderr silenced at the file-descriptor level.

    Without TensorFlow installed, on a Keras backend other than TensorFlow (``KERAS_BACKEND=jax``
    or ``torch``), nothing is imported: the models of :mod:`bloodcell.models` build and load their
    weights without it (a GPU machine with JAX alone; scripts/gpu_train.py).
    """
    if "tensorflow" in sys.modules:
        return
    try:
        with silenced_output():
            import tensorflow as tf

            tf.config.list_physical_devices()
    except ModuleNotFoundError as e:
        if e.name != "tensorflow" or os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
            raise


def parallel_calls(calls):
    """``num_parallel_calls`` for a ``tf.data`` map that is stateful (a Python call) or that runs
    ahead of or after one: None (one call at a time) under op determinism, where tf.data would make
    the map sequential anyway and log a false error line each time it does so
    (``NodeDef mentions attribute use_unbounded_threadpool``)."""
    from tensorflow.python.framework import config as tf_config

    return None if getattr(tf_config, "is_op_determinism_enabled", lambda: False)() else calls


@contextlib.contextmanager
def op_determinism(enabled: bool = True) -> Iterator[None]:
    """TensorFlow's op determinism on inside the block (when ``enabled``), and after it as it was
    found: the caller's own TensorFlow code does not go on running deterministically."""
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config

    switch = enabled and not tf_config.is_op_determinism_enabled()
    if switch:
        tf.config.experimental.enable_op_determinism()
    try:
        yield
    finally:
        if switch:
            tf_config.disable_op_determinism()


class _KerasTrainFunctionTraces(logging.Filter):
    """Drops TensorFlow's retracing warning about Keras's own train/test/predict functions
    (``TensorFlowTrainer._make_function``, ``make_predict_function``, ...) and about
    :data:`SHAPE_TRACED`.

    TensorFlow counts traces by a function's code, and Keras makes a new ``tf.function`` of the
    same code each time a model is compiled: every model trained in one process (two phases,
    cross-validation folds) adds its traces to one count, and the fourth model or so draws a
    "triggered tf.function retracing" warning that is not true of any of them. Warnings about
    other functions pass.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "triggered tf.function retracing" not in message:
            return True
        return not ("<function TensorFlowTrainer." in message
                    or any(f"<function {name} at" in message or f".{name} object at" in message for name in SHAPE_TRACED))


#: Qualified names of bloodcell's own ``tf.function`` s that trace once per batch shape by design
#: (the augmentation kernels, called eagerly on batches of any size; the XLA probe, made again
#: wherever a test resets it): their retracing is not worth a warning.
SHAPE_TRACED: set[str] = set()


def _install_filters() -> None:
    logger = logging.getLogger("tensorflow")
    if not any(isinstance(f, _KerasTrainFunctionTraces) for f in logger.filters):
        logger.addFilter(_KerasTrainFunctionTraces())


quiet_import_tensorflow()
_install_filters()
