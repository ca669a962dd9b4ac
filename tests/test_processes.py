"""Multi-process data-parallel training on the JAX backend, on localhost (gloo collectives)."""

import importlib.util
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from bloodcell.errors import ConfigError
from bloodcell.training.processes import ADDRESSES, NUM_PROCESSES, PROCESS_ID, ProcessGroup

ROOT = Path(__file__).resolve().parents[1]


def needs_jax() -> None:
    # Found, not imported: JAX in the test process itself would outlive it in its gc callback.
    if importlib.util.find_spec("jax") is None:
        pytest.skip("needs JAX: pip install '.[jax]'")


def env_of(**values) -> dict:
    return {ADDRESSES: values.get("addresses", ""), NUM_PROCESSES: values.get("count", ""),
            PROCESS_ID: values.get("pid", "")}


def test_the_three_variables_are_read_and_checked():
    assert ProcessGroup.from_env({}) is None
    group = ProcessGroup.from_env(env_of(addresses="10.0.0.1:29400,10.0.0.2:29400", count="2", pid="1"))
    assert (group.coordinator, group.host, group.port, group.num_processes, group.process_id) == (
        "10.0.0.1:29400", "10.0.0.1", 29400, 2, 1)
    bad = [
        (env_of(addresses="h:1", count="2"), PROCESS_ID),  # one missing
        (env_of(addresses="h:1", count="two", pid="0"), NUM_PROCESSES),
        (env_of(addresses="h:1", count="2", pid="2"), PROCESS_ID),
        (env_of(addresses="h", count="2", pid="0"), ADDRESSES),
        (env_of(addresses="a:1,b:1,c:1", count="2", pid="0"), ADDRESSES),
    ]
    for environ, name in bad:
        with pytest.raises(ConfigError, match=name) as info:
            ProcessGroup.from_env(environ)
        assert "\n" not in str(info.value)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


TRAIN = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    import numpy as np
    from test_training import toy_data
    from bloodcell.training import Trainer, processes
    if len(sys.argv) > 2:  # the one-process run also writes augmented batches
        from test_processes import augmented_batches
        augmented_batches(sys.argv[2])
    else:  # JAX aborts both processes when they reach its shutdown more than this apart
        import jax, time
        initialize = jax.distributed.initialize
        jax.distributed.initialize = lambda **kw: initialize(**{{**kw, "shutdown_timeout_seconds": 1}})
    t = Trainer("microcell", input_size=32, class_names=("red", "green", "blue"), head_epochs=1, finetune_epochs=0,
                batch_size=8, augment=None, optimizer="adam", patience=None, verbose=0, workdir=sys.argv[1])
    t.fit(toy_data((16, 8, 8)))
    np.savez(sys.argv[1] + "-" + str(t.process_id) + ".npz", *t.model.get_weights())
    if t.process_id == 0:
        if len(sys.argv) == 2:
            time.sleep(4)  # a slow save: process 1 waits for it in finish()
        t.classifier.save_pretrained(sys.argv[1] + "-model")
    processes.finish()
""").format(tests=str(ROOT / "tests"))


def start(script: str, args, **env) -> subprocess.Popen:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KERAS_DISTRIBUTION_")}
    environ.update({"KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT), **env})
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)], env=environ,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_processes_end_with_the_weights_of_one(tmp_path):
    """Two processes, each with half of every global batch of 8, train as one process on the
    same batches and seed; only process 0 writes the workdir and the model, and process 1 waits
    for it in ``finish()`` (a save longer than JAX's shutdown wait aborted both). The augmentation
    under JAX is the one under TensorFlow."""
    needs_jax()
    import bloodcell

    port = free_port()
    group = {ADDRESSES: f"127.0.0.1:{port}", NUM_PROCESSES: "2"}
    procs = [start(TRAIN, [tmp_path / "two"], **group, **{PROCESS_ID: str(i)}) for i in (0, 1)]
    one = start(TRAIN, [tmp_path / "one", tmp_path / "jax_augmented.npz"])
    for p in (*procs, one):
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        assert "Gloo" not in out + err and "Error" not in err
    # The tf.data pipeline and the augmentation layers run on TensorFlow whatever Keras' backend:
    # under JAX they give the batches they give under TensorFlow (in this process).
    augmented_batches(tmp_path / "tf_augmented.npz")
    a, b = np.load(tmp_path / "jax_augmented.npz"), np.load(tmp_path / "tf_augmented.npz")
    assert len(a.files) == 12
    for k in a.files:
        np.testing.assert_allclose(a[k], b[k], atol=1e-2)
    single = np.load(tmp_path / "one-0.npz")
    for pid in (0, 1):
        two = np.load(tmp_path / f"two-{pid}.npz")
        for k in single.files:
            np.testing.assert_allclose(two[k], single[k], rtol=1e-4, atol=1e-4)
    assert (tmp_path / "two" / "checkpoint").is_dir() and not (tmp_path / "two-1-model").exists()
    clf = bloodcell.load_classifier(tmp_path / "two-model")
    assert clf.training["distribution"] == {"backend": "jax", "processes": 2, "devices": 2}
    assert "2 processes" in (tmp_path / "two-model" / "README.md").read_text()


def train_cli(out: Path, **env) -> subprocess.Popen:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KERAS_DISTRIBUTION_")}
    environ.update({"KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT), **env})
    return subprocess.Popen([sys.executable, "-m", "bloodcell", "train", str(out.parent / "data"), "--model", "microcell",
                             "--out", str(out)], env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_mismatched_or_missing_processes_fail_fast_with_one_line(tmp_path):
    """A wrong process count fails in both processes at once; a process whose coordinator never
    comes fails after BLOODCELL_DISTRIBUTION_TIMEOUT; each with one line naming the variable to
    fix, before anything is read or written."""
    needs_jax()
    address = {ADDRESSES: f"127.0.0.1:{free_port()}"}
    t0 = time.monotonic()
    procs = [train_cli(tmp_path / f"out{pid}", **address, **{NUM_PROCESSES: count, PROCESS_ID: pid})
             for count, pid in (("2", "0"), ("3", "1"))]
    lonely = train_cli(tmp_path / "out2", **{ADDRESSES: f"127.0.0.1:{free_port()}", NUM_PROCESSES: "2",
                                             PROCESS_ID: "1", "BLOODCELL_DISTRIBUTION_TIMEOUT": "3"})
    for p, name in ((procs[0], NUM_PROCESSES), (procs[1], NUM_PROCESSES), (lonely, ADDRESSES)):
        _, err = p.communicate(timeout=120)
        assert p.returncode == 1, err
        assert err.count("\n") == 1 and err.startswith("bloodcell train: error: ") and name in err, err
    assert time.monotonic() - t0 < 60
    assert not any(tmp_path.iterdir())


def test_a_refusal_in_one_process_stops_the_others_with_its_line(tmp_path):
    """Process 0 cannot take its --out (another run holds it): process 1, which takes no lock and
    went on to build its model, stops at once with process 0's line, instead of waiting in a
    collective until JAX's timeouts abort both."""
    needs_jax()
    from PIL import Image
    from synth_cells import make_cells

    from bloodcell._lock import locked

    for c, name in enumerate(("a", "b")):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i, img in enumerate(make_cells(8, size=32, seed=c)):
            Image.fromarray(img).save(tmp_path / "data" / name / f"{i}.png")
    group = {ADDRESSES: f"127.0.0.1:{free_port()}", NUM_PROCESSES: "2"}
    t0 = time.monotonic()
    with locked(tmp_path / "out", flag="--out"):
        procs = [train_cli(tmp_path / "out", **group, **{PROCESS_ID: pid}) for pid in ("0", "1")]
        errors = [p.communicate(timeout=120)[1] for p in procs]
    busy = "--out " + str(tmp_path / "out") + ": in use by another bloodcell run"
    assert [p.returncode for p in procs] == [1, 1], errors
    assert errors[0].startswith("bloodcell train: error: " + busy) and errors[0].count("\n") == 1, errors[0]
    last = errors[1].splitlines()[-1]
    assert last.startswith("bloodcell train: error: process 0 of the run stopped: " + busy), errors[1]
    assert "Traceback" not in errors[1] and "Error" not in errors[1].replace("error:", "")
    assert time.monotonic() - t0 < 90  # JAX's own timeouts are 5 minutes
    assert not (tmp_path / "out").exists()


def augmented_batches(path) -> None:
    """Write the "domain"-augmented batches of two seeded epochs of random images to ``path``,
    under the global seed a Trainer sets (TensorFlow's random ops combine it with their own)."""
    import keras

    from bloodcell.pipeline import make_epochs

    keras.utils.set_random_seed(0)

    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8), np.arange(12) % 3
    ds = make_epochs(images, labels, [5, 6], num_classes=3, batch_size=4, augment="domain")
    np.savez(path, *[x.numpy() for x, y in ds], *[y.numpy() for x, y in ds])


def test_a_checkpoint_records_the_number_of_processes(tmp_path):
    """A run's checkpoint is checked against its settings on resume: those of a multi-process
    run hold the number of processes, so it resumes with as many only."""
    from bloodcell.training import Trainer
    from bloodcell.training.callbacks import load_checkpoint, save_checkpoint

    trainer = Trainer("microcell", input_size=32, class_names=("a", "b"), verbose=0)
    trainer.model = trainer._make_model()
    one = trainer._record()
    assert "processes" not in one
    trainer.num_processes = 2
    two = trainer._record()
    assert two["processes"] == 2
    save_checkpoint(tmp_path, trainer.model, {"phase": 0, "epoch": 1, "history": []}, two, None)
    with pytest.raises(ConfigError, match="processes"):
        load_checkpoint(tmp_path, one)
