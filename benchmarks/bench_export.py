"""Export the bundled default model to ONNX, LiteRT and SavedModel; time, size, agreement and speed.

For each format: export wall time, size on disk, and the largest absolute difference between the
exported model's probabilities and Keras' ``Classifier.predict_proba`` on the 16 images in
``examples/images``. Then inference throughput at batch 64 (uint8 images, already S x S) of
ONNX Runtime, the LiteRT interpreter, the reloaded SavedModel and Keras (``predict_proba``, and
the bare ``model.predict_on_batch`` it wraps), each the median of ``--repeats`` timed runs (taking turns) of
``--batches`` batches after a warm-up, all in one process on this machine.

Usage: python benchmarks/bench_export.py [--model mnv3s.pbc96] [--out benchmarks/results/export.json]
Needs the export extras: pip install "bloodcell[export]".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout, installed or not
from _measured import weights_sha256  # noqa: E402  (benchmarks/ is the script's folder)
BATCH = 64


def size_bytes(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def throughput(fns: dict[str, Callable[[np.ndarray], np.ndarray]], x: np.ndarray, batches: int, repeats: int
               ) -> dict[str, float]:
    """Images per second of each function on batch ``x``: the median over ``repeats`` runs of
    ``batches`` calls, the functions taking turns so that a change in machine load hits all alike."""
    for fn in fns.values():
        fn(x)
        fn(x)
    rates: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            for _ in range(batches):
                fn(x)
            rates[name].append(batches * len(x) / (time.perf_counter() - t))
    return {f"{name}_img_per_s": round(statistics.median(r), 1) for name, r in rates.items()}


def runners(paths: dict[str, Path], threads: int) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """A function uint8 batch -> probabilities for each exported model."""
    import onnxruntime as ort
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    session = ort.InferenceSession(str(paths["onnx"]), opts, providers=["CPUExecutionProvider"])
    litert = Interpreter(model_path=str(paths["litert"]), num_threads=threads).get_signature_runner("serving_default")
    saved = tf.saved_model.load(str(paths["saved_model"])).signatures["serving_default"]
    return {
        "onnx": lambda x: session.run(None, {"image": x})[0],
        "litert": lambda x: litert(image=x)["output_0"],
        "saved_model": lambda x: saved(image=tf.constant(x))["output_0"].numpy(),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="zoo name, folder or hf:// source (default: the bundled model)")
    ap.add_argument("--batches", type=int, default=10, help="batches of 64 per timed run")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "export.json"))
    args = ap.parse_args()

    import bloodcell  # before TensorFlow: bloodcell imports it without its start-up log lines
    import keras
    import onnxruntime
    import tensorflow as tf

    from bloodcell.export import export

    load = round(os.getloadavg()[0], 2)  # recorded: other jobs on the machine slow every timing
    clf = bloodcell.load_classifier(args.model)
    files = sorted((ROOT / "examples" / "images").glob("*.jpg"))
    images = clf.preprocess(files)
    reference = clf.predict_proba(images)
    threads = os.cpu_count() or 1

    results: dict = {"model": clf.name, "weights_sha256": weights_sha256(args.model), "architecture": clf.architecture, "input_size": clf.input_size, "formats": {}}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for fmt, name in (("onnx", "model.onnx"), ("litert", "model.tflite"), ("saved_model", "saved_model")):
            t = time.perf_counter()
            paths[fmt] = export(clf, Path(tmp) / name, format=fmt)
            results["formats"][fmt] = {"export_s": round(time.perf_counter() - t, 1), "size_bytes": size_bytes(paths[fmt])}
        run = runners(paths, threads)
        for fmt, fn in run.items():
            diff = float(np.abs(fn(images) - reference).max())
            results["formats"][fmt]["max_abs_diff_vs_keras"] = diff
            results["formats"][fmt]["same_top1_as_keras"] = int((fn(images).argmax(1) == reference.argmax(1)).sum())
        results["keras_weights_file_bytes"] = size_bytes(clf.save_pretrained(Path(tmp) / "keras") / "model.weights.h5")

        x = np.ascontiguousarray(np.resize(images, (BATCH, *images.shape[1:])))
        speed = throughput({
            **run,
            "keras_predict_proba": lambda b: clf.predict_proba(b, batch_size=BATCH),
            "keras_predict_on_batch": lambda b: clf.model.predict_on_batch(b.astype(np.float32)),
        }, x, args.batches, args.repeats)
        results["throughput_batch64"] = speed

    results.update({
        "compared_images": len(files),
        "threads": threads,
        "load_average_1min_at_start": load,
        "versions": {"keras": keras.__version__, "tensorflow": tf.__version__, "onnxruntime": onnxruntime.__version__,
                     "tf2onnx": version("tf2onnx"), "onnx": version("onnx"), "ai-edge-litert": version("ai-edge-litert"),
                     "bloodcell": bloodcell.__version__},
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "command": "python benchmarks/bench_export.py" + (f" --model {args.model}" if args.model else ""),
    })
    print(json.dumps(results, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
