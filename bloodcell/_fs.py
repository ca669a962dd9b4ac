"""File-system helpers: atomic writes, whole-folder replacement, paths inside paths, and which
``config.json`` files are bloodcell's."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any, Iterator, Optional, Union

from ._lock import locked
from .errors import OutputExistsError

PathLike = Union[str, os.PathLike]
#: The ``format`` of a bloodcell model folder's ``config.json``.
FORMAT = "bloodcell-classifier"
#: The held-out images of a model's training run (paths relative to its data), beside the model: its
#: figures were measured on them. Not a model file (not published), a record of the split.
TEST_FILES = "test_files.json"
#: A training run's record of the images it trained or validated on (a small-data run: all of its data):
#: digests of their pixels at the model's input size, so that ``evaluate`` knows them under any file name
#: and whatever the data's form.
TRAINED_ON = "trained_on.json"
#: Prefix of the staging folders that :func:`staged_folder` creates beside a target.
STAGING_PREFIX = ".bloodcell-staging-"


def atomic_write_text(path: PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename:
    readers see the old content or the new one, never a part."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def save_figure(fig, path: PathLike, *, dpi: int) -> Path:
    """Save a Matplotlib figure in the format its suffix names, atomically (a file it replaces is
    whole until the new one is)."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format=Path(path).suffix.lstrip(".").lower() or "png", dpi=dpi)
    return atomic_write_bytes(path, buffer.getvalue())


def save_image(pixels, path: PathLike, *, scale: int = 1, text: Optional[dict[str, str]] = None) -> Path:
    """Save a uint8 RGB array as an image in the format its suffix names, enlarged ``scale`` times
    (nearest neighbour), atomically (never a half-written picture under the final name). ``text``:
    a PNG's text chunks (see :func:`image_text`)."""
    import io

    import numpy as np
    from PIL import Image, PngImagePlugin

    if scale > 1:
        pixels = np.repeat(np.repeat(pixels, scale, axis=0), scale, axis=1)
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_itxt(key, value)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=Image.registered_extensions()[Path(path).suffix.lower()],
                                 **({"pnginfo": info} if text else {}))
    return atomic_write_bytes(path, buffer.getvalue())


def image_text(path: PathLike) -> dict[str, str]:
    """The text chunks of a PNG file (empty for another file, or one that cannot be read)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return dict(getattr(image, "text", {}) or {})
    except (OSError, ValueError):
        return {}


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """:func:`atomic_write_text` for bytes. The file gets the mode a plain ``open()`` would give it
    (the umask and the folder's default ACLs apply), or the mode of the file it replaces."""
    path = Path(path)
    with _named(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        try:
            with os.fdopen(fd, "wb") as f:
                if path.exists():
                    with contextlib.suppress(OSError):  # some file systems (FAT, CIFS) refuse chmod
                        os.chmod(tmp, path.stat().st_mode & 0o7777)
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    return path


def fsync_paths(*paths: PathLike) -> None:
    """fsync files and folders (a folder's fsync makes the renames in it durable; where the system
    cannot open a folder, as Windows, that part is skipped)."""
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)


@contextlib.contextmanager
def _named(path: Path) -> Iterator[None]:
    """OSErrors inside name ``path``, what the caller asked to write, not a hidden temporary beside it."""
    try:
        yield
    except OSError as exc:
        if exc.errno is None:
            raise
        raise type(exc)(exc.errno, exc.strerror, str(path)) from None


def is_within(path: PathLike, folder: PathLike) -> bool:
    """Whether ``path`` is ``folder`` itself or (when ``folder`` is a folder) anywhere inside it."""
    p, d = Path(path).resolve(), Path(folder).resolve()
    return p == d or (Path(folder).is_dir() and d in p.parents)


def _staged(target: Path) -> tuple[list[Path], list[Path]]:
    """The staging folders of ``target`` beside it: (all of them, those holding a previous version)."""
    parent = target.parent
    if not parent.is_dir():
        return [], []
    pattern = re.compile(re.escape(f"{STAGING_PREFIX}{target.name}-") + r"(old-)?[0-9a-f]{8}")
    mine = [p for p in parent.iterdir() if p.name.startswith(STAGING_PREFIX) and pattern.fullmatch(p.name)]
    return mine, [p for p in mine if "-old-" in p.name[len(STAGING_PREFIX) + len(target.name):]]


def previous_version(target: PathLike) -> Optional[Path]:
    """Where a missing ``target``'s previous version lies when a write killed between its two
    renames left it aside (None otherwise). Reading it changes nothing: a write may be under way."""
    target = Path(target)
    if target.exists():
        return None
    olds = [p for p in _staged(target)[1] if p.is_dir()]
    return olds[0] if olds else None


def relative_path(path: PathLike, root: PathLike) -> Path:
    """``path`` relative to the folder ``root``, as written (links are not followed: an image
    linked into a data folder keeps its place there)."""
    return Path(os.path.relpath(os.path.abspath(path), os.path.abspath(root)))


def recover_staged(target: PathLike) -> None:
    """Undo what a write of ``target`` killed part-way left behind: a missing ``target`` whose
    previous version was moved aside comes back, and unfinished staging folders are removed.
    Only for a writer that holds ``target``'s lock (another writer's staging folder would go)."""
    target = Path(target)
    mine, olds = _staged(target)
    if olds and not target.exists():
        os.rename(olds[0], target)
    for stale in mine:
        if stale.is_symlink():
            stale.unlink()
        elif stale.exists():
            shutil.rmtree(stale, ignore_errors=True)


@contextlib.contextmanager
def staged_folder(target: PathLike, *, replace: bool = False) -> Iterator[Path]:
    """Yield an empty staging folder beside ``target``; on success it becomes ``target`` whole.

    With ``replace``, an existing ``target`` is swapped out by renames and removed afterwards
    (the old folder stays complete until the new one is in place, and a process killed between
    the two renames leaves the old one as ``<target>.old-…`` beside it, never half of each);
    without it an existing non-empty ``target`` is an error the caller checks first. On any
    failure the staging folder is removed and ``target`` is untouched. ``target``'s lock
    (:func:`bloodcell._lock.locked`) is held throughout: a second writer gets a BusyError.
    """
    target = Path(os.path.realpath(target)) if Path(target).is_symlink() else Path(target)  # write where a link points
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    with locked(target):
        recover_staged(target)
        stage = parent / f"{STAGING_PREFIX}{target.name}-{uuid.uuid4().hex[:8]}"
        with _named(target):
            stage.mkdir()
        try:
            yield stage
            if target.exists() and replace:
                old = parent / f"{STAGING_PREFIX}{target.name}-old-{uuid.uuid4().hex[:8]}"
                os.rename(target, old)
                os.rename(stage, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                if target.is_dir() and not any(target.iterdir()):
                    target.rmdir()
                os.rename(stage, target)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise


def bloodcell_config(path: PathLike) -> Optional[dict[str, Any]]:
    """The content of ``path`` if it is a bloodcell ``config.json`` (its ``format`` is ours), else
    None: a file that is missing, not JSON or another library's."""
    try:
        cfg = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return cfg if isinstance(cfg, dict) and cfg.get("format") == FORMAT else None


def path_text(path: PathLike) -> str:
    """``path`` as text that encodes as UTF-8: the bytes of a name that is not UTF-8 backslash-escaped."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def pixel_digests(images) -> list[str]:
    """A short digest of each image's pixels (uint8 at the model's input size): what :data:`TRAINED_ON` lists."""
    import hashlib

    import numpy as np

    return [hashlib.sha256(np.ascontiguousarray(image, np.uint8).tobytes()).hexdigest()[:20] for image in images]


def save_npz(out: Union[str, os.PathLike], **arrays) -> Path:
    """``np.savez_compressed`` through a temporary file and a rename: ``out`` is whole or absent."""
    out = Path(out)
    if out.is_dir():
        raise OutputExistsError(f"{out}: is a folder; give a file path ending in .npz")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.{uuid.uuid4().hex[:8]}.tmp.npz"
    try:
        import numpy as np

        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
