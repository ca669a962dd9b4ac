"""The augmentation presets: what each does, pictures of augmented cells, and a training pipeline.

    python examples/augmentation.py ../shared/data/pbc96 --out-dir aug_previews
    python examples/augmentation.py --tiny

Writes ``<out-dir>/augment_<preset>.png`` for the "seed" and "robust" presets: each row of
original cells is followed by augmented versions of them (augmented as one batch, so CutMix
pastes patches between neighbours).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from _common import SAMPLE_DATASET, data_argument, parser, run


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("data", nargs="?", help="class-folder tree or .npz (default: the shipped sample)")
    p.add_argument("--out-dir", default=None, help="folder for the preview PNGs (default: a temporary folder)")
    p.add_argument("-n", type=int, default=16, help="number of cells in the previews")
    p.add_argument("--views", type=int, default=2, help="augmented rows per row of cells")
    args = p.parse_args()
    args.data = data_argument(p, args.data, args.tiny, lambda: SAMPLE_DATASET)
    if args.tiny:
        args.n, args.views = 8, 1
    tmp = tempfile.TemporaryDirectory(prefix="bloodcell-augment-")
    out_dir = Path(args.out_dir or tmp.name)
    out_dir.mkdir(parents=True, exist_ok=True)

    import numpy as np
    from PIL import Image

    import bloodcell
    from bloodcell.augment import build_augmentation, describe_preset, preview_grid
    from bloodcell.pipeline import make_dataset

    # 1. What each preset does: its layers in order, their settings, the share of images changed.
    for preset in ("seed", "robust"):
        print(f"preset {preset!r}: {build_augmentation(preset)}")
        for row in describe_preset(preset):
            print(f"  {row['layer']:<52} p={row['probability']:.3f}  {row['description']}")

    # 2. Pictures: the same cells, augmented by each preset.
    data = bloodcell.load_dataset(args.data)
    rng = np.random.default_rng(0)
    cells = data.images[np.sort(rng.choice(len(data), min(args.n, len(data)), replace=False))]
    for preset in ("seed", "robust"):
        grid = preview_grid(cells, preset, n=len(cells), seed=0, columns=8, views=args.views)
        path = out_dir / f"augment_{preset}.png"
        Image.fromarray(grid).save(path)
        print(f"wrote {path.name}: {grid.shape[1]}x{grid.shape[0]} pixels, {len(cells)} cells x {args.views} view(s)")

    # 3. In a tf.data training pipeline: augmented per batch, reproducibly (same seed, same batches).
    ds = make_dataset(data.images, data.labels, batch_size=8, augment="robust", seed=42)
    images, labels = next(iter(ds))
    print(f"one training batch: images {images.dtype.name} {tuple(images.shape)} in "
          f"[{float(images.numpy().min()):.0f}, {float(images.numpy().max()):.0f}], "
          f"labels {tuple(labels.shape)} summing to {float(labels.numpy().sum(axis=1).mean()):.2f} (CutMix mixes them)")
    tmp.cleanup()


if __name__ == "__main__":
    run(main)
