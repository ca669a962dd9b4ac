"""Progress bars for long work: tqdm on stderr, shown only on a terminal and only for work that
lasts more than a moment, so piped or logged output never holds a bar."""

from __future__ import annotations

import sys
from typing import Iterable, Optional, TypeVar

T = TypeVar("T")

#: Seconds before a bar appears: shorter work shows nothing.
DELAY_S = 2.0


def progress(iterable: Iterable[T], *, verbose: int, total: Optional[int] = None, desc: str = "",
             unit: str = "it") -> Iterable[T]:
    """``iterable`` with a progress bar on stderr when ``verbose`` and stderr is a terminal."""
    if not verbose:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc or None, unit=unit, file=sys.stderr, disable=None,
                delay=DELAY_S, leave=False, dynamic_ncols=True)
