"""Candidates for the default ranked on the validation split, which is where a choice is made.

The held-out split (``test_files.json``) is only measured once the choice is made
(bench_candidates.py). The candidates trained on ``split(pbc96, SPLIT_FRACTIONS, seed=SPLIT_SEED)``, the
default's own split. This script gives each candidate's accuracy and robustness mean (the 12
corruptions at 5 severities) on that split's validation part. Results go into
``benchmarks/results/validation.json``; a rerun replaces the rows of the same name.

    python benchmarks/bench_validation.py default=mnv3s.pbc96 soup=runs/soup ...
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", metavar="NAME=SOURCE")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "pbc96"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "validation.json"))
    args = ap.parse_args(argv)
    pairs = [m.partition("=")[::2] for m in args.models]
    bad = [m for m, (name, source) in zip(args.models, pairs) if not name or not source]
    if bad:
        raise SystemExit(f"{bad[0]}: expected NAME=SOURCE (a zoo name or a model folder)")

    import bloodcell
    from bloodcell.data import SPLIT_FRACTIONS, SPLIT_SEED
    from bloodcell.evaluation import evaluate, evaluate_robustness

    _, val, _ = bloodcell.split(bloodcell.load_dataset(args.data), SPLIT_FRACTIONS, seed=SPLIT_SEED)
    out = Path(args.out)
    result = json.loads(out.read_text()) if out.is_file() else {"rows": []}
    for name, source in pairs:
        start = time.perf_counter()
        clf = bloodcell.load_classifier(source)
        accuracy = evaluate(clf, val, verbose=0).accuracy
        robustness = evaluate_robustness(clf, val, verbose=0).robustness_mean
        row = {"model": name, "source": source, "accuracy": accuracy, "robustness_mean": robustness,
               "seconds": round(time.perf_counter() - start, 1)}
        result["rows"] = [r for r in result["rows"] if r["model"] != name] + [row]
        print(f"{name}: validation accuracy {accuracy:.4f}, robustness mean {robustness:.4f}", flush=True)
    result.update(data=f"the validation part of split({Path(args.data).name}, {SPLIT_FRACTIONS}, seed={SPLIT_SEED}): {len(val)} images",
                  machine=f"{platform.machine()}, {os.cpu_count()} cores",
                  command="python benchmarks/bench_validation.py NAME=SOURCE ...")
    out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
