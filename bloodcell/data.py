"""Data sets of labelled cell images: loading, saving and leak-free splits.

Two layouts are read and written:

- a folder with one subfolder per class, like ``pbc96``. Folders named by the canonical class
  names (:data:`bloodcell.CLASS_NAMES`; the PBC folder name ``ig`` is accepted for
  ``immature_granulocyte``) keep the canonical order; a folder whose subfolders all carry such
  names loads with all 8 classes (the absent ones hold no images), so that its labels are the PBC
  ids. Any other name is a class of its own: the classes are then the subfolders, the canonical
  ones first in canonical order, the others sorted by name. ``class_names=`` fixes the order.
- an ``.npz`` in the course layout: ``images`` (N, H, W, 3) uint8 and ``labels`` (N,) or (N, 1)
  integer class ids, in the canonical order unless the file holds a ``class_names`` array.
"""

from __future__ import annotations

import contextlib
import os
import warnings
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
from PIL import Image

from ._checks import check_class_names, check_image_batch, check_labels, largest_remainder
from ._classes import CLASS_ALIASES, CLASS_NAMES, canonical_name, class_index, class_path, class_positions
from ._fs import is_within, relative_path, save_npz, staged_folder  # noqa: F401  (save_npz: also from here)
from ._progress import progress
from ._util import DAMAGED_NPZ, outside_stacklevel
from .errors import ConfigError, DataError, ImageReadError, InputNotFoundError, OutputExistsError
from .imageio import IMAGE_EXTENSIONS, UnreadableFileError, check_not_empty, image_files_under, read_image, resize_image

PathLike = Union[str, os.PathLike]

__all__ = ["CLASS_ALIASES", "SPLIT_FRACTIONS", "SPLIT_SEED", "Dataset", "kfold", "load_dataset", "save_dataset", "split",
           "split_indices", "subset_from_split_file"]

#: Training, validation and test shares of :func:`split` by default: the split ``bloodcell train``
#: makes, and the one the zoo's pbc96 models were trained on (their ``test_files.json``).
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
#: :func:`split`'s default seed, ``bloodcell train``'s too.
SPLIT_SEED = 42


@dataclass(eq=False)
class Dataset:
    """Images with integer labels indexing ``class_names``.

    ``paths`` holds the source file of each row when the data came from a folder, else ``None``.
    Two Datasets are equal when they are the same object (compare the arrays with ``np.array_equal``).
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...] = CLASS_NAMES
    paths: Optional[list[str]] = None

    def __repr__(self) -> str:  # the arrays would print megabytes
        counts = ", ".join(f"{c}: {n}" for c, n in self.class_counts().items())
        return (f"Dataset({len(self.labels)} images of {self.images.shape[1]}x{self.images.shape[2]}, "
                f"{len(self.class_names)} classes ({counts}){', from files' if self.paths else ''})")

    def __post_init__(self) -> None:
        self.class_names = check_class_names(self.class_names, "Dataset.class_names")
        self.images = check_image_batch(self.images, "Dataset.images")
        self.labels = check_labels(self.labels, len(self.images), len(self.class_names), "Dataset.labels")
        if self.paths is not None and len(self.paths) != len(self.images):
            raise DataError(f"Dataset: {len(self.images)} images but {len(self.paths)} paths; give one path per image")

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: Union[Sequence[int], np.ndarray, slice]) -> "Dataset":
        """The rows ``indices`` (integer indices, a boolean mask or a slice) as a new Dataset."""
        idx = np.arange(len(self))[indices] if isinstance(indices, slice) else np.asarray(indices)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise DataError(f"subset: boolean mask of shape {idx.shape}, expected ({len(self)},)")
            idx = np.flatnonzero(idx)
        if idx.size and not np.issubdtype(idx.dtype, np.integer):
            raise DataError(f"subset: expected integer indices or a boolean mask, got {idx.dtype} values")
        idx = idx.astype(np.int64).reshape(-1)
        if idx.size and (idx.max() >= len(self) or idx.min() < -len(self)):
            raise DataError(f"subset: index {int(idx.max() if idx.max() >= len(self) else idx.min())} is out of range "
                            f"for {len(self)} images")
        paths = None if self.paths is None else [self.paths[i] for i in idx]
        return Dataset(self.images[idx], self.labels[idx], self.class_names, paths)

    def class_counts(self) -> dict[str, int]:
        """Number of rows of each class, in class order (classes with no rows included)."""
        counts = np.bincount(self.labels, minlength=len(self.class_names))
        return {name: int(c) for name, c in zip(self.class_names, counts)}

    def present_classes(self) -> "Dataset":
        """The same rows with only the classes that have images (in the same order), relabelled."""
        counts = np.bincount(self.labels, minlength=len(self.class_names))
        keep = np.flatnonzero(counts > 0)
        if len(keep) == len(self.class_names):
            return self
        new_id = np.full(len(self.class_names), -1, np.int64)
        new_id[keep] = np.arange(len(keep))
        names = tuple(self.class_names[i] for i in keep)
        if len(names) < 2:
            raise DataError(f"the data hold images of {len(names)} class only ({', '.join(names) or 'none'}); "
                            "a classifier needs images of at least two classes")
        return Dataset(self.images, new_id[self.labels], names, self.paths)

    def relabel(self, class_names: Sequence[str]) -> "Dataset":
        """The same rows labelled by their class names' positions in ``class_names`` (names matched
        ignoring case, and PBC's aliases), which must hold every class that has images here
        (classes without images may be missing)."""
        class_names = check_class_names(class_names)
        mapping = np.array(class_positions(self.class_names, class_names), np.int64)
        missing = [self.class_names[i] for i in np.unique(self.labels) if mapping[i] < 0]
        if missing:
            raise DataError(f"the data have images of {missing}, which are not among {list(class_names)}; "
                            "give class_names that hold every class of the data")
        return Dataset(self.images, mapping[self.labels], class_names, self.paths)


def _list_class_files(root: Path, class_names: Optional[Sequence[str]]) -> tuple[list[Path], list[int], tuple[str, ...]]:
    folders: dict[str, str] = {}  # class name -> folder name
    entries = sorted(p for p in root.iterdir() if not p.name.startswith(".") and p.name not in _IGNORED_FOLDERS)
    for link in (p for p in entries if p.is_symlink() and not p.exists()):
        raise DataError(f"{link}: a link to a missing folder ({os.readlink(link)}); its class would be left out: fix "
                        "the link (mount the drive it points to?) or remove it")
    for sub in (p for p in entries if p.is_dir()):
        name = canonical_name(sub.name) or sub.name
        for other in folders:
            if other.lower() == name.lower():
                raise DataError(
                    f"{root}: folders {folders[other]!r} and {sub.name!r} both hold class {name!r} (class names "
                    "are compared ignoring case); merge them into one"
                )
        folders[name] = sub.name
    if not folders:
        raise DataError(f"{root}: no class folders; expected one subfolder per class (e.g. {', '.join(CLASS_NAMES)})")
    # Parts of a data set side by side (TRAIN/, TEST/, each holding the class folders), not classes: no folder
    # is a known class and each holds known classes. A grouping of the user's own (granulocyte/{neutrophil,
    # eosinophil} beside lymphocyte/) or given class_names is left alone.
    # Parts named as such (train/, test/...) holding folders of any names are parts too.
    named_parts = len(folders) >= 2 and all(f.lower() in _PART_NAMES for f in folders.values())
    inner = {f: sorted(d.name for d in (root / f).iterdir() if d.is_dir() and (named_parts or canonical_name(d.name)))
             for f in folders.values()}
    parts = [f for f in folders.values() if f.lower() in _PART_NAMES]
    holding = [f for f in parts if len(inner[f]) >= 2 or any(canonical_name(d) for d in inner[f])]
    if class_names is None and (all(canonical_name(f) is None and len(inner[f]) >= 2 for f in folders.values())
                                or holding):
        shown = holding or list(folders.values())
        best = next((f for f in shown if f.lower() in ("train", "training")), shown[0])
        which = (f"its folders ({', '.join(shown)}) each hold" if len(shown) == len(folders) else
                 f"its folder{'s' if len(shown) > 1 else ''} {', '.join(shown)} hold{'s' if len(shown) == 1 else ''}")
        raise DataError(f"{root}: {which} class folders ({', '.join(inner[best])}): they look like parts of a data set; "
                        f"pass one of them, e.g. {root / best}, as the data folder")
    if class_names is None and parts:
        raise DataError(f"{root}: folder(s) {', '.join(map(repr, parts))} beside the class folders are named like parts "
                        "of a data set (train, val, test), not classes; move them out of it (to classify unlabelled "
                        "images, run bloodcell predict on them), or pass class_names to keep them as classes")
    if class_names is not None:
        names = check_class_names(class_names)
        positions = {c: class_index(c, names) for c in folders}  # ignoring case, and aliases: 'ig' given, folder 'IG'
        unknown = [f for c, f in folders.items() if positions[c] is None]
        if unknown:
            raise DataError(f"{root}: class folder(s) {', '.join(map(repr, unknown))} are not in class_names "
                            f"{list(names)}; add them, or remove the folders")
        folders = {names[positions[c]]: f for c, f in folders.items()}
    elif all(c in CLASS_NAMES for c in folders):
        names = CLASS_NAMES
    else:
        names = tuple([c for c in CLASS_NAMES if c in folders] + sorted(c for c in folders if c not in CLASS_NAMES))
    files: list[Path] = []
    labels: list[int] = []
    for cls, folder in folders.items():
        found = image_files_under(root / folder)
        if not found:
            raise DataError(f"{root / folder}: class folder holds no images (looked for {', '.join(IMAGE_EXTENSIONS)}); "
                            "add images or remove the folder")
        files.extend(found)
        labels.extend([names.index(cls)] * len(found))
    loose = [p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    if loose:  # a class comes from its folder: these have none
        warnings.warn(f"{root}: {len(loose)} image{'s' if len(loose) > 1 else ''} beside the class folders "
                      f"({', '.join(p.name for p in loose[:3])}{', ...' if len(loose) > 3 else ''}) "
                      f"{'are' if len(loose) > 1 else 'is'} not read, having no class; move them into their class "
                      "folders", UserWarning, stacklevel=outside_stacklevel())
    order = np.argsort(np.asarray(labels), kind="stable")  # files grouped by class, in class order
    files = [files[i] for i in order]
    labels = [labels[i] for i in order]
    if len(names) < 2:
        only = root / next(iter(folders.values()))
        hint = (f"; if the classes are the folders inside it, pass {only}"
                if sum(d.is_dir() for d in only.iterdir()) >= 2 else "")
        raise DataError(f"{root}: holds one class folder only ({only.name!r}); a classifier needs at least two classes, "
                        f"one folder each{hint}")
    return files, labels, names


def _read_one(args: tuple[Path, int]) -> np.ndarray:
    path, size = args
    try:  # fast path for the common case (pbc96): an RGB JPEG of the right size without EXIF
        with Image.open(path) as img:
            # (an orientation, in EXIF or XMP, would turn it: read_image applies it, as at prediction)
            if img.format == "JPEG" and img.mode == "RGB" and img.size == (size, size) and \
                    img.getexif().get(0x0112, 1) == 1:
                img.load()
                return np.asarray(img)
    except Exception:  # noqa: BLE001  (read_image below names the problem)
        pass
    return resize_image(read_image(path), size, str(path))


def _load_folder(root: Path, image_size: int, workers: Optional[int], class_names, verbose: int,
                 unreadable: Optional[list[str]] = None) -> Dataset:
    """The folder tree's images; with an ``unreadable`` list, files that cannot be read are left out
    and their errors appended to it instead of raised."""
    files, labels, names = _list_class_files(root, class_names)
    images = np.empty((len(files), image_size, image_size, 3), np.uint8)
    ok = np.ones(len(files), bool)
    n_workers = workers if workers is not None else min(8, os.cpu_count() or 1)
    jobs = [(f, image_size) for f in files]

    def read_one(job):
        try:
            return _read_one(job)
        except UnreadableFileError:
            raise
        except ImageReadError as exc:
            if unreadable is None:
                raise ImageReadError(f"{exc}; remove the file, or drop every unreadable one with `bloodcell clean "
                                     f"{root} --out CLEAN`") from None
            return exc

    parallel = n_workers > 1 and len(files) > 64
    with ThreadPoolExecutor(n_workers) if parallel else contextlib.nullcontext() as pool:  # PIL releases the GIL
        read = (progress(pool.map(read_one, jobs, chunksize=64), verbose=verbose, total=len(jobs),
                         desc=f"reading {root.name}", unit="img") if parallel else map(read_one, jobs))
        for i, img in enumerate(read):
            if isinstance(img, ImageReadError):
                ok[i] = False
                unreadable.append(str(img))
            else:
                images[i] = img
    data = Dataset(images, np.asarray(labels, np.int64), names, [str(f) for f in files])
    return data if ok.all() else data.subset(np.flatnonzero(ok))


def load_readable(path: PathLike, *, image_size: int = 96, verbose: int = 1) -> tuple[Dataset, list[str]]:
    """:func:`load_dataset` of a class-folder tree that leaves out the files it cannot read (what
    ``bloodcell clean`` drops), with one error line for each; an ``.npz`` loads whole."""
    p = Path(path)
    if not p.is_dir():
        return load_dataset(p, image_size=image_size, verbose=verbose), []
    unreadable: list[str] = []
    data = _load_folder(p, _check_image_size(image_size), None, None, verbose, unreadable)
    return data, unreadable


def _load_npz(path: Path, image_size: int, class_names) -> Dataset:
    try:
        with open(path, "rb") as f:
            zipped = f.read(2) == b"PK"
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not zipped:  # np.load would take it for pickled data and talk of allow_pickle
        raise DataError(f"{path}: not an .npz file (an .npz is a zip archive of arrays); save one with "
                        "np.savez(path, images=uint8_array, labels=int_array)")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, *DAMAGED_NPZ) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc}); save it with np.savez") from None
    with data:
        missing = [k for k in ("images", "labels") if k not in data.files]
        if missing:
            parts = sorted({k.rsplit("_", 1)[0] for k in data.files if k.endswith(("_images", "_labels"))})
            hint = (f"; it holds parts ({', '.join(parts)}) as MedMNIST files do: save one part with "
                    f"np.savez(out, images=d['{parts[0]}_images'], labels=d['{parts[0]}_labels'].ravel())"
                    if parts else "")
            raise DataError(
                f"{path}: missing key(s) {', '.join(missing)}; expected keys 'images' (N, H, W, 3) uint8 and "
                f"'labels' (N,) int, found {', '.join(data.files) or 'none'}{hint}"
            )
        arrays = {}
        for key in ("images", "labels", "class_names"):
            if key not in data.files:
                continue
            try:
                arrays[key] = data[key]
            except ValueError:  # object arrays need pickle, which is never allowed here
                fix = ("np.array(names, dtype=str)" if key == "class_names" else
                       "np.savez(path, images=uint8_array, labels=int_array)")
                raise DataError(f"{path}: {key!r} is an array of Python objects, which is never unpickled here; "
                                f"save it as a plain array: {fix}") from None
            except (OSError, *DAMAGED_NPZ) as exc:
                raise DataError(f"{path}: is damaged or truncated ({exc}); write it again with np.savez") from None
        images, labels, stored = arrays["images"], arrays["labels"], arrays.get("class_names")
    if images.ndim != 4 or images.shape[-1] != 3:
        raise DataError(f"{path}: 'images' has shape {images.shape}, expected (N, H, W, 3)")
    if images.dtype != np.uint8:
        hint = ""
        if images.dtype.kind in "fiu" and images.size:
            top = float(images.max())
            hint = ("; multiply 0..1 floats by 255 and convert with .astype(np.uint8)" if top <= 1.0 else
                    "; its values are 0..255 already: convert with .astype(np.uint8)" if top <= 255 and images.min() >= 0
                    else "; scale them to 0..255 and convert with .astype(np.uint8)")
        raise DataError(f"{path}: 'images' has dtype {images.dtype}, expected uint8 pixel values 0..255{hint}")
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        hint = ("; they look one-hot: save labels.argmax(axis=1)" if labels.ndim == 2 and labels.shape[0] == len(images)
                else "")
        raise DataError(f"{path}: 'labels' has shape {labels.shape}, expected (N,) or (N, 1){hint}")
    if labels.dtype.kind == "f" and len(labels) and np.all(labels == np.round(labels)):
        labels = labels.astype(np.int64)  # whole-valued floats, as check_labels takes them (labels read from a CSV)
    if labels.dtype.kind == "U":
        raise DataError(f"{path}: 'labels' are strings; store class ids with the names beside them: "
                        "names = np.unique(labels); np.savez(path, images=images, labels=np.searchsorted(names, labels), "
                        "class_names=names)")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{path}: 'labels' has dtype {labels.dtype}, expected integer class ids")
    if len(labels) != len(images):
        raise DataError(f"{path}: {len(images)} images but {len(labels)} labels; expected one label per image")
    names = CLASS_NAMES
    if stored is not None:
        if stored.dtype.kind != "U" or stored.ndim != 1:
            raise DataError(f"{path}: 'class_names' must be a 1-D array of strings (np.array(['a', 'b'])), "
                            f"got {stored.dtype} {stored.shape}")
        names = check_class_names([str(n) for n in stored], f"{path}: 'class_names'")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(names)):
        raise DataError(
            f"{path}: 'labels' range {labels.min()}..{labels.max()}, expected class ids 0..{len(names) - 1} "
            f"({', '.join(f'{i} {n}' for i, n in enumerate(names))})"
        )
    if images.shape[1:3] != (image_size, image_size):
        images = np.stack([resize_image(img, image_size, f"{path}: images[{i}]") for i, img in enumerate(images)]) if len(images) else (
            np.empty((0, image_size, image_size, 3), np.uint8)
        )
    data = Dataset(images, labels.astype(np.int64), names, None)
    return data if class_names is None else data.relabel(class_names)


def _check_image_size(image_size) -> int:
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 8:
        raise ConfigError(f"image_size: expected the side in pixels as an integer >= 8 (e.g. 96), got {image_size!r}")
    return int(image_size)


def load_dataset(path: PathLike, *, image_size: int = 96, workers: Optional[int] = None,
                 class_names: Optional[Sequence[str]] = None, verbose: int = 1) -> Dataset:
    """Read a class-folder tree or a course-layout ``.npz`` as a :class:`Dataset`.

    Images of another size are centre-cropped and resized to ``image_size`` with
    :func:`bloodcell.imageio.resize_image`. ``workers`` threads decode a folder (default: the CPU
    count, at most 8). ``class_names`` fixes the classes and their order (names compared
    ignoring case; classes without images may be listed); by default they come from the data (see
    the module docstring). Reading a large folder shows a progress bar on a terminal's stderr;
    ``verbose=0`` for none.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise DataError(f"path: expected a folder or .npz path, got a {type(path).__name__}; for images already in "
                        "memory use Dataset(images, labels, class_names)")
    check_not_empty(path, "a class-folder tree or an .npz file")
    p = Path(path)
    _check_image_size(image_size)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1):
        raise ConfigError(f"load_dataset: workers must be a whole number >= 1 (or None), got {workers!r}")
    if not p.exists():
        raise InputNotFoundError(f"{p}: no such file or folder; expected a class-folder tree or an .npz file")
    if p.is_dir():
        return _load_folder(p, image_size, workers, class_names, verbose)
    if p.suffix.lower() == ".npz":
        return _load_npz(p, image_size, class_names)
    raise DataError(f"{p}: expected a folder with one subfolder per class or an .npz file, got a {p.suffix or 'plain'} file")


def is_portable_folder_name(name: str) -> bool:
    """Whether a class name can be a folder name on every common file system (what save_dataset writes)."""
    return not (any(c in name for c in "/\\\0:*?\"<>|") or name.startswith(".") or name != name.strip())


def save_dataset(dataset: Dataset, out: PathLike, *, layout: str = "folder", copy_files: bool = True) -> Path:
    """Write ``dataset`` to ``out`` as a class-folder tree (``layout="folder"``) or an ``.npz``.

    In the folder layout, rows that came from files are copied unchanged when ``copy_files`` is
    true (keeping their encoding, and the sub-folders they sat in inside their class folder); other
    rows are written as lossless PNGs. Refuses to write over
    an existing non-empty ``out`` or into the folder the data was read from.
    """
    out = Path(out)
    if layout not in ("folder", "npz"):
        raise ConfigError(f"save_dataset: layout must be 'folder' or 'npz', got {layout!r}")
    if out.exists() and (out.is_file() or any(out.iterdir())):
        raise OutputExistsError(f"{out}: already exists and is not empty; choose a new output path")
    if dataset.paths:
        given = [Path(os.path.abspath(p)) for p in dataset.paths]  # links kept: class folders may link elsewhere
        sources = {p.resolve() for p in given}
        # The data root: the parent of the class folder each file sits in (at any depth below it), and the
        # folders the files really are in (a linked class folder's target need not be named after its class).
        roots = {next((a.parent for a in p.parents if class_index(a.name, dataset.class_names) is not None),
                      p.parent.parent) for p in given} | {s.parent for s in sources}
        if out.resolve() in sources or any(is_within(out, root) or is_within(root, out) for root in roots):
            raise ConfigError(f"{out}: is inside or around the input data; write the output somewhere else")
    if layout == "npz":
        if out.suffix.lower() != ".npz":
            raise ConfigError(f"{out}: the npz layout needs a path ending in .npz")
        extra = {} if dataset.class_names == CLASS_NAMES else {"class_names": np.array(dataset.class_names)}
        return save_npz(out, images=dataset.images, labels=dataset.labels, **extra)
    for i in np.unique(dataset.labels):
        name = dataset.class_names[i]
        if not is_portable_folder_name(name):
            raise ConfigError(f"save_dataset: class name {name!r} cannot be a folder name (no / \\ : * ? \" < > |, "
                              "no leading dot or space); relabel the data with other names, or use layout='npz'")
    # Written into a staging folder beside ``out`` and renamed into place: ``out`` is whole or absent.
    with staged_folder(out) as stage:
        for i in np.unique(dataset.labels):  # a folder per class with images: an empty one would not load
            (stage / dataset.class_names[i]).mkdir(exist_ok=True)
        used: set[str] = set()  # compared ignoring case: IMG.png and img.png are one file on macOS and Windows
        for i, label in enumerate(dataset.labels):
            folder = stage / dataset.class_names[label]
            src = Path(dataset.paths[i]) if (copy_files and dataset.paths) else None
            stem, suffix = (src.stem, src.suffix) if src is not None else (f"{i:06d}", ".png")
            if src is not None:  # sub-folders inside its class folder (one per patient, say) are kept
                home = next((a for a in src.parents if class_index(a.name, [dataset.class_names[label]]) is not None),
                            None)
                if home is not None and src.parent != home:
                    folder = folder / src.parent.relative_to(home)
                    folder.mkdir(parents=True, exist_ok=True)
            target = folder / f"{stem}{suffix}"
            k = 1
            while str(target).lower() in used:
                target = folder / f"{stem}_{k}{suffix}"
                k += 1
            used.add(str(target).lower())
            if src is not None:
                shutil.copyfile(src, target)
            else:
                Image.fromarray(dataset.images[i]).save(target)
    return out


def require_dataset(data, name: str) -> None:
    """Refuse anything but a :class:`Dataset` as ``name``, saying how to make one from arrays."""
    if not isinstance(data, Dataset):
        raise DataError(f"{name}: expected a bloodcell Dataset, got a {type(data).__name__}; make one from arrays with "
                        "bloodcell.Dataset(images, labels, class_names)")


def subset_from_split_file(dataset: Dataset, split_file: PathLike, root: PathLike) -> Dataset:
    """The images of ``dataset`` (loaded from the class-folder tree ``root``) that ``split_file`` lists:
    a JSON list of paths relative to ``root``, as the ``test_files.json`` a training run writes.

    Every listed file must be in ``dataset``: a list from another data folder is refused, not
    quietly matched in part. Class folders are compared by the class they name (``Eos/`` matches
    ``eosinophil/``).
    """
    import json

    split_file = Path(split_file)
    try:
        listed = json.loads(split_file.read_text())
    except FileNotFoundError:
        raise InputNotFoundError(f"{split_file}: no such file; pass the test_files.json a training run wrote") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{split_file}: not valid JSON ({exc}); expected a list of paths relative to {root}") from None
    if not isinstance(listed, list) or not all(isinstance(x, str) for x in listed):
        raise DataError(f"{split_file}: expected a JSON list of paths relative to {root}, got {type(listed).__name__}")
    if not listed:
        raise DataError(f"{split_file}: lists no images; pass the test_files.json a training run wrote")
    if dataset.paths is None:
        raise DataError(f"{split_file}: a split file needs data read from a class-folder tree (an .npz has no file "
                        f"names); got {root}")
    index = {class_path(relative_path(p, root).as_posix()): i for i, p in enumerate(dataset.paths)}
    wanted = {class_path(Path(x.replace("\\", "/")).as_posix()) for x in listed}
    missing = sorted(wanted - index.keys())
    if missing:
        raise DataError(
            f"{split_file}: {len(missing)} of {len(wanted)} listed files are not images of {root} "
            f"(first: {missing[0]!r}); pass the data folder the split was made from"
        )
    return dataset.subset(np.sort(np.fromiter((index[w] for w in wanted), np.int64, len(wanted))))


def split_indices(
    labels: np.ndarray,
    fractions: Sequence[float] = SPLIT_FRACTIONS,
    *,
    groups: Optional[Sequence[Sequence[int]]] = None,
    seed: int = SPLIT_SEED,
    stratify: bool = True,
) -> tuple[np.ndarray, ...]:
    """Row indices (sorted) of each part of a split; see :func:`split`."""
    try:
        if isinstance(fractions, (str, bytes)):
            raise TypeError
        fracs = tuple(float(f) for f in fractions)
    except (TypeError, ValueError):
        raise ConfigError(f"split: fractions must be 2 or 3 numbers summing to 1, e.g. (0.8, 0.1, 0.1); got {fractions!r}") from None
    if len(fracs) not in (2, 3) or min(fracs) < 0 or abs(sum(fracs) - 1.0) > 1e-6:
        raise ConfigError(f"split: fractions must be 2 or 3 non-negative numbers summing to 1, got {tuple(fractions)}")
    return _parts(labels, fracs, groups=groups, seed=seed, stratify=stratify)


def _parts(labels, fracs, *, groups, seed: int, stratify: bool) -> tuple[np.ndarray, ...]:
    labels = np.asarray(labels).reshape(-1)
    n = len(labels)
    from .cleaning import groups_from_pairs

    pairs = []
    for g in groups or ():
        g = sorted(int(i) for i in g)
        if g and (g[0] < 0 or g[-1] >= n):
            raise DataError(f"split: group {g} has row indices outside 0..{n - 1}; groups are row indices of this "
                            "Dataset (e.g. from find_duplicates(dataset.images))")
        pairs.extend(zip(g[:-1], g[1:]))
    unit = np.arange(n)  # the group each row belongs to, named by its first row (overlapping groups merge)
    for g in groups_from_pairs(n, pairs):
        unit[g] = g[0]
    firsts, counts = np.unique(unit, return_counts=True)
    members = {int(u): np.flatnonzero(unit == u) for u in firsts[counts > 1]}
    rng = np.random.default_rng(seed)
    # a group is stratified by its most common label (ties: the smallest)
    strata = np.array([np.bincount(labels[members[u]]).argmax() if u in members else labels[u] for u in firsts])
    if not stratify:
        strata[:] = 0
    parts: list[list[int]] = [[] for _ in fracs]
    for s in np.unique(strata):
        units = firsts[strata == s]
        units = units[rng.permutation(len(units))]
        sizes = np.array([len(members.get(int(u), (u,))) for u in units])
        units = units[np.argsort(-sizes, kind="stable")]  # big groups first, then fill with singles
        target = largest_remainder(int(sizes.sum()), fracs)
        filled = np.zeros(len(fracs), np.int64)
        for u in units:
            rows = members.get(int(u), np.array([u]))
            k = int(np.argmax(target - filled))
            parts[k].extend(int(r) for r in rows)
            filled[k] += len(rows)
    return tuple(np.array(sorted(p), np.int64) for p in parts)


def split(
    dataset: Dataset,
    fractions: Sequence[float] = SPLIT_FRACTIONS,
    *,
    seed: int = SPLIT_SEED,
    stratify: bool = True,
    groups: Optional[Sequence[Sequence[int]]] = None,
) -> tuple[Dataset, ...]:
    """Split ``dataset`` into one Dataset per fraction (2 or 3 fractions summing to 1).

    Every class is split in the given proportions (``stratify=True``), and every duplicate group
    (``groups``, default :func:`bloodcell.cleaning.find_duplicates` with ``near=True``) lands
    whole in one part, so no image leaks between training and test. The same ``seed`` gives the
    same split.
    """
    require_dataset(dataset, "split")
    if groups is None:
        from .cleaning import find_duplicates

        groups = find_duplicates(dataset.images, near=True)
    parts = split_indices(dataset.labels, fractions, groups=groups, seed=seed, stratify=stratify)  # checks the groups
    _warn_conflicting_labels(dataset, groups)
    return tuple(dataset.subset(idx) for idx in parts)


#: Folder names that name a part of a data set, not a class.
_PART_NAMES = frozenset({"train", "training", "val", "valid", "validation", "dev", "test", "testing"})
#: Folders left by tools, never classes: unzipping a Mac archive leaves __MACOSX/ beside the data.
_IGNORED_FOLDERS = frozenset({"__MACOSX"})


def _warn_conflicting_labels(dataset: Dataset, groups) -> None:
    """Warn of copies of one image (or its mirror) filed under different classes: a model learns both labels."""
    labels = np.asarray(dataset.labels).reshape(-1)
    conflicts = [list(g) for g in groups if len({int(labels[i]) for i in g}) > 1]
    if not conflicts:
        return
    first = conflicts[0]
    a, b = first[0], next(i for i in first if labels[i] != labels[first[0]])
    name = (lambda i: dataset.paths[i]) if dataset.paths else (lambda i: f"image {i}")
    warnings.warn(f"{len(conflicts)} group(s) of copies of one image (or its mirror) are filed under different classes, "
                  f"e.g. {name(a)} ({dataset.class_names[labels[a]]}) and {name(b)} ({dataset.class_names[labels[b]]}): "
                  "the model learns both labels; keep the right copy (bloodcell clean DATA --out CLEAN drops such "
                  "conflicts)", UserWarning, stacklevel=outside_stacklevel())


def kfold(dataset: Dataset, k: int, *, seed: int = SPLIT_SEED, groups: Optional[Sequence[Sequence[int]]] = None) -> tuple[Dataset, ...]:
    """The ``k`` folds of a k-fold cross-validation: as :func:`split` with ``k`` equal fractions
    (stratified, every group of duplicates in one fold). A class with fewer images (or groups of
    copies) than ``k`` has none in some folds, and a fold may be empty when every class has fewer."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
        raise ConfigError(f"kfold: k must be an integer >= 2, got {k!r}")
    require_dataset(dataset, "kfold: dataset")
    if k > len(dataset):
        raise ConfigError(f"kfold: k = {k} folds of {len(dataset)} images would leave folds empty; use k <= {len(dataset)}")
    if groups is None:
        from .cleaning import find_duplicates

        groups = find_duplicates(dataset.images, near=True)
    parts = _parts(np.asarray(dataset.labels).reshape(-1), (1.0 / k,) * k, groups=groups, seed=seed, stratify=True)
    _warn_conflicting_labels(dataset, groups)
    return tuple(dataset.subset(idx) for idx in parts)
