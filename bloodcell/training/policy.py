"""What each phase trains, and the optimizer and loss it trains with."""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import Optional

import keras
import numpy as np

from .._classes import class_changes, class_index
from ..errors import ConfigError, DataError
from ..models import ClassifierModel
from .config import ADAMW_DECAY, PHASES, TrainConfig

#: Phase names in history rows: the first phase trains the head alone ("head") or everything ("full").
FIRST_PHASES = PHASES[:2]
SECOND_PHASE = PHASES[2]


def class_weights_from_labels(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Inverse-frequency class weights ``n / (k * count_c)`` (sklearn's "balanced"); 0 for absent classes."""
    return class_weights_from_counts(np.bincount(np.asarray(labels, int), minlength=num_classes))


def class_weights_from_counts(counts: np.ndarray) -> np.ndarray:
    """:func:`class_weights_from_labels` from the images of each class (``counts``)."""
    counts = np.asarray(counts, np.float64)
    num_classes = len(counts)
    weights = np.where(counts > 0, counts.sum() / (num_classes * np.maximum(counts, 1)), 0.0)
    return weights.astype(np.float32)


def phase_name(phase: int, frozen_first: bool) -> str:
    """The history's name of phase 0 or 1."""
    if phase == 1:
        return SECOND_PHASE
    return FIRST_PHASES[0] if frozen_first else FIRST_PHASES[1]


def _weighted_layers(model: ClassifierModel) -> list[keras.layers.Layer]:
    return [layer for layer in model.backbone.layers if layer.weights]


def unfreeze_count(model: ClassifierModel, unfreeze, frozen_first: bool) -> int:
    """How many of the backbone's top layers (with weights) the second phase trains."""
    layers = _weighted_layers(model)
    value = (0.3 if frozen_first else 1.0) if unfreeze is None else unfreeze
    n = int(round(value * len(layers))) if isinstance(value, float) else int(value)
    if not 0 <= n <= len(layers):
        raise ConfigError(
            f"unfreeze={unfreeze!r}: the {model.architecture} backbone has {len(layers)} layers with "
            f"weights; pass a count in 0..{len(layers)} or a fraction in [0.0, 1.0]"
        )
    return n


def set_trainable(model: ClassifierModel, phase: int, *, frozen_first: bool, unfreeze) -> None:
    """Phase 0: the backbone frozen (``frozen_first``) or all trainable. Phase 1: the top
    ``unfreeze`` weighted layers of the backbone train, batch norm excepted (it stays in inference
    mode, keeping the statistics the features were learnt with)."""
    backbone = model.backbone
    if phase == 0:
        backbone.trainable = not frozen_first
        return
    layers = _weighted_layers(model)
    n = unfreeze_count(model, unfreeze, frozen_first)
    backbone.trainable = True
    for i, layer in enumerate(layers):
        layer.trainable = i >= len(layers) - n and not isinstance(layer, keras.layers.BatchNormalization)


def make_optimizer(config: TrainConfig, learning_rate: float) -> keras.optimizers.Optimizer:
    """The optimizer that ``config`` names, at ``learning_rate``."""
    kwargs: dict = {"learning_rate": learning_rate}
    if config.weight_decay is not None:
        kwargs["weight_decay"] = config.weight_decay
    elif config.optimizer == "adamw":
        kwargs["weight_decay"] = ADAMW_DECAY
    cls = {"lion": keras.optimizers.Lion, "adam": keras.optimizers.Adam,
           "nadam": keras.optimizers.Nadam, "adamw": keras.optimizers.AdamW}[config.optimizer]
    return cls(**kwargs)


def make_loss(config: TrainConfig, class_weights: Optional[np.ndarray] = None) -> keras.losses.Loss:
    """The Keras loss of ``config``; focal loss takes the class weights as per-class alpha."""
    if config.loss == "focal":
        alpha = (class_weights / class_weights.sum()).tolist() if class_weights is not None else 0.25
        return keras.losses.CategoricalFocalCrossentropy(
            alpha=alpha, gamma=config.focal_gamma, label_smoothing=config.label_smoothing
        )
    return keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)


def is_bloodcell_source(weights) -> bool:
    """Whether ``weights`` names a trained bloodcell model (not None, "imagenet" or a weights file)."""
    if hasattr(weights, "model") and hasattr(weights, "class_names"):  # a Classifier
        return True
    if weights is None or weights == "imagenet" or not isinstance(weights, (str, os.PathLike)):
        return False
    path = Path(weights)
    return not (path.is_file() or path.suffix == ".h5")  # a folder, hf://owner/repo[@rev] or a zoo name


def hardware() -> str:
    """What TensorFlow trains on here, e.g. ``"a 2-core CPU"`` or ``"1 GPU (NVIDIA H200)"``."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return f"a {os.cpu_count()}-core CPU"
    try:
        name = tf.config.experimental.get_device_details(gpus[0]).get("device_name") or "unknown"
    except (RuntimeError, ValueError):
        name = "unknown"
    return f"{len(gpus)} GPU{'s' if len(gpus) > 1 else ''} ({name})"


def start_from(parent, label: str, class_names, input_size: int, normalization=None):
    """What training from the trained bloodcell classifier ``parent`` starts with: the model for
    ``class_names`` at ``input_size`` (a new head when the classes differ, shared classes' units
    kept; with ``normalization``, that input normalisation instead of the parent's, ``"none"`` for
    none), the record of where it came from (for the model card), and whether the head is new."""
    from ..card import new_head_untrained
    from ..folder import parent_record
    from ..models import as_classifier_model

    names = tuple(class_names)
    model = as_classifier_model(parent.model, "weights").with_classes(
        names, input_size=input_size, normalization="keep" if normalization is None else normalization)
    info = parent.training or {}
    # A classifier from load_classifier(..., class_names=...) has an untrained head: its record
    # names the trained model it came from.
    untrained = new_head_untrained(info)
    origin = info["init_from"] if untrained else parent_record(label, parent.class_names, info)
    old = origin["class_names"]
    record = {
        **origin,
        "input_size": parent.input_size,
        **class_changes(old, names),
    }
    # The parent's classes in any order are the same network (its units permuted), trained whole as from a
    # model of the same classes, when every one of its units was trained (a new head's, only on its origin's
    # classes). A class it did not have makes the head new.
    found = [class_index(c, parent.class_names) for c in names]
    permuted = None not in found and sorted(found) == list(range(len(parent.class_names)))
    trained = not untrained or all(class_index(c, old) is not None for c in parent.class_names)
    return model, record, not (permuted and trained)


@contextlib.contextmanager
def float32_policy():
    """Keras' global dtype policy set to float32 inside the block, restored after."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def check_fit_data(train, val, class_names, patience) -> tuple[tuple[str, ...], list[str]]:
    """Refuse data ``Trainer.fit`` cannot learn from; returns the data's class names (if it has
    them) and those of its classes without a training image (with a warning)."""
    if val is None and patience is not None:
        raise ConfigError("fit(train, val=None): early stopping needs a validation set; give one, or "
                          "patience=None to run every epoch and keep the last weights")
    for name, data in (("train", train), ("val", val)):
        if isinstance(data, (tuple, list, np.ndarray)):
            raise DataError(f"{name}: expected a bloodcell Dataset or a tf.data dataset, got a {type(data).__name__}; "
                            "make one from arrays with bloodcell.Dataset(images, labels, class_names)")
        if isinstance(data, (str, bytes, os.PathLike)):
            raise DataError(f"{name}: expected a bloodcell Dataset or a tf.data dataset, got the path {data!r}; load it "
                            "with bloodcell.load_dataset(path) (and split it with bloodcell.data.split)")
        if (data is not None or name == "train") and not hasattr(data, "labels") and not hasattr(data, "element_spec"):
            raise DataError(f"{name}: expected a bloodcell Dataset or a tf.data dataset, got a {type(data).__name__}")
        if hasattr(data, "labels") and len(data.labels) == 0:
            raise DataError(
                f"{name}: the {'training' if name == 'train' else 'validation'} set is empty; give it "
                "images (with split(), use larger fractions or more data per class)"
            )
    names = tuple(getattr(train, "class_names", None) or ())
    if names and class_names and names != tuple(class_names):
        raise DataError(f"class_names={list(class_names)} are not the data's {list(names)}; leave "
                        "class_names out to take the data's, or relabel the data")
    val_names = tuple(getattr(val, "class_names", None) or ())
    if names and val_names and val_names != names:
        raise DataError(f"val: its classes {list(val_names)} are not the training data's {list(names)} (a label "
                        "means a class by its position); pass val.relabel(train.class_names), or load both with "
                        "load_dataset(..., class_names=train.class_names)")
    if not hasattr(train, "labels"):
        return names, []
    present = set(np.unique(train.labels).tolist())
    if len(present) < 2:
        raise DataError(f"train: all {len(train.labels)} training images are of one class; a classifier needs "
                        "images of at least two classes")
    untrained = [c for i, c in enumerate(names) if i not in present]
    warn_without_images(untrained, "drop them with Dataset.present_classes(), or add images")
    return names, untrained


def warn_without_images(classes, fix: str) -> None:
    """Warn (at the caller's line) that ``classes`` have no training image, with ``fix``."""
    if classes:
        from .._util import outside_stacklevel

        warnings.warn(f"train: no training images of {', '.join(classes)}; the model can answer these classes but "
                      f"never learnt them ({fix})", UserWarning, stacklevel=outside_stacklevel())
