"""Check the results contract on the JAX backend: a seeded run repeats, and a run killed after an
epoch and resumed ends with the weights of an uninterrupted run, in one process and in two.

Runs the tiny three-class model of the test suite (microcell at 32 px, ``"seed"``
augmentation, 3 frozen-backbone epochs then 1 fine-tuning epoch) as separate processes with
``KERAS_BACKEND=jax``; two-process runs use Keras' ``KERAS_DISTRIBUTION_*`` variables on
localhost. Prints the largest weight difference of each comparison (0 means bit-identical).
About 5 minutes on the 2-core development machine.

Usage: python scripts/check_jax_resume.py
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

RUN = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {tests!r})
    import numpy as np
    from test_training import toy_data
    from bloodcell.training import Trainer
    import bloodcell.training.callbacks as callbacks
    workdir, mode = sys.argv[1], sys.argv[2]
    t = Trainer("microcell", input_size=32, class_names=("red", "green", "blue"), head_epochs=3, finetune_epochs=1,
                batch_size=8, augment="seed", optimizer="adam", verbose=0, workdir=workdir, patience=(10, 10),
                freeze_backbone=True)
    save = callbacks.TrainingCheckpoint.on_epoch_end

    def on_epoch_end(self, epoch, logs=None):
        save(self, epoch, logs)
        if mode == "kill" and self.state["phase"] == 0 and self.state["epoch"] >= 2:
            os._exit(3)  # as a kill would, right after the checkpoint of epoch 2

    callbacks.TrainingCheckpoint.on_epoch_end = on_epoch_end
    t.fit(toy_data((24, 16, 8)), toy_data(seed=1), resume=mode == "resume")
    np.savez(workdir + "-" + str(t.process_id) + ".npz", *t.model.get_weights())
""").format(tests=str(ROOT / "tests"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(workdir: Path, mode: str, processes: int) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERAS_DISTRIBUTION_")}
    env.update(KERAS_BACKEND="jax", PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    if processes > 1:
        env.update(KERAS_DISTRIBUTION_JOB_ADDRESSES=f"127.0.0.1:{free_port()}",
                   KERAS_DISTRIBUTION_NUM_PROCESSES=str(processes))
    procs = [subprocess.Popen([sys.executable, "-c", RUN, str(workdir), mode],
                              env={**env, **({"KERAS_DISTRIBUTION_PROCESS_ID": str(i)} if processes > 1 else {})},
                              stderr=subprocess.DEVNULL)
             for i in range(processes)]
    expected = 3 if mode == "kill" else 0
    for p in procs:
        if p.wait() != expected:
            raise SystemExit(f"{workdir.name} ({mode}): a process exited with {p.returncode}")


def max_difference(a: Path, b: Path) -> float:
    import numpy as np

    x, y = np.load(a), np.load(b)
    return max(float(np.abs(x[k] - y[k]).max()) for k in x.files)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for processes in (1, 2):
            first, again, killed = (tmp / f"{name}{processes}" for name in ("first", "again", "killed"))
            run(first, "full", processes)
            run(again, "full", processes)
            run(killed, "kill", processes)
            run(killed, "resume", processes)
            for pid in range(processes):
                print(f"{processes} process(es), process {pid}: seeded rerun differs by "
                      f"{max_difference(Path(f'{first}-{pid}.npz'), Path(f'{again}-{pid}.npz')):.1e}, killed and "
                      f"resumed by {max_difference(Path(f'{first}-{pid}.npz'), Path(f'{killed}-{pid}.npz')):.1e}",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
