"""Train on several GPUs (TensorFlow MirroredStrategy) or several processes and machines (JAX).

    # one machine, all its GPUs (on a CPU-only machine: --cpu-replicas 2 splits the CPU in two)
    python examples/distributed.py ../shared/data/pbc96 --out runs/mirrored

    # several processes or machines: Keras on JAX, the same command in each process, with Keras'
    # three variables naming the coordinator (process 0), the number of processes and this one
    KERAS_BACKEND=jax KERAS_DISTRIBUTION_JOB_ADDRESSES=10.0.0.1:29400 KERAS_DISTRIBUTION_NUM_PROCESSES=2 \
        KERAS_DISTRIBUTION_PROCESS_ID=0 python examples/distributed.py /data/pbc96 --out runs/jax

    # try it on one machine: starts 2 local processes with those variables
    python examples/distributed.py --tiny --local-processes 2

    python examples/distributed.py --tiny        # MirroredStrategy over 2 logical CPUs, 128 sample images, 1 epoch

The batch size is global: each of the R replicas (devices of all processes) gets batch_size / R
images per step. Under JAX every process reads the data, takes its share of each global batch,
and gradients are averaged over all devices; process 0 writes the checkpoints and the model.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import data_argument, parser, run, tiny_npz


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_local_processes(n: int) -> int:
    """Run this script ``n`` times on this machine as the processes of one JAX run."""
    import importlib.util

    from bloodcell.errors import ConfigError

    if importlib.util.find_spec("jax") is None:  # once here, not a traceback from each process
        raise ConfigError('--local-processes runs Keras on JAX, which is not installed; pip install "bloodcell[jax]"')
    address = f"127.0.0.1:{free_port()}"
    argv = [*sys.argv[1:], "--local-processes", "0"]  # each process runs the training itself
    procs = []
    for index in range(n):
        env = {**os.environ, "KERAS_BACKEND": "jax", "KERAS_DISTRIBUTION_JOB_ADDRESSES": address,
               "KERAS_DISTRIBUTION_NUM_PROCESSES": str(n), "KERAS_DISTRIBUTION_PROCESS_ID": str(index)}
        procs.append(subprocess.Popen([sys.executable, __file__, *argv], env=env,
                                      stdout=None if index == 0 else subprocess.DEVNULL))
    return max(p.wait() for p in procs)


def make_strategy(cpu_replicas: int):
    """The distribution: None where the KERAS_DISTRIBUTION_* variables are set (the Trainer joins
    that multi-process run on JAX), else a tf.distribute.MirroredStrategy, created before
    TensorFlow runs anything."""
    if os.environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES"):
        return None
    import bloodcell  # noqa: F401  (before TensorFlow: bloodcell imports it without its start-up log lines)
    import tensorflow as tf

    if cpu_replicas > 1 and not tf.config.list_physical_devices("GPU"):
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_replicas)
        return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(cpu_replicas)])
    return tf.distribute.MirroredStrategy()  # every visible GPU (or the CPU alone)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("data", nargs="?", help="class-folder tree or .npz")
    p.add_argument("--cpu-replicas", type=int, default=1, help="mirrored on a CPU-only machine: logical CPU replicas")
    p.add_argument("--local-processes", type=int, default=0, help="start this many JAX processes here, as one run")
    p.add_argument("--model", default=None, help="architecture (default mnv3s; tiny: microcell)")
    p.add_argument("--batch-size", type=int, default=128, help="global batch size (all replicas together)")
    p.add_argument("--head-epochs", type=int, default=30)
    p.add_argument("--finetune-epochs", type=int, default=10)
    p.add_argument("--out", default="runs/distributed")
    args = p.parse_args()
    if args.local_processes:
        sys.exit(launch_local_processes(args.local_processes))
    tmp = tempfile.TemporaryDirectory(prefix="bloodcell-distributed-")
    input_size = 96
    args.data = data_argument(p, args.data, args.tiny, lambda: tiny_npz(Path(tmp.name)))
    if args.tiny:
        args.model = args.model or "microcell"
        args.head_epochs, args.finetune_epochs, args.batch_size, input_size = 1, 0, 8, 32
        args.cpu_replicas = max(args.cpu_replicas, 2)
        args.out = str(Path(tmp.name) / "model")

    strategy = make_strategy(args.cpu_replicas)

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
        workdir=out.with_name(out.name + ".work"),  # written by process 0 alone
        deterministic=False,            # op determinism is not available for every distributed op
    )
    chief = trainer.process_id == 0
    if strategy is not None:
        print(f"{type(strategy).__name__}: {strategy.num_replicas_in_sync} replicas in sync")
    else:
        print(f"JAX DataParallel: process {trainer.process_id} of {trainer.num_processes}, "
              f"{trainer.num_devices} devices in all")
    history = trainer.fit(train, val)
    print(f"{len(history)} epoch(s); last: loss {history[-1]['loss']:.3f}, val_accuracy {history[-1]['val_accuracy']:.3f}")
    if chief:
        trainer.classifier.save_pretrained(out)
        print(f"saved the model (weights gathered from the replicas) to {'<tmp>/model' if args.tiny else out}")
    # Multi-process: the others wait here for process 0's save (JAX aborts a run whose processes
    # reach its shutdown more than 5 minutes apart); with one process it does nothing.
    bloodcell.training.processes.finish()
    tmp.cleanup()


if __name__ == "__main__":
    run(main)
