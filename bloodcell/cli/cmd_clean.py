"""``bloodcell clean``: remove non-cell outliers, duplicate copies and conflicting duplicates."""

from __future__ import annotations

from .._fs import atomic_write_text
from ..errors import ImageReadError, InputNotFoundError
from ._common import UsageError, check_writable, is_within, refuse_working_directory

import copy
import json
import sys
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "clean",
        help="remove outliers and duplicates from a data set",
        description=(
            "Remove images that are not blood cells, extra copies of duplicate images, and duplicate "
            "groups whose copies have different labels; write the rest to OUT in the input's layout "
            "(class folders, under their canonical names, or .npz). The input is never changed."
        ),
    )
    p.add_argument("data", metavar="DATA", help="folder with one subfolder per class, or an .npz (images, labels)")
    p.add_argument("--out", required=True, metavar="OUT", help="new folder (or .npz file for an .npz input)")
    p.add_argument("--report", metavar="JSON", help="also write what was removed and why to this JSON file")
    p.add_argument("--no-near", action="store_true",
                   help="only exact duplicates: identical pixels, also mirrored or rotated (default: also "
                        "re-encoded, brightened or resized copies)")
    p.add_argument("--reference", metavar="CELLS", help="what blood-cell images look like for the non-cell check: a "
                   "folder of your own cell images (at least 20; hundreds are better) or a reference saved by "
                   "OutlierReference.save (.npz) (default: the shipped pbc96 reference)")
    p.add_argument("--no-outliers", action="store_true", help="look for duplicates only, not for non-cell images")
    p.add_argument("--image-size", type=int, default=96, metavar="S", help="size images are analysed at, 8 to 1024 (default 96)")
    p.set_defaults(func=run)


def _check_paths(data: Path, out: Path, report: Path | None) -> None:

    if not data.exists():
        raise InputNotFoundError(f"{data}: no such file or folder; expected a class-folder tree or an .npz file")
    if data.is_file() and data.suffix.lower() != ".npz":
        raise UsageError(f"{data}: expected a class-folder tree or an .npz file, got a {data.suffix or 'extensionless'} "
                         "file; give the folder that holds one folder per class")
    if out.is_file():
        raise UsageError(f"--out {out}: already exists; choose a new output path")
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"--out {out}: already exists and is not empty; choose a new output path")
    refuse_working_directory(out, "the output is written", "cleaned")
    o = out.resolve()
    # a class folder may be a link to a folder elsewhere: the output must not land in what it links to either
    inputs = [data, *(sub for sub in data.iterdir() if sub.is_dir())] if data.is_dir() else [data]
    if any(is_within(out, d) for d in inputs):
        raise UsageError(f"--out {out}: is the input or inside it; write the cleaned data somewhere else")
    if data.is_file() and out.is_dir():
        raise UsageError(f"--out {out}: is a folder; an .npz input is written as an .npz file: give a new path ending "
                         "in .npz")
    if data.is_file() and out.suffix.lower() != ".npz":
        raise UsageError(f"--out {out}: an .npz input is written as an .npz; give a path ending in .npz")
    if data.is_dir() and out.suffix.lower() == ".npz":
        raise UsageError(f"--out {out}: a folder input is written as a folder; give a folder path, not .npz")
    if report is not None:
        r = report.resolve()
        if r == o or is_within(report, data) or (out.suffix.lower() != ".npz" and o in r.parents):
            raise UsageError(f"--report {report}: is the input or the output or inside them; choose another file")
        if report.exists():
            raise UsageError(f"--report {report}: already exists; choose a new file (it is never overwritten)")
        check_writable(report)
    check_writable(out)


def _reference(args):
    """The outlier reference of ``--reference``, loaded (or fitted to a folder of cells) before any other work."""
    from ..errors import DataError
    from ..outliers import OutlierReference, fit_outlier_reference

    if args.reference is None:
        return None
    if args.no_outliers:
        raise UsageError("--reference describes the cells for the non-cell check, which --no-outliers skips; give one")
    path = Path(args.reference)
    if not path.is_dir():
        return OutlierReference.load(path)
    from ..imageio import find_image_files, load_images

    files = find_image_files([path])
    try:
        return fit_outlier_reference(load_images(files, args.image_size), description=f"{len(files)} images of {path}")
    except DataError as exc:
        raise DataError(f"--reference {path}: {exc}") from None


#: The arrays of an .npz that load_readable reads and checks itself.
_NPZ_DATA = ("images", "labels", "class_names")


def _npz_extras(npz: Path) -> dict:
    """The other arrays of an .npz (per-image ids, sources...), read before any work, as load_dataset reads its
    own: one of Python objects (never unpickled) is refused; a damaged file is left to the reading to name."""
    import numpy as np

    from .._util import DAMAGED_NPZ
    from ..errors import DataError

    try:
        raw = np.load(npz, allow_pickle=False)
    except (OSError, ValueError, *DAMAGED_NPZ):
        return {}
    extras = {}
    with raw:
        for key in (k for k in raw.files if k not in _NPZ_DATA):
            try:
                extras[key] = raw[key]
            except ValueError:
                raise DataError(f"{npz}: {key} holds Python objects, which bloodcell never unpickles; save it as a "
                                "plain array (strings or numbers), or leave it out of the file") from None
            except (OSError, *DAMAGED_NPZ):
                return {}
    return extras


#: A share of non-cells above which the data are more likely cells unlike the reference's than dirty.
MANY_OUTLIERS = 0.2
#: Largest --image-size (the images are held in memory at that size).
MAX_IMAGE_SIZE = 1024


def run(args) -> int:
    import numpy as np

    from ..cleaning import clean
    from ..data import load_readable, save_dataset, save_npz
    from ..errors import DataError
    from ..imageio import other_files_under

    data, out = Path(args.data), Path(args.out)
    report_path = Path(args.report) if args.report else None
    if not 8 <= args.image_size <= MAX_IMAGE_SIZE:
        raise UsageError(f"--image-size must be between 8 and {MAX_IMAGE_SIZE}, got {args.image_size} (the checks "
                         "read colour, texture and duplicates, which the default 96 shows)")
    _check_paths(data, out, report_path)
    if data.is_dir():  # a class the cleaned copy could not be written under fails before the work
        from ..data import _list_class_files, is_portable_folder_name

        bad = [name for name in _list_class_files(data, None)[2] if not is_portable_folder_name(name)]
        if bad:
            raise UsageError(f"{data / bad[0]}: a class folder name the cleaned copy cannot use (a leading or trailing "
                             "space, a leading dot, or one of / \\ : * ? \" < > |); rename the folder")
    extras = _npz_extras(data) if data.is_file() else {}
    reference = _reference(args)
    dataset, unreadable = load_readable(data, image_size=args.image_size)
    for line in unreadable:
        print(f"bloodcell clean: dropped {line}", file=sys.stderr)
    if not len(dataset):
        if unreadable:
            raise ImageReadError(f"{data}: none of its images could be read (above); nothing to clean")
        raise DataError(f"{data}: holds no images; nothing to clean")
    result = clean(dataset.images, dataset.labels, near=not args.no_near, reference=reference,
                   outliers=not args.no_outliers)
    flagged = result.report["outliers"]["count"]
    advice = ("your cells may look unlike the reference's (another stain or camera): pass --reference with a folder of "
              "your own cell images, or --no-outliers")
    if not result.report["n_kept"]:
        raise DataError(f"{data}: every one of its {len(dataset)} images would be removed ({flagged} as non-cells), so "
                        f"nothing was written; {advice}")
    labels = np.asarray(dataset.labels)
    emptied = [dataset.class_names[i] for i in sorted(set(labels.tolist()) - set(labels[result.keep].tolist()))]
    if emptied:  # the cleaned set has fewer classes (and, in a folder, other class ids)
        print(f"bloodcell clean: warning: every image of {', '.join(emptied)} was removed, so the cleaned data hold "
              "no such class; look at the report before you train on them", file=sys.stderr)
    if flagged > MANY_OUTLIERS * len(dataset):
        print(f"bloodcell clean: warning: {flagged} of {len(dataset)} images ({flagged / len(dataset):.0%}) were taken "
              f"for non-cells; {advice}", file=sys.stderr)
    report = dict(copy.deepcopy(result.report), input=str(data), output=str(out),
                  unreadable={"count": len(unreadable), "errors": unreadable}, classes_emptied=emptied)
    if dataset.paths is not None:
        paths = dataset.paths
        report["outliers"]["paths"] = [paths[i] for i in report["outliers"]["rows"]]
        report["duplicates"]["paths"] = [paths[i] for i in report["duplicates"]["rows"]]
        for conflict in report["conflicts"]["details"]:
            conflict["paths"] = [paths[i] for i in conflict["rows"]]
        save_dataset(dataset.subset(result.keep), out, layout="folder")
        layout = "a class-folder tree"
        report["not_copied"] = [str(f.relative_to(data)) for f in other_files_under(data)]
        if report["not_copied"]:
            shown = ", ".join(report["not_copied"][:5]) + (", ..." if len(report["not_copied"]) > 5 else "")
            print(f"bloodcell clean: {len(report['not_copied'])} file(s) that are not images were not copied to {out} "
                  f"(copy them yourself where they still hold): {shown}", file=sys.stderr)
    else:
        # Write the input's own arrays (original size, dtype and label shape), not the resized ones.
        with np.load(data, allow_pickle=False) as raw:
            arrays = {**{key: raw[key] for key in _NPZ_DATA if key in raw.files}, **extras}
        # class_names and any other array of the set are kept; per-image arrays lose the dropped rows.
        n = len(arrays["labels"])
        arrays = {key: a if key == "class_names" or a.shape[:1] != (n,) else a[result.keep] for key, a in arrays.items()}
        save_npz(out, **arrays)
        layout = "an .npz"
    if report_path is not None:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(report_path, json.dumps(report, indent=2))
    r = result.report
    print(
        f"Read {r['n_input']} images from {data}"
        + (f" (and dropped {len(unreadable)} unreadable file(s))" if unreadable else "")
        + (f". Removed {r['outliers']['count']} outlier(s) that do not look like blood-cell images, "
           if not args.no_outliers else ". Looked for no outliers (--no-outliers); removed ")
        + f"{r['duplicates']['copies_removed']} extra copies from "
        f"{r['duplicates']['groups']} duplicate group(s) "
        f"({'identical pixels, also mirrored or rotated' if args.no_near else 'identical or near-identical'}), and "
        f"{r['conflicts']['rows_removed']} image(s) in {r['conflicts']['groups']} duplicate group(s) with "
        f"conflicting labels. Kept {r['n_kept']} images, written to {out} as {layout}"
        + (f"; details in {report_path}." if report_path else ".")
    )
    return 1 if unreadable else 0  # as predict: an input that failed is reported in the exit status
