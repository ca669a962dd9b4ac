"""How faithful the default's class-activation heatmaps are: a deletion test, and the docs' grid.

Deletion test (Petsiuk et al., RISE, BMVC 2018): for held-out pbc96 cells, replace the hottest
10%, 20%, ... 50% of the pixels (by the heatmap of the predicted class) with the image's
background colour and measure the mean probability of that class; the same with as many pixels
chosen at random, and the coldest pixels first. A faithful heatmap makes the probability fall
faster when the hottest pixels go than when the coldest do.
The area under each curve (mean over the fractions) is the headline.

Writes ``benchmarks/results/explain.json`` and ``docs/img/explain_grid.png`` (the 16 sample
cells of ``examples/images``, two of each class, with their heatmaps). Usage:
    python benchmarks/bench_explain.py [--data ../shared/data/pbc96] [--images 400]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from _measured import weights_sha256  # noqa: E402  (benchmarks/ is the script's folder)

FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "pbc96"))
    ap.add_argument("--images", type=int, default=400, help="held-out cells in the deletion test")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "explain.json"))
    ap.add_argument("--figure", default=str(ROOT / "docs" / "img" / "explain_grid.png"))
    args = ap.parse_args(argv)
    if not Path(args.data).is_dir():
        raise SystemExit(f"{args.data}: no such folder; give --data the pbc96 class folders")

    import numpy as np
    from PIL import Image

    import bloodcell
    from bloodcell.explain import overlay
    from bloodcell.imageio import load_image, resize_images
    from bloodcell.zoo import bundled_path

    clf = bloodcell.load_classifier()
    listed = json.loads((bundled_path(bloodcell.DEFAULT_MODEL) / "test_files.json").read_text())
    pick = np.random.default_rng(0).choice(len(listed), min(args.images, len(listed)), replace=False)
    images = resize_images(np.stack([load_image(Path(args.data) / listed[i], 96) for i in sorted(pick)]), clf.input_size)
    maps, classes = clf.explain(images)
    rows = np.arange(len(images))
    border = np.concatenate([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], axis=1)
    background = np.median(border, axis=1).astype(np.uint8)  # (N, 3)
    rng = np.random.default_rng(1)
    order_heat = np.argsort(-maps.reshape(len(maps), -1), axis=1)
    order_random = np.argsort(rng.random(order_heat.shape), axis=1)
    base = clf.predict_proba(images, verbose=0)[rows, classes]
    order_cold = order_heat[:, ::-1]
    curves = {"heatmap": [], "coldest": [], "random": []}
    for fraction in FRACTIONS:
        k = int(fraction * order_heat.shape[1])
        for name, order in (("heatmap", order_heat), ("coldest", order_cold), ("random", order_random)):
            flat = images.reshape(len(images), -1, 3).copy()
            flat[rows[:, None], order[:, :k]] = background[:, None, :]
            proba = clf.predict_proba(flat.reshape(images.shape), verbose=0)[rows, classes]
            curves[name].append(float(proba.mean()))
    result = {
        "model": bloodcell.DEFAULT_MODEL,
        "weights_sha256": weights_sha256(),
        "method": "CAM (= Grad-CAM for a global-average-pooling + dense head)",
        "images": int(len(images)),
        "data": f"{len(images)} cells of the held-out split of {Path(args.data).name} (test_files.json), seed 0",
        "fractions_deleted": list(FRACTIONS),
        "mean_probability_before": float(base.mean()),
        "mean_probability_after_deleting": curves,
        "area_heatmap": float(np.mean(curves["heatmap"])),
        "area_coldest": float(np.mean(curves["coldest"])),
        "area_random": float(np.mean(curves["random"])),
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"deletion test on {len(images)} cells: mean probability {result['area_heatmap']:.3f} (hottest pixels "
          f"removed), {result['area_coldest']:.3f} (coldest first), {result['area_random']:.3f} (random pixels); "
          f"before {base.mean():.3f}")

    files = sorted((ROOT / "examples" / "images").glob("*.jpg"))
    cells = np.stack([load_image(f, clf.input_size) for f in files])
    heat, shown = clf.explain(cells)
    columns = []
    for i in range(0, len(cells), 2):  # one column per class: two cells, each above its heatmap
        columns.append(np.concatenate([cells[i], overlay(cells[i], heat[i]), cells[i + 1],
                                       overlay(cells[i + 1], heat[i + 1])], axis=0))
    grid = Image.fromarray(np.concatenate(columns, axis=1))
    grid.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(args.figure, optimize=True)  # docs: < 300 kB
    print(f"wrote {args.out} and {args.figure}; classes shown: {[clf.class_names[c] for c in shown]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
