"""The ``bloodcell`` command. Subcommands live in ``cmd_*.py`` modules beside this one."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from typing import Optional, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


from ._common import UsageError, check_output_file, is_within, one_line  # noqa: E402,F401
from ..errors import BloodcellError  # noqa: E402


class _Parser(argparse.ArgumentParser):
    """argparse with the command line's one rule for errors: one line, ``bloodcell COMMAND: error: ...``
    (argparse prints its whole usage first); subcommands' parsers are of this class too."""

    def error(self, message):
        import re

        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if choice:  # Python 3.11's argparse suggests nothing for a typo
            from .._registry import did_you_mean

            message += did_you_mean(choice.group(1),
                                    re.findall(r"'([^']*)'", choice.group(2)) or choice.group(2).split(", "))
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from .._version import __version__

    parser = _Parser(
        prog="bloodcell", description="Classify, clean, train, evaluate and publish blood-cell image classifiers."
    )
    parser.add_argument("--version", action="version", version=f"bloodcell {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name.startswith("cmd_")):
        importlib.import_module(f"{__name__}.{mod}").register(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit status.

    The one rule: 0 when everything worked; 2 when the command asked for something that cannot be
    done as written (a bad option or value, a path that does not exist, an output that exists),
    and then nothing was done; 1 when an input or output failed while working (an unreadable
    image, a damaged model, the Hub unreachable, a checksum that does not match). Errors are one
    line on stderr, ``bloodcell COMMAND: error: ...``. Anything else is a bug and shows its traceback.
    """
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:  # named by the subcommand's parser, with its options to choose from, not the top level's
            _unrecognized(parser, args, extra)
    except SystemExit as exc:  # argparse exits on --help and on usage errors
        return int(exc.code or 0)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    name = " ".join(c for c in (args.command, getattr(args, "hub_command", None)) if c)  # e.g. "hub push"
    if sys.stdout is None:  # started with >&-: the answers would be lost (print fails)
        print(f"bloodcell {name}: error: standard output is closed (>&-); redirect it to a file or to /dev/null",
              file=sys.stderr)
        return 2
    for dest, label in (("data", "DATA"), ("paths", "a PATH")):  # Path("") is the working directory: all of it read
        given = getattr(args, dest, None)
        if any(isinstance(v, str) and not v.strip() for v in (given if isinstance(given, list) else [given])):
            print(f"bloodcell {name}: error: {label} is empty ('', an unset variable?); give a file or folder",
                  file=sys.stderr)
            return 2
    missing = _missing_backend()
    if missing:
        print(f"bloodcell {name}: error: {missing}", file=sys.stderr)
        return 2
    try:
        if args.command not in WITHOUT_TENSORFLOW:
            from .. import _tf  # noqa: F401  (after parsing: --help, --version and usage errors stay fast)
    except KeyboardInterrupt:  # Ctrl-C while TensorFlow loads: nothing was done yet
        print(f"bloodcell {name}: interrupted", file=sys.stderr)
        return 130
    args.argv = list(sys.argv[1:] if argv is None else argv)  # recorded in model cards
    import warnings

    def warning_line(message, category, filename, lineno, file=None, line=None):
        print(f"bloodcell {name}: warning: {one_line(message)}", file=file or sys.stderr)

    shown, warnings.showwarning = warnings.showwarning, warning_line
    for stream in (sys.stdout, sys.stderr):  # a file name that is not valid UTF-8 prints escaped, not as a crash
        if hasattr(stream, "reconfigure") and getattr(stream, "errors", "") == "strict":
            stream.reconfigure(errors="backslashreplace")
    try:
        return int(args.func(args) or 0)
    except BloodcellError as exc:
        print(f"bloodcell {name}: error: {one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # the reader stopped reading (| head): not an error, nothing more to write
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the exit's flush of stdout does not fail again
        return 141  # 128 + SIGPIPE, what a shell reports for a writer whose pipe closed
    except OSError as exc:  # the machine refused: an output folder that cannot be written, a full disk
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"bloodcell {name}: error: {where}{exc.strerror or exc}; check the path and its permissions",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"bloodcell {name}: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = shown


def _unrecognized(parser: argparse.ArgumentParser, args, extra: list[str]) -> None:
    """Exit with the usage error of the (sub)command that was given options it does not have, with
    the nearest of its own options where one is close."""
    import difflib

    command = parser
    for dest in ("command", "hub_command"):  # down to the deepest subcommand chosen
        actions = [a for a in command._actions if isinstance(a, argparse._SubParsersAction)]
        if actions and getattr(args, dest, None) in actions[0].choices:
            command = actions[0].choices[getattr(args, dest)]
    options = [o for a in command._actions for o in a.option_strings if o.startswith("--")]
    hints = []
    for word in (w for w in extra if w.startswith("-")):
        close = difflib.get_close_matches(word.split("=")[0], options, n=2, cutoff=0.6)
        hints += [f"{word}: did you mean {' or '.join(close)}?"] if close else []
    command.error(f"unrecognized arguments: {' '.join(extra)}" + (f" ({'; '.join(hints)})" if hints else ""))


#: Commands that never load TensorFlow (numpy and Pillow only): they skip its 5 s import.
WITHOUT_TENSORFLOW = frozenset({"clean"})


#: Keras backends and the module each needs (the numpy backend needs none).
_BACKEND_MODULES = {"jax": "jax", "torch": "torch", "openvino": "openvino"}


def _missing_backend() -> Optional[str]:
    """What is wrong when ``KERAS_BACKEND`` names a backend whose package is not installed (Keras
    would fail with a traceback from deep inside its import); None when it is fine."""
    import importlib.util

    backend = os.environ.get("KERAS_BACKEND", "").strip()
    known = ("tensorflow", "jax", "torch", "numpy", "openvino")
    if backend and backend not in known:
        from .._registry import did_you_mean

        return (f"KERAS_BACKEND={backend} is not a Keras backend; set one of {', '.join(known)}, or unset it "
                "(bloodcell runs on TensorFlow by default)" + did_you_mean(backend, known))
    module = _BACKEND_MODULES.get(backend)
    if module is None or importlib.util.find_spec(module) is not None:
        return None
    install = 'pip install "bloodcell[jax]"' if backend == "jax" else f"pip install {module}"
    return (f"KERAS_BACKEND={backend}, but {module} is not installed; {install}, or unset KERAS_BACKEND "
            "(bloodcell runs on TensorFlow by default)")


def console_main() -> None:
    sys.exit(main())
