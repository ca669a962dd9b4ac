"""The architecture registry and the zoo's pretrained entries.

Each backbone family module (``bloodcell/models/<family>.py``) registers its builders with
:func:`register_model` and declares its pretrained entries beside them as :class:`PretrainedCfg`
data (like timm's ``default_cfgs`` or keras-hub presets). Importing this module imports every
family, so the lookups below see all of them.
"""

from __future__ import annotations

import fnmatch

from . import models  # noqa: F401  (imports every family: they register themselves)
from ._registry import _ARCHITECTURES, _PRETRAINED, ArchitectureInfo, PretrainedCfg, register_model, register_pretrained
from ._registry import unknown as _unknown
from .errors import ConfigError, ModelNotFoundError

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


def list_models(filter: str = "", *, pretrained: bool = False) -> list[str]:
    """Names of the registered architectures, optionally those matching ``filter`` (a shell-style
    pattern such as ``"eff*"``, ignoring case) and, with ``pretrained``, only those with zoo entries."""
    names = sorted(_ARCHITECTURES)
    if pretrained:
        names = [n for n in names if any(c.architecture == n for c in _PRETRAINED.values())]
    return _matching(names, filter)


def architecture_info(name: str) -> ArchitectureInfo:
    """The registration of architecture ``name`` (builder, family, description)."""
    try:
        return _ARCHITECTURES[name]
    except (KeyError, TypeError):
        raise _unknown("architecture", str(name), _ARCHITECTURES) from None


def list_pretrained(filter: str | None = None, *, architecture: str | None = None) -> list[str]:
    """Names of the zoo's pretrained entries: all, those of one architecture (``"mnv3s"``), or those
    matching a shell-style pattern (``"*.pbc96"``, ignoring case; ``architecture=`` names one too). A name that is none of these
    (no wildcard, no such architecture or entry) is refused, as a typo."""
    names = sorted(_PRETRAINED)
    for value, what in ((filter, "filter"), (architecture, "architecture")):
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{what}: expected a name or a pattern such as 'eff*', got {type(value).__name__}")
    if architecture:  # ``architecture=``, the keyword of bloodcell 0.1; with a filter too, both apply
        names = [n for n in names if _PRETRAINED[n].architecture == architecture_info(architecture).name]
    if not filter:
        return names
    arch = {a.lower(): a for a in _ARCHITECTURES}.get(filter.lower())
    if arch is not None:
        return [n for n in names if _PRETRAINED[n].architecture == arch]
    found = _matching(names, filter)
    if not found and not any(c in filter for c in "*?["):
        raise _unknown("architecture or zoo entry", filter, list(_ARCHITECTURES) + names)
    return found


def _matching(names: list[str], pattern: str) -> list[str]:
    if not pattern:
        return names
    if not isinstance(pattern, str):
        raise ConfigError(f"filter: expected a name or a pattern such as 'eff*', got {type(pattern).__name__}")
    return [n for n in names if fnmatch.fnmatch(n.lower(), pattern.lower())]


def pretrained_entry(name: str) -> PretrainedCfg:
    """The :class:`PretrainedCfg` of a zoo entry; an architecture name gives its default entry."""
    if not isinstance(name, str):
        raise ConfigError(f"name: expected a zoo entry or architecture name (a string), got {type(name).__name__}")
    if name in _PRETRAINED:
        return _PRETRAINED[name]
    if name in _ARCHITECTURES:
        # The first entry registered for it (a family declares its default first), as timm's default tag.
        entry = next((c for c in _PRETRAINED.values() if c.architecture == name), None)
        if entry is not None:
            return entry
        raise ModelNotFoundError(
            f"architecture {name!r} has no pretrained weights in the zoo (entries: "
            f"{', '.join(list_pretrained()) or 'none'}); train one with `bloodcell train DATA --model {name}` "
            f"(in Python: bloodcell.build_model({name!r}) and bloodcell.Trainer)"
        )
    raise _unknown("model", name, list(_PRETRAINED) + list(_ARCHITECTURES))
