"""What a benchmark measured: the sha256 of the weights behind a model source, written into every
result measured on a model so that the docs tests can tell a stale result from a current one."""
from __future__ import annotations

from pathlib import Path


def weights_sha256(source=None) -> str:
    """The sha256 of the weights file that ``bloodcell.load_classifier(source)`` loads (checked)."""
    from bloodcell._util import sha256_file
    from bloodcell.classifier import DEFAULT_MODEL
    from bloodcell.folder import checked_config
    from bloodcell.zoo import resolve

    folder, entry = resolve(source, default=DEFAULT_MODEL)
    cfg = checked_config(folder, sha256=entry.sha256 if entry is not None else None)
    return cfg.get("weights_sha256") or sha256_file(Path(folder) / cfg["weights_file"])
