"""The registry's data: :class:`PretrainedCfg`, the decorator families register with, the tables.

A leaf module (it imports no family), so that the family modules can import it; the lookups
that need every family registered are in :mod:`bloodcell.registry`, which imports them.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping, Optional

from ._classes import CLASS_NAMES
from ._preprocessing import PREPROCESSING
from .errors import ConfigError, ModelNotFoundError


@dataclass(frozen=True)
class PretrainedCfg:
    """Metadata of one pretrained zoo entry (``<architecture>.<tag>``)."""

    name: str
    architecture: str
    input_size: int = 96
    class_names: tuple[str, ...] = CLASS_NAMES
    #: as the entry's config.json records it (``bloodcell._preprocessing.preprocessing_record``)
    preprocessing: Mapping[str, str] = field(default_factory=lambda: dict(PREPROCESSING))
    repo_id: Optional[str] = None
    revision: Optional[str] = None
    filename: str = "model.weights.h5"
    sha256: Optional[str] = None
    #: sha256 of the entry's config.json (its normalisation and calibration change the answers):
    #: required where ``revision`` is a branch, which may move.
    config_sha256: Optional[str] = None
    size_bytes: Optional[int] = None
    num_params: Optional[int] = None
    license: str = "cc-by-4.0"
    training_data: str = "pbc96 (PBC dataset, Acevedo et al. 2020, CC BY 4.0)"
    init: str = "random"
    bundled: bool = False
    #: whether ``repo_id`` serves the entry yet; until then it loads from the release copy
    #: ``zoo/<name>`` of a checkout of bloodcell's source (pinned by the same sha256s)
    published: bool = True
    metrics: Mapping[str, float] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        # frozen all the way down: an entry is shared by the whole process
        object.__setattr__(self, "class_names", tuple(self.class_names))
        object.__setattr__(self, "preprocessing", MappingProxyType(dict(self.preprocessing)))
        object.__setattr__(self, "metrics", MappingProxyType(dict(self.metrics)))

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {**d, "class_names": list(self.class_names), "preprocessing": dict(self.preprocessing),
                "metrics": dict(self.metrics)}


@dataclass(frozen=True)
class ArchitectureInfo:
    name: str
    builder: Callable[..., Any]
    family: str
    description: str
    trainable_here: bool = True
    imagenet: bool = True  # whether Keras has ImageNet weights for its backbone


_ARCHITECTURES: dict[str, ArchitectureInfo] = {}
_PRETRAINED: dict[str, PretrainedCfg] = {}


def register_model(name: str, *, family: str, description: str = "", trainable_here: bool = True,
                   imagenet: bool = True):
    """Decorator registering a backbone builder under ``name``; a second registration is refused.
    ``imagenet``: whether the builder takes ImageNet weights."""

    if not isinstance(name, str) or not name or any(c in name for c in "./\\@ "):
        raise ConfigError(f"register_model: expected an architecture name without '.', '/', '\\', '@' or spaces "
                          f"(a zoo entry is '<architecture>.<tag>'), got {name!r}")

    def decorator(fn):
        if name in _ARCHITECTURES:
            raise ConfigError(
                f"architecture {name!r} is already registered (by {_ARCHITECTURES[name].builder.__module__}); "
                "pick another name"
            )
        _ARCHITECTURES[name] = ArchitectureInfo(name, fn, family, description or (fn.__doc__ or "").strip().split("\n")[0],
                                                trainable_here, imagenet)
        return fn

    return decorator


def register_pretrained(*cfgs: PretrainedCfg) -> None:
    """Add pretrained entries to the zoo, all or none: each named ``<architecture>.<tag>`` after a
    registered architecture, unique, with a plausible input size and checksums. An architecture's
    first entry is its default (what ``load_classifier("<architecture>")`` loads)."""
    for i, cfg in enumerate(cfgs):
        if not isinstance(cfg, PretrainedCfg):
            raise ConfigError(f"register_pretrained: expected PretrainedCfg entries, got a {type(cfg).__name__}")
        if cfg.name in _PRETRAINED or cfg.name in (c.name for c in cfgs[:i]):
            raise ConfigError(f"pretrained entry {cfg.name!r} is already registered; names must be unique")
        if cfg.architecture not in _ARCHITECTURES:
            raise ConfigError(
                f"pretrained entry {cfg.name!r} names architecture {cfg.architecture!r}, "
                f"which is not registered (known: {', '.join(sorted(_ARCHITECTURES))})"
            )
        prefix = cfg.architecture + "."
        if not cfg.name.startswith(prefix) or len(cfg.name) == len(prefix) or any(c in cfg.name for c in "/\\@ "):
            raise ConfigError(f"pretrained entry {cfg.name!r}: expected a name '{cfg.architecture}.<tag>' (no /, \\, @ "
                              f"or spaces), e.g. '{cfg.architecture}.mylab'")
        if isinstance(cfg.input_size, bool) or not isinstance(cfg.input_size, int) or cfg.input_size < 32:
            raise ConfigError(f"pretrained entry {cfg.name!r}: input_size must be an integer >= 32, got {cfg.input_size!r}")
        for key in ("sha256", "config_sha256"):
            value = getattr(cfg, key)
            if value is not None and not (isinstance(value, str) and len(value) == 64
                                          and all(c in "0123456789abcdef" for c in value)):
                raise ConfigError(f"pretrained entry {cfg.name!r}: {key} must be 64 lower-case hex digits "
                                  f"(sha256sum's output), got {value!r}")
        if not cfg.bundled and not cfg.repo_id:
            raise ConfigError(f"pretrained entry {cfg.name!r}: give repo_id (its Hub repo) or bundled=True; "
                              "it could not be loaded")
        pinned = isinstance(cfg.revision, str) and len(cfg.revision) == 40 and all(
            c in "0123456789abcdef" for c in cfg.revision)
        if not cfg.bundled and not pinned and not (cfg.sha256 and cfg.config_sha256):
            raise ConfigError(f"pretrained entry {cfg.name!r}: revision {cfg.revision!r} is not a commit and may move; "
                              "give sha256 and config_sha256 (sha256sum of model.weights.h5 and config.json), or "
                              "pin revision to a 40-hex commit")
    for cfg in cfgs:
        _PRETRAINED[cfg.name] = cfg


def closest(name: str, known) -> Optional[str]:
    """The name among ``known`` closest to ``name`` (a likely typo), or None."""
    known = list(known)
    lower = {k.lower(): k for k in known}
    close = difflib.get_close_matches(str(name).lower(), list(lower), n=1)  # ignoring case: 'VGG16', 'MNV3S'
    return lower[close[0]] if close else None


def did_you_mean(name: str, known) -> str:
    """``"; did you mean 'x'?"``, for the end of an error about ``name``, when one of ``known`` is
    close to it (:func:`closest`); empty otherwise."""
    close = closest(name, known)
    return f"; did you mean {close!r}?" if close else ""


def unknown(kind: str, name: str, known) -> ModelNotFoundError:
    """The error for an unknown ``kind`` name, listing the known ones and the closest match."""
    close = closest(name, known)
    hint = f" Did you mean {close!r}?" if close else ""
    if kind == "architecture" and (name in _PRETRAINED or os.path.isdir(name)):
        hint = (f" {name!r} is a trained model: load it with load_classifier({name!r}), or train from it with "
                f"Trainer(weights={name!r}).")
    elif kind == "architecture":
        hint += (" An architecture of your own is known once the module that registers it "
                 "(bloodcell.registry.register_model) is imported.")
    return ModelNotFoundError(f"unknown {kind} {name!r}; known: {', '.join(sorted(known))}.{hint}")
