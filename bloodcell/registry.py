"""The architecture registry and the zoo's pretrained entries.

Each backbone family module registers its builders with :func:`register_model` and declares its
pretrained entries beside them as :class:`PretrainedCfg` data (like timm's ``default_cfgs`` or
keras-hub presets).
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ._classes import CLASS_NAMES
from .errors import ModelNotFoundError


@dataclass(frozen=True)
class PretrainedCfg:
    """Metadata of one pretrained zoo entry (``<architecture>.<tag>``)."""

    name: str
    architecture: str
    input_size: int = 96
    class_names: tuple[str, ...] = CLASS_NAMES
    preprocessing: str = "uint8 RGB 0..255; centre crop to square, Lanczos resize; normalisation inside the model"
    repo_id: Optional[str] = None
    revision: Optional[str] = None
    filename: str = "model.weights.h5"
    sha256: Optional[str] = None
    size_bytes: Optional[int] = None
    num_params: Optional[int] = None
    license: str = "cc-by-4.0"
    training_data: str = "pbc96 (PBC dataset, Acevedo et al. 2020, CC BY 4.0)"
    init: str = "random"
    bundled: bool = False
    metrics: dict[str, float] = field(default_factory=dict)
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["class_names"] = list(self.class_names)
        return d


@dataclass(frozen=True)
class ArchitectureInfo:
    name: str
    builder: Callable[..., Any]
    family: str
    description: str
    trainable_here: bool = True


_ARCHITECTURES: dict[str, ArchitectureInfo] = {}
_PRETRAINED: dict[str, PretrainedCfg] = {}


def register_model(name: str, *, family: str, description: str = "", trainable_here: bool = True):
    """Decorator registering a backbone builder under ``name``; a second registration is refused."""

    def decorator(fn):
        if name in _ARCHITECTURES:
            raise ValueError(
                f"architecture {name!r} is already registered (by {_ARCHITECTURES[name].builder.__module__}); "
                "pick another name"
            )
        _ARCHITECTURES[name] = ArchitectureInfo(name, fn, family, description or (fn.__doc__ or "").strip().split("\n")[0], trainable_here)
        return fn

    return decorator


def register_pretrained(*cfgs: PretrainedCfg) -> None:
    """Add pretrained entries to the zoo; names must be unique and name a registered architecture."""
    for cfg in cfgs:
        if cfg.name in _PRETRAINED:
            raise ValueError(f"pretrained entry {cfg.name!r} is already registered; names must be unique")
        if cfg.architecture not in _ARCHITECTURES:
            raise ValueError(
                f"pretrained entry {cfg.name!r} names architecture {cfg.architecture!r}, "
                f"which is not registered (known: {', '.join(sorted(_ARCHITECTURES))})"
            )
        _PRETRAINED[cfg.name] = cfg


def _load_families() -> None:
    """Import the backbone family modules, which fill the registry as a side effect."""
    import importlib

    importlib.import_module("bloodcell.models")


def _unknown(kind: str, name: str, known) -> ModelNotFoundError:
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return ModelNotFoundError(f"unknown {kind} {name!r}; known: {', '.join(sorted(known))}.{hint}")


def list_models() -> list[str]:
    """Names of the registered architectures."""
    _load_families()
    return sorted(_ARCHITECTURES)


def architecture_info(name: str) -> ArchitectureInfo:
    _load_families()
    try:
        return _ARCHITECTURES[name]
    except KeyError:
        raise _unknown("architecture", name, _ARCHITECTURES) from None


def list_pretrained(architecture: str | None = None) -> list[str]:
    """Names of the zoo's pretrained entries, optionally only those of one architecture."""
    _load_families()
    return sorted(n for n, c in _PRETRAINED.items() if architecture is None or c.architecture == architecture)


def pretrained_entry(name: str) -> PretrainedCfg:
    """The :class:`PretrainedCfg` of a zoo entry; an architecture name gives its default entry."""
    _load_families()
    if name in _PRETRAINED:
        return _PRETRAINED[name]
    if name in _ARCHITECTURES:
        entries = list_pretrained(name)
        if entries:
            return _PRETRAINED[entries[0]]
        raise ModelNotFoundError(
            f"architecture {name!r} has no pretrained weights in the zoo (entries: "
            f"{', '.join(list_pretrained()) or 'none'}); build it untrained with "
            f"bloodcell.build_model({name!r}) and train it with bloodcell.Trainer"
        )
    raise _unknown("model", name, list(_PRETRAINED) + list(_ARCHITECTURES))
