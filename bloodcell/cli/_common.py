"""What the subcommands share: the usage error and the checks of output paths."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from .._fs import is_within
from ..errors import BloodcellError


class UsageError(BloodcellError):
    """Bad command-line usage; reported in one line with exit status 2."""

    exit_code = 2


__all__ = ["MAX_SCALE", "UsageError", "check_output_file", "default_workdir", "is_within", "refuse_working_directory",
           "seed_value"]

#: The largest --scale of the commands that draw pictures: 16 times the images' side (2,048 px at 128).
MAX_SCALE = 16


def one_line(text) -> str:
    """``text`` with control characters (a tab or a newline in a file name) escaped as Python writes them,
    so that it stays one line, or one tab-separated field."""
    text = str(text)
    return "".join(repr(c)[1:-1] if c < " " or c == "\x7f" else c for c in text)


def refuse_working_directory(out: Path, what: str, example: str) -> None:
    """Refuse ``--out`` that is the working directory or a folder above it: ``what`` (e.g. "the model
    is saved") replaces the whole folder, which would pull it from under the shell."""
    if is_within(Path.cwd(), out):
        raise UsageError(f"--out {out}: {what} as a whole folder that replaces it; give a new folder, not the working "
                         f"directory or one above it (e.g. --out {example})")


def default_workdir(model_folder) -> Path:
    """Where `bloodcell train` keeps a model's checkpoints, history and split by default: OUT.work beside OUT
    (``.`` named by its full path)."""
    folder = Path(model_folder)
    return folder.with_name(folder.name + ".work") if folder.name else Path(str(folder.resolve()) + ".work")


def seed_value(text: str) -> int:
    """An argparse ``type`` for seeds: a whole number from 0 to 2**31 - 1 (NumPy's and TensorFlow's range)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value < 2**31:
        raise argparse.ArgumentTypeError(f"expected an integer from 0 to 2**31 - 1, got {text}")
    return value


def check_output_file(flag: str, path, data, suffixes: Sequence[str], *, overwrite: bool = False) -> None:
    """Refuse, before any work, an output file with an unsupported suffix, inside the input DATA, or
    that exists (unless ``overwrite``: then it is replaced whole, once the new one is written)."""

    path, data = Path(path), Path(data)
    if path.suffix.lower() not in suffixes:
        raise UsageError(f"{flag} {path}: expected a file name ending in {', '.join(suffixes)}")
    if is_within(path, data):
        raise UsageError(f"{flag} {path}: is the input DATA or inside it, where it would be read as an image; "
                         "write it somewhere else")
    if path.is_dir():
        raise UsageError(f"{flag} {path}: is a folder; give a file name")
    if not overwrite and (path.exists() or path.is_symlink()):
        raise UsageError(f"{flag} {path}: already exists; choose a new file, or pass --overwrite to replace it")
    check_writable(path)


def check_writable(path) -> None:
    """Refuse, before any work, an output ``path`` whose folder (or the nearest one of it that
    exists) cannot be written into: the OSError that writing it would raise, naming ``path``."""
    import tempfile

    folder = Path(path).absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:  # reported as the write itself would be (exit 1), before the work instead of after
        raise type(exc)(exc.errno, exc.strerror, str(path)) from None


def classes_option(classifier, text):
    """The class names of a ``--classes a,b,c`` option, checked against ``classifier`` (None: all)."""
    if text is None:
        return None
    from ..errors import ConfigError

    classes = [c.strip() for c in text.split(",") if c.strip()]
    try:
        classifier.class_mask(classes)
    except ConfigError as exc:
        message = str(exc)
        raise UsageError("--classes: " + (message[len("classes: "):] if message.startswith("classes: ") else message)) from None
    return classes
