"""``bloodcell explain``: class-activation heatmaps drawn over images."""

from __future__ import annotations

from .._classes import class_index
from .._fs import image_text, path_text, save_image
from ..errors import ConfigError, ImageReadError, InputNotFoundError
from ._common import MAX_SCALE, UsageError, is_within, one_line

import os
import sys
from pathlib import Path

#: Images read, explained and written at a time.
CHUNK = 256


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "explain",
        help="draw where in each image the model saw its class",
        description=("For each image write OUT/<name>.<class>.png: the image as the model sees it, beside it "
                     "with the class-activation heatmap of the predicted class (or --target) drawn over it."),
    )
    p.add_argument("paths", nargs="+", metavar="IMAGE", help="image files or folders (searched recursively)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the pictures (created if missing)")
    p.add_argument("--model", default=None, metavar="SOURCE",
                   help="zoo name, local folder or hf://owner/repo[@revision] (default: the bundled model)")
    p.add_argument("--target", default=None, metavar="CLASS",
                   help="explain this class for every image (default: each image's predicted class)")
    p.add_argument("--scale", type=int, default=2, metavar="K", help=f"enlarge the pictures K times, 1 to {MAX_SCALE} (default 2)")
    p.set_defaults(func=run)


def run(args) -> int:
    import numpy as np

    from .. import load_classifier
    from ..explain import overlay
    from ..imageio import find_image_files, load_image

    if not 1 <= args.scale <= MAX_SCALE:
        raise UsageError(f"--scale must be 1 to {MAX_SCALE} (pictures of up to {MAX_SCALE} times the model's input), "
                         f"got {args.scale}")
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        raise InputNotFoundError(f"{missing[0]}: no such file or folder; check the path")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder; give a folder")
    inside = next((p for p in args.paths if Path(p).is_dir() and is_within(out, Path(p))), None)
    if inside is not None:
        raise UsageError(f"--out {out}: is inside {inside}, where its pictures would be read as images; choose a "
                         "folder outside it")
    files = find_image_files(args.paths)
    clf = load_classifier(args.model)
    if args.target is not None and class_index(args.target, clf.class_names) is None:  # case and aliases as the API
        from .._registry import did_you_mean

        raise UsageError(f"--target {args.target}: not a class of the model; expected one of: "
                         f"{', '.join(clf.class_names)}" + did_you_mean(args.target, clf.class_names))
    written = failed = 0
    # In chunks: each picture is on disk (and its line printed) before the next chunk is read, so a
    # folder of any size runs in bounded memory and a stopped run keeps what it drew.
    named = list(zip(files, _unique_stems(files)))
    for start in range(0, len(named), CHUNK):
        read = []
        for f, stem in named[start : start + CHUNK]:  # as predict does: an unreadable file is named, the others drawn
            try:
                read.append((f, stem, load_image(f, clf.input_size)))
            except ImageReadError as exc:
                print(f"bloodcell explain: error: {one_line(exc)}", file=sys.stderr)
                failed += 1
        if not read:
            continue
        images = np.stack([img for _, _, img in read])
        try:
            maps, classes = clf.explain(images, target=args.target)
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
        proba = clf.predict_proba(images, verbose=0)
        for (f, stem, img), heat, c, p in zip(read, maps, classes, proba):
            picture = np.concatenate([img, overlay(img, heat)], axis=1)
            dest = save_image(picture, _free(out, stem, clf.class_names[c], f), scale=args.scale,
                              text={SOURCE: _source(f)})
            print(f"{one_line(f)}\t{clf.class_names[c]}\t{p[c]:.4f}\t{one_line(dest)}", flush=True)
            written += 1
    if not written:
        return 1
    print(f"wrote {written} picture{'s' if written != 1 else ''} into {out}", file=sys.stderr)
    return 1 if failed else 0


SOURCE = "bloodcell-source"  # the PNG text chunk naming the image a picture explains


def _source(path) -> str:
    """The absolute path a picture records as its source, as text (a name that is not UTF-8, backslash-escaped)."""
    return path_text(os.path.abspath(path))


def _free(out: Path, stem: str, label: str, source) -> Path:
    """``out/stem.label.png``, unless a picture of another image holds that name (a rerun replaces its
    own pictures): then ``stem-2``, ``stem-3``, ... beside it."""
    name, n = stem, 1
    while (out / f"{name}.{label}.png").exists() and \
            image_text(out / f"{name}.{label}.png").get(SOURCE) != _source(source):
        n += 1
        name = f"{stem}-{n}"
    return out / f"{name}.{label}.png"


def _unique_stems(files) -> list[str]:
    """Each file's name without its suffix, prefixed by as many of its folders as it takes to tell
    apart files of the same name (``a/cell.jpg``, ``b/cell.jpg``: ``a_cell``, ``b_cell``); a name
    still taken gets ``-2``, ``-3``, ..."""
    paths = [Path(os.path.abspath(f)) for f in files]  # not resolve(): a link keeps its own name
    folders = [p.parent.parts[1:] for p in paths]  # without the root

    def named(depth: int) -> list[str]:
        return ["_".join([*d[max(len(d) - depth, 0):], p.stem]) if depth else p.stem for d, p in zip(folders, paths)]

    stems = named(0)
    for depth in range(1, max(map(len, folders), default=0) + 1):
        if len(set(stems)) == len(stems):
            break
        stems = named(depth)
    if len(set(stems)) != len(stems):  # no folder tells them apart: the same name, another suffix
        stems = named(0)
    taken: set[str] = set()
    unique = []
    for stem in stems:
        name, n = stem, 1
        while name in taken:
            n += 1
            name = f"{stem}-{n}"
        taken.add(name)
        unique.append(name)
    return unique
