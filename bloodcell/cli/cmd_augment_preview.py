"""``bloodcell augment-preview``: a PNG grid of images and their augmented views."""

from __future__ import annotations

import argparse
import sys

from .._choices import PRESETS
from ..errors import DataError, InputNotFoundError
from ._common import MAX_SCALE, UsageError, check_output_file, one_line, seed_value

from pathlib import Path

#: Upper bounds that keep the picture (and the batch augmented at once) in memory.
MAX_IMAGES, MAX_VIEWS, MAX_PIXELS = 1024, 16, 64 * 10**6


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "augment-preview",
        help="write a picture of images and their augmented versions",
        description=(
            "Pick N images from DATA (a folder of images, a class-folder tree or an .npz) and write a "
            "grid to OUT: each row of originals is followed by its augmented views (the images are "
            "augmented together as one batch, so CutMix pastes patches between them)."
        ),
    )
    p.add_argument("data", metavar="DATA", help="folder of images, folder with one subfolder per class, .npz, or "
                   "one image")
    p.add_argument("--preset", default="robust", choices=(*PRESETS, "none"),
                   help="augmentation preset (default robust)")
    p.add_argument("--out", required=True, metavar="PNG", help="image file to write (.png, .jpg or .webp)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists (default: refuse)")
    p.add_argument("-n", type=int, default=16, metavar="N", help="number of images (default 16)")
    p.add_argument("--seed", type=seed_value, default=0, help="seed of the image choice and of the augmentation (>= 0)")
    p.add_argument("--views", type=int, default=1, metavar="V", help="augmented rows per row of originals (default 1)")
    p.add_argument("--columns", type=int, default=8, metavar="C", help="images per row (default 8)")
    p.add_argument("--image-size", type=int, default=96, metavar="S", help="size images are resized to (default 96)")
    p.add_argument("--scale", type=int, default=1, metavar="K", help="enlarge the picture K times, nearest neighbour (default 1)")
    p.set_defaults(func=run)


def _pick_images(data: Path, n: int, size: int, seed: int):
    """``n`` images of DATA chosen at random (all of them when there are fewer); unreadable files are
    skipped with a warning, and others taken in their place."""
    import numpy as np

    from ..errors import ImageReadError
    from ..imageio import IMAGE_EXTENSIONS, find_image_files, load_image

    rng = np.random.default_rng(seed)
    if data.is_file() and data.suffix.lower() in IMAGE_EXTENSIONS:
        return load_image(data, size)[None]
    if data.is_dir():
        files = find_image_files([data], recursive=True)
        images = {}
        for i in rng.permutation(len(files)):
            try:
                images[i] = load_image(files[i], size)
            except ImageReadError as exc:
                print(f"bloodcell augment-preview: warning: {one_line(exc)}; skipped (bloodcell clean DATA --out CLEAN "
                      "leaves such files out)", file=sys.stderr)
                continue
            if len(images) == n:
                break
        if not images:
            raise DataError(f"{data}: none of its {len(files)} image files could be read; give readable images")
        return np.stack([images[i] for i in sorted(images)])  # in the files' order
    from ..data import load_dataset

    images = load_dataset(data, image_size=size).images
    return images[np.sort(rng.choice(len(images), min(n, len(images)), replace=False))]


def run(args) -> int:
    from .._fs import save_image
    from ..augment import preview_grid

    data, out = Path(args.data), Path(args.out)
    if not data.exists():
        raise InputNotFoundError(f"{data}: no such file or folder; expected images, a class-folder tree or an .npz")
    check_output_file("--out", out, data, (".png", ".jpg", ".jpeg", ".webp"), overwrite=args.overwrite)
    for flag, value, top in (("-n", args.n, MAX_IMAGES), ("--views", args.views, MAX_VIEWS),
                             ("--columns", args.columns, MAX_IMAGES), ("--scale", args.scale, MAX_SCALE)):
        if not 1 <= value <= top:
            raise UsageError(f"{flag} must be 1 to {top}, got {value}")
    if args.image_size < 16:
        raise UsageError(f"--image-size must be at least 16, got {args.image_size}")
    pixels = args.n * (1 + args.views) * (args.image_size * args.scale) ** 2  # at most; the grid adds thin gaps
    if pixels > MAX_PIXELS:
        raise UsageError(f"the picture would hold {pixels / 1e6:.0f} megapixels ({args.n} images, {1 + args.views} rows "
                         f"each, {args.image_size} px, --scale {args.scale}), more than {MAX_PIXELS // 10**6}; lower "
                         "-n, --views, --image-size or --scale")
    images = _pick_images(data, args.n, args.image_size, args.seed)
    preset = None if args.preset == "none" else args.preset
    grid = preview_grid(images, preset, n=args.n, seed=args.seed, columns=args.columns, views=args.views)
    save_image(grid, out, scale=args.scale)
    print(f"wrote {out} ({len(images)} image{'' if len(images) == 1 else 's'}, preset {args.preset}, {grid.shape[1] * args.scale}x"
          f"{grid.shape[0] * args.scale} pixels)")
    return 0
