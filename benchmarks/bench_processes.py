"""Training step time on this machine: TensorFlow against JAX, one process against two.

Each configuration is one ``Trainer`` run in processes of its own (the backend is chosen per
process): ``mnv3s`` from random init at 96 px, global batch 64, the ``"seed"`` augmentation,
``--images`` pbc96 images (an equal number per class), ``--epochs`` epochs of the first phase
without validation. The step time is the mean over the epochs after the first (which includes
tracing and compilation). Two processes are started on localhost with Keras' three
``KERAS_DISTRIBUTION_*`` variables and train one model, each on half of every global batch.
Results go to ``benchmarks/results/processes.json``.

Usage: python benchmarks/bench_processes.py [--pbc ../shared/data/pbc96] [--images 768] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "processes.json"
BATCH = 64
CONFIGS = (("tensorflow", 1), ("jax", 1), ("jax", 2))


def worker(args) -> int:
    """One process of one configuration: train, then write its timings (process 0)."""
    import numpy as np

    from bloodcell.data import load_dataset
    from bloodcell.training import Trainer

    data = load_dataset(args.pbc, image_size=96)
    rng = np.random.default_rng(0)
    per_class = args.images // len(data.class_names)
    keep = np.concatenate([rng.permutation(np.flatnonzero(data.labels == c))[:per_class]
                           for c in range(len(data.class_names))])
    part = data.subset(np.sort(keep))
    trainer = Trainer("mnv3s", class_names=data.class_names, input_size=96, head_epochs=args.epochs, finetune_epochs=0,
                      batch_size=BATCH, augment="seed", patience=None, verbose=0)
    history = trainer.fit(part)
    if trainer.process_id == 0:
        steps = len(part) // BATCH if trainer.num_processes > 1 else -(-len(part) // BATCH)
        later = [r["seconds"] for r in history[1:]]
        step_s = sum(later) / len(later) / steps
        import keras

        Path(args.worker).write_text(json.dumps({
            "backend": keras.backend.backend(), "processes": trainer.num_processes, "devices": trainer.num_devices,
            "images": len(part), "steps_per_epoch": steps, "first_epoch_s": history[0]["seconds"],
            "step_s": step_s, "images_per_s": BATCH / step_s,
        }))
    return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_config(backend: str, processes: int, args, out: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERAS_DISTRIBUTION_")}
    env.update(KERAS_BACKEND=backend, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    command = [sys.executable, __file__, "--pbc", args.pbc, "--images", str(args.images), "--epochs",
               str(args.epochs), "--worker", str(out)]
    if processes > 1:
        env.update(KERAS_DISTRIBUTION_JOB_ADDRESSES=f"127.0.0.1:{free_port()}",
                   KERAS_DISTRIBUTION_NUM_PROCESSES=str(processes))
    procs = [subprocess.Popen(command, env={**env, **({"KERAS_DISTRIBUTION_PROCESS_ID": str(i)} if processes > 1 else {})})
             for i in range(processes)]
    for p in procs:
        if p.wait() != 0:
            raise SystemExit(f"{backend} x{processes}: a process exited with {p.returncode}")
    return json.loads(out.read_text())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pbc", default=str(ROOT.parent / "shared" / "data" / "pbc96"))
    ap.add_argument("--images", type=int, default=768)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for backend, processes in CONFIGS:
            start = time.perf_counter()
            row = run_config(backend, processes, args, Path(tmp) / f"{backend}-{processes}.json")
            row["wall_s"] = round(time.perf_counter() - start, 1)
            rows.append(row)
            print(f"{backend} x{processes}: {row['step_s'] * 1000:.0f} ms a step of {BATCH} "
                  f"({row['images_per_s']:.0f} images/s)", flush=True)
    RESULTS.write_text(json.dumps({
        "machine": f"{os.cpu_count()}-core CPU",
        "setup": f"mnv3s from random init at 96 px, global batch {BATCH}, 'seed' augmentation, {args.images} pbc96 "
                 f"images, {args.epochs} epochs; step time averaged over the epochs after the first",
        "command": "python benchmarks/bench_processes.py",
        "rows": rows,
    }, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
