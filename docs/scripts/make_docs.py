"""Produce the docs' pictures (``docs/img``) and the example outputs they show (``docs/generated``).

    python docs/scripts/make_docs.py                 # everything
    python docs/scripts/make_docs.py figures         # pictures only
    python docs/scripts/make_docs.py outputs classify hub   # some outputs only

Every picture is drawn by code in this repository: the confusion matrix and the severity curves
from ``benchmarks/results/accuracy.json`` (``python benchmarks/bench_accuracy.py``), the cleaning
and augmentation pictures by the example scripts. Every output block of a tutorial is the
captured output of the command printed above it (TensorFlow's start-up log lines left out). Runs
on pbc96 where it is present (``../shared/data/pbc96``), otherwise on the shipped sample data.
Tables are not made here: the mkdocs hook renders them at build time (``docs/scripts/tables.py``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
IMG = REPO / "docs" / "img"
OUT = REPO / "docs" / "generated"
PBC96 = REPO.parent / "shared" / "data" / "pbc96"
DATA = "../shared/data/pbc96" if PBC96.is_dir() else "tests/data/pbc96_sample"
MAX_PNG_BYTES = 300_000
NOISE = re.compile(r"^(I0000|W0000|E0000|WARNING: All log messages|INFO: Created TensorFlow Lite|To enable the following)")

#: name -> the command shown in the docs (run from the repository root; ``bloodcell`` means the CLI).
COMMANDS: dict[str, str] = {
    "classify": "python examples/classify.py",
    "finetune": "python examples/finetune.py --tiny",
    "clean": f"python examples/clean_dataset.py {DATA} --figure docs/img/cleaning_found.png",
    "clean_tiny": "python examples/clean_dataset.py --tiny --figure docs/img/cleaning_injected.png",
    "augmentation": f"python examples/augmentation.py {DATA} -n 6 --out-dir docs/img",
    "evaluate": "python examples/evaluate.py --tiny",
    "hub": "python examples/hub.py --tiny",
    "distributed": "python examples/distributed.py --tiny",
    "export": "python examples/export.py",
    "cli_list": "bloodcell list",
    "cli_predict": "bloodcell predict examples/images",
    "cli_predict_json": "bloodcell predict examples/images/immature_granulocyte_MMY_728765.jpg --json --top-k 3",
    "cli_evaluate": "bloodcell evaluate tests/data/pbc96_sample --robustness --corruptions jpeg,gaussian_noise --severities 1,3,5",
    "cli_clean": "bloodcell clean tests/data/pbc96_sample --out sample_clean --report sample_clean.json",
    "cli_export": "bloodcell export --format onnx --out mnv3s.onnx",
    "cli_augment_preview": "bloodcell augment-preview tests/data/pbc96_sample --preset robust -n 6 --views 2 --out docs/img/augment_preview_cli.png --overwrite",
}
#: Files a command leaves in the repository root that are not part of the docs.
LEFTOVERS = {"cli_clean": ["sample_clean", "sample_clean.json"], "cli_export": ["mnv3s.onnx", "mnv3s.onnx.json"]}


def run(name: str) -> str:
    """Run ``COMMANDS[name]`` from the repository root; its output with the command on top."""
    command = COMMANDS[name]
    argv = command.split()
    argv = [sys.executable, "-m", "bloodcell", *argv[1:]] if argv[0] == "bloodcell" else [sys.executable, *argv[1:]]
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
           "COLUMNS": "100", "PYTHONUNBUFFERED": "1"}
    env.pop("BLOODCELL_EXAMPLES_TINY", None)
    proc = subprocess.run(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for leftover in LEFTOVERS.get(name, ()):
        path = REPO / leftover
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    text = "\n".join(line for line in proc.stdout.splitlines() if not NOISE.match(line))
    if proc.returncode:
        raise SystemExit(f"{command} failed ({proc.returncode}):\n{text[-3000:]}")
    return f"$ {command}\n{text.replace(str(REPO) + os.sep, '')}\n"


#: Commands whose main product is a picture in docs/img (their output is captured too).
FIGURE_COMMANDS = ("clean", "clean_tiny", "augmentation", "cli_augment_preview")


def outputs(names: list[str]) -> None:
    """Capture the output of ``names`` (default: every command that makes no picture)."""
    OUT.mkdir(parents=True, exist_ok=True)
    for name in names or [n for n in COMMANDS if n not in FIGURE_COMMANDS]:
        print(f"running {COMMANDS[name]}", flush=True)
        (OUT / f"{name}.txt").write_text(run(name))


def evaluation_figures() -> None:
    """The confusion matrix and severity curves of the bundled default in accuracy.json."""
    sys.path.insert(0, str(REPO))
    from bloodcell.evaluation import Report, RobustnessReport

    path = REPO / "benchmarks" / "results" / "accuracy.json"
    if not path.is_file():
        raise SystemExit(f"{path} is missing: run `python benchmarks/bench_accuracy.py` first")
    from tables import default_model_entry

    name, m = default_model_entry(json.loads(path.read_text())["models"])
    ev = m["evaluation"]
    report = Report.from_confusion(ev["confusion_matrix"], ev["class_names"])
    report.plot_confusion(IMG / "confusion.png", title=f"{name} on {ev['n']} held-out pbc96 images: accuracy "
                          f"{100 * report.accuracy:.2f}%\n(% of each true class)")
    r = m["robustness"]
    robust = RobustnessReport(clean_accuracy=r["clean_accuracy"], severities=tuple(r["severities"]),
                              accuracy=r["accuracy"], n=r["n"], seed=r["seed"])
    robust.plot(IMG / "robustness.png", title=f"{name}: accuracy under each corruption (n = {r['n']})")


def figures() -> None:
    IMG.mkdir(parents=True, exist_ok=True)
    evaluation_figures()
    outputs(list(FIGURE_COMMANDS))


def check_sizes() -> None:
    for png in sorted(IMG.glob("*.png")):
        size = png.stat().st_size
        flag = "  TOO LARGE" if size > MAX_PNG_BYTES else ""
        print(f"{png.relative_to(REPO)}: {size / 1000:.0f} kB{flag}")


def main() -> None:
    what, names = (sys.argv[1] if len(sys.argv) > 1 else "all"), sys.argv[2:]
    unknown = [n for n in names if n not in COMMANDS]
    if what not in ("all", "figures", "outputs") or unknown or (names and what != "outputs"):
        raise SystemExit(f"usage: make_docs.py [all | figures | outputs [NAME...]]; names: {', '.join(COMMANDS)}")
    if what in ("all", "figures"):
        figures()
    if what in ("all", "outputs"):
        outputs(names)
    check_sizes()


if __name__ == "__main__":
    main()
