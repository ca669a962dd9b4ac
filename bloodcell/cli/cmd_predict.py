"""``bloodcell predict``: classify image files and folders."""

from __future__ import annotations

from ..errors import DataError, InputNotFoundError
from ._common import UsageError, classes_option, one_line

import json
import sys
from pathlib import Path

PROGRESS_MIN = 300
#: Last column of a text line whose image does not look like a blood cell.
OUTLIER_MARK = "OUTLIER: unlike the images the model learned from"
#: the mark of a model whose check was refitted to the cells it was calibrated on (Classifier.calibrate)
OUTLIER_MARK_CALIBRATION = "OUTLIER: unlike the cells the model was calibrated on"
#: the mark of a model without a feature check: the colour statistics of PBC's cells
OUTLIER_MARK_COLOUR = "OUTLIER: unlike blood-cell images in colour (PBC's colour statistics)"
#: Last column of a text line that a person should check.
REVIEW_MARK = "REVIEW"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "predict",
        help="classify images (files or folders)",
        description="Classify image files and folders; one line per image: path, class, probability.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (searched recursively)")
    p.add_argument("--model", default=None, metavar="SOURCE",
                   help="zoo name, local folder or hf://owner/repo[@revision] (default: the bundled model)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--top-k", type=int, default=1, metavar="K", help="also list the K most probable classes (default 1: the answer only)")
    p.add_argument("--batch-size", type=int, default=64, metavar="N",
                   help="images per forward pass; lower it if memory runs out (default 64)")
    p.add_argument("--tta", action="store_true", help="average over flips and 90-degree rotations (8x slower)")
    p.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    p.add_argument("--no-outlier-check", action="store_true",
                   help="do not check whether each image looks like a blood-cell image")
    p.add_argument("--review-below", type=float, default=None, metavar="P",
                   help="flag for review the images whose probability is under P (default: the model's "
                   "threshold, fitted so that about 5%% of its validation cells are flagged; 0: none for being unsure, "
                   "outliers still are)")
    p.add_argument("--classes", default=None, metavar="LIST",
                   help="comma-separated class names the images can hold: answer among those only, with the "
                   "probabilities renormalised over them (default: all the model's classes)")
    p.set_defaults(func=run)


def _expand(paths) -> tuple[list[Path], list[str]]:
    from ..imageio import find_image_files

    files, errors = [], []
    for p in paths:
        try:
            files.extend(find_image_files([p]))
        except DataError as exc:  # a missing file or an empty folder: the other paths are still classified
            errors.append(str(exc))
    return files, errors


def run(args) -> int:
    import numpy as np

    from .. import load_classifier

    if args.top_k < 1:
        raise UsageError(f"--top-k must be at least 1, got {args.top_k}")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.review_below is not None and not 0.0 <= args.review_below <= 1.0:
        raise UsageError(f"--review-below must be a probability between 0 and 1, got {args.review_below}")
    # As cat(1): with some paths missing the others are still classified (exit 1); with all missing, nothing can be.
    if not any(Path(p).exists() for p in args.paths):
        which = args.paths[0] if len(args.paths) == 1 else f"{args.paths[0]} (and the other {len(args.paths) - 1})"
        raise InputNotFoundError(f"{which}: no such file or folder; check the path")
    files, errors = _expand(args.paths)
    if not files:  # nothing to classify at all: as with every path missing
        raise DataError(errors[0] + (f" (and {len(errors) - 1} more paths without images)" if len(errors) > 1 else ""))
    for err in errors:
        print(f"bloodcell predict: error: {one_line(err)}", file=sys.stderr)
    clf = load_classifier(args.model)
    classes = classes_option(clf, args.classes)
    mask = clf.class_mask(classes)
    check = clf.feature_check
    outlier_mark = (OUTLIER_MARK_COLOUR if check is None else
                    OUTLIER_MARK_CALIBRATION if "calibration images" in check.fitted_on.partition(";")[0] else OUTLIER_MARK)
    k = min(args.top_k, len(clf.class_names) if mask is None else int(mask.sum()))
    results = clf.predict_files(
        files, batch_size=args.batch_size, tta=args.tta, flag_outliers=not args.no_outlier_check, classes=classes,
        review_below=args.review_below,
    )
    out, shared = sys.stdout, None
    if not args.no_progress and sys.stderr.isatty() and len(files) > PROGRESS_MIN:
        from tqdm import tqdm

        results = tqdm(results, total=len(files), unit="img", file=sys.stderr)
        shared = results if out.isatty() else None  # one screen for both: lines go above the bar, drawn again below

    def emit(line: str, file) -> None:
        if shared is not None:
            shared.write(line, file=file)
        else:
            file.write(line + "\n")

    failed = bool(errors)
    for r in results:
        if r.probabilities is None:
            failed = True
            emit(f"bloodcell predict: error: {one_line(r.error)}", sys.stderr)
            continue
        proba = r.probabilities
        order = np.argsort(-proba, kind="stable")[:k]  # ties: the first class first, as argmax
        label, p = r.label, float(proba[order[0]])
        if args.json:
            record = {
                "path": str(r.path),
                "label": label,
                "probability": round(p, 6),
                "probabilities": {c: round(float(v), 6) for c, v in zip(clf.class_names, proba)},
            }
            if k > 1:
                record["top_k"] = [[clf.class_names[i], round(float(proba[i]), 6)] for i in order]
            if r.outlier is not None:
                record["outlier"] = r.outlier
            record["review"] = bool(r.review)
            emit(json.dumps(record), out)
            continue
        cols = [one_line(r.path)] + [f"{clf.class_names[i]}\t{proba[i]:.4f}" for i in order]
        if r.outlier:
            cols.append(outlier_mark)
        elif r.review:
            cols.append(REVIEW_MARK)
        emit("\t".join(cols), out)
    out.flush()
    return 1 if failed else 0
