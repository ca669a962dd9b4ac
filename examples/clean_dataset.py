"""Find and remove non-cell outliers, duplicate images and label conflicts in a data set.

    python examples/clean_dataset.py ../shared/data/pbc96 --figure found.png --out pbc96_clean
    python examples/clean_dataset.py cells.npz --inject      # add known problems first, to see them caught
    python examples/clean_dataset.py --tiny                  # the 16 sample cells plus injected problems

``--inject`` adds four kinds of non-cell pictures (text, a gradient, a checkerboard, a colour
photo-like noise image), re-encoded copies of three cells, and one cell copied under another
class (a label conflict), so you can see each kind being found.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from _common import SAMPLE_DATASET, data_argument, parser, run, shown


def non_cells(size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Pictures that are not blood-cell images: text, a gradient, a checkerboard, coloured noise."""
    text = Image.new("RGB", (size, size), (250, 250, 245))
    draw = ImageDraw.Draw(text)
    for row in range(0, size, 12):
        draw.text((4, row), "lorem ipsum dolor", fill=(20, 20, 20))
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    gradient = np.stack([np.tile(ramp, (size, 1)), np.tile(ramp[:, None], (1, size)), np.full((size, size), 90.0)], -1)
    checker = ((np.indices((size, size)) // 12).sum(0) % 2 * 255).astype(np.uint8)
    noise = rng.normal(120, 60, (size // 8, size // 8, 3)).clip(0, 255).astype(np.uint8)
    photo = np.asarray(Image.fromarray(noise).resize((size, size), Image.Resampling.BICUBIC))
    return [np.asarray(text), gradient.astype(np.uint8), np.stack([checker] * 3, -1), photo]


def jpeg_copy(image: np.ndarray, quality: int = 80) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def inject(images: np.ndarray, labels: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``images``/``labels`` plus non-cells, re-encoded copies and one copy under another label."""
    rng = np.random.default_rng(seed)
    size = images.shape[1]
    extra = non_cells(size, rng)
    extra_labels = list(rng.integers(0, 8, len(extra)))
    copied = rng.choice(len(images), 3, replace=False)
    for i in copied:
        extra.append(jpeg_copy(images[i]))
        extra_labels.append(labels[i])
    j = int(rng.choice(np.setdiff1d(np.arange(len(images)), copied)))
    extra.append(images[j].copy())
    extra_labels.append((labels[j] + 1) % 8)
    return np.concatenate([images, np.stack(extra)]), np.concatenate([labels, np.asarray(extra_labels)])


def found_figure(images, labels, class_names, report, path, *, names=None, max_tiles: int = 8) -> None:
    """A picture of what ``clean`` found: outliers, duplicate groups and conflicting groups."""
    from matplotlib.figure import Figure

    def name(i: int) -> str:
        return Path(names[i]).name if names else f"row {i}"

    sections = [("outliers (not blood cells)", [[i] for i in report["outliers"]["rows"]][:max_tiles]),
                ("duplicate groups (first kept)", report["duplicates"]["group_rows"][: max_tiles // 2]),
                ("label conflicts (all removed)", [c["rows"] for c in report["conflicts"]["details"]][: max_tiles // 2])]
    sections = [(title, groups) for title, groups in sections if groups]
    if not sections:
        sections = [("nothing found", [])]
    cols = max([sum(len(g) for g in groups) for _, groups in sections] + [1])
    fig = Figure(figsize=(1.45 * cols, 2.1 * len(sections)), layout="constrained")
    for subfig, (title, groups) in zip(np.atleast_1d(fig.subfigures(len(sections), 1)), sections):
        subfig.suptitle(f"{title}: {len(groups)} shown", x=0.02, ha="left", fontsize=10, fontweight="bold")
        tiles = [(i, g_no) for g_no, g in enumerate(groups) for i in g]
        for col, ax in enumerate(np.atleast_1d(subfig.subplots(1, cols))):
            ax.axis("off")
            if col < len(tiles):
                i, g_no = tiles[col]
                colour = "tab:red" if "conflict" in title else ("black", "tab:blue")[g_no % 2 if "duplicate" in title else 0]
                ax.imshow(images[i])
                ax.set_title(f"{name(i)}\n{class_names[labels[i]]}", fontsize=7, color=colour)
    fig.savefig(path, dpi=100)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("data", nargs="?", help="class-folder tree or .npz")
    p.add_argument("--inject", action="store_true", help="add known outliers, duplicates and a conflict first")
    p.add_argument("--figure", default=None, help="write a PNG of what was found")
    p.add_argument("--out", default=None, help="write the cleaned data set here (folder, or .npz for an .npz)")
    args = p.parse_args()
    args.data = data_argument(p, args.data, args.tiny, lambda: SAMPLE_DATASET)
    args.inject = args.inject or args.tiny

    import bloodcell
    from bloodcell.data import Dataset, save_dataset

    data = bloodcell.load_dataset(args.data)
    images, labels, names = data.images, data.labels, data.paths
    if args.inject:
        images, labels = inject(images, labels)
        names = None if names is None else names + [f"injected_{k}" for k in range(len(labels) - len(names))]
    print(f"{len(images)} images from {shown(args.data)}" + (" (with injected problems)" if args.inject else ""))

    result = bloodcell.clean(images, labels)
    r = result.report
    print(f"outliers:   {r['outliers']['count']} {[Path(names[i]).name if names else i for i in r['outliers']['rows']]}")
    print(f"duplicates: {r['duplicates']['groups']} groups, {r['duplicates']['copies_removed']} copies removed")
    for group in r["duplicates"]["group_rows"][:5]:
        print("   ", " = ".join(f"{data.class_names[labels[i]]}/{Path(names[i]).name if names else i}" for i in group))
    print(f"conflicts:  {r['conflicts']['groups']} groups, {r['conflicts']['rows_removed']} rows removed")
    for c in r["conflicts"]["details"]:
        print("   ", " = ".join(f"{data.class_names[labels[i]]}/{Path(names[i]).name if names else i}" for i in c["rows"]))
    print(f"kept {r['n_kept']} of {r['n_input']}")

    if args.figure:
        found_figure(images, labels, data.class_names, r, args.figure, names=names)
        print(f"wrote {args.figure}")
    if args.out:
        keep = result.keep
        kept_names = None if names is None or args.inject else [names[i] for i in np.flatnonzero(keep)]
        cleaned = Dataset(images[keep], labels[keep], data.class_names, kept_names)
        save_dataset(cleaned, args.out, layout="npz" if str(args.out).endswith(".npz") else "folder")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    run(main)
