"""The architecture registry and the zoo's pretrained entries.

Each backbone family module (``bloodcell/models/<family>.py``) registers its builders with
:func:`register_model` and declares its pretrained entries beside them as :class:`PretrainedCfg`
data (like timm's ``default_cfgs`` or keras-hub presets). Importing this module imports every
family, so the lookups below see all of them.
"""

from __future__ import annotations

from . import models  # noqa: F401  (imports every family: they register themselves)
from ._registry import _ARCHITECTURES, _PRETRAINED, ArchitectureInfo, PretrainedCfg, register_model, register_pretrained
from ._registry import unknown as _unknown
from .errors import ModelNotFoundError

__all__ = [
    "ArchitectureInfo",
    "PretrainedCfg",
    "architecture_info",
    "list_models",
    "list_pretrained",
    "pretrained_entry",
    "register_model",
    "register_pretrained",
]


def list_models() -> list[str]:
    """Names of the registered architectures."""
    return sorted(_ARCHITECTURES)


def architecture_info(name: str) -> ArchitectureInfo:
    """The registration of architecture ``name`` (builder, family, description)."""
    try:
        return _ARCHITECTURES[name]
    except (KeyError, TypeError):
        raise _unknown("architecture", str(name), _ARCHITECTURES) from None


def list_pretrained(architecture: str | None = None) -> list[str]:
    """Names of the zoo's pretrained entries, optionally only those of one architecture."""
    return sorted(n for n, c in _PRETRAINED.items() if architecture is None or c.architecture == architecture)


def pretrained_entry(name: str) -> PretrainedCfg:
    """The :class:`PretrainedCfg` of a zoo entry; an architecture name gives its default entry."""
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
