"""Labelled images as a classifier takes them: shared by evaluation and calibration."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ._checks import check_image_batch, check_labels
from ._classes import class_index, class_positions
from .errors import ConfigError, DataError
from .imageio import resize_images


def labelled_images(classifier, dataset, size: Optional[int] = None) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Images resized to ``size`` (default: the classifier's input), labels in the classifier's class
    order, and the classifier's classes that have no image here."""
    if not hasattr(classifier, "predict_proba") or not hasattr(classifier, "class_names"):
        raise ConfigError(f"classifier: expected a bloodcell Classifier, got a {type(classifier).__name__}"
                          + (f"; load it with bloodcell.load_classifier({classifier!r})" if isinstance(classifier, str)
                             else "; load one with bloodcell.load_classifier(...)"))
    names = tuple(classifier.class_names)
    if isinstance(dataset, (tuple, list)) and len(dataset) == 2:
        images, labels = dataset
        labels = np.asarray(labels).reshape(-1)
        if labels.dtype.kind in "USO":  # class names
            ids = [class_index(str(label), names) for label in labels]
            unknown = sorted({str(label) for label, i in zip(labels, ids) if i is None})
            if unknown:
                raise DataError(f"labels: {unknown[:5]} are not classes of the classifier ({list(names)}); give "
                                f"its class names or class ids 0..{len(names) - 1}")
            labels = np.array(ids, np.int64)
        labels = check_labels(labels, len(labels), len(names))
    elif hasattr(dataset, "images") and hasattr(dataset, "labels"):
        images, labels = dataset.images, np.asarray(dataset.labels).reshape(-1)
        data_names = tuple(getattr(dataset, "class_names", names))
        if data_names != names:
            mapping = np.array(class_positions(data_names, names), np.int64)
            unknown = [data_names[i] for i in np.unique(labels) if mapping[i] < 0]
            if unknown:
                raise DataError(
                    f"the data's classes differ from the classifier's: the data hold images of {unknown}, which "
                    f"it does not know (its classes: {list(names)}); evaluate on data of the classifier's classes, "
                    "or fine-tune it on these"
                )
            labels = mapping[labels] if len(labels) else labels  # classes without images map to -1, unused
    else:
        raise DataError(f"dataset: expected a bloodcell.data.Dataset or an (images, labels) pair, got {type(dataset).__name__}")
    images = check_image_batch(images)
    if len(images) != len(labels):
        raise DataError(f"{len(images)} images but {len(labels)} labels; give one label per image")
    if not len(images):
        raise DataError("nothing to evaluate: the dataset is empty")
    absent = tuple(c for i, c in enumerate(names) if not np.any(labels == i))
    return resize_images(images, size or classifier.input_size), labels, absent
