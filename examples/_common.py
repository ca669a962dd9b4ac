"""What the example scripts share: the tiny mode and where the shipped sample data lives.

Every example runs in a *tiny* mode when ``--tiny`` is passed or ``BLOODCELL_EXAMPLES_TINY=1`` is
set: shipped sample data, one epoch, a small input size. CI runs them that way
(``tests/test_examples.py``); without it they do the real thing on the data you give them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout, whether bloodcell is installed or not
#: 16 images named ``<class>_<file>.jpg`` (two per class), from the bundled model's held-out split.
SAMPLE_IMAGES = REPO / "examples" / "images"
#: The same kind of images as a class-folder data set (2 per class).
SAMPLE_DATASET = REPO / "tests" / "data" / "pbc96_sample"
#: Where the project keeps the full pbc96 data set (13,673 images), next to the repository.
PBC96 = REPO.parent / "shared" / "data" / "pbc96"
TINY_ENV = "BLOODCELL_EXAMPLES_TINY"


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the ``--tiny`` flag every example takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--tiny", action="store_true", default=os.environ.get(TINY_ENV) == "1",
                   help=f"run on shipped sample data with tiny settings (also: {TINY_ENV}=1)")
    return p


def shown(path) -> str:
    """``path`` as given, but relative to the repository when it is an absolute path inside it."""
    path = Path(path)
    return str(path.relative_to(REPO)) if path.is_absolute() and path.is_relative_to(REPO) else str(path)


def tiny_npz(folder: Path) -> Path:
    """The 16 sample cells and their 8 flips/rotations (128 images) as a course-layout .npz."""
    import numpy as np

    from bloodcell.data import load_dataset

    ds = load_dataset(SAMPLE_DATASET)
    views = [np.rot90(ds.images, k, axes=(1, 2)) for k in range(4)]
    views += [v[:, :, ::-1] for v in views]
    path = Path(folder) / "tiny_cells.npz"
    np.savez_compressed(path, images=np.concatenate(views), labels=np.tile(ds.labels, 8))
    return path
