"""Build the outlier reference shipped in ``bloodcell/_assets/outlier_reference.npz``.

The reference is fitted to pbc96 cells only (no photographs or other non-cells are used): the
half of pbc96 whose file path hashes to an even number (:func:`in_reference`), so that
``benchmarks/bench_cleaning.py`` can measure false positives on the other half.

    python benchmarks/make_outlier_reference.py [--data ../shared/data/pbc96]
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import numpy as np

from bloodcell.data import load_dataset
from bloodcell.outliers import DEFAULT_REFERENCE, fit_outlier_reference

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pbc96"


def in_reference(path: str) -> bool:
    """Whether a pbc96 file (by its ``class/name.jpg`` path) is one the reference is fitted to."""
    key = "/".join(Path(path).parts[-2:])
    return hashlib.sha256(key.encode()).digest()[0] % 2 == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="pbc96 folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_REFERENCE)
    args = parser.parse_args()
    data = load_dataset(args.data)
    rows = np.array([in_reference(p) for p in data.paths])
    t0 = time.perf_counter()
    ref = fit_outlier_reference(
        data.images[rows],
        description=f"pbc96 cells ({rows.sum()} of {len(data)}, sha256(path)[0] even) and 2 corrupted copies each",
    )
    ref.save(args.out, overwrite=True)  # the shipped reference is replaced on purpose
    print(f"fitted on {rows.sum()} cells in {time.perf_counter() - t0:.1f} s; threshold {ref.threshold:.2f}; "
          f"{len(ref.weights)} components; wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
