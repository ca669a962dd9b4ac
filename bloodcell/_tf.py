"""Import TensorFlow without its start-up chatter.

TensorFlow's C++ start-up messages (oneDNN notes, CPU-feature notes, and on a machine without a
GPU a ``failed call to cuInit`` line logged as an error) are written before its logging can be
configured, so ``TF_CPP_MIN_LOG_LEVEL`` cannot hide them. When bloodcell is the first to import
TensorFlow, it does so with the process's stderr pointed at /dev/null, and probes the devices
there too (where the cuInit line comes from). Errors still raise: an exception is not a log line.
"""

from __future__ import annotations

import os
import sys


def quiet_import_tensorflow() -> None:
    """Import TensorFlow (and list its devices) with stderr silenced at the file-descriptor level."""
    if "tensorflow" in sys.modules:
        return
    # The C++ lines go to file descriptor 2 even where sys.stderr was replaced (pytest, notebooks).
    fd = 2
    try:
        os.fstat(fd)
    except OSError:  # no stderr at all
        import tensorflow  # noqa: F401

        return
    try:
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):
        pass
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), fd)
            import tensorflow as tf

            tf.config.list_physical_devices()
    finally:
        os.dup2(saved, fd)
        os.close(saved)


quiet_import_tensorflow()
