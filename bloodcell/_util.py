"""Small helpers shared across modules."""

from __future__ import annotations

import hashlib
import os
import sys
import zipfile
import zlib
from pathlib import Path

#: What numpy raises when it reads a truncated or damaged .npz (a zip archive of .npy files).
DAMAGED_NPZ = (zipfile.BadZipFile, zlib.error, EOFError)


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def outside_stacklevel() -> int:
    """``warnings.warn``'s ``stacklevel`` for a warning raised in the caller that points at the
    first frame outside bloodcell (the user's line), however deep the call chain."""
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    return level


def pad_batch(batch, batch_size: int):
    """``batch`` padded with zero rows to a power of two (at most ``batch_size``): a compiled predict
    function then sees a few batch shapes only, instead of retracing for every odd-sized last batch.
    Keep the first ``len(batch)`` rows of what it returns."""
    import numpy as np

    n = len(batch)
    padded = min(batch_size, 1 << max(n - 1, 0).bit_length())
    return np.concatenate([batch, np.zeros((padded - n, *batch.shape[1:]), batch.dtype)]) if n < padded else batch


def sha256_file(path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(Path(path), "rb") as f:
        for block in iter(lambda: f.read(chunk_size), b""):
            h.update(block)
    return h.hexdigest()


def new_figure(size: tuple[float, float]):
    """A matplotlib Figure drawn with Agg, independent of pyplot's global state."""
    from matplotlib.figure import Figure

    return Figure(figsize=size)


def error_reason(error: BaseException | None) -> str:
    """The first line of an error message (following ``__cause__`` for wrapped errors), shortened."""
    while error is not None and not str(error).strip() and error.__cause__ is not None:
        error = error.__cause__
    if error is None:
        return ""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = f"{type(error).__name__}: {lines[0] if lines else ''}"
    return text if len(text) <= 160 else text[:157] + "..."
