"""Train on several GPUs (MirroredStrategy) or several machines (MultiWorkerMirroredStrategy).

    # one machine, all its GPUs (on a CPU-only machine: --cpu-replicas 2 splits the CPU in two)
    python examples/distributed.py ../shared/data/pbc96 --strategy mirrored --out runs/mirrored

    # several machines: the same command on each, with TF_CONFIG naming the cluster and this worker
    TF_CONFIG='{"cluster": {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]}, "task": {"type": "worker", "index": 0}}' \
        python examples/distributed.py /data/pbc96 --strategy multiworker --out runs/multiworker

    # try the multi-worker set-up on one machine: starts 2 local workers on free ports
    python examples/distributed.py --tiny --strategy multiworker --local-workers 2

    python examples/distributed.py --tiny        # MirroredStrategy over 2 logical CPUs, 128 sample images, 1 epoch

The batch size is global: each of the R replicas gets batch_size / R images per step. Every
worker reads the whole data set (the same seeded shuffle on each) and Keras shards it by batch.
Worker 0 (the chief) writes the checkpoints and the model; the others write to a scratch folder.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import data_argument, parser, tiny_npz


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_local_workers(n: int) -> int:
    """Run this script ``n`` times on this machine as the workers of one cluster."""
    cluster = {"worker": [f"127.0.0.1:{free_port()}" for _ in range(n)]}
    argv = [*sys.argv[1:], "--local-workers", "0"]  # each worker runs the training itself
    procs = []
    for index in range(n):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        procs.append(subprocess.Popen([sys.executable, __file__, *argv], env=env,
                                      stdout=None if index == 0 else subprocess.DEVNULL))
    return max(p.wait() for p in procs)


def make_strategy(name: str, cpu_replicas: int):
    """The tf.distribute strategy; must be created before TensorFlow runs anything."""
    import tensorflow as tf

    if name == "multiworker":
        # Reads TF_CONFIG. Collectives go over gRPC between workers (NCCL between GPUs if present).
        return tf.distribute.MultiWorkerMirroredStrategy()
    if cpu_replicas > 1 and not tf.config.list_physical_devices("GPU"):
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_replicas)
        return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(cpu_replicas)])
    return tf.distribute.MirroredStrategy()  # every visible GPU (or the CPU alone)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("data", nargs="?", help="class-folder tree or .npz")
    p.add_argument("--strategy", choices=("mirrored", "multiworker"), default="mirrored")
    p.add_argument("--cpu-replicas", type=int, default=1, help="mirrored on a CPU-only machine: logical CPU replicas")
    p.add_argument("--local-workers", type=int, default=0, help="multiworker: start this many workers here")
    p.add_argument("--model", default=None, help="architecture (default mnv3s; tiny: microcell)")
    p.add_argument("--batch-size", type=int, default=128, help="global batch size (all replicas together)")
    p.add_argument("--head-epochs", type=int, default=30)
    p.add_argument("--finetune-epochs", type=int, default=10)
    p.add_argument("--out", default="runs/distributed")
    args = p.parse_args()
    if args.local_workers:
        if args.strategy != "multiworker":
            p.error("--local-workers needs --strategy multiworker")
        sys.exit(launch_local_workers(args.local_workers))
    tmp = tempfile.TemporaryDirectory(prefix="bloodcell-distributed-")
    input_size = 96
    args.data = data_argument(p, args.data, args.tiny, lambda: tiny_npz(Path(tmp.name)))
    if args.tiny:
        args.model = args.model or "microcell"
        args.head_epochs, args.finetune_epochs, args.batch_size, input_size = 1, 0, 8, 32
        args.cpu_replicas = max(args.cpu_replicas, 2)
        args.out = str(Path(tmp.name) / "model")

    strategy = make_strategy(args.strategy, args.cpu_replicas)
    task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
    chief = task.get("index", 0) == 0
    print(f"{type(strategy).__name__}: {strategy.num_replicas_in_sync} replicas in sync"
          + (f", worker {task['index']} of {len(json.loads(os.environ['TF_CONFIG'])['cluster']['worker'])}" if task else ""))

    import bloodcell

    data = bloodcell.load_dataset(args.data, image_size=input_size)
    train, val = bloodcell.split(data, (0.8, 0.2), seed=42)
    out = Path(args.out)
    trainer = bloodcell.Trainer(
        args.model or "mnv3s",
        input_size=input_size,
        distribution=strategy,          # the model, optimizer and metrics are created in its scope
        batch_size=args.batch_size,     # global: batch_size / replicas per replica and step
        head_epochs=args.head_epochs,
        finetune_epochs=args.finetune_epochs,
        workdir=out.with_name(out.name + ".work") if chief else Path(tmp.name) / "scratch",
        deterministic=False,            # op determinism is not available for every distributed op
    )
    history = trainer.fit(train, val)
    print(f"{len(history)} epoch(s); last: loss {history[-1]['loss']:.3f}, val_accuracy {history[-1]['val_accuracy']:.3f}")
    if chief:
        trainer.classifier.save_pretrained(out)
        print(f"saved the model (weights gathered from the replicas) to {'<tmp>/model' if args.tiny else out}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
