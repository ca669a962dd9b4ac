"""``bloodcell list``: the registered architectures and the zoo's pretrained entries."""

from __future__ import annotations



def register(subparsers) -> None:
    p = subparsers.add_parser("list", help="list architectures and pretrained entries",
                              description="List the registered architectures and the zoo's pretrained entries, "
                                          "with their input size, measured figures and where their weights come from.")
    p.set_defaults(func=run)


def _fmt(value, spec: str = ".2%") -> str:
    return format(value, spec) if isinstance(value, (int, float)) else "-"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def run(args) -> int:
    from ..registry import architecture_info, list_models, list_pretrained, pretrained_entry

    rows = [["ARCHITECTURE", "FAMILY", "TRAINABLE ON A CPU", "DESCRIPTION"]]
    for name in list_models():
        info = architecture_info(name)
        rows.append([name, info.family, "yes" if info.trainable_here else "no (builder only)", info.description])
    print(_table(rows))
    print()
    # INIT last: a long history there does not push the other columns off the screen
    rows = [["PRETRAINED", "ARCH", "INPUT", "ACCURACY", "MACRO F1", "ROBUSTNESS", "SIZE", "WHERE", "INIT"]]
    for name in list_pretrained():
        e = pretrained_entry(name)
        where = ("bundled" if e.bundled else f"hf://{e.repo_id}@{(e.revision or 'main')[:12]}" if e.published
                 else f"zoo/{e.name} in a checkout (not yet on the Hub)")
        size = f"{e.size_bytes / 1e6:.1f} MB" if e.size_bytes else "-"
        m = e.metrics
        rows.append([name, e.architecture, str(e.input_size), _fmt(m.get("accuracy")), _fmt(m.get("macro_f1")),
                     _fmt(m.get("robustness_mean")), size, where, e.init])
    print(_table(rows) if len(rows) > 1 else "no pretrained entries")
    return 0
