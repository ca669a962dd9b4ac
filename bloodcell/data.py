"""Data sets of labelled cell images: loading, saving and leak-free splits.

Two layouts are read and written:

- a folder with one subfolder per class, named by the canonical class names
  (:data:`bloodcell._classes.CLASS_NAMES`; the PBC folder name ``ig`` is accepted for
  ``immature_granulocyte``), like ``pbc96``;
- an ``.npz`` in the course layout: ``images`` (N, H, W, 3) uint8 and ``labels`` (N,) or (N, 1)
  integer class ids in the canonical order.
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
from PIL import Image

from ._classes import CLASS_NAMES
from ._util import DAMAGED_NPZ
from .imageio import IMAGE_EXTENSIONS, read_image, resize_image

PathLike = Union[str, os.PathLike]

#: Folder names accepted for a class besides its canonical name (PBC's own folder names).
CLASS_ALIASES: dict[str, str] = {"ig": "immature_granulocyte"}


@dataclass
class Dataset:
    """Images with integer labels indexing ``class_names``.

    ``paths`` holds the source file of each row when the data came from a folder, else ``None``.
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...] = CLASS_NAMES
    paths: Optional[list[str]] = None

    def __post_init__(self) -> None:
        self.images = np.asarray(self.images)
        labels = np.asarray(self.labels)
        if labels.size and not (np.issubdtype(labels.dtype, np.integer)
                                or (np.issubdtype(labels.dtype, np.floating) and np.all(labels == np.round(labels)))):
            raise ValueError(f"Dataset.labels: expected integer class ids, got {labels.dtype} values such as {labels.flat[0]!r}")
        self.labels = labels.astype(np.int64).reshape(-1)
        self.class_names = tuple(self.class_names)
        if self.images.ndim != 4 or self.images.shape[-1] != 3 or self.images.dtype != np.uint8:
            raise ValueError(
                f"Dataset.images: expected a uint8 array (N, S, S, 3), got {self.images.dtype} {self.images.shape}"
            )
        if len(self.labels) != len(self.images):
            raise ValueError(f"Dataset: {len(self.images)} images but {len(self.labels)} labels; give one label per image")
        if self.paths is not None and len(self.paths) != len(self.images):
            raise ValueError(f"Dataset: {len(self.images)} images but {len(self.paths)} paths; give one path per image")
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.class_names)):
            raise ValueError(
                f"Dataset.labels: expected class ids 0..{len(self.class_names) - 1}, "
                f"got {self.labels.min()}..{self.labels.max()}"
            )

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: Union[Sequence[int], np.ndarray]) -> "Dataset":
        """The rows ``indices`` (integer indices or a boolean mask) as a new Dataset."""
        idx = np.asarray(indices)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise ValueError(f"subset: boolean mask of shape {idx.shape}, expected ({len(self)},)")
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64).reshape(-1)
        paths = None if self.paths is None else [self.paths[i] for i in idx]
        return Dataset(self.images[idx], self.labels[idx], self.class_names, paths)

    def class_counts(self) -> dict[str, int]:
        """Number of rows of each class, in class order (classes with no rows included)."""
        counts = np.bincount(self.labels, minlength=len(self.class_names))
        return {name: int(c) for name, c in zip(self.class_names, counts)}


def _class_of_folder(name: str) -> Optional[str]:
    key = name.lower()
    if key in CLASS_NAMES:
        return key
    return CLASS_ALIASES.get(key)


def _list_class_files(root: Path) -> tuple[list[Path], list[int]]:
    files: list[Path] = []
    labels: list[int] = []
    unknown: list[str] = []
    seen: dict[str, str] = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        cls = _class_of_folder(sub.name)
        if cls is None:
            unknown.append(sub.name)
            continue
        if cls in seen:
            raise ValueError(
                f"{root}: folders {seen[cls]!r} and {sub.name!r} both hold class {cls!r}; merge them into one"
            )
        seen[cls] = sub.name
        found = sorted(f for f in sub.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
        files.extend(found)
        labels.extend([CLASS_NAMES.index(cls)] * len(found))
    if unknown:
        raise ValueError(
            f"{root}: unknown class folder(s) {', '.join(map(repr, unknown))}; expected folders named "
            f"{', '.join(CLASS_NAMES)} (or 'ig' for immature_granulocyte)"
        )
    if not seen:
        raise ValueError(
            f"{root}: no class folders; expected one subfolder per class named {', '.join(CLASS_NAMES)}"
        )
    if not files:
        raise ValueError(f"{root}: the class folders hold no images (looked for {', '.join(IMAGE_EXTENSIONS)})")
    return files, labels


def _read_one(args: tuple[Path, int]) -> np.ndarray:
    path, size = args
    try:  # fast path for the common case (pbc96): an RGB JPEG of the right size without EXIF
        with Image.open(path) as img:
            if img.format == "JPEG" and img.mode == "RGB" and img.size == (size, size) and "exif" not in img.info:
                img.load()
                return np.asarray(img)
    except Exception:  # noqa: BLE001  (read_image below names the problem)
        pass
    return resize_image(read_image(path), size)


def _load_folder(root: Path, image_size: int, workers: Optional[int]) -> Dataset:
    files, labels = _list_class_files(root)
    images = np.empty((len(files), image_size, image_size, 3), np.uint8)
    n_workers = workers if workers is not None else min(8, os.cpu_count() or 1)
    jobs = [(f, image_size) for f in files]
    if n_workers > 1 and len(files) > 64:
        with ThreadPoolExecutor(n_workers) as pool:  # PIL releases the GIL while decoding
            for i, img in enumerate(pool.map(_read_one, jobs, chunksize=64)):
                images[i] = img
    else:
        for i, job in enumerate(jobs):
            images[i] = _read_one(job)
    return Dataset(images, np.asarray(labels, np.int64), CLASS_NAMES, [str(f) for f in files])


def _load_npz(path: Path, image_size: int) -> Dataset:
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, *DAMAGED_NPZ) as exc:
        raise ValueError(f"{path}: not a readable .npz file ({exc}); save it with np.savez") from None
    with data:
        missing = [k for k in ("images", "labels") if k not in data.files]
        if missing:
            raise ValueError(
                f"{path}: missing key(s) {', '.join(missing)}; expected keys 'images' (N, H, W, 3) uint8 and "
                f"'labels' (N,) int, found {', '.join(data.files) or 'none'}"
            )
        try:
            images, labels = data["images"], data["labels"]
        except ValueError as exc:  # object arrays need pickle, which is never allowed here
            raise ValueError(
                f"{path}: 'images' and 'labels' must be plain numeric arrays ({exc}); save them with "
                "np.savez(path, images=uint8_array, labels=int_array)"
            ) from None
        except (OSError, *DAMAGED_NPZ) as exc:
            raise ValueError(f"{path}: is damaged or truncated ({exc}); write it again with np.savez") from None
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"{path}: 'images' has shape {images.shape}, expected (N, H, W, 3)")
    if images.dtype != np.uint8:
        hint = "; multiply 0..1 floats by 255 and convert with .astype(np.uint8)" if images.dtype.kind == "f" else ""
        raise ValueError(f"{path}: 'images' has dtype {images.dtype}, expected uint8 pixel values 0..255{hint}")
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(f"{path}: 'labels' has shape {labels.shape}, expected (N,) or (N, 1)")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{path}: 'labels' has dtype {labels.dtype}, expected integer class ids")
    if len(labels) != len(images):
        raise ValueError(f"{path}: {len(images)} images but {len(labels)} labels; expected one label per image")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(CLASS_NAMES)):
        raise ValueError(
            f"{path}: 'labels' range {labels.min()}..{labels.max()}, expected class ids 0..{len(CLASS_NAMES) - 1} "
            f"({', '.join(f'{i} {n}' for i, n in enumerate(CLASS_NAMES))})"
        )
    if images.shape[1:3] != (image_size, image_size):
        images = np.stack([resize_image(img, image_size) for img in images]) if len(images) else (
            np.empty((0, image_size, image_size, 3), np.uint8)
        )
    return Dataset(images, labels.astype(np.int64), CLASS_NAMES, None)


def load_dataset(path: PathLike, *, image_size: int = 96, workers: Optional[int] = None) -> Dataset:
    """Read a class-folder tree or a course-layout ``.npz`` as a :class:`Dataset`.

    Images of another size are centre-cropped and resized to ``image_size`` with
    :func:`bloodcell.imageio.resize_image`. ``workers`` threads decode a folder (default: the CPU
    count, at most 8).
    """
    p = Path(path)
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 8:
        raise ValueError(f"image_size: expected the side in pixels as an integer >= 8 (e.g. 96), got {image_size!r}")
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or folder; expected a class-folder tree or an .npz file")
    if p.is_dir():
        return _load_folder(p, image_size, workers)
    if p.suffix.lower() == ".npz":
        return _load_npz(p, image_size)
    raise ValueError(f"{p}: expected a folder with one subfolder per class or an .npz file, got a {p.suffix or 'plain'} file")


def _is_within(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def save_dataset(dataset: Dataset, out: PathLike, *, layout: str = "folder", copy_files: bool = True) -> Path:
    """Write ``dataset`` to ``out`` as a class-folder tree (``layout="folder"``) or an ``.npz``.

    In the folder layout, rows that came from files are copied unchanged when ``copy_files`` is
    true (keeping their encoding); other rows are written as lossless PNGs. Refuses to write over
    an existing non-empty ``out`` or into the folder the data was read from.
    """
    out = Path(out)
    if layout not in ("folder", "npz"):
        raise ValueError(f"save_dataset: layout must be 'folder' or 'npz', got {layout!r}")
    if out.exists() and (out.is_file() or any(out.iterdir())):
        raise FileExistsError(f"{out}: already exists and is not empty; choose a new output path")
    if dataset.paths:
        sources = {Path(p).resolve() for p in dataset.paths}
        # The data root: the parent of the class folder each file sits in (at any depth below it).
        names = set(dataset.class_names)
        parents = {next((a.parent for a in s.parents if a.name in names), s.parent.parent) for s in sources}
        if out.resolve() in sources or any(_is_within(out, par) or _is_within(par, out) for par in parents):
            raise ValueError(f"{out}: is inside or around the input data; write the output somewhere else")
    if layout == "npz":
        if out.suffix.lower() != ".npz":
            raise ValueError(f"{out}: the npz layout needs a path ending in .npz")
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(out, images=dataset.images, labels=dataset.labels)
        return out
    out.mkdir(parents=True, exist_ok=True)
    for name in dataset.class_names:
        (out / name).mkdir(exist_ok=True)
    used: set[Path] = set()
    for i, label in enumerate(dataset.labels):
        folder = out / dataset.class_names[label]
        src = Path(dataset.paths[i]) if (copy_files and dataset.paths) else None
        stem, suffix = (src.stem, src.suffix) if src is not None else (f"{i:06d}", ".png")
        target = folder / f"{stem}{suffix}"
        k = 1
        while target in used:
            target = folder / f"{stem}_{k}{suffix}"
            k += 1
        used.add(target)
        if src is not None:
            shutil.copyfile(src, target)
        else:
            Image.fromarray(dataset.images[i]).save(target)
    return out


def _largest_remainder(total: int, fractions: Sequence[float]) -> np.ndarray:
    raw = np.asarray(fractions, np.float64) * total
    counts = np.floor(raw).astype(np.int64)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    return counts


def split_indices(
    labels: np.ndarray,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    *,
    groups: Optional[Sequence[Sequence[int]]] = None,
    seed: int = 42,
    stratify: bool = True,
) -> tuple[np.ndarray, ...]:
    """Row indices (sorted) of each part of a split; see :func:`split`."""
    fracs = tuple(float(f) for f in fractions)
    if len(fracs) not in (2, 3) or min(fracs) < 0 or abs(sum(fracs) - 1.0) > 1e-6:
        raise ValueError(f"split: fractions must be 2 or 3 non-negative numbers summing to 1, got {tuple(fractions)}")
    labels = np.asarray(labels).reshape(-1)
    n = len(labels)
    from .cleaning import _groups_from_pairs

    pairs = []
    for g in groups or ():
        g = sorted(int(i) for i in g)
        if g and (g[0] < 0 or g[-1] >= n):
            raise ValueError(f"split: group {g} has row indices outside 0..{n - 1}")
        pairs.extend(zip(g[:-1], g[1:]))
    unit = np.arange(n)  # the group each row belongs to, named by its first row (overlapping groups merge)
    for g in _groups_from_pairs(n, pairs):
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
        target = _largest_remainder(int(sizes.sum()), fracs)
        filled = np.zeros(len(fracs), np.int64)
        for u in units:
            rows = members.get(int(u), np.array([u]))
            k = int(np.argmax(target - filled))
            parts[k].extend(int(r) for r in rows)
            filled[k] += len(rows)
    return tuple(np.array(sorted(p), np.int64) for p in parts)


def split(
    dataset: Dataset,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    *,
    seed: int = 42,
    stratify: bool = True,
    groups: Optional[Sequence[Sequence[int]]] = None,
) -> tuple[Dataset, ...]:
    """Split ``dataset`` into one Dataset per fraction (2 or 3 fractions summing to 1).

    Every class is split in the given proportions (``stratify=True``), and every duplicate group
    (``groups``, default :func:`bloodcell.cleaning.find_duplicates` with ``near=True``) lands
    whole in one part, so no image leaks between training and test. The same ``seed`` gives the
    same split.
    """
    if groups is None:
        from .cleaning import find_duplicates

        groups = find_duplicates(dataset.images, near=True)
    return tuple(dataset.subset(idx) for idx in split_indices(dataset.labels, fractions, groups=groups, seed=seed, stratify=stratify))
