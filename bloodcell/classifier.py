"""The :class:`Classifier` (a model plus what it needs to classify) and :func:`load_classifier`."""

from __future__ import annotations

import itertools
import json
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import keras
import numpy as np

from ._classes import CLASS_NAMES
from ._util import error_reason, sha256_file
from ._version import __version__
from .card import render_model_card
from .errors import BloodcellError, ChecksumError, ImageReadError
from .imageio import load_image, load_images
from .models import ModelSpec, build_from_spec, rebuild_model
from .registry import PretrainedCfg, pretrained_entry

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.weights.h5"
CARD_NAME = "README.md"
FORMAT = "bloodcell-classifier"
FORMAT_VERSION = 1
#: The zoo entry that ``load_classifier()`` returns; its files ship inside the package.
DEFAULT_MODEL = "mnv3s.pbc96"

PREPROCESSING = {
    "input": "RGB, uint8 or float values 0..255, shape (N, S, S, 3)",
    "resize": "centre crop to a square, then Lanczos resize to S x S (bloodcell.imageio.resize_image)",
    "normalisation": "inside the model (the backbone's own preprocessing layers)",
}


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
        class_names: Sequence[str] = CLASS_NAMES,
        architecture: Optional[str] = None,
        name: Optional[str] = None,
        metrics: Optional[dict[str, Any]] = None,
        training: Optional[dict[str, Any]] = None,
        extra: Optional[dict[str, Any]] = None,
    ):
        spec: Optional[ModelSpec] = getattr(model, "bloodcell_spec", None)
        n_out = int(model.outputs[0].shape[-1])
        if len(class_names) != n_out:
            raise BloodcellError(
                f"class_names has {len(class_names)} names but the model outputs {n_out} classes; "
                "pass one name per output"
            )
        self.model = model
        self.class_names = tuple(class_names)
        self.input_size = int(model.inputs[0].shape[1])
        self.architecture = architecture or (spec.architecture if spec else model.name)
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

    def _forward(self, batch: np.ndarray, batch_size: int) -> np.ndarray:
        n = len(batch)
        # Pad to a power of two (at most batch_size): the compiled predict function then sees a
        # few shapes only, instead of retracing for every odd-sized last batch.
        padded = min(batch_size, 1 << max(n - 1, 0).bit_length())
        if n < padded:
            batch = np.concatenate([batch, np.zeros((padded - n, *batch.shape[1:]), batch.dtype)])
        return np.asarray(self.model.predict_on_batch(batch.astype(np.float32)))[:n]

    def predict_proba(self, images, *, batch_size: int = 64, tta: bool = False) -> np.ndarray:
        """Class probabilities, shape (N, num_classes), rows summing to 1.

        ``tta=True`` averages the probabilities over the 8 flips and 90-degree rotations.
        """
        x = self.preprocess(images)
        views = range(8) if tta else (0,)
        out = np.zeros((len(x), len(self.class_names)), np.float64)
        for start in range(0, len(x), batch_size):
            chunk = x[start : start + batch_size]
            for k in views:
                out[start : start + len(chunk)] += self._forward(np.ascontiguousarray(_dihedral(chunk, k)), batch_size)
        out /= len(views)
        return (out / out.sum(axis=1, keepdims=True)).astype(np.float32)

    def predict(self, images, *, batch_size: int = 64, tta: bool = False) -> list[str]:
        """The most probable class name of each image."""
        proba = self.predict_proba(images, batch_size=batch_size, tta=tta)
        return [self.class_names[i] for i in proba.argmax(axis=1)]

    def predict_files(
        self,
        paths: Sequence,
        *,
        batch_size: int = 64,
        workers: Optional[int] = None,
        tta: bool = False,
        flag_outliers: bool = False,
    ) -> Iterator[FilePrediction]:
        """Classify image files in batches, decoding ahead in threads while the model runs.

        Yields one :class:`FilePrediction` per path, in input order, holding at most a few
        batches in memory. With ``flag_outliers``, images that
        :func:`bloodcell.cleaning.find_outliers` says are not blood cells are marked.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise BloodcellError(f"batch_size must be a positive integer, got {batch_size!r}")
        workers = workers or min(8, (os.cpu_count() or 1) + 2)
        paths = [Path(p) for p in paths]
        if flag_outliers:
            from .cleaning import find_outliers

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
                    batch = np.stack(good)
                    proba = iter(self.predict_proba(batch, batch_size=batch_size, tta=tta))
                    outlier = iter(find_outliers(batch) if flag_outliers else [None] * len(good))
                for p, img, err in results:
                    if img is None:
                        yield FilePrediction(p, error=err)
                    else:
                        flag = next(outlier)
                        yield FilePrediction(p, next(proba), outlier=None if flag is None else bool(flag))

    def export(self, out=None, *, format: str = "onnx", **kwargs) -> Path:
        """Export for serving: ``"onnx"``, ``"litert"`` or ``"saved_model"`` (uint8 input, same probabilities).

        See :func:`bloodcell.export.export`.
        """
        from .export import export

        return export(self, out, format=format, **kwargs)

    # -- persistence -------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The ``config.json`` content describing this classifier."""
        spec: Optional[ModelSpec] = getattr(self.model, "bloodcell_spec", None)
        if spec is None:
            raise BloodcellError(
                f"model {self.model.name!r} was not made by bloodcell.build_model, so its architecture "
                "cannot be recorded; build it with bloodcell.build_model(name)"
            )
        cfg: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "architecture": spec.architecture,
            "build": spec.to_config(),
            "input_size": self.input_size,
            "class_names": list(self.class_names),
            "preprocessing": PREPROCESSING,
            "weights_file": WEIGHTS_NAME,
            "metrics": self.metrics,
            "training": self.training,
            "bloodcell_version": __version__,
            "keras_version": keras.__version__,
        }
        cfg.update(self.extra)
        return cfg

    def _weights_only_model(self) -> keras.Model:
        """The model without optimizer state (a compiled model's weights file would include it)."""
        if getattr(self.model, "optimizer", None) is None:
            return self.model
        return rebuild_model(self.model)

    def save_pretrained(self, folder, *, card: bool = True) -> Path:
        """Write ``config.json``, the weights and a model card (README.md) into ``folder``.

        Files are written to a temporary folder first, then moved in place one by one: no file is
        ever half-written, and a save interrupted between moves leaves new weights beside the old
        ``config.json``, which loading refuses (the config holds the weights' sha256). Other files
        in ``folder`` are kept; a README.md that is not a model card is never replaced.
        """
        folder = Path(folder)
        if folder.exists() and not folder.is_dir():
            raise BloodcellError(f"{folder}: exists and is not a folder; pass a folder path to save into")
        if card and (folder / CARD_NAME).exists() and not _is_generated_card(folder / CARD_NAME):
            raise BloodcellError(
                f"{folder / CARD_NAME}: is not a bloodcell model card and would be replaced by one; "
                "save into another folder, or pass card=False"
            )
        cfg = self.config()
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder, prefix=".tmp-save-") as tmp:
            tmp_path = Path(tmp)
            self._weights_only_model().save_weights(tmp_path / WEIGHTS_NAME)
            cfg["weights_sha256"] = sha256_file(tmp_path / WEIGHTS_NAME)
            (tmp_path / CONFIG_NAME).write_text(json.dumps(cfg, indent=2) + "\n")
            names = [WEIGHTS_NAME, CONFIG_NAME]
            if card:
                (tmp_path / CARD_NAME).write_text(render_model_card(cfg))
                names.append(CARD_NAME)
            elif _is_generated_card(folder / CARD_NAME):
                (folder / CARD_NAME).unlink()  # it describes the weights being replaced
            for n in names:
                os.replace(tmp_path / n, folder / n)
        return folder

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
        from .hub import push_folder

        with tempfile.TemporaryDirectory(prefix="bloodcell-push-") as tmp:
            extra = self.extra
            self.extra = {**extra, "hub_source": f"hf://{repo_id}" + (f"@{revision}" if revision else "")}
            try:
                self.save_pretrained(tmp)
            finally:
                self.extra = extra
            return push_folder(
                tmp, repo_id, private=private, token=token, revision=revision, commit_message=commit_message
            )


def _is_generated_card(path: Path) -> bool:
    """Whether ``path`` is a model card that save_pretrained wrote (not a user's own README)."""
    try:
        head = path.read_text(encoding="utf-8")[:2000]
    except (OSError, UnicodeDecodeError):
        return False
    return head.startswith("---") and "library_name: bloodcell" in head


# -- loading -----------------------------------------------------------------------------------
def _read_config(folder: Path) -> dict[str, Any]:
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise BloodcellError(
            f"{folder}: no {CONFIG_NAME}; expected a folder written by Classifier.save_pretrained "
            "(config.json + model.weights.h5 + README.md)"
        )
    try:
        cfg = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BloodcellError(f"{path}: not valid JSON ({exc}); re-save the model with save_pretrained") from None
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT:
        raise BloodcellError(
            f"{path}: expected a bloodcell config (\"format\": \"{FORMAT}\"), got "
            f"{cfg.get('format') if isinstance(cfg, dict) else type(cfg).__name__!r}"
        )
    if int(cfg.get("format_version", 0)) > FORMAT_VERSION:
        raise BloodcellError(
            f"{path}: format version {cfg['format_version']} is newer than this bloodcell understands "
            f"({FORMAT_VERSION}); upgrade with `pip install -U bloodcell`"
        )
    for key in ("architecture", "build", "class_names", "weights_file"):
        if key not in cfg:
            raise BloodcellError(f"{path}: missing key {key!r}; re-save the model with save_pretrained")
    return cfg


def load_folder(folder, *, sha256: Optional[str] = None) -> Classifier:
    """Load a classifier from a folder written by :meth:`Classifier.save_pretrained`.

    Only weights are read from disk (no code, no pickles): the architecture is rebuilt from the
    registry by name. With ``sha256``, the weights file must have that hash.
    """
    folder = Path(folder)
    cfg = _read_config(folder)
    weights = folder / Path(cfg["weights_file"]).name
    if not weights.is_file():
        raise BloodcellError(f"{folder}: config.json names weights {weights.name!r}, which is missing")
    expected = sha256 or cfg.get("weights_sha256")
    if expected:
        actual = sha256_file(weights)
        if actual != expected:
            raise ChecksumError(
                f"{weights}: sha256 is {actual}, expected {expected}; the file is corrupt or was "
                "replaced; delete it (or the Hugging Face cache entry) and download it again"
            )
    if not isinstance(cfg["build"], dict):
        raise BloodcellError(f"{folder / CONFIG_NAME}: 'build' must be an object of build options, got {cfg['build']!r}")
    spec = ModelSpec.from_config(cfg["architecture"], cfg["build"], source=str(folder / CONFIG_NAME))
    model = build_from_spec(spec)
    try:
        model.load_weights(weights)
    except Exception as exc:  # h5py/keras raise many types for mismatched or damaged files
        raise BloodcellError(
            f"{weights}: weights do not fit architecture {cfg['architecture']!r} "
            f"({error_reason(exc)}); the folder is "
            "damaged or was written by another model"
        ) from None
    # hub_source names where this very folder is published; a copy saved elsewhere is not there.
    known = {"format", "format_version", "name", "architecture", "build", "input_size", "class_names",
             "preprocessing", "weights_file", "weights_sha256", "metrics", "training",
             "bloodcell_version", "keras_version", "hub_source"}
    return Classifier(
        model,
        class_names=cfg["class_names"],
        architecture=cfg["architecture"],
        name=cfg.get("name"),
        metrics=cfg.get("metrics"),
        training=cfg.get("training"),
        extra={k: v for k, v in cfg.items() if k not in known},
    )


def bundled_path(name: str) -> Path:
    """The folder inside the installed package that holds a bundled zoo entry."""
    return Path(str(resources.files("bloodcell") / "_weights" / name))


def entry_folder(entry: PretrainedCfg) -> Path:
    """A local folder holding a zoo entry's files: bundled, or downloaded from its Hub repo."""
    if entry.bundled:
        path = bundled_path(entry.name)
        if not (path / CONFIG_NAME).is_file():
            raise BloodcellError(
                f"zoo entry {entry.name!r} should ship inside the package at {path}, but it is missing; "
                "reinstall bloodcell"
            )
        return path
    if not entry.repo_id:
        raise BloodcellError(f"zoo entry {entry.name!r} has no Hub repo and is not bundled; it cannot be loaded")
    from .hub import download_file

    config = download_file(entry.repo_id, CONFIG_NAME, revision=entry.revision)
    download_file(entry.repo_id, entry.filename, revision=entry.revision, sha256=entry.sha256)
    return config.parent


def _check_entry(entry, clf: Classifier) -> None:
    """Refuse a zoo entry whose files describe another model than its metadata does."""
    declared = {"architecture": entry.architecture, "input_size": entry.input_size,
                "class_names": tuple(entry.class_names)}
    found = {"architecture": clf.architecture, "input_size": clf.input_size, "class_names": tuple(clf.class_names)}
    wrong = [k for k in declared if declared[k] != found[k]]
    if wrong:
        raise BloodcellError(
            f"zoo entry {entry.name!r}: its config.json has {', '.join(f'{k}={found[k]!r}' for k in wrong)}, "
            f"the entry declares {', '.join(f'{k}={declared[k]!r}' for k in wrong)}; fix the entry in "
            f"bloodcell/models/ or the release folder"
        )


def load_classifier(source=None, *, token: Optional[str] = None) -> Classifier:
    """Load a classifier from a local folder, ``hf://owner/repo[@revision]`` or a zoo name.

    ``None`` gives the default model, which ships inside the package and works offline.
    """
    if source is None:
        source = DEFAULT_MODEL
    if isinstance(source, os.PathLike) or (isinstance(source, str) and not source.startswith("hf://")):
        path = Path(source)
        if path.is_dir():
            return load_folder(path)
        if isinstance(source, os.PathLike) or os.sep in str(source) or str(source).startswith("."):
            raise BloodcellError(
                f"{source}: no such folder; pass a folder written by save_pretrained, "
                "hf://owner/repo[@revision] or a zoo name (see `bloodcell list`)"
            )
        entry = pretrained_entry(str(source))
        clf = load_folder(entry_folder(entry), sha256=entry.sha256)
        _check_entry(entry, clf)
        return clf
    if isinstance(source, str):
        from .hub import download_snapshot, parse_hf_source

        repo_id, revision = parse_hf_source(source)
        return load_folder(download_snapshot(repo_id, revision, token=token))
    raise BloodcellError(
        f"source: expected None, a folder path, 'hf://owner/repo[@revision]' or a zoo name, got "
        f"{type(source).__name__}"
    )

