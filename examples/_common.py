"""What the example scripts share: the tiny mode and where the shipped sample data lives.

Every example runs in a *tiny* mode when ``--tiny`` is passed or ``BLOODCELL_EXAMPLES_TINY=1`` is
set: shipped sample data, one epoch, a small input size. CI runs them that way
(``tests/test_examples.py``); without it they do the real thing on the data you give them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
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
#: Where to get the PBC data set, for the line printed when DATA is missing.
PBC_SOURCE = ("PBC (Acevedo et al. 2020, CC BY 4.0): https://doi.org/10.17632/snkd93bnjr.1, "
              "one folder per class")


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the ``--tiny`` flag every example takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--tiny", action="store_true", default=os.environ.get(TINY_ENV) == "1",
                   help=f"run on shipped sample data with tiny settings (also: {TINY_ENV}=1)")
    return p


def run(main) -> None:
    """Run an example's ``main``: bloodcell's errors on bad input end it with their one line (and the
    command line's exit status), not a traceback."""
    try:
        main()
    except Exception as exc:
        from bloodcell.errors import BloodcellError

        if not isinstance(exc, BloodcellError):
            raise
        print(f"{Path(sys.argv[0]).name}: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)


def data_argument(p: argparse.ArgumentParser, data, tiny: bool, tiny_data) -> str:
    """DATA as given, ``tiny_data()`` in tiny mode without one; a usage error (one line, saying
    where to get PBC) when DATA is missing or names nothing that exists."""
    if tiny and not data:
        return str(tiny_data())
    if not data:
        p.error(f"give DATA (a class-folder tree or an .npz), or --tiny; to get {PBC_SOURCE}")
    if not Path(data).exists():
        p.error(f"{data}: no such file or folder; give a class-folder tree or an .npz, e.g. {PBC_SOURCE}")
    return str(data)


@contextlib.contextmanager
def without_litert_info():
    """Drop LiteRT's "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." line, which its C++
    runtime writes straight to stderr (it has no Python switch); whatever else it writes there
    in the block is passed on."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines(keepends=True):
                if "XNNPACK delegate for CPU" not in line:
                    sys.stderr.write(line)


def shown(path) -> str:
    """``path`` as given, but relative to the repository when it is an absolute path inside it."""
    path = Path(path)
    return str(path.relative_to(REPO)) if path.is_absolute() and path.is_relative_to(REPO) else str(path)


def tiny_npz(folder: Path) -> Path:
    """The 16 sample cells in 8 views each (128 images) as a course-layout .npz: each view a crop
    shifted by up to 8 pixels, resized back, then flipped or turned. A mere flip or turn would be a
    duplicate, which ``split`` keeps on one side with its original."""
    import numpy as np

    from bloodcell.data import load_dataset
    from bloodcell.imageio import resize_image

    ds = load_dataset(SAMPLE_DATASET)
    side = ds.images.shape[1]
    views = []
    for v, (dy, dx) in enumerate([(0, 0), (8, 0), (0, 8), (8, 8), (4, 4), (8, 4), (4, 8), (2, 6)]):
        crops = np.stack([resize_image(np.ascontiguousarray(im[dy : dy + side - 8, dx : dx + side - 8]), side)
                          for im in ds.images])
        crops = np.rot90(crops, v % 4, axes=(1, 2))
        views.append(np.ascontiguousarray(crops[:, :, ::-1] if v >= 4 else crops))
    path = Path(folder) / "tiny_cells.npz"
    np.savez_compressed(path, images=np.concatenate(views), labels=np.tile(ds.labels, 8))
    return path
