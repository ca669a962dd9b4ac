"""Is this a blood-cell microscope image? A per-image test against a reference of cells.

Each image is summarised by 31 hand-made statistics that suit stained blood smears
(:func:`outlier_features`): the colour ((R-G) and (B-G) chromaticity), saturation and relative
brightness of five luminance bands from the darkest 5% of pixels (stained nuclei) to the
brightest 20% (background), the hue of the two darkest bands (the stain's colour survives
fading), the spread of colour, the greenest pixels, edge and Laplacian energy, and a radial
darkness profile (a cell sits in the middle). An :class:`OutlierReference` is a
Gaussian mixture fitted to these statistics for cell images and for corrupted copies of them
(blur, JPEG, noise, brightness, contrast, saturation and hue changes), so a degraded cell is still
a cell; an image whose negative log-likelihood is above the reference's threshold is an outlier.
Scores are per image: the rest of the batch never changes them, and copies of one outlier are
all flagged.

The package ships a reference fitted to pbc96 cells (``_assets/outlier_reference.npz``, made by
``benchmarks/make_outlier_reference.py``); pass your own cell images as ``reference=`` to fit one.
"""

from __future__ import annotations

import functools
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageFilter

from ._checks import check_image_batch
from ._colour import LUMA, RGB_TO_YIQ, YIQ_TO_RGB
from ._fs import save_npz
from ._util import DAMAGED_NPZ
from .errors import ConfigError, DataError, InputNotFoundError, OutputExistsError
from .imageio import resize_images


__all__ = ["OutlierReference", "find_outliers", "fit_outlier_reference", "outlier_features", "outlier_scores"]

#: Version of :func:`outlier_features`; a saved reference of another version is refused.
FEATURE_VERSION = 1
N_FEATURES = 31
DEFAULT_REFERENCE = Path(__file__).parent / "_assets" / "outlier_reference.npz"
#: Fewest cell images a reference is fitted to.
MIN_REFERENCE_IMAGES = 20
#: Below this many images, the threshold is set on cross-fitted scores instead of a 20% hold-out.
CROSS_FIT_BELOW = 200
_BANDS = (0.0, 0.05, 0.2, 0.5, 0.8, 1.0)
_RINGS = ((0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.5))


def _pool2(x: np.ndarray) -> np.ndarray:
    n, h, w, c = x.shape
    h2, w2 = h // 2, w // 2
    a = x[:, : h2 * 2, : w2 * 2].reshape(n, h2, 2, w2 * 2, c)
    a = a[:, :, 0] + a[:, :, 1]
    a = a.reshape(n, h2, w2, 2, c)
    return (a[:, :, :, 0] + a[:, :, :, 1]) * np.float32(0.25)


@functools.lru_cache(maxsize=8)
def _ring_weights(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    r = (np.hypot(yy - (h - 1) / 2, xx - (w - 1) / 2) / (min(h, w) / 2)).ravel()
    cols = [((r >= a) & (r < b)).astype(np.float32) for a, b in _RINGS]
    return np.stack([c / max(c.sum(), 1.0) for c in cols], 1)


@functools.lru_cache(maxsize=8)
def _tie_breaker(p: int) -> np.ndarray:
    return (np.random.default_rng(0).permutation(p) / (4.0 * p)).astype(np.float32)


def _features_chunk(images: np.ndarray) -> np.ndarray:
    x = images.astype(np.float32)
    n = len(x)
    lum = x @ LUMA
    grad = (np.abs(lum[:, :, 1:] - lum[:, :, :-1]).reshape(n, -1).mean(1)
            + np.abs(lum[:, 1:] - lum[:, :-1]).reshape(n, -1).mean(1))
    lap = np.abs(
        4 * lum[:, 1:-1, 1:-1] - lum[:, :-2, 1:-1] - lum[:, 2:, 1:-1] - lum[:, 1:-1, :-2] - lum[:, 1:-1, 2:]
    ).reshape(n, -1).mean(1)
    # Colour statistics on 2x2-averaged pixels: cheaper, and less sensitive to noise and JPEG.
    s = _pool2(x)
    r, g, b = s[..., 0], s[..., 1], s[..., 2]
    total = r + g + b + 24.0
    lr = ((r - g) / total).reshape(n, -1)  # chromaticity: unchanged by brightness, bounded
    lb = ((b - g) / total).reshape(n, -1)
    sat = (np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)).reshape(n, -1)
    lum_s = (s @ LUMA).reshape(n, -1)
    p = lum_s.shape[1]
    # A fixed sub-level pattern breaks ties (clipped or flat areas) so no band is empty.
    lum_s = lum_s + _tie_breaker(p)
    kth = [min(int(p * q), p - 1) for q in _BANDS[1:-1]] + [int(p * 0.99)]
    edges_q = np.partition(lum_s, kth, axis=1)[:, kth]
    top = np.maximum(edges_q[:, -1], 1.0)
    edges = np.concatenate([np.full((n, 1), -1.0, np.float32), edges_q[:, :-1], np.full((n, 1), np.inf, np.float32)], 1)
    values = np.stack([lr, lb, lum_s / top[:, None], sat / top[:, None], np.ones_like(lr)], -1)
    feats = []
    for k in range(len(_BANDS) - 1):
        mask = ((lum_s > edges[:, k : k + 1]) & (lum_s <= edges[:, k + 1 : k + 2])).astype(np.float32)
        sums = np.einsum("np,npk->nk", mask, values)
        band = sums[:, :4] / np.maximum(sums[:, 4:], 1.0)
        # log: a colourless image is as far from cells as a doubly saturated one
        feats += [band[:, 0], band[:, 1], band[:, 2], np.log(band[:, 3] + 0.01)]
        if k < 2:  # hue of the stained pixels: kept when a faded stain loses saturation
            feats.append(np.arctan2(band[:, 1], band[:, 0]))
    k1 = int(p * 0.01)
    greenest = -np.partition(np.maximum(lr, lb), k1, axis=1)[:, k1]
    feats += [np.log(lr.std(1) + 0.002), np.log(lb.std(1) + 0.002), greenest, np.log(grad / top + 1e-3), np.log(lap / (grad + 1e-3) + 1e-3)]
    rings = lum_s @ _ring_weights(*s.shape[1:3])
    feats.extend((1.0 - rings / top[:, None]).T)
    return np.stack(feats, 1).astype(np.float32)


def outlier_features(images: np.ndarray, *, chunk: int = 256) -> np.ndarray:
    """The per-image statistics (N, N_FEATURES) float32 that outlier scores are computed from."""
    images = _check_batch(images)
    if not len(images):
        return np.zeros((0, N_FEATURES), np.float32)
    return np.concatenate([_features_chunk(images[i : i + chunk]) for i in range(0, len(images), chunk)])


def _check_batch(images: np.ndarray) -> np.ndarray:
    return check_image_batch(images, single=True, min_side=8)


def _hue_rotate(a: np.ndarray, degrees: float) -> np.ndarray:
    t = np.deg2rad(degrees)
    rot = np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]], np.float32)
    return a @ (YIQ_TO_RGB @ rot @ RGB_TO_YIQ).T.astype(np.float32)


def corrupt_cell(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A randomly degraded copy of one uint8 image: what a cell may suffer and still be a cell.

    Each of Gaussian blur (sigma 0.5-2.5), brightness (x0.6-1.35), contrast (x0.5-1.45),
    saturation (x0.5-1.3), hue (+-10 degrees), Gaussian noise (sigma 2-26) and JPEG (quality
    15-90) is applied with some probability.
    """
    x = image
    if rng.random() < 0.35:
        x = np.asarray(Image.fromarray(x).filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.5))))
    a = x.astype(np.float32)
    if rng.random() < 0.5:
        a = a * rng.uniform(0.6, 1.35)
    if rng.random() < 0.4:
        m = a.mean()
        a = (a - m) * (rng.uniform(0.5, 1.0) if rng.random() < 0.5 else rng.uniform(1.0, 1.45)) + m
    if rng.random() < 0.4:
        grey = a @ LUMA
        a = grey[..., None] + (a - grey[..., None]) * rng.uniform(0.5, 1.3)
    if rng.random() < 0.3:
        a = _hue_rotate(a, rng.uniform(-10, 10))
    if rng.random() < 0.35:
        a = a + rng.normal(0, rng.uniform(2, 26), a.shape)
    x = np.clip(a, 0, 255).astype(np.uint8)
    if rng.random() < 0.35:
        buf = io.BytesIO()
        Image.fromarray(x).save(buf, "JPEG", quality=int(rng.integers(15, 91)))
        x = np.asarray(Image.open(buf).convert("RGB"))
    return x


@dataclass
class OutlierReference:
    """A Gaussian mixture over :func:`outlier_features` of cell images, with a score threshold."""

    mean: np.ndarray  # (d,) feature standardisation
    scale: np.ndarray  # (d,)
    weights: np.ndarray  # (k,)
    means: np.ndarray  # (k, d)
    precision_chol: np.ndarray  # (k, d, d): precision = L @ L.T
    threshold: float
    image_size: int
    n_images: int = 0
    description: str = ""

    def scores(self, images: np.ndarray) -> np.ndarray:
        """Negative log-likelihood of each image under the cell model (higher: less cell-like)."""
        images = _check_batch(images)
        if images.shape[1:3] != (self.image_size, self.image_size):
            images = resize_images(images, self.image_size)
        return self.feature_scores(outlier_features(images))

    def feature_scores(self, feats: np.ndarray) -> np.ndarray:
        z = (feats - self.mean) / self.scale
        d = z.shape[1]
        logp = []
        for w, mu, chol in zip(self.weights, self.means, self.precision_chol):
            y = (z - mu) @ chol
            log_det = np.log(np.diag(chol)).sum()
            logp.append(np.log(w) + log_det - 0.5 * (y * y).sum(1) - 0.5 * d * np.log(2 * np.pi))
        logp = np.stack(logp, 1)
        top = logp.max(1, keepdims=True)
        return -(top[:, 0] + np.log(np.exp(logp - top).sum(1)))

    def save(self, path: Union[str, os.PathLike], *, overwrite: bool = False) -> Path:
        """Write the reference as a small ``.npz`` at ``path`` (whole or absent; an existing file only
        with ``overwrite``); returns the path."""
        path = Path(path)
        if path.suffix.lower() != ".npz":
            raise ConfigError(f"{path}: an outlier reference is an .npz file; give a path ending in .npz")
        if path.exists() and not overwrite:
            raise OutputExistsError(f"{path}: already exists; give a new path, or overwrite=True to replace it")
        return save_npz(
            path, mean=self.mean, scale=self.scale, weights=self.weights, means=self.means,
            precision_chol=self.precision_chol, threshold=np.float64(self.threshold),
            image_size=np.int64(self.image_size), n_images=np.int64(self.n_images),
            description=np.str_(self.description), feature_version=np.int64(FEATURE_VERSION),
        )

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> "OutlierReference":
        """Read a reference written by :meth:`save`."""
        fix = "pass a file written by OutlierReference.save (or build one with fit_outlier_reference)"
        try:
            z = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise InputNotFoundError(f"{path}: no such outlier reference file; {fix}") from None
        except (OSError, ValueError, *DAMAGED_NPZ):
            raise ConfigError(f"{path}: not an outlier reference (an .npz that OutlierReference.save wrote); {fix}; for "
                              "cell images of your own, give their folder") from None
        try:
            return cls._from_archive(path, z, fix)
        except (OSError, *DAMAGED_NPZ) as exc:
            raise ConfigError(f"{path}: damaged or truncated outlier reference ({exc}); {fix}") from None

    @classmethod
    def _from_archive(cls, path, z, fix: str) -> "OutlierReference":
        if not hasattr(z, "files"):  # np.load of an .npy: an array, not an archive to close
            raise ConfigError(f"{path}: is a single array, not an outlier reference archive; {fix}")
        with z:
            version = int(z["feature_version"]) if "feature_version" in z.files else -1
            if version != FEATURE_VERSION:
                raise ConfigError(
                    f"{path}: outlier reference of feature version {version}, this bloodcell needs "
                    f"{FEATURE_VERSION}; rebuild it with fit_outlier_reference"
                )
            try:
                return cls(
                    mean=z["mean"], scale=z["scale"], weights=z["weights"], means=z["means"],
                    precision_chol=z["precision_chol"], threshold=float(z["threshold"]),
                    image_size=int(z["image_size"]), n_images=int(z["n_images"]), description=str(z["description"]),
                )
            except (KeyError, ValueError) as exc:
                raise ConfigError(f"{path}: incomplete outlier reference ({exc}); {fix}") from None


def _kmeans_pp(z: np.ndarray, k: int, rng: np.random.Generator, iters: int = 20) -> np.ndarray:
    centres = [z[rng.integers(len(z))]]
    for _ in range(1, k):
        d2 = np.min(((z[:, None, :] - np.asarray(centres)[None]) ** 2).sum(-1), axis=1)
        centres.append(z[rng.choice(len(z), p=d2 / d2.sum())])
    c = np.asarray(centres)
    for _ in range(iters):
        lab = (((z[:, None, :] - c[None]) ** 2).sum(-1)).argmin(1)
        c = np.stack([z[lab == j].mean(0) if (lab == j).any() else c[j] for j in range(k)])
    return lab


def _fit_gmm(z: np.ndarray, k: int, reg: float, rng: np.random.Generator, iters: int = 100):
    n, d = z.shape
    resp = np.eye(k)[_kmeans_pp(z, k, rng)] if k > 1 else np.ones((n, 1))
    prev = -np.inf
    for _ in range(iters):
        nk = resp.sum(0) + 1e-9
        weights = nk / n
        means = (resp.T @ z) / nk[:, None]
        chols = []
        for j in range(k):
            diff = z - means[j]
            cov = (resp[:, j, None] * diff).T @ diff / nk[j] + reg * np.eye(d)
            chols.append(np.linalg.cholesky(np.linalg.inv(cov)))
        chols = np.stack(chols)
        logp = []
        for w, mu, ch in zip(weights, means, chols):
            y = (z - mu) @ ch
            logp.append(np.log(w) + np.log(np.diag(ch)).sum() - 0.5 * (y * y).sum(1))
        logp = np.stack(logp, 1)
        top = logp.max(1, keepdims=True)
        ll = top[:, 0] + np.log(np.exp(logp - top).sum(1))
        resp = np.exp(logp - ll[:, None])
        if ll.mean() - prev < 1e-4:
            break
        prev = ll.mean()
    return weights, means, chols


def fit_outlier_reference(
    images: np.ndarray,
    *,
    components: int = 8,
    augment: int = 2,
    quantile: float = 0.99,
    spread: float = 4.0,
    seed: int = 0,
    description: str = "",
) -> OutlierReference:
    """Fit a cell model to ``images`` (uint8 N x S x S x 3, cells only).

    ``augment`` corrupted copies of each image (:func:`corrupt_cell`) join the fit. A random 20%
    of the images (and their copies) is held out to set the threshold (below ``CROSS_FIT_BELOW``
    images, every image is scored by a model fitted without it, in 5 folds): their median score plus
    ``spread`` times the distance from the median to their ``quantile`` (a rule that, unlike an
    extreme quantile, a few odd images cannot move far). ``components`` shrinks for small sets so
    that each Gaussian has enough images.
    """
    images = _check_batch(images)
    n = len(images)
    if n < MIN_REFERENCE_IMAGES:
        raise DataError(f"the outlier reference needs at least {MIN_REFERENCE_IMAGES} cell images (hundreds are "
                        f"better), got {n}")
    for name, value, ok, want in (("components", components, isinstance(components, int) and components >= 1, ">= 1"),
                                  ("augment", augment, isinstance(augment, int) and augment >= 0, ">= 0"),
                                  ("quantile", quantile, isinstance(quantile, (int, float)) and 0 < quantile < 1, "in (0, 1)"),
                                  ("spread", spread, isinstance(spread, (int, float)) and spread > 0, "> 0")):
        if isinstance(value, bool) or not ok:
            raise ConfigError(f"fit_outlier_reference: {name} must be {want}, got {value!r}")
    rng = np.random.default_rng(seed)
    copies = [images] + [np.stack([corrupt_cell(img, rng) for img in images]) for _ in range(augment)]
    feats = np.stack([outlier_features(c) for c in copies])  # (1 + augment, n, d)

    def fit(rows) -> OutlierReference:
        x = feats[:, rows].reshape(-1, feats.shape[-1]).astype(np.float64)
        k = int(max(1, min(components, len(x) // (10 * x.shape[1]))))
        mean, scale = x.mean(0), x.std(0) + 1e-6
        weights, means, chols = _fit_gmm((x - mean) / scale, k, reg=1e-2 if len(x) > 2000 else 1e-1, rng=rng)
        return OutlierReference(mean, scale, weights, means, chols, 0.0, int(images.shape[1]), n, description)

    def scores(ref, rows) -> np.ndarray:
        return ref.feature_scores(feats[:, rows].reshape(-1, feats.shape[-1]).astype(np.float64))

    order = rng.permutation(n)
    if n >= CROSS_FIT_BELOW:  # a random 20% held out sets the threshold
        held = np.zeros(n, bool)
        held[order[: n // 5]] = True
        ref = fit(~held)
        cal_scores = scores(ref, held)
    else:  # too few for a hold-out of its own: every image scored by a model fitted without it (5 folds)
        folds = np.array_split(order, 5)
        cal_scores = np.concatenate([scores(fit(np.setdiff1d(order, f)), f) for f in folds])
        ref = fit(np.arange(n))
    median = float(np.median(cal_scores))
    ref.threshold = median + spread * (float(np.quantile(cal_scores, quantile)) - median)
    return ref


@functools.lru_cache(maxsize=1)
def _default_reference() -> OutlierReference:
    if not DEFAULT_REFERENCE.exists():
        raise InputNotFoundError(
            f"{DEFAULT_REFERENCE}: the shipped outlier reference is missing; reinstall bloodcell or pass "
            "reference= (cell images or a saved reference)"
        )
    return OutlierReference.load(DEFAULT_REFERENCE)


def _as_reference(reference: Union[None, np.ndarray, OutlierReference, str, os.PathLike]) -> OutlierReference:
    if reference is None:
        return _default_reference()
    if isinstance(reference, OutlierReference):
        return reference
    if isinstance(reference, (str, os.PathLike)):
        return OutlierReference.load(reference)
    if not isinstance(reference, (np.ndarray, list, tuple)):
        raise ConfigError(f"reference: expected None, an OutlierReference, the path of a saved one or cell images "
                          f"(uint8 (N, H, W, 3)), got a {type(reference).__name__}")
    return fit_outlier_reference(check_image_batch(np.asarray(reference), "reference"))


def outlier_scores(
    images: np.ndarray, *, reference: Union[None, np.ndarray, OutlierReference, str, os.PathLike] = None
) -> np.ndarray:
    """Per-image outlier scores (N,); rows above ``reference.threshold`` are not cells."""
    return _as_reference(reference).scores(images)


def find_outliers(
    images: np.ndarray, *, reference: Union[None, np.ndarray, OutlierReference, str, os.PathLike] = None
) -> np.ndarray:
    """Boolean mask (N,): True where an image is not a blood-cell microscope image.

    ``reference`` is None (the shipped pbc96 reference), cell images to fit a reference to, a
    fitted :class:`OutlierReference`, or the path of a saved one. Images of another size than
    the reference's are resized with :func:`bloodcell.imageio.resize_images` first.
    """
    ref = _as_reference(reference)
    return ref.scores(images) > ref.threshold
