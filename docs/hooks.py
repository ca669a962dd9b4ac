"""mkdocs hook: replace each ``<!-- table: NAME -->`` line with a table rendered from measured data.

The tables come from ``docs/scripts/tables.py`` (benchmark JSON files, the zoo registry, the
augmentation presets, the command line's own help), so the pages never hold typed-in figures.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "scripts"))

import tables  # noqa: E402

MARKER = re.compile(r"^<!-- table: ([\w-]+) -->$", re.MULTILINE)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if str(tables.REPO) not in sys.path:  # other plugins may have reset sys.path since the import
        sys.path.insert(0, str(tables.REPO))
    def render(match: re.Match) -> str:
        name = match.group(1)
        if name not in tables.TABLES:
            raise KeyError(f"{page.file.src_path}: unknown table {name!r}; known: {', '.join(tables.TABLES)}")
        return tables.TABLES[name]()

    return MARKER.sub(render, markdown)
