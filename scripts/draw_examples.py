"""Redraw the sample images in examples/images from the bundled default's held-out split.

    python scripts/draw_examples.py [--data ../shared/data/pbc96] [--per-class 2] [--seed 7]

Draws ``--per-class`` images of each class at random (``--seed``) from the images listed in
``bloodcell/_weights/<default>/test_files.json`` (never seen in training), copies them to
``examples/images/<class>_<file name>`` and removes the sample images drawn before. The draw does
not look at any model's predictions.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "pbc96"))
    ap.add_argument("--per-class", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default=str(ROOT / "examples" / "images"))
    args = ap.parse_args(argv)

    import numpy as np

    from bloodcell import CLASS_NAMES, DEFAULT_MODEL
    from bloodcell.classifier import bundled_path

    split = bundled_path(DEFAULT_MODEL) / "test_files.json"
    listed = sorted(json.loads(split.read_text()))
    rng = np.random.default_rng(args.seed)
    out = Path(args.out)
    for old in out.glob("*.jpg"):
        old.unlink()
    for name in CLASS_NAMES:
        files = [f for f in listed if f.split("/")[0] == name]
        for f in rng.choice(files, args.per_class, replace=False):
            shutil.copy2(Path(args.data) / f, out / f"{name}_{Path(f).name}")
            print(f"{name}_{Path(f).name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
