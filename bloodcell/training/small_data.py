"""Training on a few labelled images a class: the settings that work there, and cross-validation.

With a few images a class a validation split would hold one or two images of each, too few to
stop early on or to measure: :data:`SMALL_DATA_SETTINGS` train the whole network for a fixed
number of epochs instead (batch-norm statistics adapt to the new images, which measured better
than a frozen backbone when the images come from another lab), and :func:`cross_validate` gives
the honest figure: every image is classified by a model trained without it. Those predictions also
calibrate the model trained on all the images (as scikit-learn's ``CalibratedClassifierCV`` with
``ensemble=False``): it has no held-out images of its own.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Callable, NamedTuple, Optional

import numpy as np

from ..data import SPLIT_SEED, Dataset, kfold

if TYPE_CHECKING:
    from ..evaluation import Report

#: A data set whose smallest class has fewer images than this is "small".
SMALL_DATA = 50
#: Settings for small data sets (fields of TrainConfig); a user's own settings win.
SMALL_DATA_SETTINGS = dict(head_epochs=40, finetune_epochs=0, optimizer="adam", learning_rates=(3e-4, 3e-5),
                           lr_schedule="cosine", batch_size=16, freeze_backbone=False, patience=None)
#: Most folds of the cross-validation (fewer when a class has fewer images).
MAX_FOLDS = 3
#: Models ``bloodcell train`` trains on all of a small data set from a bloodcell model (one seed each)
#: and averages into the one it saves: the average of fine-tunes from one start is a model of its own
#: (a model soup, Wortsman et al., ICML 2022); ``benchmarks/bench_outside.py`` measures it against one.
SOUP_MODELS = 3


def is_small(data: Dataset) -> bool:
    """Whether ``data``'s smallest class (of those with images) has fewer than :data:`SMALL_DATA` images."""
    counts = [c for c in data.class_counts().values() if c]
    return bool(counts) and min(counts) < SMALL_DATA


def folds_for(data: Dataset) -> int:
    """The number of cross-validation folds for ``data`` (0: too few images of a class to hold one out).
    Copies of one image (or its mirror) count once: :func:`~bloodcell.data.kfold` keeps them in one fold."""
    from ..cleaning import find_duplicates

    owner = np.arange(len(data))
    for group in find_duplicates(data.images, near=True):
        owner[list(group)] = min(group)
    labels = np.asarray(data.labels)
    smallest = min(len(set(owner[labels == c].tolist())) for c in np.unique(labels).tolist())
    return min(MAX_FOLDS, smallest) if smallest >= 2 else 0


class CrossValidated(NamedTuple):
    """The predictions of :func:`cross_validated_predictions`, fold after fold."""

    proba: np.ndarray  # the network's own probabilities (uncalibrated) of every image, from the model trained without it
    labels: np.ndarray
    proba_tta: Optional[np.ndarray] = None  # the same, averaged over predict_proba(tta=True)'s 8 views
    scores: Optional[np.ndarray] = None  # each image's out-of-distribution score under that model's check


def cross_validated_predictions(train_one: Callable[[Dataset], object], data: Dataset, folds: int, *,
                                 seed: int = SPLIT_SEED, tta: bool = False, scores: bool = False) -> CrossValidated:
    """Train ``folds`` models, each with ``train_one(training part)`` (which returns a Classifier) on
    all folds but one, and give every image's predictions from the model that did not train on it.
    With ``tta``, also the probabilities of ``predict_proba(tta=True)``; with ``scores`` (and a backbone
    whose layers the check can read, :func:`bloodcell.ood.tappable_layer`), each image's score under the out-of-distribution check (:mod:`bloodcell.ood`) of its model's features of the
    images that model trained on: held-out scores, on which :func:`feature_check_for` sets the
    threshold of the model trained on all of them.

    Folds are stratified and keep every group of duplicate images together (:func:`bloodcell.data.kfold`).
    """
    from ..ood import fit_gaussian, tappable_layer

    parts = kfold(data, folds, seed=seed)
    probas, labels, views, held_scores = [], [], [], []
    for held in parts:
        if not len(held):
            continue
        rest = [p for p in parts if p is not held and len(p)]
        training = Dataset(np.concatenate([p.images for p in rest]), np.concatenate([p.labels for p in rest]),
                           data.class_names)
        clf = train_one(training)
        layer = tappable_layer(clf.model) if scores else None
        if layer is not None:  # one pass over the held-out and the training images
            both = np.concatenate([held.images, training.images])
            proba, features = clf.predict_with_features(both, layer=layer, calibrated=False, verbose=0)
            proba, (features, own) = proba[:len(held)], np.split(features, [len(held)])
            held_scores.append(fit_gaussian(own, layer=layer).scores(features))
        else:
            proba = clf.predict_proba(held.images, calibrated=False, verbose=0)
        probas.append(proba)
        labels.append(np.asarray(held.labels))
        if tta:
            views.append(clf.predict_proba(held.images, tta=True, calibrated=False, verbose=0))
    return CrossValidated(np.concatenate(probas), np.concatenate(labels), np.concatenate(views) if tta else None,
                          np.concatenate(held_scores) if held_scores else None)


def feature_check_for(clf, data: Dataset, cv_scores, folds: int):
    """The out-of-distribution check of ``clf``, trained on all of ``data``: the Gaussian of its features
    of those images, with the threshold that the share of them held out in the cross-validation
    exceeds (``cv_scores``, as the temperature is fitted on the cross-validated probabilities). None
    with fewer images than the check needs."""
    from ..calibration import MIN_FIT_IMAGES
    from ..ood import MIN_THRESHOLD_IMAGES, fit_gaussian, layer_index, tappable_layer, threshold_from_scores

    layer = tappable_layer(clf.model)
    if len(data) < MIN_FIT_IMAGES or cv_scores is None or len(cv_scores) < MIN_THRESHOLD_IMAGES or layer is None:
        return None
    features = clf.predict_with_features(data.images, layer=layer, verbose=0)[1]
    check = fit_gaussian(features, layer=layer, index=layer_index(clf.model, layer),
                         fitted_on=f"the {len(data)} images it was trained on")
    threshold, lognormal = threshold_from_scores(cv_scores, check.share)
    return replace(check, threshold=threshold, fitted_on=check.fitted_on + (
        f"; threshold on their {folds}-fold cross-validated scores (each from a model trained without it)"
        + (", from a log-normal fitted to them" if lognormal else "")))


def cross_validate(train_one: Callable[[Dataset], object], data: Dataset, folds: int, *, seed: int = SPLIT_SEED) -> "Report":
    """The report of :func:`cross_validated_predictions`: every image classified by a model trained without it."""
    proba, labels, _, _ = cross_validated_predictions(train_one, data, folds, seed=seed)
    from ..evaluation import metrics_from_predictions  # imports Keras: not at the command line's parsing

    return metrics_from_predictions(labels, proba.argmax(axis=1), len(data.class_names), class_names=data.class_names)
