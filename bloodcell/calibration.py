"""Calibrated probabilities: temperature scaling, and how well probabilities match accuracy.

A classifier's probability for its answer should be how often such answers are right. Label
smoothing, class weights and another lab's images all move the two apart. Temperature scaling
(Guo et al., "On calibration of modern neural networks", ICML 2017) fits one number ``T`` on
labelled images the model did not train on: the calibrated probabilities are
``softmax(log p / T)``, which keeps every image's ranking of the classes (and so the accuracy)
and changes only how sure the model says it is. One parameter cannot overfit a validation split
of a few hundred images, which is why it is the default post-hoc calibrator of the field.
``benchmarks/bench_calibration.py`` measures it against no calibration on the default's held-out
split and on another lab's cells.

The metrics: expected calibration error (ECE: the mean gap between confidence and accuracy over
15 equal-width confidence bins, weighted by the bins' share of images), negative log-likelihood
and Brier score.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Optional

import numpy as np

from ._checks import check_bool, check_positive_int, is_real
from ._fs import save_figure
from ._labelled import labelled_images
from ._util import outside_stacklevel
from .card import EDGE_OF_RANGE, TEMPERATURE_KEPT
from .errors import ConfigError, DataError
from .ood import FEATURE_SHARE, fit_feature_check, layer_index, tappable_layer

__all__ = ["REVIEW_SHARE", "TEMPERATURE_OUTSIDE", "apply_calibration", "apply_temperature", "calibrate", "calibration_metrics", "fit_temperature",
           "plot_reliability", "plot_risk_coverage", "review_summary", "review_threshold", "risk_coverage"]

#: Share of the calibration images whose confidence falls under the default review threshold.
REVIEW_SHARE = 0.05
#: Confidence bins of the expected calibration error.
ECE_BINS = 15
#: The temperature of the cells the out-of-distribution check flags: none (the network's own
#: probabilities), since the calibration images say nothing of such cells.
TEMPERATURE_OUTSIDE = 1.0
#: Fewer calibration images than twice this fit no out-of-distribution check (without reference images).
MIN_FIT_IMAGES = 20
#: The temperatures a fit searches (log-spaced between these).
_T_RANGE = (0.05, 20.0)
_EPS = 1e-12


def _probabilities(proba, *, nan_rows: bool = False) -> np.ndarray:
    """``proba`` as float64 rows of probabilities (N, classes), or a one-line error (logits are the usual mistake).
    ``nan_rows``: rows holding NaN (a diverged network's answers) pass, to be flagged for review."""
    try:
        p = np.asarray(proba, np.float64)
    except (TypeError, ValueError):
        raise DataError(f"proba: expected probabilities (N, classes), got {type(proba).__name__} that is not numbers") from None
    if p.ndim != 2:
        raise DataError(f"proba: expected probabilities of shape (N, classes), got shape {p.shape}")
    rows = p[~np.isnan(p).any(axis=1)] if nan_rows else p
    if rows.size and (not np.isfinite(rows).all() or rows.min() < -1e-6 or rows.max() > 1 + 1e-6
                      or np.abs(rows.sum(axis=1) - 1).max() > 1e-3):
        raise DataError(f"proba: expected probabilities (rows of predict_proba: values in [0, 1] summing to 1), got values "
                        f"{np.nanmin(p):.3g}..{np.nanmax(p):.3g}; apply a softmax to logits first")
    return p


def _check(proba, labels) -> tuple[np.ndarray, np.ndarray]:
    p = _probabilities(proba)
    y = np.asarray(labels).reshape(-1)
    if len(p) != len(y) or not len(p):
        raise DataError(f"expected probabilities (N, classes) and N labels with N >= 1, got shapes {p.shape} and {y.shape}")
    if y.dtype.kind not in "iu" or y.min() < 0 or y.max() >= p.shape[1]:
        raise DataError(f"labels: expected class ids 0..{p.shape[1] - 1}, got {y.dtype} {y.min()}..{y.max()}")
    return p, y.astype(np.int64)


def apply_temperature(proba, temperature: float) -> np.ndarray:
    """``softmax(log(proba) / temperature)``, row by row (temperature 1 returns ``proba``)."""
    if not is_real(temperature) or not np.isfinite(temperature) or temperature <= 0:
        raise ConfigError(f"temperature: expected a finite number above 0 (below 1 sharpens, above 1 softens), got "
                          f"{temperature!r}")
    p = _probabilities(proba, nan_rows=True)
    if temperature == 1.0:
        return p
    z = np.log(np.maximum(p, _EPS)) / float(temperature)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def apply_calibration(proba, temperature: float, *, outside=None,
                      temperature_outside: Optional[float] = None) -> np.ndarray:
    """``proba`` at ``temperature`` (a new array), and the rows where ``outside`` is True at
    ``temperature_outside`` (None: ``temperature`` for every row)."""
    out = np.array(apply_temperature(proba, temperature), np.float64)
    if outside is not None and np.shape(outside) != (len(out),):
        raise DataError(f"outside: expected one flag per row of proba ({len(out)}), got shape {np.shape(outside)}")
    if outside is not None and temperature_outside is not None and np.any(outside):
        outside = np.asarray(outside, bool)
        out[outside] = apply_temperature(np.asarray(proba, np.float64)[outside], temperature_outside)
    return out


def _nll(p: np.ndarray, y: np.ndarray) -> float:
    return float(-np.log(np.maximum(p[np.arange(len(y)), y], _EPS)).mean())


def fit_temperature(proba, labels) -> float:
    """The temperature that minimises the negative log-likelihood of ``labels`` under ``proba``.

    The NLL of ``softmax(z / T)`` is convex in ``1 / T``, so a golden-section search over
    ``log T`` finds its minimum.
    """
    p, y = _check(proba, labels)
    logp = np.log(np.maximum(p, _EPS))
    lo, hi = np.log(_T_RANGE[0]), np.log(_T_RANGE[1])
    ratio = (np.sqrt(5.0) - 1.0) / 2.0

    def loss(log_t: float) -> float:
        z = logp / np.exp(log_t)
        z -= z.max(axis=1, keepdims=True)
        return float((np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]).mean())

    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = loss(a), loss(b)
    for _ in range(80):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = loss(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = loss(b)
    return float(np.exp((lo + hi) / 2.0))


def _bins(p: np.ndarray, y: np.ndarray, bins: int):
    bins = check_positive_int(bins, "bins")
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    index = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    count = np.bincount(index, minlength=bins).astype(np.float64)
    conf_sum = np.bincount(index, confidence, minlength=bins)
    acc_sum = np.bincount(index, correct, minlength=bins)
    return count, conf_sum, acc_sum


def calibration_metrics(proba, labels, *, bins: int = ECE_BINS) -> dict[str, float]:
    """``ece``, ``nll``, ``brier``, ``mean_confidence`` and ``accuracy`` of probabilities against labels."""
    p, y = _check(proba, labels)
    count, conf_sum, acc_sum = _bins(p, y, bins)
    ece = float(np.abs(conf_sum - acc_sum).sum() / len(y))
    onehot = np.zeros_like(p)
    onehot[np.arange(len(y)), y] = 1.0
    return {
        "ece": ece,
        "nll": _nll(p, y),
        "brier": float(((p - onehot) ** 2).sum(axis=1).mean()),
        "mean_confidence": float(p.max(axis=1).mean()),
        "accuracy": float((p.argmax(axis=1) == y).mean()),
    }


def plot_reliability(path, curves: dict[str, tuple[Any, Any]], *, bins: int = ECE_BINS,
                     title: Optional[str] = None) -> None:
    """A reliability diagram: accuracy against confidence per bin, one line per ``name -> (proba, labels)``."""
    from ._util import new_figure

    fig = new_figure((4.8, 4.6))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="perfectly calibrated")
    for name, (proba, labels) in curves.items():
        p, y = _check(proba, labels)
        count, conf_sum, acc_sum = _bins(p, y, bins)
        used = count > 0
        ece = calibration_metrics(p, y, bins=bins)["ece"]
        ax.plot(conf_sum[used] / count[used], acc_sum[used] / count[used], marker="o", markersize=3,
                label=f"{name} (ECE {ece:.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (mean of the bin)")
    ax.set_ylabel("accuracy (of the bin)")
    ax.legend(loc="lower right", fontsize=7)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def review_threshold(proba, share: float = REVIEW_SHARE, *, flagged=None) -> float:
    """The confidence under which ``share`` of these (calibrated) predictions fall: predictions
    less sure than this are flagged for review. ``flagged``: a mask of predictions flagged anyway
    (outliers), which count towards ``share`` up to half of it: the threshold always flags at
    least ``share / 2`` of the others, so that a few outliers among a few calibration images do
    not leave a threshold that flags nothing."""
    p = _probabilities(proba)
    if not is_real(share) or not 0.0 <= share < 1.0:
        raise DataError(f"share: expected a fraction in [0, 1) (0.05 flags 5%), got {share!r}")
    confidence = p.max(axis=1)
    if flagged is not None and np.shape(flagged) != (len(p),):
        raise DataError(f"flagged: expected one flag per prediction ({len(p)}), got shape {np.shape(flagged)}")
    if flagged is not None and np.any(flagged):
        flagged = np.asarray(flagged, bool)
        rest = confidence[~flagged]
        if not len(rest):
            return 0.0
        wanted = max((share * len(confidence) - flagged.sum()) / len(rest), share / 2)
        return _flagging(rest, wanted) if share > 0 else 0.0
    return _flagging(confidence, share) if share > 0 else 0.0


def _flagging(confidence: np.ndarray, share: float) -> float:
    """The threshold under which the ``ceil(share * N)`` least sure of ``confidence`` fall (ties with the last
    of them too: never fewer than the share, as interpolating between tied values would; except ties at
    1, which no threshold in [0, 1] flags, so only the cells less sure than 1 are)."""
    k = min(len(confidence), int(np.ceil(share * len(confidence) - 1e-9)))
    if not k:
        return 0.0
    ordered = np.sort(confidence)
    above = ordered[ordered > ordered[k - 1]]
    # halfway to the next value up: float32 probabilities of the same cells fall on the same side
    if len(above):
        return float((ordered[k - 1] + above[0]) / 2)
    return min(1.0, float(np.nextafter(ordered[k - 1], np.inf)))


def _flagged(proba, threshold: float, outliers=None) -> np.ndarray:
    """True where a (calibrated) prediction is less sure than ``threshold`` or is an outlier."""
    flags = np.asarray(proba).max(axis=1) < threshold
    return flags | np.asarray(outliers, bool) if outliers is not None else flags


def review_summary(proba, labels, threshold: float, *, outliers=None) -> dict[str, Optional[float]]:
    """With predictions less sure than ``threshold`` flagged, and the ``outliers`` (a mask, if
    given): the ``threshold``, the share ``flagged`` and the ``accuracy_unflagged`` of the others
    (None when all are flagged)."""
    p, y = _check(proba, labels)
    if not is_real(threshold) or not 0.0 <= threshold <= 1.0:
        raise DataError(f"threshold: expected a confidence in [0, 1] (predictions less sure are flagged), got "
                        f"{threshold!r}")
    if outliers is not None and np.shape(outliers) != (len(p),):
        raise DataError(f"outliers: expected one flag per prediction ({len(p)}), got shape {np.shape(outliers)}")
    kept = ~_flagged(p, threshold, outliers)
    return {"threshold": float(threshold), "flagged": float(1.0 - kept.mean()),
            **({"outliers": float(np.mean(outliers))} if outliers is not None else {}),
            "accuracy_unflagged": float((p.argmax(axis=1) == y)[kept].mean()) if kept.any() else None}


def risk_coverage(proba, labels, *, points: int = 21) -> list[dict[str, float]]:
    """Accuracy of the predictions kept against the share flagged, flagging the least confident first:
    ``[{"flagged", "accuracy", "threshold"}]`` aiming at flagged shares 0, 0.5/(points-1), ... up to one
    half. Predictions of equal confidence are flagged together (as ``needs_review`` flags them, below the
    threshold), so ``flagged`` is the share that ``threshold`` flags."""
    points = check_positive_int(points, "points", minimum=2)
    p, y = _check(proba, labels)
    confidence = p.max(axis=1)
    correct = p.argmax(axis=1) == y
    ordered = np.sort(confidence)
    curve = []
    for share in np.linspace(0.0, 0.5, points):
        cut = int(round(share * len(y)))
        # needs_review flags confidence < threshold: the least confident cell kept is the threshold, and its ties stay
        threshold = float(ordered[cut]) if cut else 0.0
        kept = confidence >= threshold
        curve.append({"flagged": float((~kept).mean()), "accuracy": float(correct[kept].mean()),
                      "threshold": threshold})
    return curve


def plot_risk_coverage(path, curves: dict[str, list[dict[str, float]]], *, title: Optional[str] = None,
                       points: Optional[dict[str, tuple[float, Optional[float]]]] = None) -> None:
    """Accuracy of the unflagged cells against the share flagged, one line per ``name -> risk_coverage(...)``;
    ``points``: operating points to mark, ``name -> (flagged, accuracy of the others)`` (a review
    threshold's, which flags the outliers too and so may lie off the curves)."""
    from ._util import new_figure

    fig = new_figure((4.8, 4.0))
    ax = fig.add_subplot()
    for name, curve in curves.items():
        ax.plot([100 * c["flagged"] for c in curve], [100 * c["accuracy"] for c in curve], marker="o", markersize=3,
                label=name)
    for name, (flagged, accuracy) in (points or {}).items():
        if accuracy is not None:  # None: every cell flagged
            ax.plot([100 * flagged], [100 * accuracy], marker="*", markersize=11, linestyle="none", label=name)
    ax.set_xlabel("cells flagged for review (%)")
    ax.set_ylabel("accuracy of the other cells (%)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=7)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def _fit_mode(raw: np.ndarray, labels: np.ndarray, outliers, fallback: float, review_share: float) -> dict[str, Any]:
    """One prediction mode's temperature (``fallback`` when every answer is right: the NLL would
    fall as T -> 0), the ECE before and after it, and its review threshold."""
    kept = bool((raw.argmax(axis=1) == labels).all())
    temperature = fallback if kept else fit_temperature(raw, labels)
    calibrated = apply_calibration(raw, temperature, outside=outliers,
                                   temperature_outside=TEMPERATURE_OUTSIDE if outliers is not None else None)
    below = review_threshold(calibrated, review_share, flagged=outliers)
    return {"temperature": temperature, "kept": kept,
            "edge": not kept and not _T_RANGE[0] * 1.01 < temperature < _T_RANGE[1] / 1.01,
            "ece_before": calibration_metrics(raw, labels)["ece"], "ece_after": calibration_metrics(calibrated, labels)["ece"],
            "review_below": below, "review_flagged": float(np.mean(_flagged(calibrated, below, outliers)))}


def _check_review_share(share) -> None:
    if not is_real(share) or not 0.0 <= share < 1.0:
        raise ConfigError(f"review_share: expected a fraction in [0, 1) (0.05 flags 5% of the cells), got {share!r}")


def _check_reference(reference) -> None:
    if reference is None:
        return
    if isinstance(reference, (str, bytes, os.PathLike)):
        raise ConfigError(f"reference: expected images or a list of image paths, got the single path {reference!r}; "
                          "list a folder's images with bloodcell.imageio.find_image_files([folder])")
    if isinstance(reference, tuple) or hasattr(reference, "labels"):
        raise ConfigError(f"reference: expected images (uint8 (N, H, W, 3) or paths), got a "
                          f"{type(reference).__name__}; pass its .images")
    if len(reference) < MIN_FIT_IMAGES:
        raise ConfigError(f"reference: {len(reference)} images; the check's Gaussian needs at least {MIN_FIT_IMAGES} "
                          "images of the training domain; give more, or leave reference out")


def _fit_check(classifier, layer: str, features: np.ndarray, count: int, reference, reference_description,
               feature_share: float, batch_size: int):
    """The out-of-distribution check :func:`calibrate` fits (None: none), from the ``features`` of its
    ``count`` calibration images and the ``reference`` images."""
    where = {"layer": layer, "index": layer_index(classifier.model, layer)}
    if reference is not None:
        _, ref_features = classifier.predict_with_features(reference, layer=layer, batch_size=batch_size, verbose=0)
        fitted_on = reference_description or f"{len(ref_features)} reference images"
        if count >= MIN_FIT_IMAGES:
            return fit_feature_check(ref_features, features, **where, share=feature_share, fitted_on=fitted_on)
        # a threshold from a few scores is about their largest: half of the reference joins them
        order = np.random.default_rng(0).permutation(len(ref_features))
        half = len(ref_features) // 2
        return fit_feature_check(ref_features[order[:half]], np.concatenate([ref_features[order[half:]], features]),
                                 **where, share=feature_share,
                                 fitted_on=f"half of {fitted_on}; threshold on the other half and the "
                                           f"{count} calibration images")
    if count >= 2 * MIN_FIT_IMAGES:
        order = np.random.default_rng(0).permutation(count)
        half = count // 2
        return fit_feature_check(features[order[:half]], features[order[half:]], **where, share=feature_share,
                                 fitted_on=f"half of the calibration images ({half})")
    own = getattr(classifier, "feature_check", None)
    return own if own is not None and own.layer == layer else None  # too few images to refit it: the model's own stays


def calibrate(classifier, dataset, *, batch_size: int = 64, description: Optional[str] = None,
              review_share: float = REVIEW_SHARE, reference=None, reference_description: Optional[str] = None,
              feature_share: float = FEATURE_SHARE, tta: bool = True, verbose: int = 1) -> dict[str, Any]:
    """Fit ``classifier``'s temperature on ``dataset`` (a Dataset or ``(images, labels)`` it did not
    train on) and its out-of-distribution check (:mod:`bloodcell.ood`), and record them in
    ``classifier.extra["calibration"]`` (saved in ``config.json``) with the review threshold.

    The check's Gaussian is fitted to the features of ``reference`` (uint8 images of the training
    domain, e.g. training images; None: half of ``dataset``) and its threshold is the score that
    ``feature_share`` of ``dataset``'s images (the other half) exceed. With no ``reference`` and
    too few images to fit one, the classifier's own check is kept. The review threshold is the
    calibrated confidence under which, with the outliers, ``review_share`` of ``dataset`` falls.
    With ``tta`` (8 more passes over ``dataset``) the test-time-augmentation mode
    (``predict_proba(tta=True)``), whose averaged probabilities are softer, gets a temperature and
    threshold of its own (``record["tta"]``); without one it uses the single view's.

    Returns the record: the temperature, the thresholds, where they were fitted, and the ECE there
    of the raw probabilities (``ece_before``), with the calibration the classifier had
    (``ece_previous``, when it had one) and with the new one (``ece_after``).
    """
    _check_review_share(review_share)
    check_bool(tta, "tta")
    _check_reference(reference)
    images, labels, _ = labelled_images(classifier, dataset)
    layer = tappable_layer(classifier.model)
    if layer is None:
        warnings.warn(f"calibrate: the {classifier.architecture} backbone is not a functional model, so no "
                      "out-of-distribution check is fitted from its features (the colour test of non-cells stands "
                      "in); build it as keras.Model(inputs, outputs) for one", UserWarning,
                      stacklevel=outside_stacklevel())
        raw = classifier.predict_proba(images, batch_size=batch_size, calibrated=False, verbose=verbose)
        check = features = None
    else:
        raw, features = classifier.predict_with_features(images, layer=layer, batch_size=batch_size, calibrated=False,
                                                         verbose=verbose)
        check = _fit_check(classifier, layer, features, len(labels), reference, reference_description, feature_share,
                           batch_size)
    raw_tta = (classifier.predict_proba(images, batch_size=batch_size, tta=True, calibrated=False, verbose=verbose)
               if tta else None)
    return calibrate_predictions(classifier, raw, labels, description=description or f"{len(labels)} labelled images",
                                 review_share=review_share, check=check, features=features, raw_tta=raw_tta)


def calibrate_predictions(classifier, raw, labels, *, description: str, review_share: float = REVIEW_SHARE,
                          check=None, features=None, outliers=None, raw_tta=None) -> dict[str, Any]:
    """Fit ``classifier``'s temperature and review threshold on the network's own probabilities
    ``raw`` of labelled images (with ``check``, the out-of-distribution check, and its ``features``
    of the same images, or the images' ``outliers`` flags where they come from other models) and
    record them as :func:`calibrate` does; ``description`` says where ``raw`` came from. ``raw_tta``:
    the same images' probabilities averaged over the 8 views of ``predict_proba(tta=True)``, for
    that mode's own temperature and threshold. Returns the record."""
    _check_review_share(review_share)
    raw, labels = _check(raw, labels)
    previous = None
    if classifier.extra.get("calibration"):  # the ECE here with the calibration the model had
        own = getattr(classifier, "feature_check", None)
        own_flags = (own.flags(features) if own is not None and features is not None
                     and np.shape(features)[1] == len(own.mean) else None)
        previous = calibration_metrics(apply_calibration(
            raw, getattr(classifier, "temperature", 1.0), outside=own_flags,
            temperature_outside=getattr(classifier, "temperature_outside", None)), labels)["ece"]
    if outliers is not None:
        outliers = np.asarray(outliers, bool)
        if outliers.shape != labels.shape:
            raise DataError(f"outliers: expected one flag per image, {labels.shape}, got {outliers.shape}")
    elif check is not None:
        outliers = check.flags(features)
    fit = _fit_mode(raw, labels, outliers, float(getattr(classifier, "temperature", 1.0)), review_share)
    if fit["kept"]:
        description += (f"; all {len(labels)} were right, {TEMPERATURE_KEPT}: the model's own "
                        f"(T = {fit['temperature']:.3g}) is kept")
    elif fit["edge"]:
        description += (f"; {EDGE_OF_RANGE} (T = {fit['temperature']:.3g}): these "
                        f"{len(labels)} images say little about the model's confidence, so recalibrate on more")
    record = {
        "method": "temperature",
        "temperature": fit["temperature"],
        "fitted_on": description,
        "images": int(len(labels)),
        "accuracy": float(np.mean(np.asarray(raw).argmax(axis=1) == labels)) if len(labels) else None,
        "ece_before": fit["ece_before"],
        **({"ece_previous": previous} if previous is not None else {}),
        "ece_after": fit["ece_after"],
        "ece_measured_on": "the same images",
        "review_below": fit["review_below"],
        "review_share": float(review_share),
        "review_flagged": fit["review_flagged"],
    }
    if raw_tta is not None:
        raw_tta, _ = _check(raw_tta, labels)
        if raw_tta.shape != raw.shape:
            raise DataError(f"raw_tta: expected the shape of raw, {raw.shape}, got {raw_tta.shape}")
        own_tta = (classifier.extra.get("calibration") or {}).get("tta") or {}
        tta = _fit_mode(raw_tta, labels, outliers, float(own_tta.get("temperature", fit["temperature"])), review_share)
        record["tta"] = {k: tta[k] for k in ("temperature", "ece_before", "ece_after", "review_below", "review_flagged")}
    if check is not None:
        record["features"] = check.to_record()
        record["temperature_outside"] = TEMPERATURE_OUTSIDE
    classifier.extra["calibration"] = record
    return record
