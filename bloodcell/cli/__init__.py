"""The ``bloodcell`` command. Subcommands live in ``cmd_*.py`` modules beside this one."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from typing import Optional, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class UsageError(Exception):
    """Bad command-line usage; reported in one line with exit status 2."""


def is_within(path, data) -> bool:
    """Whether ``path`` is the input ``data`` itself or (for a folder input) anywhere inside it."""
    from pathlib import Path

    p, d = Path(path).resolve(), Path(data).resolve()
    return p == d or (Path(data).is_dir() and d in p.parents)


def check_output_file(flag: str, path, data, suffixes: Sequence[str]) -> None:
    """Refuse, before any work, an output file with an unsupported suffix or inside the input DATA."""
    from pathlib import Path

    path, data = Path(path), Path(data)
    if path.suffix.lower() not in suffixes:
        raise UsageError(f"{flag} {path}: expected a file name ending in {', '.join(suffixes)}")
    if is_within(path, data):
        raise UsageError(f"{flag} {path}: is the input DATA or inside it, where it would be read as an image; "
                         "write it somewhere else")
    if path.is_dir():
        raise UsageError(f"{flag} {path}: is a folder; give a file name")


def build_parser() -> argparse.ArgumentParser:
    from .._version import __version__

    parser = argparse.ArgumentParser(
        prog="bloodcell", description="Classify, clean, train, evaluate and publish blood-cell image classifiers."
    )
    parser.add_argument("--version", action="version", version=f"bloodcell {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name.startswith("cmd_")):
        importlib.import_module(f"{__name__}.{mod}").register(subparsers)
    return parser


def _quiet_import_tensorflow() -> None:
    """Import TensorFlow with stderr silenced at the file-descriptor level.

    TensorFlow's C++ start-up messages are written before its logging is configured, so
    ``TF_CPP_MIN_LOG_LEVEL`` cannot hide them; they would drown the command's own messages.
    """
    if "tensorflow" in sys.modules:
        return
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # stderr replaced by a non-file object
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), fd)
            import tensorflow as tf

            tf.config.list_physical_devices()  # device probing logs too (e.g. a failed cuInit)
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 an input or output failed, 2 usage error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and on usage errors
        return int(exc.code or 0)
    _quiet_import_tensorflow()  # after parsing: --help, --version and usage errors stay fast
    args.argv = list(sys.argv[1:] if argv is None else argv)  # recorded in model cards
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    from ..errors import BloodcellError, ChecksumError, HubError, ImageReadError

    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"bloodcell {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (HubError, ChecksumError, ImageReadError) as exc:  # an input that could not be used
        print(f"bloodcell {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except (BloodcellError, ValueError, FileNotFoundError, KeyError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"bloodcell {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. an output folder that cannot be written
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"bloodcell {args.command}: error: {where}{exc.strerror or exc}; check the path and its permissions",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"bloodcell {args.command}: interrupted", file=sys.stderr)
        return 130


def console_main() -> None:
    sys.exit(main())
