"""The model folder format: ``config.json`` + ``model.weights.h5`` + a generated ``README.md`` card.

A folder is self-describing: ``config.json`` names the architecture (rebuilt from the registry by
name, so loading runs no code and unpickles nothing), its build options, the class names, the
weights' sha256, and what is known of the model's training and measured figures. Version 1
folders (bloodcell 0.1) load as they are; version 2 adds the input normalisation to ``build``.

Writes are whole or absent: :func:`write_folder` builds the new folder beside the old one and
swaps it in with renames, so a process killed at any point leaves either the old folder or the
new one, never a mix.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import warnings
from pathlib import Path
from typing import Any, Callable, Optional

import keras

from ._fs import (FORMAT, STAGING_PREFIX, TEST_FILES, atomic_write_text, bloodcell_config, is_within, recover_staged,
                  staged_folder)
from ._lock import locked
from ._util import error_reason, sha256_file
from ._preprocessing import PREPROCESSING, preprocessing_record
from ._version import __version__
from .card import card_edited, render_model_card
from .errors import ChecksumError, ConfigError, InputNotFoundError
from .models import ClassifierModel, ModelSpec, as_classifier_model, build_from_spec

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.weights.h5"
CARD_NAME = "README.md"
FORMAT_VERSION = 2
#: The files a folder of this format holds (what ``hub push`` uploads).
MODEL_FILES = (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME)

#: Keys every config.json has, with the types they must have.
_REQUIRED: dict[str, tuple[type, ...]] = {
    "architecture": (str,),
    "build": (dict,),
    "class_names": (list,),
    "weights_file": (str,),
}
_OPTIONAL: dict[str, tuple[type, ...]] = {
    "name": (str, type(None)),
    "input_size": (int,),
    "preprocessing": (dict, type(None)),
    "weights_sha256": (str, type(None)),
    "metrics": (dict,),
    "training": (dict,),
    "robustness": (dict, type(None)),
    "calibration": (dict, type(None)),
    "hub_source": (str, type(None)),
    "eval_data": (str, type(None)),
    "evaluation_command": (str, type(None)),
    "dataset_id": (str, type(None)),
    "dataset_name": (str, type(None)),
    "license": (str, type(None)),
    "dataset_counts": (dict, type(None)),
    "bloodcell_version": (str,),
    "keras_version": (str,),
}
_TYPE_NAMES = {str: "a string", dict: "an object", list: "a list", int: "an integer", type(None): "null"}


def preprocessing_description(spec: ModelSpec) -> dict[str, str]:
    """What ``config.json``'s ``preprocessing`` says for a model of this spec."""
    return preprocessing_record(bool(spec.normalization))


def _card_text(path) -> Optional[str]:
    """The text of ``path`` if it is a model card bloodcell wrote (edited since or not), else None."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return text if text.startswith("---") and "library_name: bloodcell" in text[:2000] else None


def is_generated_card(path) -> bool:
    """Whether ``path`` is a model card that bloodcell wrote and nobody edited since (not a user's own
    README, nor a card with a user's notes added): one bloodcell may regenerate."""
    text = _card_text(path)
    return text is not None and not card_edited(text)


def is_edited_card(path) -> bool:
    """Whether ``path`` is a bloodcell model card that was edited after bloodcell wrote it."""
    text = _card_text(path)
    return text is not None and card_edited(text)


def card_kept_because(path) -> str:
    """Why the README.md at ``path`` is not one bloodcell regenerates: edited by hand, or not a bloodcell card."""
    return "was edited after bloodcell wrote it" if is_edited_card(path) else "is not a bloodcell model card"


def card_refusal(path) -> str:
    """Why the README.md at ``path`` is not replaced by a generated card."""
    return f"{path}: {card_kept_because(path)} and would be replaced by a new card"


def _expect(path: Path, key: str, value, types: tuple[type, ...]) -> None:
    if isinstance(value, bool) or not isinstance(value, types):
        wanted = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)
        raise ConfigError(f"{path}: {key!r} must be {wanted}, got {json.dumps(value)[:80]}; "
                          "re-save the model with save_pretrained")


def validate_config(cfg: Any, path: Path) -> dict[str, Any]:
    """Check a parsed ``config.json`` against the format; one line naming the file and the key."""
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT:
        found = cfg.get("format") if isinstance(cfg, dict) else type(cfg).__name__
        raise ConfigError(f"{path}: expected a bloodcell config (\"format\": \"{FORMAT}\"), got {found!r}")
    version = cfg.get("format_version", 1)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ConfigError(f"{path}: 'format_version' must be an integer (1..{FORMAT_VERSION}), got "
                          f"{json.dumps(version)}; re-save the model with save_pretrained")
    if version > FORMAT_VERSION:
        raise ConfigError(f"{path}: format version {version} is newer than this bloodcell understands "
                          f"({FORMAT_VERSION}); upgrade with `pip install -U bloodcell`")
    for key, types in _REQUIRED.items():
        if key not in cfg:
            raise ConfigError(f"{path}: missing key {key!r}; re-save the model with save_pretrained")
        _expect(path, key, cfg[key], types)
    for key, types in _OPTIONAL.items():
        if key in cfg:
            _expect(path, key, cfg[key], types)
    names = cfg["class_names"]
    if len(names) < 2 or not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
        raise ConfigError(f"{path}: 'class_names' must be a list of two or more distinct non-empty strings, "
                          f"got {json.dumps(names)[:80]}")
    if "/" in cfg["weights_file"] or "\\" in cfg["weights_file"] or cfg["weights_file"] in ("", ".", ".."):
        raise ConfigError(f"{path}: 'weights_file' must be a file name inside the folder, got {cfg['weights_file']!r}")
    sha = cfg.get("weights_sha256")
    if sha is not None and not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise ConfigError(f"{path}: 'weights_sha256' must be 64 lower-case hex characters, got {sha!r}")
    for key, value in cfg.get("metrics", {}).items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: metric {key!r} must be a number, got {json.dumps(value)[:80]}")
    _validate_calibration(cfg.get("calibration"), path)
    return cfg


def _validate_calibration(record, path: Path) -> None:
    """The numbers predictions are scaled and flagged with: positive finite temperatures, thresholds in [0, 1]."""
    if not isinstance(record, dict):
        return
    for mode, part in (("", record), ("tta.", record.get("tta"))):
        if not isinstance(part, dict):
            continue
        for key, positive in (("temperature", True), ("temperature_outside", True), ("review_below", False)):
            value = part.get(key)
            if value is None:
                continue
            number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not number or (positive and value <= 0) or (not positive and not 0.0 <= value <= 1.0):
                wanted = "a number above 0" if positive else "a probability in [0, 1]"
                raise ConfigError(f"{path}: 'calibration.{mode}{key}' must be {wanted}, got {json.dumps(value)[:80]}; "
                                  "refit it with Classifier.calibrate")


def read_config(folder) -> dict[str, Any]:
    """The validated ``config.json`` of a model folder."""
    folder = Path(folder)
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise ConfigError(
            f"{folder}: no {CONFIG_NAME}; expected a folder written by Classifier.save_pretrained "
            "(config.json + model.weights.h5 + README.md)"
        )
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DamagedConfigError(f"{path}: not valid JSON ({exc}); the file is damaged: restore the model folder "
                                 "(copy or download it again)") from None
    return validate_config(cfg, path)


class DamagedConfigError(ConfigError):
    """A model's config.json that is not JSON: the model is damaged (the command line exits 1, as for
    damaged weights), not asked for wrongly."""

    exit_code = 1


def checked_config(folder, *, sha256: Optional[str] = None) -> dict[str, Any]:
    """A model folder's config, once its weights file is there and has the hash ``sha256`` (else
    the hash the config records)."""
    folder = Path(folder)
    cfg = read_config(folder)
    weights = folder / cfg["weights_file"]
    if not weights.is_file():
        raise InputNotFoundError(f"{folder}: config.json names weights {weights.name!r}, which is missing; copy the weights "
                                 "file beside config.json, or download or save the model again")
    expected = (sha256 or cfg.get("weights_sha256") or "").lower()
    if expected:
        actual = sha256_file(weights)
        if actual != expected:
            # In the Hugging Face cache the folder holds links: the damaged file is what the link points to.
            target = weights.resolve() if weights.is_symlink() else weights
            raise ChecksumError(
                f"{weights}: sha256 is {actual}, expected {expected}; the file is corrupt or was "
                f"replaced; delete {target} and download it again (or save the model again with save_pretrained)"
            )
    return cfg


def load_model(folder, *, sha256: Optional[str] = None) -> tuple[ClassifierModel, dict[str, Any]]:
    """The model of a folder and its config. With ``sha256``, the weights file must have that hash
    (else the hash the config records)."""
    folder = Path(folder)
    cfg = checked_config(folder, sha256=sha256)
    path = folder / CONFIG_NAME
    weights = folder / cfg["weights_file"]
    spec = ModelSpec.from_config(cfg["architecture"], cfg["build"], source=str(path))
    if spec.num_classes != len(cfg["class_names"]):
        raise ConfigError(f"{path}: build.num_classes is {spec.num_classes} but 'class_names' has "
                          f"{len(cfg['class_names'])} names; re-save the model with save_pretrained")
    if "input_size" in cfg and cfg["input_size"] != spec.input_size:
        raise ConfigError(f"{path}: 'input_size' is {cfg['input_size']} but build.input_size is {spec.input_size}; "
                          "re-save the model with save_pretrained")
    model = build_from_spec(spec, class_names=cfg["class_names"], source=str(path))
    try:
        with warnings.catch_warnings():
            # Keras warns, and keeps fresh weights, for parts of a model that a file lacks.
            warnings.simplefilter("error", UserWarning)
            model.load_weights(weights)
    except Exception as exc:  # h5py/keras raise many types for mismatched or damaged files
        raise ConfigError(
            f"{weights}: weights do not fit architecture {cfg['architecture']!r} ({error_reason(exc)}); the folder is "
            "damaged or was written by another model"
        ) from None
    return model, cfg


#: What a model's ``training.init_from`` keeps of the training record of the model it started from.
PARENT_FIELDS = ("init", "hardware", "command", "wall_time_s")


def parent_record(source: str, class_names, training: dict[str, Any]) -> dict[str, Any]:
    """``training.init_from`` of a model started from another: that model's source, classes and
    how it was trained (:data:`PARENT_FIELDS` of its ``training`` record)."""
    return {"source": source, "class_names": list(class_names),
            **{k: training[k] for k in PARENT_FIELDS if k in training}}


def make_config(model: ClassifierModel, *, name: Optional[str] = None, metrics=None, training=None,
                extra: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """The ``config.json`` content of a model and what is known about it."""
    model = as_classifier_model(model)
    spec = model.spec
    cfg: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "architecture": spec.architecture,
        "build": spec.to_config(),
        "input_size": spec.input_size,
        "class_names": list(model.class_names),
        "preprocessing": preprocessing_description(spec),
        "weights_file": WEIGHTS_NAME,
        "metrics": dict(metrics or {}),
        "training": dict(training or {}),
        "bloodcell_version": __version__,
        "keras_version": keras.__version__,
    }
    cfg.update(extra or {})
    return cfg


def _weights_only(model: ClassifierModel) -> ClassifierModel:
    """The model without optimizer state (a compiled model's weights file would include it)."""
    return model if getattr(model, "optimizer", None) is None else model.copy()


def write_folder(folder, model: ClassifierModel, cfg: dict[str, Any], *, card: bool = True,
                 before_swap: Optional[Callable[[Path], None]] = None) -> Path:
    """Write ``model`` and ``cfg`` as a model folder, replacing ``folder`` as a whole.

    Other files already in ``folder`` are carried over; a README.md there that is not a
    bloodcell card is refused (it would be replaced). ``cfg["weights_sha256"]`` is filled in.
    ``before_swap(stage)`` runs on the complete new folder just before it replaces the old one.
    """
    given, folder = folder, Path(os.path.abspath(folder))  # ".." named: the staging folder goes beside it
    if is_within(Path.cwd(), folder):
        raise ConfigError(f"{given}: is the working folder or one above it, which a save cannot replace as a whole "
                          "(it swaps in a new folder); save into a named folder, e.g. save_pretrained('my-model')")
    blocking = next((p for p in folder.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise ConfigError(f"{given}: {blocking} is a file, not a folder; save into a folder path")
    cfg = _checked_for_saving(cfg, given)
    with locked(folder):  # no other writer meanwhile, so what a killed one left can be recovered
        recover_staged(folder)
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"{folder}: exists and is not a folder; pass a folder path to save into")
        if card and (folder / CARD_NAME).exists() and not is_generated_card(folder / CARD_NAME):
            raise ConfigError(f"{card_refusal(folder / CARD_NAME)}; save into another folder, or pass card=False "
                              "(the README is then kept as it is)")
        foreign = [f for f in (CONFIG_NAME, WEIGHTS_NAME) if (folder / f).exists()]
        if foreign and bloodcell_config(folder / CONFIG_NAME) is None:
            what = "is not a bloodcell config" if foreign[0] == CONFIG_NAME else "has no bloodcell config.json beside it"
            raise ConfigError(f"{folder / foreign[0]}: {what} (another library's model?) and would be replaced; save "
                              "into another folder")
        subfolders = sorted(p.name + "/" for p in folder.iterdir() if p.is_dir() and not p.is_symlink()
                            and not p.name.startswith(STAGING_PREFIX)) if folder.is_dir() and not foreign else []
        if subfolders:  # its whole tree would be copied into the new folder
            raise ConfigError(f"{given}: holds folders ({', '.join(subfolders[:3])}{', ...' if len(subfolders) > 3 else ''}) "
                              "but no model, and a save replaces a folder as a whole; save into a new or empty folder")
        with staged_folder(folder, replace=True) as stage:
            _weights_only(model).save_weights(stage / WEIGHTS_NAME)
            cfg = {**cfg, "weights_sha256": sha256_file(stage / WEIGHTS_NAME)}
            atomic_write_text(stage / CONFIG_NAME, json.dumps(cfg, indent=2) + "\n")
            if card:
                atomic_write_text(stage / CARD_NAME, render_model_card(cfg, folder.resolve().name))
            if folder.is_dir():
                for old in folder.iterdir():
                    if old.name in (CONFIG_NAME, WEIGHTS_NAME) or (stage / old.name).exists():
                        continue
                    if old.name == CARD_NAME and is_generated_card(old):
                        continue  # it describes the weights being replaced
                    if old.is_dir() and not old.is_symlink():
                        shutil.copytree(old, stage / old.name, symlinks=True)
                    else:  # a link stays a link, also one that points nowhere
                        shutil.copy2(old, stage / old.name, follow_symlinks=False)
            if before_swap is not None:
                before_swap(stage)
    return folder


def _plain(value):
    """``value`` (a NumPy number or array) as JSON takes it; a TypeError for anything else."""
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} {value!r:.60} is not a JSON value")


def json_ready(record: dict[str, Any], what: str) -> dict[str, Any]:
    """``record`` as the JSON it is written as (NumPy numbers as numbers), or a one-line ConfigError naming
    ``what`` and the value that JSON cannot hold."""
    try:
        return json.loads(json.dumps(record, default=_plain))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{what}: {exc}; give plain numbers and strings (in metrics and extra)") from None


def _checked_for_saving(cfg: dict[str, Any], given) -> dict[str, Any]:
    """``cfg`` as the JSON it is saved as (NumPy numbers as numbers), refused in one line before anything
    is written if it could not be saved or loaded again (a name that is not a string, a metric that is not a number)."""
    try:
        saved = json.loads(json.dumps(cfg, default=_plain))
        validate_config({**saved, "weights_sha256": None}, Path(given) / CONFIG_NAME)
    except (TypeError, ValueError) as error:  # ConfigError is a ValueError
        reason = str(error).split(f"{CONFIG_NAME}: ", 1)[-1].split("; re-save the model")[0]
        raise ConfigError(f"cannot save to {given}: {reason}; set a JSON value (a string, a number, a list or a "
                          "dict) on the classifier (name, metrics, training, extra) and save again") from None
    return saved


def update_config(folder, changes: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    """Apply ``changes`` to a folder's config and regenerate its card; both files are replaced
    atomically (config first: a card is always rendered from a config on disk)."""
    folder = Path(folder)
    with locked(folder):
        cfg = changes(read_config(folder))
        validate_config(cfg, folder / CONFIG_NAME)
        atomic_write_text(folder / CONFIG_NAME, json.dumps(cfg, indent=2) + "\n")
        if not (folder / CARD_NAME).exists() or is_generated_card(folder / CARD_NAME):
            atomic_write_text(folder / CARD_NAME, render_model_card(cfg, folder.resolve().name))
    return cfg


def model_files(folder) -> list[Path]:
    """The files of a model folder that belong to the model (what is published)."""
    folder = Path(folder)
    return [folder / name for name in MODEL_FILES if (folder / name).is_file()]


__all__ = [
    "CARD_NAME",
    "CONFIG_NAME",
    "FORMAT",
    "FORMAT_VERSION",
    "MODEL_FILES",
    "PREPROCESSING",
    "TEST_FILES",
    "WEIGHTS_NAME",
    "bloodcell_config",
    "checked_config",
    "is_generated_card",
    "load_model",
    "make_config",
    "model_files",
    "read_config",
    "update_config",
    "validate_config",
    "write_folder",
]
