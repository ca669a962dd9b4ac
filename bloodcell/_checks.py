"""The checks that several modules apply to their inputs, each written once.

Each raises a :class:`~bloodcell.errors.BloodcellError` subclass whose message names the input,
says what was expected and what was received.
"""

from __future__ import annotations

import numbers
import os
from typing import Iterable, Sequence

import numpy as np

from .errors import ConfigError, DataError


def check_image_batch(images, name: str = "images", *, single: bool = False, min_side: int = 1,
                      empty: bool = True, hint: str = "") -> np.ndarray:
    """``images`` as a uint8 array (N, H, W, 3); with ``single``, an (H, W, 3) image becomes (1, H, W, 3).

    Refuses other dtypes and shapes, images with a side under ``min_side`` pixels and, unless
    ``empty``, an empty batch. ``hint`` is appended to the message (how to make such a batch).
    """
    if hasattr(images, "images") and hasattr(images, "labels"):
        raise DataError(f"{name}: expected uint8 RGB images (N, H, W, 3), got a {type(images).__name__}; pass its "
                        ".images")
    if isinstance(images, (str, os.PathLike)) or (isinstance(images, (list, tuple)) and images
                                                  and all(isinstance(x, (str, os.PathLike)) for x in images)):
        raise DataError(f"{name}: expected uint8 RGB images (N, H, W, 3), got file paths; read them with "
                        "bloodcell.imageio.load_images(paths, size)")
    suffix = f"; {hint}" if hint else ""
    try:
        arr = np.asarray(images)
    except ValueError:  # a list of arrays of different shapes
        shapes = sorted({np.shape(x) for x in images}, key=str)
        raise DataError(f"{name}: images of different sizes ({', '.join(map(str, shapes[:3]))}); resize them to one "
                        "size first, e.g. bloodcell.imageio.load_images(images, size)") from None
    if single and arr.ndim == 3 and arr.shape[-1] == 3:
        arr = arr[None]
    if arr.ndim == 4 and arr.shape[-1] == 3 and np.issubdtype(arr.dtype, np.floating):  # in memory already: cast
        suffix = ("; pixel values of 0..255 as uint8: np.rint(images).astype(np.uint8) (multiply 0..1 floats by 255 "
                  "first)")
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise DataError(f"{name}: expected uint8 RGB images (N, H, W, 3), got {arr.dtype} {arr.shape}{suffix}")
    if not empty and len(arr) == 0:
        raise DataError(f"{name}: expected at least one image, got an empty batch {arr.shape}{suffix}")
    if min(arr.shape[1:3]) < min_side:
        raise DataError(f"{name}: {arr.shape[1]}x{arr.shape[2]} pixels is too small; need at least {min_side}x{min_side}")
    return arr


def check_labels(labels, count: int, num_classes: int, name: str = "labels") -> np.ndarray:
    """Integer class ids (``count``,) or (``count``, 1) in ``0..num_classes - 1``, as int64 (count,).

    Whole-valued floats (e.g. labels read from a CSV) are accepted; other floats are refused.
    """
    arr = np.asarray(labels)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1 or len(arr) != count:
        got = f"{len(arr)} labels" if arr.ndim == 1 else f"labels of shape {arr.shape}"
        raise DataError(f"{name}: {count} images but {got}; expected {count} integer class ids, shape ({count},), "
                        f"got shape {arr.shape}: give one label per image")
    if len(arr) and not (np.issubdtype(arr.dtype, np.integer)
                         or (np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr)))):
        raise DataError(f"{name}: expected integer class ids, got {arr.dtype} values such as {arr.flat[0]!r}")
    arr = arr.astype(np.int64)
    if len(arr) and (arr.min() < 0 or arr.max() >= num_classes):
        raise DataError(f"{name}: expected class ids 0..{num_classes - 1}, got {arr.min()}..{arr.max()}; "
                        "check the labels and the number of classes")
    return arr


def is_real(value) -> bool:
    """Whether ``value`` is a real number (Python's or NumPy's), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def check_bool(value, name: str) -> bool:
    """``value`` as a bool, refusing anything but True and False (a string such as "no" would be true)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{name}: expected True or False, got {value!r}")
    return bool(value)


def check_positive_int(value, name: str, *, minimum: int = 1) -> int:
    """``value`` as an int, refusing bools, floats and values under ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ConfigError(f"{name} must be {wanted}, got {value!r}")
    return int(value)


def check_choice(name: str, value, choices: Iterable) -> None:
    """Refuse ``value`` unless it is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not supported; choose one of {', '.join(map(repr, choices))}")


def check_range(name: str, value, low: float, high: float) -> float:
    """``value`` as a float in ``[low, high]``."""
    if not is_real(value) or not low <= value <= high:
        raise ConfigError(f"{name} must be a number in [{low}, {high}], got {value!r}")
    return float(value)


def check_class_names(names: Sequence[str], name: str = "class_names") -> tuple[str, ...]:
    """At least two distinct non-empty strings; names that differ only by case are refused."""
    if isinstance(names, str) or not isinstance(names, Sequence) or not all(isinstance(n, str) and n for n in names):
        raise ConfigError(f"{name}: expected a list of non-empty class-name strings, got {names!r}")
    names = tuple(names)
    if len(names) < 2:
        raise ConfigError(f"{name}: expected at least two classes, got {list(names)}; a classifier needs two or more")
    from ._classes import canonical_name

    folded: dict[str, str] = {}
    for n in names:
        other = folded.setdefault(n.lower(), n)
        if other != n or names.count(n) > 1:
            raise ConfigError(f"{name}: {other!r} and {n!r} name the same class (names are compared ignoring case); "
                              "give each class one name")
    canonical: dict[str, str] = {}
    for n in names:
        other = canonical.setdefault(canonical_name(n) or n, n)
        if other != n:  # matched to one class everywhere (data folders, a parent's units): one would get no images
            raise ConfigError(f"{name}: {other!r} and {n!r} both name the class {canonical_name(n)!r} (short names "
                              "and plurals match it); give each class one name")
    return names


def largest_remainder(total: int, fractions: Sequence[float]) -> np.ndarray:
    """Integer parts of ``total`` in proportion to ``fractions`` (which sum to 1): floors, then
    one more for the largest remainders, so that the parts sum to ``total``."""
    raw = np.asarray(fractions, np.float64) * total
    counts = np.floor(raw).astype(np.int64)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    return counts
