"""Measure a classifier: accuracy, per-class metrics, confusion matrix and robustness to corruptions.

    # the bundled default on its held-out split of pbc96 (the images its training never saw)
    python examples/evaluate.py ../shared/data/pbc96 \
        --split-file bloodcell/_weights/mnv3s.pbc96/test_files.json --out-dir eval
    python examples/evaluate.py --tiny      # 16 sample cells, 3 corruptions at severities 1, 3, 5

Writes ``confusion.png`` and ``robustness.png`` into ``--out-dir``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from _common import SAMPLE_DATASET, data_argument, parser, run


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("data", nargs="?", help="class-folder tree or .npz")
    p.add_argument("--model", default=None, help="zoo name, folder or hf://owner/repo (default: bundled)")
    p.add_argument("--split-file", default=None, help="JSON list of files (relative to DATA) to evaluate on")
    p.add_argument("--out-dir", default=None, help="folder for the PNGs (default: a temporary folder)")
    args = p.parse_args()
    corruptions, severities = None, (1, 2, 3, 4, 5)  # None: all of bloodcell.corruptions.CORRUPTIONS
    args.data = data_argument(p, args.data, args.tiny, lambda: SAMPLE_DATASET)
    if args.tiny:
        corruptions, severities = ["defocus_blur", "jpeg", "stain_blots"], (1, 3, 5)
    tmp = tempfile.TemporaryDirectory(prefix="bloodcell-evaluate-")
    out_dir = Path(args.out_dir or tmp.name)
    out_dir.mkdir(parents=True, exist_ok=True)

    import bloodcell

    clf = bloodcell.load_classifier(args.model)
    data = bloodcell.load_dataset(args.data, image_size=clf.input_size)
    if args.split_file:  # every listed file must be there: a list from another folder is refused
        data = bloodcell.data.subset_from_split_file(data, args.split_file, args.data)
    print(f"{clf.name}: {len(data)} images of {args.data if not args.tiny else 'the sample set'}\n")

    report = bloodcell.evaluate(clf, data)
    print(report.to_text())
    report.plot_confusion(out_dir / "confusion.png")

    tta = bloodcell.evaluate(clf, data, tta=True)
    print(f"\nwith test-time augmentation (8 flips/rotations): accuracy {tta.accuracy:.4f} "
          f"(plain {report.accuracy:.4f}), macro F1 {tta.macro_f1:.4f} (plain {report.macro_f1:.4f})")

    robust = bloodcell.evaluate_robustness(clf, data, corruptions=corruptions, severities=severities, seed=0)
    print("\naccuracy under corruption\n")
    print(robust.to_text())
    robust.plot(out_dir / "robustness.png")
    where = f"in {out_dir}" if args.out_dir else "in a temporary folder, deleted at exit (--out-dir keeps them)"
    print(f"\nrobustness mean: {robust.robustness_mean:.4f}; drew confusion.png and robustness.png {where}")
    tmp.cleanup()


if __name__ == "__main__":
    run(main)
