"""Throughput of `bloodcell predict` against plain Keras loops, on 1,000 pbc96 images (96x96 files).

Measures, in one process and on the same files:
  - bloodcell: ``Classifier.predict_files`` with every check (what ``bloodcell predict`` runs:
    threaded decoding overlapped with batched inference; the bundled default's out-of-distribution
    check reads its features in the same forward pass, bloodcell.ood);
  - naive loop: open each file with PIL and call ``model.predict`` on it, one at a time;
  - predict_proba in memory: ``Classifier.predict_proba`` (no checks) over the decoded images;
  - preload + predict: decode every file first (PIL, one thread), then one ``model.predict``
    over the array (batch 64, traced beforehand); the decode and predict times are added, and
    the predict time alone is the in-memory reference of ``ratio_vs_model_predict_in_memory``.
Also times the whole CLI command (process start, model load, output) for reference.

The model is the bundled default; with --model, an untrained model of that architecture, which has
no fitted feature check and so runs the colour-statistics non-cell test instead. The plain loops
resize each image to that size with PIL, as the classifier does.

Usage: python benchmarks/bench_predict.py [--data ../shared/data/pbc96] [--n 1000] [--model mnv3s] [--input-size S]
Without the data folder, 1,000 synthetic JPEGs are written to a temporary folder instead.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, installed or not
from _measured import weights_sha256  # noqa: E402  (benchmarks/ is the script's folder)


def files_for(args, tmp: Path) -> list[Path]:
    data = Path(args.data)
    if data.is_dir():
        files = sorted(data.glob("*/*.jpg"))
        rng = np.random.default_rng(0)
        return [files[i] for i in sorted(rng.choice(len(files), args.n, replace=False))]
    rng = np.random.default_rng(0)
    out = []
    for i in range(args.n):
        p = tmp / f"img{i:04d}.jpg"
        Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(p, quality=95)
        out.append(p)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data/pbc96")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--model", default=None, help="architecture (default: the bundled default's)")
    ap.add_argument("--input-size", type=int, default=None, help="model input size (default: the bundled default's)")
    ap.add_argument("--naive-n", type=int, default=300, help="images timed in the naive loop (extrapolated)")
    ap.add_argument("--out", default="benchmarks/results/predict.json")
    args = ap.parse_args()

    import bloodcell

    default = bloodcell.pretrained_entry(bloodcell.DEFAULT_MODEL)
    size = args.input_size or default.input_size
    bundled = args.model is None and size == default.input_size
    args.model = args.model or default.architecture

    with tempfile.TemporaryDirectory() as tmp:
        files = files_for(args, Path(tmp))
        if bundled:
            clf = bloodcell.load_classifier()
        else:
            clf = bloodcell.Classifier(bloodcell.build_model(args.model, input_size=size), name=args.model)
        checks = "feature check (same pass)" if clf.feature_check is not None else "colour-statistics non-cell test"
        clf.predict_checked(np.zeros((64, size, size, 3), np.uint8), verbose=0)  # warm-up: trace the predict functions
        model = clf.model
        model.predict(np.zeros((1, size, size, 3), np.float32), verbose=0)
        model.predict(np.zeros((130, size, size, 3), np.float32), batch_size=64, verbose=0)  # traced at batch 64 too

        t = time.perf_counter()
        results = list(clf.predict_files(files, batch_size=64, flag_outliers=True))
        t_bloodcell = time.perf_counter() - t
        assert all(r.probabilities is not None for r in results)

        t = time.perf_counter()
        naive = files[: args.naive_n]
        for f in naive:
            with Image.open(f) as im:
                x = np.asarray(im.convert("RGB").resize((size, size), Image.LANCZOS), np.float32)[None]
            model.predict(x, verbose=0)
        t_naive = (time.perf_counter() - t) * len(files) / len(naive)

        t = time.perf_counter()
        arr = np.stack([np.asarray(Image.open(f).convert("RGB").resize((size, size), Image.LANCZOS))
                        for f in files]).astype(np.float32)
        t_decode = time.perf_counter() - t
        t = time.perf_counter()
        model.predict(arr, batch_size=64, verbose=0)
        t_predict = time.perf_counter() - t
        t = time.perf_counter()
        clf.predict_proba(arr.astype(np.uint8), batch_size=64, verbose=0)
        t_proba = time.perf_counter() - t

        model_dir = Path(tmp) / "model"
        clf.save_pretrained(model_dir)
        t = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "bloodcell", "predict", *map(str, files), "--model", str(model_dir)],
            capture_output=True, text=True,
        )
        t_cli = time.perf_counter() - t
        assert proc.returncode == 0, proc.stderr

    n = len(files)
    res = {
        "images": n,
        "architecture": args.model,
        "model": clf.name or "untrained",
        "weights_sha256": weights_sha256() if bundled else None,
        "outlier_check": checks,
        "input_size": size,
        "data": str(args.data) if Path(args.data).is_dir() else "synthetic JPEGs",
        "bloodcell_predict_files_img_per_s": round(n / t_bloodcell, 1),
        "naive_loop_img_per_s": round(n / t_naive, 1),
        "preload_plus_predict_img_per_s": round(n / (t_decode + t_predict), 1),
        "decode_s": round(t_decode, 2),
        "model_predict_s": round(t_predict, 2),
        "speedup_vs_naive": round(t_naive / t_bloodcell, 2),
        "ratio_vs_preload_plus_predict": round((t_decode + t_predict) / t_bloodcell, 2),
        # bloodcell from files, with every check, against the model alone on images already in memory
        "ratio_vs_model_predict_in_memory": round(t_predict / t_bloodcell, 2),
        # the same, against bloodcell's own unchecked predict_proba on the decoded images (predict_on_batch)
        "predict_proba_in_memory_s": round(t_proba, 2),
        "ratio_vs_predict_proba_in_memory": round(t_proba / t_bloodcell, 2),
        "cli_wall_s_including_start": round(t_cli, 2),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(res, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
