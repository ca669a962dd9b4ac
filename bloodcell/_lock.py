"""Advisory locks on the folders a run writes: a second run refuses at once, naming the first.

The lock is a file beside the folder (``.<name>.bloodcell-lock``) holding who took it, locked
with ``flock``: the kernel drops the lock when its process dies, however it dies, so a lock left
by a killed run is recognised as stale without guessing from process ids. Where ``flock`` does
not exist (Windows) the file alone is the lock, and a holder whose process no longer runs on
this host is taken for stale.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Iterator

from .errors import BusyError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

_held: dict[Path, list] = {}  # lock path -> [fd, depth]: a process may nest its own locks


def lock_path(folder: os.PathLike | str) -> Path:
    """The lock file guarding ``folder``."""
    folder = Path(os.path.realpath(folder))  # a link and the folder it points to share one lock
    return folder.parent / f".{folder.name}.bloodcell-lock"


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text())
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["started"]))
        return f"process {info['pid']} on {info['host']}, started {started}: {info['command']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def _alive(path: Path) -> bool:
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    if info.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return True


def _command() -> str:
    """This process's command line as a person would recognise it: ``bloodcell ...`` for the command
    line (``python -m bloodcell`` too), the script and its arguments for a Python script."""
    if not sys.argv or not sys.argv[0]:
        return "python"
    program = Path(sys.argv[0])
    if program.stem == "bloodcell" or program.parent.name == "bloodcell" and program.name == "__main__.py":
        return " ".join(["bloodcell", *sys.argv[1:]])
    return " ".join(["python", *sys.argv])


def _acquire(path: Path, name: str, flag: str) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                         "command": _command()})

    def busy() -> BusyError:
        return BusyError(f"{name}: in use by another bloodcell run ({_holder(path)}); wait for it to end, or "
                         f"choose another {flag}")

    for _ in range(10):
        if fcntl is not None:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise busy() from None
            try:  # the holder before us may have removed the file between our open and our lock
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, record.encode())
            return fd
        try:  # pragma: no cover - Windows
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:  # pragma: no cover
            if _alive(path):
                raise busy() from None
            path.unlink(missing_ok=True)
            continue
        os.write(fd, record.encode())  # pragma: no cover
        return fd  # pragma: no cover
    raise busy()


@contextlib.contextmanager
def locked(folder: os.PathLike | str, *, flag: str = "folder") -> Iterator[None]:
    """Hold the lock of ``folder`` for the block; :class:`BusyError` when another run holds it.

    ``flag`` is how the error names the folder (``"--out"``, ``"workdir"``). A process may nest
    its own lock on the same folder.
    """
    path = lock_path(folder)
    name = f"{flag} {folder}" if flag.startswith("-") else str(folder)
    if path in _held:
        _held[path][1] += 1
    else:
        _held[path] = [_acquire(path, name, flag), 1]
    try:
        yield
    finally:
        entry = _held[path]
        entry[1] -= 1
        if entry[1] == 0:
            del _held[path]
            with contextlib.suppress(OSError):
                path.unlink()  # before the close: a process waiting on the old file sees it gone (checked above)
            os.close(entry[0])
