"""Is an image like the ones the model was fitted on? A check from the model's own features.

The check reads one mid-level feature map of the backbone, the last block output at stride 16
(:func:`feature_layer`), averaged over space, in the same forward pass that gives the
probabilities (:func:`inference_model`): no second pass over the pixels. Its score is the
squared Mahalanobis distance of that vector to a Gaussian fitted to in-domain images, in the
top principal components, plus the energy left outside them over its mean variance (the
distance of probabilistic PCA, Tipping and Bishop 1999). Low-level layers react to any change
of stain or camera; the pooled embedding of the head is trained to ignore what does not tell
the classes apart, so it lets drawings and photographs through; the stride-16 map sits between
(``benchmarks/bench_calibration.py`` measures the check on held-out cells, another lab's cells
and synthetic non-cells). The threshold is the score that ``share`` of held-out in-domain
images exceed.

A model without a fitted check (folders saved before it existed) keeps the colour-statistics
non-cell test of :mod:`bloodcell.outliers` at prediction time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Optional

import keras
import numpy as np

from .errors import ConfigError, DataError
from .models import as_classifier_model

__all__ = ["COMPONENTS", "FEATURE_SHARE", "MIN_THRESHOLD_IMAGES", "FeatureCheck", "feature_layer", "fit_feature_check",
           "fit_gaussian", "inference_model", "layer_index", "tappable_layer", "threshold_from_scores"]

#: Share of held-out in-domain images whose score is above the threshold.
FEATURE_SHARE = 0.005
#: Principal components of the Gaussian (the rest of the space is one shared variance).
COMPONENTS = 8
#: Fewest in-domain images the check's threshold is set on: with fewer, it is about their largest score,
#: which a large share of in-domain images exceed.
MIN_THRESHOLD_IMAGES = 10
_STRIDE = 16


def feature_layer(model) -> str:
    """The backbone layer the check reads: its last residual sum (else its last layer) whose output
    is at stride 16 of the input (the nearest stride when none is)."""
    model = as_classifier_model(model)
    size = model.input_size
    maps = []
    for layer in model.backbone.layers:
        try:
            shape = layer.output.shape
        except (AttributeError, ValueError):
            continue
        if len(shape) == 4 and not isinstance(layer, keras.layers.InputLayer):
            maps.append(layer)
    if not maps:
        raise ConfigError(f"{model.architecture}: its backbone has no feature map to read; its builder must return a "
                          "backbone whose output is an (N, H, W, C) map")

    def gap(layer) -> float:
        side = layer.output.shape[1]
        return abs(np.log2(size / side) - np.log2(_STRIDE)) if side else np.inf

    best = min(gap(layer) for layer in maps)
    at = [layer for layer in maps if gap(layer) == best]
    added = [layer for layer in at if isinstance(layer, keras.layers.Add)]
    return (added or at)[-1].name


def inference_model(model, layer: Optional[str] = None) -> keras.Model:
    """A Keras model with the weights of ``model`` that returns (probabilities, the spatial mean of
    ``layer``'s output) in one pass; ``layer`` defaults to :func:`feature_layer`."""
    model = as_classifier_model(model)
    layer = layer or feature_layer(model)
    backbone = model.backbone
    try:
        tapped = backbone.get_layer(layer).output
    except ValueError:
        raise ConfigError(f"layer: the {model.architecture} backbone has no layer {layer!r}; name one of "
                          "model.backbone.layers (a saved feature check that names it: refit it with "
                          "Classifier.calibrate)") from None
    try:
        both = keras.Model(backbone.inputs, [tapped, backbone.output])
    except (ValueError, TypeError):  # a subclassed model, or a Sequential built without an Input
        raise ConfigError(f"layer: the {model.architecture} backbone is not a functional model, so its layers' outputs "
                          "cannot be read; its builder must return keras.Model(inputs, outputs) (or a Sequential that "
                          "starts with keras.Input) for the feature check") from None
    inputs = keras.Input(model.inputs[0].shape[1:], name="image")
    x, features = inputs, None
    seen_backbone = False
    for part in model.layers[1:]:  # a ClassifierModel is a chain: [normalisation], backbone, pooling, dropout, head
        if part is backbone:
            features, x = both(x)
            seen_backbone = True
        else:
            x = part(x)
    assert seen_backbone
    pooled = keras.ops.mean(keras.ops.cast(features, "float32"), axis=(1, 2))
    return keras.Model(inputs, [x, pooled])


def tappable_layer(model) -> Optional[str]:
    """:func:`feature_layer`, or None where the backbone's layers cannot be read in the classifier's
    pass (a subclassed or an unbuilt Sequential backbone): such a model has no feature check."""
    try:
        layer = feature_layer(model)
        inference_model(model, layer)
    except ConfigError:
        return None
    return layer


def layer_index(model, layer: str) -> Optional[int]:
    """The position of the layer named ``layer`` in ``model.backbone.layers`` (None: none is)."""
    names = [child.name for child in as_classifier_model(model).backbone.layers]
    return names.index(layer) if layer in names else None


@dataclass(frozen=True)
class FeatureCheck:
    """A Gaussian over one layer's pooled features, and the score above which an image is out of distribution.

    ``layer`` names the backbone layer it reads and ``index`` is that layer's position in
    ``model.backbone.layers``: Keras numbers unnamed layers per process, so a saved check finds
    its layer by position (:meth:`for_model`)."""

    layer: str
    mean: np.ndarray  # (d,)
    components: np.ndarray  # (k, d), orthonormal rows
    variances: np.ndarray  # (k,)
    residual_variance: float
    threshold: float
    share: float
    images: int
    fitted_on: str = ""
    index: Optional[int] = None

    def for_model(self, model, where: str = "config.json") -> "FeatureCheck":
        """This check with ``layer`` the name its layer has in ``model`` (found by ``index``), and
        ``index`` set (found by name) when it was not."""
        layers = as_classifier_model(model).backbone.layers
        if self.index is None:
            found = layer_index(model, self.layer)
            return self if found is None else replace(self, index=found)
        if self.index >= len(layers):
            raise ConfigError(f"{where}: calibration.features.layer_index is {self.index}, but the backbone has "
                              f"{len(layers)} layers; refit the check with Classifier.calibrate")
        return replace(self, layer=layers[self.index].name)

    def scores(self, features) -> np.ndarray:
        """Distance of each pooled feature vector (N, d) to the fitted Gaussian (higher: less in-domain)."""
        z = np.asarray(features, np.float64) - self.mean
        if z.ndim != 2 or z.shape[1] != len(self.mean):
            raise DataError(f"feature check of layer {self.layer!r}: expected features (N, {len(self.mean)}), got {z.shape}")
        with np.errstate(invalid="ignore", over="ignore"):  # a row of NaN or inf features scores inf below
            proj = z @ self.components.T
            residual = np.maximum((z * z).sum(1) - (proj * proj).sum(1), 0.0)
            scores = (proj * proj / self.variances).sum(1) + residual / self.residual_variance
        return np.where(np.isfinite(scores), scores, np.inf)  # NaN or inf features are as far out as can be

    def flags(self, features) -> np.ndarray:
        """True where an image is out of the fitted distribution."""
        return self.scores(features) > self.threshold

    def to_record(self) -> dict[str, Any]:
        """The check as JSON-ready values (``config.json``'s ``calibration.features``)."""
        return {"layer": self.layer, **({"layer_index": int(self.index)} if self.index is not None else {}),
                "threshold": float(self.threshold), "share": float(self.share),
                "images": int(self.images), "fitted_on": self.fitted_on,
                "residual_variance": float(self.residual_variance),
                "variances": [float(v) for v in self.variances],
                "mean": [round(float(v), 7) for v in self.mean],
                "components": [[round(float(v), 7) for v in row] for row in self.components]}

    @classmethod
    def from_record(cls, record: dict[str, Any], where: str = "config.json") -> "FeatureCheck":
        """The check a :meth:`to_record` dict describes."""
        try:
            check = cls(layer=str(record["layer"]), mean=np.asarray(record["mean"], np.float64),
                        components=np.asarray(record["components"], np.float64),
                        variances=np.asarray(record["variances"], np.float64),
                        residual_variance=float(record["residual_variance"]), threshold=float(record["threshold"]),
                        share=float(record.get("share", FEATURE_SHARE)), images=int(record.get("images", 0)),
                        fitted_on=str(record.get("fitted_on", "")), index=record.get("layer_index"))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: calibration.features is not a feature check ({exc}); refit it with "
                              "Classifier.calibrate") from None
        if check.index is not None and (isinstance(check.index, bool) or not isinstance(check.index, int)
                                        or check.index < 0):
            raise ConfigError(f"{where}: calibration.features.layer_index must be a position (an integer >= 0), got "
                              f"{check.index!r}; refit the check with Classifier.calibrate")
        k, d = check.components.shape if check.components.ndim == 2 else (-1, -1)
        if d != len(check.mean) or k != len(check.variances) or not np.all(check.variances > 0):
            raise ConfigError(f"{where}: calibration.features has inconsistent shapes; refit it with Classifier.calibrate")
        numbers = (check.mean, check.components, check.variances, [check.residual_variance, check.threshold])
        if not all(np.all(np.isfinite(a)) for a in numbers) or not check.residual_variance > 0:
            raise ConfigError(f"{where}: calibration.features holds numbers that are not finite (or a variance of 0); "
                              "refit it with Classifier.calibrate")
        return check


def fit_gaussian(fit_features, *, layer: str, share: float = FEATURE_SHARE, components: int = COMPONENTS,
                 fitted_on: str = "", index: Optional[int] = None) -> FeatureCheck:
    """The check's Gaussian fitted to ``fit_features`` (N, d), without a threshold (0: set it with
    :func:`threshold_from_scores` on the scores of other in-domain images). ``layer``, ``index``: the
    backbone layer the features come from, by name and position (:func:`layer_index`)."""
    x = np.asarray(fit_features, np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise DataError(f"feature check: need at least 2 images to fit, got {len(x)}")
    _check_finite("fit_features", x)
    if not 0.0 < share < 1.0:
        raise DataError(f"share: expected a fraction in (0, 1), got {share!r}")
    mean = x.mean(0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    lam = s**2 / len(x)
    k = max(1, min(components, len(lam) - 1))
    floor = max(float(lam.sum()) * 1e-6, 1e-12)
    # the variance left per dimension outside the k components (probabilistic PCA's estimate): over
    # all d - k dimensions, also where fewer images than dimensions leave some without any
    rest = float(lam[k:].sum()) / (x.shape[1] - k) if x.shape[1] > k else floor
    return FeatureCheck(layer, mean, vt[:k], np.maximum(lam[:k], floor), max(rest, floor), 0.0, share, len(x), fitted_on,
                        index)


def threshold_from_scores(scores, share: float = FEATURE_SHARE) -> tuple[float, bool]:
    """The score that ``share`` of in-domain images exceed, from the ``scores`` of held-out ones: their
    quantile when at least two lie beyond it, else the quantile of a log-normal fitted to them (the
    empirical quantile of a few scores is about their maximum, which about 1 in N in-domain images
    exceeds). Returns it, and whether the log-normal set it."""
    scores = np.asarray(scores, np.float64)
    if len(scores) < MIN_THRESHOLD_IMAGES:
        raise DataError(f"feature check: need the scores of at least {MIN_THRESHOLD_IMAGES} in-domain images to set "
                        f"the threshold, got {len(scores)} (from fewer, the threshold is about their largest score, "
                        "which a large share of in-domain images exceed)")
    if len(scores) * share >= 2:
        return float(np.quantile(scores, 1.0 - share)), False
    from statistics import NormalDist

    logs = np.log(np.maximum(scores, 1e-12))
    return float(max(np.exp(logs.mean() + NormalDist().inv_cdf(1.0 - share) * logs.std(ddof=1)), scores.max())), True


def _check_finite(name: str, a: np.ndarray) -> None:
    bad = int(np.sum(~np.isfinite(a).all(axis=-1))) if a.size else 0
    if bad:
        raise DataError(f"feature check: {bad} of the {len(a)} rows of {name} are not finite (NaN or inf); "
                        "fit on features of readable in-domain images")


def fit_feature_check(fit_features, threshold_features, *, layer: str, share: float = FEATURE_SHARE,
                      components: int = COMPONENTS, fitted_on: str = "", index: Optional[int] = None) -> FeatureCheck:
    """Fit the Gaussian to ``fit_features`` (N, d) and set the threshold that ``share`` of
    ``threshold_features`` (other in-domain images) exceed (:func:`threshold_from_scores`)."""
    held = np.asarray(threshold_features, np.float64)
    x = np.asarray(fit_features, np.float64)
    if x.ndim != 2 or len(x) < 2 or len(held) < MIN_THRESHOLD_IMAGES:
        raise DataError(f"feature check: need at least 2 images to fit and {MIN_THRESHOLD_IMAGES} to set the threshold, "
                        f"got {len(x)} and {len(held)} (from fewer, the threshold is about their largest score, which "
                        "a large share of in-domain images exceed)")
    _check_finite("threshold_features", held)
    check = fit_gaussian(x, layer=layer, share=share, components=components, fitted_on=fitted_on, index=index)
    threshold, lognormal = threshold_from_scores(check.scores(held), share)
    return replace(check, threshold=threshold, fitted_on=check.fitted_on + (
        f"; threshold from a log-normal fitted to the scores of {len(held)} images" if lognormal else ""))
