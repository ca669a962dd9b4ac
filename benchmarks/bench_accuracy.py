"""Accuracy, macro F1, robustness and test-time augmentation of the zoo's entries on held-out pbc96.

For each pretrained entry whose folder (``zoo/<name>/`` for release entries, the package's
``_weights/<name>/`` for bundled ones) holds a ``test_files.json`` (the held-out split its
training never saw), runs exactly the documented command

    bloodcell evaluate DATA --model ENTRY --split-file FOLDER/test_files.json --robustness --json

and the same with ``--tta`` (no robustness), and writes every figure, the confusion matrix and
the accuracy of each corruption at each severity to one JSON file. ``bloodcell evaluate``
corrupts images at the model's input size; for an entry whose input size differs from
``--native-size`` (the data's own size: 96 for pbc96, so a 128-pixel model), the corruptions are
also applied at that size before the resize to the model's (``robustness_native``), as a camera or
a slide scanner would. The docs draw their
confusion-matrix and severity-curve pictures and the zoo table from that file.

Release entries are measured from their ``zoo/<name>/`` folder (what their Hub repo holds), so no
Hub access is needed. With ``--models``, the other entries' figures already in ``--out`` are kept.

Usage: python benchmarks/bench_accuracy.py [--data ../shared/data/pbc96] [--models mnv3s.pbc96 ...]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, installed or not
from _measured import weights_sha256  # noqa: E402  (benchmarks/ is the script's folder)


def run_cli(argv: list[str]) -> dict:
    """Run ``bloodcell`` in this process and return the JSON it printed."""
    from bloodcell.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    if code != 0:
        raise SystemExit(f"bloodcell {' '.join(argv)} exited with {code}")
    return json.loads(out.getvalue())


def native_robustness(model: str, data: str, split_file: Path, size: int) -> dict:
    """Robustness with each corruption applied at the data's ``size``, then resized to the model's.

    The images are those ``bloodcell evaluate --split-file`` evaluates, in the same order.
    """
    import bloodcell
    from bloodcell.data import load_dataset, subset_from_split_file
    from bloodcell.evaluation import evaluate_robustness

    clf = bloodcell.load_classifier(model)
    dataset = load_dataset(data, image_size=size)
    dataset = subset_from_split_file(dataset, split_file, data)
    return evaluate_robustness(clf, dataset, corrupt_size=size).to_dict()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data/pbc96")
    ap.add_argument("--models", nargs="*", default=None, help="zoo entries (default: every entry with a test split)")
    ap.add_argument("--no-tta", action="store_true", help="skip the test-time-augmentation run")
    ap.add_argument("--native-size", type=int, default=96, help="the data's own image size (pbc96: 96)")
    ap.add_argument("--out", default="benchmarks/results/accuracy.json")
    args = ap.parse_args()

    import bloodcell  # before TensorFlow: bloodcell imports it without its start-up log lines
    import keras
    import tensorflow as tf

    from bloodcell.classifier import entry_folder

    results: dict[str, dict] = {}
    for name in args.models or bloodcell.list_pretrained():
        entry = bloodcell.pretrained_entry(name)
        # Release entries keep their files in zoo/<name>/ (what their Hub repo holds); bundled ones ship inside.
        release = Path(__file__).resolve().parents[1] / "zoo" / name
        split_file = (release if release.is_dir() else entry_folder(entry)) / "test_files.json"
        if not split_file.is_file():
            print(f"{name}: no test_files.json in its folder; skipped", file=sys.stderr)
            continue
        # A release entry is measured from its zoo folder, which holds exactly what its Hub repo serves.
        model = os.path.relpath(release) if release.is_dir() else name
        common = [args.data, "--model", model, "--split-file", str(split_file), "--json"]
        t = time.perf_counter()
        plain = run_cli(["evaluate", *common, "--robustness"])
        seconds = time.perf_counter() - t
        row = {
            "architecture": entry.architecture,
            "weights_sha256": weights_sha256(model),
            "init": entry.init,
            "size_bytes": entry.size_bytes,
            "num_params": entry.num_params,
            "test_images": plain["evaluation"]["n"],
            "accuracy": plain["evaluation"]["accuracy"],
            "balanced_accuracy": plain["evaluation"]["balanced_accuracy"],
            "macro_f1": plain["evaluation"]["macro"]["f1"],
            "robustness_mean": plain["robustness"]["robustness_mean"],
            "evaluation": plain["evaluation"],
            "robustness": plain["robustness"],
            "seconds": round(seconds, 1),
            "command": "bloodcell evaluate " + " ".join(
                [args.data, "--model", model, "--split-file", os.path.relpath(split_file), "--robustness"]
            ),
        }
        if not args.no_tta:
            tta = run_cli(["evaluate", *common, "--tta"])
            row["tta_accuracy"] = tta["evaluation"]["accuracy"]
            row["tta_macro_f1"] = tta["evaluation"]["macro"]["f1"]
        if entry.input_size != args.native_size:
            row["robustness_native"] = native_robustness(model, args.data, split_file, args.native_size)
        results[name] = row
        print(f"{name}: accuracy {row['accuracy']:.4f}, macro F1 {row['macro_f1']:.4f}, "
              f"robustness mean {row['robustness_mean']:.4f}"
              + (f", TTA accuracy {row['tta_accuracy']:.4f}" if "tta_accuracy" in row else ""))

    out = Path(args.out)
    if args.models and out.is_file():  # measuring some entries keeps the others' earlier figures
        results = {**json.loads(out.read_text()).get("models", {}), **results}
    result = {
        "data": args.data,
        "models": results,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "bloodcell": bloodcell.__version__,
        },
        "command": "python benchmarks/bench_accuracy.py" + (f" --data {args.data}" if args.data != "../shared/data/pbc96" else ""),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
