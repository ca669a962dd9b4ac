"""Candidates for the default, measured on every line the default must hold.

For each model folder (NAME=FOLDER): accuracy and robustness mean on the default's held-out pbc96
split (``bloodcell evaluate DATA --split-file test_files.json --robustness``), zero-shot accuracy
on BCCD, and the few-shot acceptance run of bench_outside.py (``bloodcell train FEW --init FOLDER
--no-soup`` on draw 0, 10 images of each of BCCD's 4 classes with at least 20, accuracy on the rest:
one model, as the rows measured before the soup became ``bloodcell train``'s default), with the
folder's training record (where and how it was trained). Results go into
``benchmarks/results/candidates.json`` (rows replace earlier rows of the same name).

    python benchmarks/bench_candidates.py default=mnv3s.pbc96 gpu-scratch=runs/gpu/scratch ...
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

import bench_outside as bo

ROOT = Path(__file__).resolve().parents[1]


def measure(name: str, source: str, pbc: Path, bccd: Path) -> dict:
    import bloodcell
    from bloodcell.zoo import bundled_path

    clf = bloodcell.load_classifier(source)
    split_file = bundled_path(bloodcell.DEFAULT_MODEL) / "test_files.json"
    code, out, err = bo.run_cli(["evaluate", str(pbc), "--model", source, "--split-file", str(split_file),
                                 "--robustness", "--json"])
    if code:
        raise SystemExit(f"bloodcell evaluate {pbc} --model {source}: exit {code}\n{err[-2000:]}")
    pbc_eval = json.loads(out)
    _, present, few_classes = bo.bccd_classes(bccd)
    zero = bo.zero_shot(name, source, bccd, present)
    with tempfile.TemporaryDirectory(prefix="bloodcell-candidates-") as tmp:
        few = bo.acceptance_run(bccd, few_classes, source, Path(tmp), flags=("--no-soup",))
    training = clf.training
    return {
        "model": name,
        "source": source,
        "training": {k: training[k] for k in ("init", "hardware", "recipe", "wall_time_s", "images_seen") if k in training},
        "pbc_accuracy": pbc_eval["evaluation"]["accuracy"],
        "robustness_mean": pbc_eval["robustness"]["robustness_mean"],
        "bccd_zero_shot": zero["accuracy"],
        "few_shot": few,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", metavar="NAME=FOLDER")
    ap.add_argument("--pbc", default=str(ROOT.parent / "shared" / "data" / "pbc96"))
    ap.add_argument("--bccd", default=str(ROOT.parent / "shared" / "data" / "bccd-wbc"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "candidates.json"))
    args = ap.parse_args()
    out = Path(args.out)
    old = json.loads(out.read_text()) if out.exists() else {}
    rows = {r["model"]: r for r in old.get("candidates", [])}
    for item in args.models:
        name, _, source = item.partition("=")
        row = measure(name, source or name, Path(args.pbc), Path(args.bccd))
        rows[name] = row
        print(f"{name}: PBC {row['pbc_accuracy']:.4f}, robustness {row['robustness_mean']:.4f}, BCCD zero-shot "
              f"{row['bccd_zero_shot']:.4f}, few-shot {row['few_shot']['accuracy_on_rest']:.4f}", flush=True)
        result = {"machine": f"{os.cpu_count()}-core CPU, {platform.machine()}", "candidates": list(rows.values())}
        out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
