"""Evaluating a classifier: accuracy, per-class metrics, confusion matrix and robustness.

Metrics are computed from the confusion matrix with numpy and follow scikit-learn's definitions
(``labels=None``, ``zero_division=0``), so results match ``sklearn.metrics`` without depending on
it: a class's precision is 0 when it is never predicted, its recall 0 when it has no images;
macro averages run over the classes that occur in the labels or the predictions, balanced
accuracy over the classes that occur in the labels.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np

from ._fs import save_figure
from ._progress import progress
from ._labelled import labelled_images
from .calibration import calibration_metrics, review_summary, risk_coverage
from ._util import new_figure, outside_stacklevel
from .errors import ConfigError, DataError
from .imageio import MIN_SIDE, resize_images

__all__ = [
    "Report",
    "RobustnessReport",
    "confusion_matrix",
    "evaluate",
    "evaluate_robustness",
    "metrics_from_predictions",
]

AVERAGES = ("precision", "recall", "f1")


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """Counts (num_classes, num_classes) int64; row = true class, column = predicted class."""
    y_true = np.asarray(y_true).reshape(-1)
    y_pred = np.asarray(y_pred).reshape(-1)
    if len(y_true) != len(y_pred):
        raise DataError(f"y_true has {len(y_true)} labels but y_pred {len(y_pred)}; give one prediction per label")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if len(y) and not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{name}: expected integer class ids 0..{num_classes - 1}, got {y.dtype} values such as "
                            f"{y.flat[0].item()!r}; map class names to their positions in class_names")
        if len(y) and (y.min() < 0 or y.max() >= num_classes):
            raise DataError(f"{name}: expected integer class ids 0..{num_classes - 1}, got {y.min()}..{y.max()}")
    flat = y_true.astype(np.int64) * num_classes + y_pred.astype(np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _classes_present(count: int) -> str:
    return "1 class present" if count == 1 else f"{count} classes present"


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros(len(num)), where=den > 0)


@dataclass
class Report:
    """Classification metrics of one evaluation. ``confusion[i, j]`` counts class i predicted as j."""

    class_names: tuple[str, ...]
    confusion: np.ndarray
    n: int
    accuracy: float
    balanced_accuracy: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    weighted_precision: float
    weighted_recall: float
    weighted_f1: float
    #: class name -> {"precision", "recall", "f1", "support"}
    per_class: dict[str, dict[str, float]]
    tta: bool = False
    seconds: Optional[float] = None
    #: the classifier's classes of which the data hold no image (measured over the others)
    absent: tuple[str, ...] = ()
    #: how well the probabilities match accuracy (:func:`bloodcell.calibration.calibration_metrics`)
    calibration: Optional[dict[str, float]] = None
    #: with the classifier's review threshold: ``threshold``, share ``flagged``, ``accuracy_unflagged``
    review: Optional[dict[str, float]] = None
    #: accuracy of the unflagged cells against the share flagged (:func:`bloodcell.calibration.risk_coverage`)
    risk_coverage: Optional[list] = None
    #: the classes the answers were restricted to (``classes=``, ``--classes``); None: all of them
    classes: Optional[tuple[str, ...]] = None

    @property
    def ece(self) -> Optional[float]:
        """Expected calibration error (15 bins) of the evaluated probabilities."""
        return None if self.calibration is None else self.calibration["ece"]

    @classmethod
    def from_confusion(cls, confusion: np.ndarray, class_names: Sequence[str], **extra: Any) -> "Report":
        """Every metric of the report, derived from a confusion matrix of counts (rows: true classes)."""
        given = np.asarray(confusion)
        if given.ndim != 2 or given.shape[0] != given.shape[1] or given.shape[0] != len(class_names):
            raise DataError(f"confusion: expected a square matrix of side {len(class_names)}, got shape {given.shape}")
        numeric = given.dtype != bool and np.issubdtype(given.dtype, np.number)
        if not numeric or not np.all(np.isfinite(given)) or np.any(given < 0) or np.any(given != np.round(given)):
            raise DataError(f"confusion: expected non-negative whole counts, got {given.tolist()!r:.120}; pass the "
                            "counts, not a normalised matrix")
        cm = given.astype(np.int64)
        n = int(cm.sum())
        if n == 0:
            raise DataError("nothing to evaluate: the confusion matrix is empty; pass at least one labelled image")
        tp = np.diag(cm).astype(np.float64)
        support, predicted = cm.sum(axis=1), cm.sum(axis=0)
        per = {
            "precision": _ratio(tp, predicted),
            "recall": _ratio(tp, support),
            "f1": _ratio(2 * tp, support + predicted),
        }
        present = (support > 0) | (predicted > 0)
        averages = {}
        for key in AVERAGES:
            averages[f"macro_{key}"] = float(per[key][present].mean())
            averages[f"weighted_{key}"] = float((per[key] * support).sum() / n)
        extra.setdefault("absent", tuple(name for name, count in zip(class_names, support) if count == 0))
        return cls(
            class_names=tuple(class_names),
            confusion=cm,
            n=n,
            accuracy=float(tp.sum() / n),
            balanced_accuracy=float(per["recall"][support > 0].mean()),
            per_class={
                name: {**{k: float(per[k][i]) for k in AVERAGES}, "support": int(support[i])}
                for i, name in enumerate(class_names)
            },
            **averages,
            **extra,
        )

    def headline(self) -> dict[str, Any]:
        """The figures a model card records: accuracy, balanced accuracy, macro F1, image count."""
        return {"accuracy": self.accuracy, "balanced_accuracy": self.balanced_accuracy,
                "macro_f1": self.macro_f1, "test_images": self.n}

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain JSON-serialisable values (the matrix as nested lists)."""
        return {
            "n": self.n,
            "accuracy": self.accuracy,
            "balanced_accuracy": self.balanced_accuracy,
            "macro": {k: getattr(self, f"macro_{k}") for k in AVERAGES},
            "weighted": {k: getattr(self, f"weighted_{k}") for k in AVERAGES},
            "per_class": self.per_class,
            "class_names": list(self.class_names),
            "confusion_matrix": self.confusion.tolist(),
            "tta": self.tta,
            "seconds": self.seconds,
            "absent": list(self.absent),
            **({"calibration": dict(self.calibration)} if self.calibration is not None else {}),
            **({"review": dict(self.review)} if self.review is not None else {}),
            **({"risk_coverage": list(self.risk_coverage)} if self.risk_coverage is not None else {}),
            **({"classes": list(self.classes)} if self.classes is not None else {}),
        }

    def to_text(self) -> str:
        """A terminal table: headline figures, per-class metrics and the confusion matrix."""
        width = max(12, *(len(c) for c in self.class_names))
        predicted = self.confusion.sum(axis=0)
        predicted_absent = [c for c in self.absent if predicted[self.class_names.index(c)]]
        lines = [
            f"{'accuracy':<{width}}  {self.accuracy:.4f}   (n = {self.n}{', TTA' if self.tta else ''})",
            *([f"{'answers':<{width}}  restricted to {', '.join(self.classes)}"] if self.classes is not None else []),
            f"{'balanced acc.':<{width}}  {self.balanced_accuracy:.4f}",
            *([f"{'ECE':<{width}}  {self.ece:.4f}   (NLL {self.calibration['nll']:.4f}, Brier "
               f"{self.calibration['brier']:.4f}, mean confidence {self.calibration['mean_confidence']:.4f})"]
              if self.calibration is not None else []),
            *([f"{'review':<{width}}  {self.review['flagged']:.2%} flagged (unsure: probability under "
               f"{self.review['threshold']:.4f}"
               + (f"; out of distribution: {self.review['outliers']:.2%} of all" if "outliers" in self.review else "")
               + "); accuracy of the others "
               + ("n/a (all flagged)" if self.review["accuracy_unflagged"] is None
                  else f"{self.review['accuracy_unflagged']:.4f}")]
              if self.review is not None else []),
            *([f"no images of: {', '.join(self.absent)} (balanced accuracy runs over the "
               + _classes_present(int((np.asarray(self.confusion).sum(axis=1) > 0).sum()))
               + (f"; macro averages also count {', '.join(predicted_absent)}, predicted with precision 0)"
                  if predicted_absent else ")")] if self.absent else []),
            "",
            f"{'class':<{width}}  precision  recall      f1  support",
        ]
        for i, (name, m) in enumerate(self.per_class.items()):
            if m["support"] == 0 and predicted[i] == 0:  # neither present nor predicted: nothing to measure
                lines.append(f"{name:<{width}}  {'–':>9}  {'–':>6}  {'–':>6}  {0:7d}")
            else:
                lines.append(f"{name:<{width}}  {m['precision']:9.4f}  {m['recall']:6.4f}  {m['f1']:6.4f}  {m['support']:7d}")
        for avg in ("macro", "weighted"):
            p, r, f = (getattr(self, f"{avg}_{k}") for k in AVERAGES)
            lines.append(f"{avg + ' avg':<{width}}  {p:9.4f}  {r:6.4f}  {f:6.4f}  {self.n:7d}")
        cell = max(5, len(str(self.confusion.max())) + 1)
        lines += ["", "confusion matrix (rows: true class, columns: predicted class)"]
        lines.append(" " * (width + 5) + "".join(f"{j:>{cell}}" for j in range(len(self.class_names))))
        for i, name in enumerate(self.class_names):
            lines.append(f"{i:>3}  {name:<{width}}" + "".join(f"{v:>{cell}}" for v in self.confusion[i]))
        return "\n".join(lines)

    def plot_risk_coverage(self, path, *, title: Optional[str] = None) -> None:
        """Write a PNG of the accuracy of the unflagged cells against the share flagged for review, flagging
        the least sure first, with the model's own operating point (its review threshold and outliers) marked."""
        from .calibration import plot_risk_coverage

        if self.risk_coverage is None:
            raise DataError("this report has no risk-coverage curve (it was not made by evaluate)")
        review = self.review or {}
        point = ({f"review threshold {review['threshold']:.3g} ({review['flagged']:.1%} flagged)":
                  (review["flagged"], review.get("accuracy_unflagged"))} if "flagged" in review else None)
        plot_risk_coverage(path, {"this evaluation": self.risk_coverage}, title=title, points=point)

    def plot_confusion(self, path, *, title: Optional[str] = None) -> None:
        """Write a PNG of the row-normalised confusion matrix (percent of each true class)."""
        fig = new_figure((1.6 + 0.75 * len(self.class_names),) * 2)
        ax = fig.add_subplot()
        support = self.confusion.sum(axis=1, keepdims=True)
        pct = 100.0 * np.divide(self.confusion, support, out=np.zeros(self.confusion.shape), where=support > 0)
        ax.imshow(pct, cmap="Blues", vmin=0, vmax=100)
        for (i, j), v in np.ndenumerate(pct):
            if self.confusion[i, j]:
                ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=8, color="white" if v > 55 else "black")
        ticks = range(len(self.class_names))
        ax.set_xticks(ticks, self.class_names, rotation=45, ha="right")
        ax.set_yticks(ticks, [f"{c} ({s})" for c, s in zip(self.class_names, support[:, 0])])
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class (images)")
        ax.set_title(title or f"accuracy {100 * self.accuracy:.2f}%, balanced {100 * self.balanced_accuracy:.2f}%\n"
                     "(% of each true class)", fontsize=9)
        fig.tight_layout()
        save_figure(fig, path, dpi=110)


def metrics_from_predictions(
    y_true, y_pred, num_classes: int, *, class_names: Optional[Sequence[str]] = None
) -> Report:
    """The :class:`Report` of integer predictions ``y_pred`` against labels ``y_true``."""
    names = tuple(class_names) if class_names is not None else tuple(str(i) for i in range(num_classes))
    if len(names) != num_classes:
        raise ConfigError(f"class_names has {len(names)} names but num_classes is {num_classes}; give one name per class")
    return Report.from_confusion(confusion_matrix(y_true, y_pred, num_classes), names)


@dataclass
class RobustnessReport:
    """Accuracy on clean images and under each corruption at each severity."""

    clean_accuracy: float
    severities: tuple[int, ...]
    #: corruption name -> accuracy at each of ``severities``
    accuracy: dict[str, list[float]]
    n: int
    seed: int
    tta: bool = False
    seconds: Optional[float] = None
    #: the image side the corruptions were applied at (None: the classifier's input size)
    corrupt_size: Optional[int] = None
    #: the classes the answers were restricted to (None: all of them)
    classes: Optional[tuple[str, ...]] = None
    per_corruption_mean: dict[str, float] = field(init=False)
    per_severity_mean: list[float] = field(init=False)
    robustness_mean: float = field(init=False)

    def __post_init__(self) -> None:
        table = np.array(list(self.accuracy.values()), np.float64).reshape(len(self.accuracy), len(self.severities))
        self.per_corruption_mean = {k: float(row.mean()) for k, row in zip(self.accuracy, table)}
        self.per_severity_mean = [float(v) for v in table.mean(axis=0)]
        self.robustness_mean = float(table.mean())

    @property
    def corruptions(self) -> tuple[str, ...]:
        return tuple(self.accuracy)

    def summary(self) -> dict[str, Any]:
        """The per-corruption and per-severity means that a model card records."""
        return {"per_corruption_mean": self.per_corruption_mean, "per_severity_mean": self.per_severity_mean,
                "seed": self.seed}

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain JSON-serialisable values."""
        return {
            "n": self.n,
            "seed": self.seed,
            "tta": self.tta,
            "corrupt_size": self.corrupt_size,
            "seconds": self.seconds,
            "clean_accuracy": self.clean_accuracy,
            "robustness_mean": self.robustness_mean,
            "severities": list(self.severities),
            "accuracy": {k: list(v) for k, v in self.accuracy.items()},
            "per_corruption_mean": self.per_corruption_mean,
            "per_severity_mean": self.per_severity_mean,
            **({"classes": list(self.classes)} if self.classes is not None else {}),
        }

    def to_text(self) -> str:
        """A terminal table of accuracy per corruption (rows) and severity (columns)."""
        width = max(16, *(len(c) for c in self.accuracy))
        head = "".join(f"{f'sev {s}':>8}" for s in self.severities)
        restricted = f"; answers restricted to {', '.join(self.classes)}" if self.classes is not None else ""
        lines = [
            f"{'clean accuracy':<{width}}  {self.clean_accuracy:.4f}   (n = {self.n}, seed {self.seed}"
            f"{', TTA' if self.tta else ''}"
            f"{f', corrupted at {self.corrupt_size}x{self.corrupt_size}' if self.corrupt_size else ''}"
            f"{restricted})",
            "",
            f"{'corruption':<{width}}{head}{'mean':>8}",
        ]
        for name, accs in self.accuracy.items():
            lines.append(f"{name:<{width}}" + "".join(f"{a:8.4f}" for a in accs) + f"{self.per_corruption_mean[name]:8.4f}")
        lines.append(
            f"{'mean':<{width}}" + "".join(f"{a:8.4f}" for a in self.per_severity_mean) + f"{self.robustness_mean:8.4f}"
        )
        return "\n".join(lines)

    def plot(self, path, *, title: Optional[str] = None) -> None:
        """Write a PNG of accuracy against severity: one line per corruption, their mean, clean."""
        fig = new_figure((9.5, 5.0))
        ax = fig.add_subplot()
        colours = _colormap("tab20")
        for i, (name, accs) in enumerate(self.accuracy.items()):
            ax.plot(self.severities, accs, "o-", ms=3, lw=1.2, color=colours(i % 20), label=name)
        ax.plot(self.severities, self.per_severity_mean, "o-", color="black", lw=2.8,
                label=f"mean ({self.robustness_mean:.3f})")
        ax.axhline(self.clean_accuracy, color="black", ls="--", lw=1.2, label=f"clean ({self.clean_accuracy:.3f})")
        ax.set_xticks(self.severities)
        ax.set_xlabel("severity")
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.set_title(title or f"accuracy under corruption (n = {self.n})")
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
        fig.tight_layout()
        save_figure(fig, path, dpi=110)


def _colormap(name: str):
    import matplotlib

    return matplotlib.colormaps[name]


def _predict(classifier, images: np.ndarray, batch_size: int, tta: bool, verbose: int = 0, classes=None) -> np.ndarray:
    return classifier.predict_proba(images, batch_size=batch_size, tta=tta, verbose=verbose,
                                    **({"classes": classes} if classes is not None else {})).argmax(axis=1)


def _allowed(classifier, labels: np.ndarray, classes) -> Optional[np.ndarray]:
    """The mask of ``classes`` over the classifier's classes (None: all), refusing classes that leave out
    classes the labels hold: those images could only be counted wrong."""
    mask = classifier.class_mask(classes) if classes is not None and hasattr(classifier, "class_mask") else None
    if mask is None:
        return None
    left = {classifier.class_names[c]: int(n) for c, n in zip(*np.unique(labels, return_counts=True)) if not mask[c]}
    if left:
        held = ", ".join(f"{n} image{'s' if n != 1 else ''} of {c}" for c, n in left.items())
        raise DataError(f"classes (--classes): the data hold {held}, which it leaves out, so they could only be counted "
                        f"wrong; add {', '.join(left)} to it, or leave those images out of the data")
    return mask


def _restricted(classifier, allowed: Optional[np.ndarray]) -> Optional[tuple[str, ...]]:
    return None if allowed is None else tuple(c for c, a in zip(classifier.class_names, allowed) if a)


def evaluate(classifier, dataset, *, batch_size: int = 64, tta: bool = False, classes: Optional[Sequence[str]] = None,
             verbose: int = 1) -> Report:
    """Classify ``dataset`` (a Dataset or ``(images, labels)``) and measure the predictions.

    Images are resized to the classifier's input size as in training. ``tta=True`` averages the
    probabilities over the 8 flips and 90-degree rotations (8 times slower). ``classes`` restricts
    the answers to those classes, as ``predict_proba(classes=...)`` does. A progress bar on a
    terminal's stderr when it lasts more than a moment; ``verbose=0`` for none.
    """
    start = time.perf_counter()
    size = getattr(getattr(dataset, "images", None), "shape", (0, 0))[1]
    if getattr(dataset, "paths", None) and size != getattr(classifier, "input_size", size):
        warnings.warn(f"evaluate: the images were read from their files at {size} px and are resized again to the "
                      f"model's {classifier.input_size}, which `bloodcell evaluate` does not do (its figures may differ "
                      f"a little); load them with load_dataset(..., image_size={classifier.input_size})", UserWarning,
                      stacklevel=outside_stacklevel())
    images, labels, absent = labelled_images(classifier, dataset)
    allowed = _allowed(classifier, labels, classes)
    if allowed is not None:  # the classes it was told the cells cannot be are not missing from the data
        absent = [c for c, a in zip(classifier.class_names, allowed) if a and c in absent]
    outliers = None
    if hasattr(classifier, "predict_checked"):  # the outliers bloodcell predict flags (in the same pass with a feature check)
        checked = classifier.predict_checked(images, batch_size=batch_size, tta=tta, classes=classes, verbose=verbose)
        proba, outliers = checked.probabilities, checked.outlier
    else:
        proba = classifier.predict_proba(images, batch_size=batch_size, tta=tta, classes=classes, verbose=verbose)
    cm = confusion_matrix(labels, proba.argmax(axis=1), len(classifier.class_names))
    # with tta, the threshold fitted for that mode (the single view's where it has none), as predict_checked uses
    threshold = classifier._calibration("review_below", tta) if hasattr(classifier, "_calibration") else None
    review = None if threshold is None else review_summary(proba, labels, threshold, outliers=outliers)
    return Report.from_confusion(cm, classifier.class_names, tta=tta, seconds=round(time.perf_counter() - start, 2),
                                 absent=absent, calibration=calibration_metrics(proba, labels), review=review,
                                 risk_coverage=risk_coverage(proba, labels), classes=_restricted(classifier, allowed))


def evaluate_robustness(
    classifier,
    dataset,
    *,
    corruptions: Optional[Sequence[str]] = None,
    severities: Sequence[int] = (1, 2, 3, 4, 5),
    seed: int = 0,
    batch_size: int = 64,
    tta: bool = False,
    corrupt_size: Optional[int] = None,
    classes: Optional[Sequence[str]] = None,
    verbose: int = 1,
) -> RobustnessReport:
    """Accuracy on ``dataset`` clean and under each corruption of :mod:`bloodcell.corruptions`.

    Images are resized to the classifier's input size first and corrupted at that size, so each
    severity means what the model sees. With ``corrupt_size`` they are resized to that side
    instead (pass the images as stored, e.g. 96 for pbc96), corrupted there, then resized to the
    input size, as a corruption at capture would reach a model of another input size.
    Deterministic for a given ``seed``. ``corruptions``: one name or several; None runs all.
    ``classes`` restricts the answers to those classes, as in :func:`evaluate`. A progress bar
    on a terminal's stderr (one step per corruption and severity); ``verbose=0`` for none.
    """
    from .corruptions import CORRUPTIONS, SEVERITIES, corrupt

    names = list(CORRUPTIONS) if corruptions is None else [corruptions] if isinstance(corruptions, str) else list(corruptions)
    unknown = [c for c in names if c not in CORRUPTIONS]
    if unknown or not names:
        from ._registry import did_you_mean

        raise ConfigError(f"unknown corruption(s) {', '.join(map(str, unknown)) or '(none given)'}; expected some of: "
                          f"{', '.join(CORRUPTIONS)}" + (did_you_mean(unknown[0], CORRUPTIONS) if unknown else ""))
    given = [severities] if isinstance(severities, (int, np.integer)) else list(severities)
    if not given or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s not in SEVERITIES for s in given):
        raise ConfigError(f"severities: expected integers in {list(SEVERITIES)}, got {given}")
    severities = tuple(int(s) for s in given)
    for what, values in (("corruptions", names), ("severities", severities)):
        twice = sorted({v for v in values if values.count(v) > 1}, key=str)
        if twice:
            raise ConfigError(f"{what}: {', '.join(map(str, twice))} given more than once, got {list(values)}; "
                              "give each once")
    if corrupt_size is not None and (isinstance(corrupt_size, bool) or not isinstance(corrupt_size, (int, np.integer))
                                     or corrupt_size < MIN_SIDE):
        raise ConfigError(f"corrupt_size: expected an image side of at least {MIN_SIDE} pixels or None, got "
                          f"{corrupt_size!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    corrupt_size = None if corrupt_size is None else int(corrupt_size)
    start = time.perf_counter()
    images, labels, _ = labelled_images(classifier, dataset, corrupt_size)
    allowed = _allowed(classifier, labels, classes)

    def accuracy(x: np.ndarray) -> float:
        if corrupt_size is not None:
            x = resize_images(x, classifier.input_size)
        return float(np.mean(_predict(classifier, x, batch_size, tta, classes=classes) == labels))

    runs = progress([(c, s) for c in names for s in severities], verbose=verbose, desc="robustness", unit="run")
    clean = accuracy(images)
    table: dict[str, list[float]] = {c: [] for c in names}
    for name, sev in runs:
        table[name].append(accuracy(corrupt(images, name, sev, seed=seed)))
    return RobustnessReport(
        clean_accuracy=clean,
        severities=severities,
        accuracy=table,
        n=len(labels),
        seed=seed,
        tta=tta,
        seconds=round(time.perf_counter() - start, 2),
        corrupt_size=corrupt_size,
        classes=_restricted(classifier, allowed),
    )
