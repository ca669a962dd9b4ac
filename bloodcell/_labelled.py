"""Labelled images as a classifier takes them: shared by evaluation and calibration."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ._checks import check_image_batch
from .errors import DataError
from .imageio import resize_images


def labelled_images(classifier, dataset, size: Optional[int] = None) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Images resized to ``size`` (default: the classifier's input), labels in the classifier's class
    order, and the classifier's classes that have no image here."""
    names = tuple(classifier.class_names)
    if isinstance(dataset, (tuple, list)) and len(dataset) == 2:
        images, labels = dataset
        labels = np.asarray(labels).reshape(-1)
    elif hasattr(dataset, "images") and hasattr(dataset, "labels"):
        images, labels = dataset.images, np.asarray(dataset.labels).reshape(-1)
        data_names = tuple(getattr(dataset, "class_names", names))
        if data_names != names:
            present = [data_names[i] for i in np.unique(labels)] if len(labels) else []
            unknown = [c for c in present if c not in names]
            if unknown:
                raise DataError(
                    f"the data's classes differ from the classifier's: the data hold images of {unknown}, which "
                    f"it does not know (its classes: {list(names)}); evaluate on data of the classifier's classes, "
                    "or fine-tune it on these"
                )
            mapping = np.array([names.index(c) if c in names else -1 for c in data_names], np.int64)
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
