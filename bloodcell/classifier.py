"""The :class:`Classifier` (a model plus what it needs to classify) and :func:`load_classifier`."""

from __future__ import annotations

import itertools
import os
import warnings
import tempfile
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import keras
import numpy as np

from ._checks import check_bool, check_class_names, check_positive_int, is_real
from ._classes import class_changes, class_index
from ._colour import colourless
from ._progress import progress
from ._util import outside_stacklevel, pad_batch
from .calibration import apply_calibration, calibrate
from .card import untrained_classes
from .errors import ConfigError, DataError, ImageReadError
from .folder import (CARD_NAME, CONFIG_NAME, PREPROCESSING, WEIGHTS_NAME, load_model, make_config, parent_record,
                     write_folder)
from .imageio import load_image, load_images
from .models import ClassifierModel, as_classifier_model
from .ood import FeatureCheck, feature_layer, inference_model
from .zoo import DEFAULT_MODEL, bundled_path, check_entry, entry_folder, resolve

__all__ = ["DEFAULT_MODEL", "CheckedPredictions", "Classifier", "FilePrediction", "load_classifier", "load_folder",
           # the folder format and zoo names that lived here before bloodcell.folder and bloodcell.zoo
           "CARD_NAME", "CONFIG_NAME", "PREPROCESSING", "WEIGHTS_NAME", "bundled_path", "entry_folder"]


def _dihedral(x: np.ndarray, k: int) -> np.ndarray:
    """The k-th (0..7) of the 8 flips/90-degree rotations of a batch (N, H, W, C)."""
    x = np.rot90(x, k % 4, axes=(1, 2))
    return x[:, :, ::-1] if k >= 4 else x


@dataclass
class FilePrediction:
    """The result for one file: probabilities, or the error that made it unreadable."""

    path: Path
    probabilities: Optional[np.ndarray] = None
    error: Optional[str] = None
    #: True if the image does not look like a blood-cell image; None if not checked.
    outlier: Optional[bool] = None
    #: True if a person should look at it: less sure than the review threshold, or an outlier.
    review: Optional[bool] = None
    #: The most probable class's name; None for an unreadable file.
    label: Optional[str] = None


@dataclass
class CheckedPredictions:
    """Probabilities with the checks of :meth:`Classifier.predict_checked`, one row per image."""

    probabilities: np.ndarray
    #: True where a person should look: less sure than the review threshold, or an outlier.
    review: np.ndarray
    #: True where the image is unlike the model's training images (None: not checked).
    outlier: Optional[np.ndarray] = None
    #: The feature check's scores (None for a model without one: the colour test decided ``outlier``).
    ood_scores: Optional[np.ndarray] = None


class Classifier:
    """A trained (or trainable) blood-cell classifier: a Keras model and its metadata.

    ``predict``/``predict_proba`` accept a uint8 batch (N, H, W, 3) of any H, W, a single image,
    a path, a PIL image or a list of those; images are resized to ``input_size`` exactly as in
    training.
    """

    def __init__(
        self,
        model: keras.Model,
        *,
        class_names: Optional[Sequence[str]] = None,
        architecture: Optional[str] = None,
        name: Optional[str] = None,
        metrics: Optional[dict[str, Any]] = None,
        training: Optional[dict[str, Any]] = None,
        extra: Optional[dict[str, Any]] = None,
    ):
        if not isinstance(model, keras.Model):
            raise ConfigError(f"model: expected a Keras model, got a {type(model).__name__}"
                              + (f"; load a saved or zoo model with bloodcell.load_classifier({model!r})"
                                 if isinstance(model, (str, os.PathLike)) else ""))
        n_out = int(model.outputs[0].shape[-1])
        if class_names is None:
            class_names = getattr(model, "class_names", None)
            if not class_names:  # a plain Keras model (keras.models.clone_model makes one)
                raise ConfigError(
                    f"model: {model.name!r} is a Keras model without class names ({n_out} outputs); pass "
                    "class_names=[...] (bloodcell.CLASS_NAMES for the 8 PBC classes), or copy a bloodcell "
                    "model with model.copy() instead of keras.models.clone_model"
                )
        if isinstance(class_names, np.ndarray):
            class_names = class_names.tolist()
        class_names = check_class_names(class_names)  # what the saved folder must hold to load again
        if len(class_names) != n_out:
            raise ConfigError(
                f"class_names has {len(class_names)} names but the model outputs {n_out} classes; "
                "pass one name per output"
            )
        own = getattr(model, "architecture", None) if isinstance(model, ClassifierModel) else None
        if architecture is not None and own is not None and architecture != own:
            raise ConfigError(f"architecture: the model is a {own!r} model, got architecture={architecture!r}; drop "
                              "the argument (a bloodcell model carries its architecture)")
        if isinstance(model, ClassifierModel) and tuple(class_names) != model.class_names:
            model = model.copy()  # the same outputs, named by the caller; a model shared elsewhere keeps its names
            model.class_names = tuple(class_names)
        self.model = model
        self.class_names = tuple(class_names)
        self.input_size = int(model.inputs[0].shape[1])
        self.architecture = architecture or getattr(model, "architecture", None) or model.name
        self.name = name
        self.metrics = dict(metrics or {})
        self.training = dict(training or {})
        self.extra = dict(extra or {})

    def __repr__(self) -> str:
        return (
            f"Classifier(name={self.name!r}, architecture={self.architecture!r}, "
            f"input_size={self.input_size}, classes={len(self.class_names)})"
        )

    # -- inference ---------------------------------------------------------------------------
    def preprocess(self, images) -> np.ndarray:
        """Images in any accepted form, as the uint8 batch (N, S, S, 3) the model takes."""
        return load_images(images, self.input_size)

    def _forward(self, batch: np.ndarray, batch_size: int, layer: Optional[str] = None):
        """The network's probabilities of a batch; with ``layer``, also that layer's pooled features."""
        n = len(batch)
        batch = pad_batch(batch, batch_size).astype(np.float32)
        if layer is None:
            return np.asarray(self.model.predict_on_batch(batch))[:n]
        key = (id(self.model), layer)
        if getattr(self, "_inference", (None, None))[0] != key:
            self._inference = (key, inference_model(self.model, layer))
        proba, features = self._inference[1].predict_on_batch(batch)
        return np.asarray(proba)[:n], np.asarray(features, np.float64)[:n]

    def class_mask(self, classes: Optional[Sequence[str]]) -> Optional[np.ndarray]:
        """A boolean mask over ``class_names`` for ``classes`` (None: no restriction)."""
        if classes is None:
            return None
        if isinstance(classes, str):
            classes = [c.strip() for c in classes.split(",") if c.strip()]
        if not isinstance(classes, (list, tuple, set, frozenset, np.ndarray)):
            raise ConfigError(f"classes: expected a list of class names (or one comma-separated string), got "
                              f"{classes!r}; choose among {', '.join(self.class_names)}")
        given = list(classes)
        bad = [c for c in given if not isinstance(c, str)]
        if bad:
            raise ConfigError(f"classes: expected class names (strings), got {bad[0]!r}; choose among "
                              f"{', '.join(self.class_names)}")
        # Names match ignoring case, as class folders do; PBC's folder alias ("ig") names its canonical class.
        resolved = {c: class_index(c, self.class_names) for c in given}
        unknown = [c for c, i in resolved.items() if i is None]
        if unknown:
            from ._registry import did_you_mean

            raise ConfigError(f"classes: {', '.join(unknown)} {'is not a class' if len(unknown) == 1 else 'are not classes'} "
                              f"of this model; choose among {', '.join(self.class_names)}"
                              + did_you_mean(unknown[0], self.class_names))
        positions = set(resolved.values())
        if len(positions) < 2:
            raise ConfigError(f"classes: got {', '.join(given) or 'none'}; give at least two different classes "
                              "(with one, every image would be that class)")
        return np.isin(np.arange(len(self.class_names)), sorted(positions))

    def _calibration(self, key: str, tta: bool = False) -> Optional[float]:
        """``key`` of the calibration record; with ``tta``, the TTA mode's own value where it has one."""
        record = self.extra.get("calibration")
        record = record if isinstance(record, dict) else {}
        own = record.get("tta") if tta and isinstance(record.get("tta"), dict) else {}
        value = own.get(key, record.get(key))
        return None if value is None else float(value)

    @property
    def temperature(self) -> float:
        """The calibration temperature ``predict_proba`` applies (1.0: uncalibrated); see :meth:`calibrate`."""
        value = self._calibration("temperature")
        return 1.0 if value is None else value

    @property
    def temperature_outside(self) -> Optional[float]:
        """The temperature of the cells the feature check flags (None: :attr:`temperature` for all).
        The calibration images say nothing of such cells, so :func:`~bloodcell.calibration.calibrate`
        leaves them as the network gives them (1.0) rather than sharpen or soften them."""
        return self._calibration("temperature_outside") if self.feature_check is not None else None

    @property
    def feature_check(self) -> Optional[FeatureCheck]:
        """The out-of-distribution check fitted with the calibration (None: none; see :mod:`bloodcell.ood`)."""
        record = self.extra.get("calibration")
        features = record.get("features") if isinstance(record, dict) else None
        if not isinstance(features, dict):
            return None
        # Read from the record each time: an edit of extra["calibration"] takes effect at once, as it is saved.
        where = f"{self.name or 'model'}: config.json"
        return FeatureCheck.from_record(features, where).for_model(self.model, where)

    @property
    def review_below(self) -> Optional[float]:
        """The calibrated confidence under which a prediction is flagged for review (None: no
        threshold fitted; :meth:`calibrate` fits one)."""
        return self._calibration("review_below")

    def needs_review(self, proba, *, below: Optional[float] = None, tta: bool = False) -> np.ndarray:
        """Which predictions (rows of ``predict_proba``) a person should check: those less sure than
        ``below`` (default: :attr:`review_below`, or with ``tta=True``, for rows of
        ``predict_proba(tta=True)``, the threshold fitted for that mode; 0 flags none)."""
        _check_probability(below, "below")
        threshold = self._calibration("review_below", tta) if below is None else float(below)
        try:
            p = np.asarray(proba, np.float64)
        except (TypeError, ValueError):
            raise DataError(f"proba: expected predict_proba's rows (numbers), got {type(proba).__name__} that are "
                            "not numbers") from None
        if p.ndim != 2 or p.shape[1] != len(self.class_names):
            raise DataError(f"proba: expected predict_proba's rows, shape (N, {len(self.class_names)}), got {p.shape}")
        if threshold is None:
            return np.isnan(p).any(axis=1)
        return ~(p.max(axis=1) >= threshold)  # a NaN row is flagged

    def explain(self, images, *, target=None, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """Class-activation heatmaps (N, S, S) in 0..1 at the input size, and the class each shows
        (``target``: None for the predicted class, a class name, or one name per image). See
        :mod:`bloodcell.explain`."""
        from .explain import class_activation_maps

        return class_activation_maps(self, images, target=target, batch_size=batch_size)

    def calibrate(self, dataset, labels=None, *, reference=None, batch_size: int = 64, verbose: int = 1,
                  **options: Any) -> dict[str, Any]:
        """Fit the temperature on labelled images of your own (a Dataset or ``(images, labels)``
        the model did not train on): from then on ``predict_proba`` says how sure the model is on
        such images. Also fits the out-of-distribution check to ``reference`` images of the same
        domain (default: half of ``dataset``) and the review threshold. The fit is saved with the
        model; returns the ECE there before and after. See :func:`bloodcell.calibration.calibrate`
        (``options``: its other settings). ``calibrate(images, labels)`` works too."""
        if labels is not None:
            dataset = (dataset, labels)
        record = calibrate(self, dataset, reference=reference, batch_size=batch_size, verbose=verbose, **options)
        accuracy, share = record.get("accuracy"), record.get("review_share") or 0.0
        errors = 0.0 if accuracy is None else 1.0 - accuracy
        if errors > 2 * share:  # a review of that share cannot reach half of the errors
            warnings.warn(f"calibrate: the model is {1 - errors:.0%} right on these {record['images']} images, so "
                          f"flagging {share:.0%} of them for review leaves most of its errors unflagged; fine-tune it on "
                          "labelled cells of this lab first (bloodcell train DATA --init MODEL), or pass a larger "
                          "review_share" + ("; so few right may mean labels in another order than clf.class_names"
                                            if accuracy is not None and accuracy < 1 / len(self.class_names) else ""),
                          UserWarning, stacklevel=outside_stacklevel())
        return record

    def predict_proba(self, images, *, batch_size: int = 64, tta: bool = False,
                      classes: Optional[Sequence[str]] = None, verbose: int = 1,
                      calibrated: bool = True) -> np.ndarray:
        """Class probabilities, shape (N, num_classes), rows summing to 1.

        ``tta=True`` averages the probabilities over the 8 flips and 90-degree rotations.
        ``classes`` restricts the answer to those class names (the classes your data can hold):
        the other columns are 0 and the rest renormalised to sum to 1. ``calibrated=False`` gives
        the network's own probabilities, without the model's calibration temperature. Work that
        lasts more than a moment shows a progress bar on a terminal's stderr; ``verbose=0`` never does.
        """
        batch_size = check_positive_int(batch_size, "batch_size")
        mask = self.class_mask(classes)
        return self._predict(self.preprocess(images), batch_size, tta, verbose, calibrated=calibrated, mask=mask)[0]

    def _predict(self, x: np.ndarray, batch_size: int, tta: bool, verbose: int, *, calibrated: bool = True,
                 mask: Optional[np.ndarray] = None, layer: Optional[str] = None):
        """Probabilities, ``layer``'s pooled features (default: the feature check's layer; None without
        a check), the check's scores and its flags (None without a check or on another layer), in one pass."""
        check_bool(tta, "tta")
        check_bool(calibrated, "calibrated")
        check = self.feature_check
        layer = layer or (check.layer if check is not None else None)
        untrained = [] if getattr(self, "_warned_untrained", False) else self.untrained_classes()
        if untrained:
            self._warned_untrained = True
            warnings.warn(f"{self.name or 'this classifier'}: its output units for {', '.join(untrained)} are new and "
                          "not trained yet, so its answers mean nothing; train it first (bloodcell.Trainer"
                          "(weights=clf) or bloodcell train DATA --init FOLDER)", UserWarning,
                          stacklevel=outside_stacklevel())
        raw, features = self._run(x, batch_size, tta, verbose, layer)
        scores = outside = None
        if check is not None and layer == check.layer:
            scores = check.scores(features) if len(x) else np.zeros(0)
            outside = scores > check.threshold
        return self._finish(raw, calibrated, mask, outside, tta), features, scores, outside

    def _run(self, x: np.ndarray, batch_size: int, tta: bool, verbose: int, layer: Optional[str] = None):
        """The network's mean probabilities over the views, and ``layer``'s pooled features of the first view."""
        views = range(8) if tta else (0,)
        out = np.zeros((len(x), len(self.class_names)), np.float64)
        features = None
        starts = progress(range(0, len(x), batch_size), verbose=verbose, desc="predict", unit="batch")
        for start in starts:
            chunk = x[start : start + batch_size]
            rows = slice(start, start + len(chunk))
            for k in views:
                view = np.ascontiguousarray(_dihedral(chunk, k))
                if k == 0 and layer is not None:
                    proba, f = self._forward(view, batch_size, layer)
                    if features is None:
                        features = np.zeros((len(x), f.shape[1]), np.float64)
                    features[rows] = f
                else:
                    proba = self._forward(view, batch_size)
                out[rows] += proba
        out /= len(views)
        return out, features

    def _finish(self, raw: np.ndarray, calibrated: bool, mask: Optional[np.ndarray],
                outside: Optional[np.ndarray] = None, tta: bool = False) -> np.ndarray:
        temperature = self._calibration("temperature", tta) or 1.0
        out = (apply_calibration(raw, temperature, outside=outside, temperature_outside=self.temperature_outside)
               if calibrated else raw.copy())
        if mask is not None:
            out[:, ~mask] = 0.0
            # a network sure of an excluded class can leave no probability (float32) on the allowed ones
            out[out.sum(axis=1) <= 0] = mask / mask.sum()
        return (out / np.maximum(out.sum(axis=1, keepdims=True), 1e-30)).astype(np.float32)

    def predict_with_features(self, images, *, layer: Optional[str] = None, batch_size: int = 64,
                              calibrated: bool = True, verbose: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities (as :meth:`predict_proba`) and, from the same forward pass, the spatial mean of
        ``layer``'s output (default: the layer the out-of-distribution check reads, :mod:`bloodcell.ood`)."""
        batch_size = check_positive_int(batch_size, "batch_size")
        check = self.feature_check
        layer = layer or (check.layer if check else feature_layer(self.model))
        x = self.preprocess(images)
        proba, features, _, _ = self._predict(x, batch_size, False, verbose, calibrated=calibrated, layer=layer)
        if check is not None and layer != check.layer and calibrated:
            # the outliers' temperature needs the check's own layer: a second pass, for this case only
            proba = self._predict(x, batch_size, False, 0, calibrated=True)[0]
        return proba, (np.zeros((0, 0)) if features is None else features)

    def predict_checked(self, images, *, batch_size: int = 64, tta: bool = False,
                        classes: Optional[Sequence[str]] = None, review_below: Optional[float] = None,
                        outliers: bool = True, verbose: int = 1) -> CheckedPredictions:
        """Probabilities (as :meth:`predict_proba`) with the review flag and the outlier check.

        A model with a fitted feature check (:attr:`feature_check`) scores each image from its own
        features in the same forward pass; a model without one uses the colour-statistics non-cell
        test (:func:`bloodcell.cleaning.find_outliers`). ``review`` flags the predictions less sure
        than ``review_below`` (default :attr:`review_below`) and the outliers; ``outliers=False``
        skips the outlier check. Greyscale images are always flagged (and counted as outliers when
        the check runs): the models tell classes by the stain's colours.
        """
        batch_size = check_positive_int(batch_size, "batch_size")
        _check_probability(review_below, "review_below")
        mask = self.class_mask(classes)
        x = self.preprocess(images)
        proba, _, scores, outlier = self._predict(x, batch_size, tta, verbose, mask=mask)
        if not outliers:
            scores = outlier = None
        elif outlier is None:
            from .outliers import find_outliers

            outlier = find_outliers(x)
        grey = colourless(x)
        if outlier is not None:
            outlier = outlier | grey
        review = self.needs_review(proba, below=review_below, tta=tta) | (grey if outlier is None else outlier)
        return CheckedPredictions(proba, review, outlier, scores)

    def predict(self, images, *, batch_size: int = 64, tta: bool = False,
                classes: Optional[Sequence[str]] = None, verbose: int = 1) -> list[str]:
        """The most probable class name of each image (among ``classes``, if given)."""
        proba = self.predict_proba(images, batch_size=batch_size, tta=tta, classes=classes, verbose=verbose)
        return [self.class_names[i] for i in proba.argmax(axis=1)]

    def predict_files(
        self,
        paths: Sequence,
        *,
        batch_size: int = 64,
        workers: Optional[int] = None,
        tta: bool = False,
        flag_outliers: bool = True,
        classes: Optional[Sequence[str]] = None,
        review_below: Optional[float] = None,
    ) -> Iterator[FilePrediction]:
        """Classify image files (a path, or a sequence of them) in batches, decoding ahead in threads
        while the model runs.

        Yields one :class:`FilePrediction` per path, in input order, holding at most a few
        batches in memory. With ``flag_outliers`` (the default, as ``bloodcell predict``), images
        unlike the model's training images are marked (:meth:`predict_checked`; with a feature
        check, in the same forward pass); ``False`` skips the check. Each prediction's ``review``
        says whether a person should check it (less sure than ``review_below``, or an outlier).
        """
        batch_size = check_positive_int(batch_size, "batch_size")
        _check_probability(review_below, "review_below")
        self.class_mask(classes)  # bad names fail before any file is read
        workers = min(8, (os.cpu_count() or 1) + 2) if workers is None else check_positive_int(workers, "workers")
        paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)  # an iterator is read once
        for p in paths:
            if not isinstance(p, (str, os.PathLike)):
                raise DataError(f"paths: expected image file paths (str or Path), got a {type(p).__name__}; "
                                "classify images in memory with predict_proba")
        # checked above, at the call; the generator below runs from the first next()
        return self._predict_files([Path(p) for p in paths], batch_size, workers, tta, flag_outliers, classes,
                                   review_below)

    def _predict_files(self, paths: list[Path], batch_size: int, workers: int, tta: bool, flag_outliers: bool,
                       classes, review_below) -> Iterator[FilePrediction]:
        def read(p: Path):
            try:
                return load_image(p, self.input_size), None
            except ImageReadError as exc:
                return None, str(exc)

        with ThreadPoolExecutor(workers) as pool:
            pending: deque = deque()
            it = iter(paths)
            for p in itertools.islice(it, 2 * batch_size):
                pending.append((p, pool.submit(read, p)))
            while pending:
                block = [pending.popleft() for _ in range(min(batch_size, len(pending)))]
                for p in itertools.islice(it, len(block)):
                    pending.append((p, pool.submit(read, p)))
                results = [(p, *f.result()) for p, f in block]
                good = [img for _, img, _ in results if img is not None]
                if good:
                    checked = self.predict_checked(np.stack(good), batch_size=batch_size, tta=tta, classes=classes,
                                                   review_below=review_below, outliers=flag_outliers, verbose=0)
                    review = iter(checked.review)
                    proba = iter(checked.probabilities)
                    outlier = iter(checked.outlier if checked.outlier is not None else [None] * len(good))
                for p, img, err in results:
                    if img is None:
                        yield FilePrediction(p, error=err)
                    else:
                        flag, row = next(outlier), next(proba)
                        yield FilePrediction(p, row, outlier=None if flag is None else bool(flag),
                                             review=bool(next(review) or flag), label=self.class_names[int(row.argmax())])

    def export(self, out=None, *, format: str = "onnx", **kwargs) -> Path:
        """Export for serving: ``"onnx"``, ``"litert"`` or ``"saved_model"`` (uint8 input, same probabilities).

        See :func:`bloodcell.export.export`.
        """
        from .export import export

        untrained = self.untrained_classes()
        if untrained:
            warnings.warn(f"{self.name or 'this classifier'}: exporting output units for {', '.join(untrained)} that "
                          "were never trained; train them first (bloodcell.Trainer(weights=clf))", UserWarning,
                          stacklevel=outside_stacklevel())
        return export(self, out, format=format, **kwargs)

    def untrained_classes(self) -> list[str]:
        """Classes whose output units no training has run on (a new head's new classes); [] normally."""
        return untrained_classes({"class_names": list(self.class_names), "training": self.training})

    # -- persistence -------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The ``config.json`` content describing this classifier."""
        model = as_classifier_model(self.model)
        return make_config(model, name=self.name, metrics=self.metrics, training=self.training, extra=self.extra)

    def save_pretrained(self, folder, *, card: bool = True) -> Path:
        """Write ``config.json``, the weights and a model card (README.md) into ``folder``.

        The folder is replaced as a whole (see :func:`bloodcell.folder.write_folder`): a save
        killed at any point leaves the previous model or the new one, never a mix. Other files
        in ``folder`` are kept; a README.md that is not a model card is never replaced.
        """
        return write_folder(folder, as_classifier_model(self.model), self.config(), card=card)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        private: bool = False,
        token: Optional[str] = None,
        revision: Optional[str] = None,
        commit_message: Optional[str] = None,
    ) -> str:
        """Save this classifier and upload it to the Hugging Face Hub repo ``repo_id``."""
        from .hub import check_push_target, push_folder

        check_push_target(repo_id, revision)  # before the model is saved under the repo's name
        with tempfile.TemporaryDirectory(prefix="bloodcell-push-") as tmp:
            # push_folder names the repo in the config and card; the folder's name titles an unnamed model
            folder = self.save_pretrained(Path(tmp) / repo_id.rsplit("/", 1)[-1])
            return push_folder(
                folder, repo_id, private=private, token=token, revision=revision, commit_message=commit_message
            )


def _check_probability(value, name: str) -> None:
    if value is not None and (not is_real(value) or not 0.0 <= value <= 1.0):
        raise ConfigError(f"{name}: expected a probability in [0, 1], got {value!r}")


def load_folder(folder, *, sha256: Optional[str] = None) -> Classifier:
    """Load a classifier from a folder written by :meth:`Classifier.save_pretrained`.

    Only weights are read from disk (no code, no pickles): the architecture is rebuilt from the
    registry by name. With ``sha256``, the weights file must have that hash.
    """
    model, cfg = load_model(folder, sha256=sha256)
    # hub_source names where this very folder is published; a copy saved elsewhere is not there.
    known = {"format", "format_version", "name", "architecture", "build", "input_size", "class_names",
             "preprocessing", "weights_file", "weights_sha256", "metrics", "training",
             "bloodcell_version", "keras_version", "hub_source"}
    return Classifier(
        model,
        name=cfg.get("name"),
        metrics=cfg.get("metrics"),
        training=cfg.get("training"),
        extra={k: v for k, v in cfg.items() if k not in known},
    )


def load_classifier(source=None, *, token: Optional[str] = None,
                    class_names: Optional[Sequence[str]] = None) -> Classifier:
    """Load a classifier from a local folder, ``hf://owner/repo[@revision]`` or a zoo name.

    ``None`` gives the default model, which ships inside the package and works offline. A zoo
    name always means the zoo's entry; a folder that bears one is loaded as ``./name``.
    ``class_names`` gives the model a new head for those classes (as timm's ``num_classes`` and
    keras-hub's ``from_preset(num_classes=...)``): the backbone keeps its trained weights, the
    output units of classes the model already has keep theirs, the others are new; train it with
    :class:`~bloodcell.Trainer` (``Trainer(weights=clf)``) before trusting its answers.
    """
    if class_names is not None:
        class_names = check_class_names(class_names)
    folder, entry = resolve(source, token=token, default=DEFAULT_MODEL)
    clf = load_folder(folder, sha256=entry.sha256 if entry is not None else None)
    if entry is not None:
        check_entry(entry, clf.config())
    if class_names is None or tuple(class_names) == clf.class_names:
        return clf
    parent = parent_record(clf.name or str(source), clf.class_names, clf.training)
    changes = class_changes(clf.class_names, class_names)
    # The same classes in another order or spelling: the same network, so its calibration (temperature,
    # feature check, review threshold: none depends on the order of the outputs) and figures still hold.
    same = not any(changes.values()) and len(class_names) == len(clf.class_names)
    kept = {k: v for k, v in clf.extra.items() if k in ("calibration", "eval_data", "robustness")} if same else {}
    new = Classifier(as_classifier_model(clf.model).with_classes(class_names), name=None,
                     metrics=dict(clf.metrics) if same else None, extra=kept,
                     training={"init": f"bloodcell model {parent['source']}", "init_from": {**parent, **changes}})
    return new
