"""The Keras callbacks a training phase runs with, besides Keras' own.

``keras.callbacks.EarlyStopping``, ``ReduceLROnPlateau``/``LearningRateScheduler`` and
``CSVLogger`` do their usual work. :class:`TrainingCheckpoint` is ours: it writes, after every
epoch, what a resumed run needs to continue exactly where an uninterrupted run would be: the
model's variables (weights and random-generator states), the optimizer's, the early-stopping and
plateau counters with the best weights so far, the phase and the history rows. Keras'
``BackupAndRestore`` keeps the first two only, and writes its weights file and its epoch counter
one after the other, so a process killed between the two resumes one epoch off; here everything
goes into a new folder that replaces the old one by renames.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Optional

import keras
import numpy as np

from .._fs import atomic_write_text, fsync_paths
from .._util import DAMAGED_NPZ
from ..errors import ConfigError

STATE_FILE = "state.json"
CHECKPOINT = "checkpoint"
HISTORY_CSV = "history.csv"


class OnTrainBegin(keras.callbacks.Callback):
    """Calls ``action`` once, when training first begins: after ``Trainer.fit`` has checked its settings and data."""

    def __init__(self, action):
        super().__init__()
        self.action = action

    def on_train_begin(self, logs=None):
        if self.action is not None:
            action, self.action = self.action, None
            action()


class EpochRecord(keras.callbacks.Callback):
    """Adds the phase, learning rate, duration and trainable-weight count to each epoch's logs
    (so ``CSVLogger`` and the checkpoint record them) and prints one line per epoch."""

    def __init__(self, phase: str, epochs: int, verbose: int = 1):
        super().__init__()
        self.phase, self.epochs, self.verbose = phase, epochs, verbose
        self._start, self._lr = 0.0, 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.time()
        # The rate is a float32 variable: 7 significant digits give back the rate that was set.
        self._lr = float(f"{float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)):.7g}")

    def on_epoch_end(self, epoch, logs=None):
        logs.pop("learning_rate", None)  # ReduceLROnPlateau's next rate; "lr" is this epoch's
        logs.update(phase=self.phase, lr=self._lr, seconds=round(time.time() - self._start, 1),
                    trainable_weights=len(self.model.trainable_weights))
        if self.verbose:
            validation = (f"  val_loss {logs['val_loss']:.4f}  val_acc {logs.get('val_accuracy', float('nan')):.4f}"
                          if "val_loss" in logs else "")  # none without validation data
            print(
                f"[{self.phase}] epoch {epoch + 1}/{self.epochs}  loss {logs['loss']:.4f}  "
                f"acc {logs.get('accuracy', float('nan')):.4f}{validation}  lr {self._lr:.2e}  {logs['seconds']:.0f}s",
                file=sys.stderr,
                flush=True,
            )
        # before the checkpoint callback: the last finite epoch stays saved. The mean loss can stay finite while the
        # epoch's last step turns the weights to NaN, so they are checked too.
        finite_loss = np.isfinite(logs.get("loss", 0.0))
        if not finite_loss or not all(np.isfinite(keras.ops.convert_to_numpy(w)).all() for w in self.model.weights):
            what = "the weights became NaN or infinite" if finite_loss else f"the training loss became {logs['loss']}"
            raise DivergedError(
                f"{self.phase} phase, epoch {epoch + 1}: {what} (the training diverged), "
                f"so this epoch is not kept; lower the learning rate (now {self._lr:.2e}) or check the weight decay and "
                "precision, and start again (--overwrite)")


class DivergedError(ConfigError):
    """The training diverged: a setting to change (a ConfigError), found after epochs were run and
    checkpointed, so the command line exits 1 (2 says that nothing was done)."""

    exit_code = 1


def _plain(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


_EARLY_STOPPING_KEYS = ("wait", "best", "best_epoch", "stopped_epoch")
_PLATEAU_KEYS = ("wait", "best", "cooldown_counter")


class SettingsChanged(ConfigError):
    """A checkpoint written with other settings than the run that would resume it; ``diff`` maps each
    setting (a key of ``Trainer``'s record) to (its value then, its value now)."""

    def __init__(self, checkpoint: Path, diff: dict[str, tuple[Any, Any]]):
        self.checkpoint, self.diff = checkpoint, diff
        changes = "; ".join(f"{k}: {then!r} then, {now!r} now" for k, (then, now) in diff.items())
        super().__init__(f"{checkpoint}: the checkpoint was written with other settings ({changes}); resume with the "
                         "same settings, start again with fit(..., overwrite=True), or use a fresh workdir")


class TrainingCheckpoint(keras.callbacks.Callback):
    """Checkpoint a phase after every epoch into ``workdir/checkpoint`` and restore it on resume.

    ``state`` is the run's state dict (``phase``, ``epoch``: epochs finished in the phase,
    ``stopped``, ``done``, ``history``), shared with the trainer and updated here.
    ``early_stopping`` and ``plateau`` are the phase's Keras callbacks whose counters are kept;
    ``restore`` (from :func:`load_checkpoint`) puts them back when the phase starts.
    """

    def __init__(self, workdir: Optional[Path], state: dict[str, Any], record: dict[str, Any],
                 early_stopping: Optional[keras.callbacks.EarlyStopping] = None, plateau=None,
                 restore: Optional[dict[str, Any]] = None):
        super().__init__()
        self.workdir, self.state, self.record = workdir, state, record
        self.early_stopping, self.plateau, self.restore = early_stopping, plateau, restore

    def on_train_begin(self, logs=None):
        # Runs after EarlyStopping's and ReduceLROnPlateau's own on_train_begin, which reset them.
        if not self.restore:
            return
        if self.early_stopping is not None and self.restore.get("early_stopping"):  # none at a phase's first epoch
            for key in _EARLY_STOPPING_KEYS:
                setattr(self.early_stopping, key, self.restore["early_stopping"][key])
            self.early_stopping.best_weights = self.restore.get("best")
        if self.plateau is not None and self.restore.get("plateau"):
            for key in _PLATEAU_KEYS:
                setattr(self.plateau, key, self.restore["plateau"][key])

    def on_epoch_end(self, epoch, logs=None):
        self.state["epoch"] = epoch + 1
        self.state["stopped"] = bool(self.model.stop_training)
        # "epoch" counts from 0 within the phase, as Keras' callbacks and history.csv do.
        self.state["history"].append({"epoch": epoch, **{k: _plain(v) for k, v in (logs or {}).items()}})
        self.save()

    def save(self) -> None:
        """Write the checkpoint (a no-op without a workdir)."""
        if self.workdir is None:
            return
        es = self.early_stopping
        if es is not None:
            self.state["early_stopping"] = {k: _plain(getattr(es, k)) for k in _EARLY_STOPPING_KEYS}
        if self.plateau is not None:
            self.state["plateau"] = {k: _plain(getattr(self.plateau, k)) for k in _PLATEAU_KEYS}
        save_checkpoint(self.workdir, self.model, self.state, self.record, es.best_weights if es is not None else None)


def save_checkpoint(workdir: Path, model: keras.Model, state: dict[str, Any], record: dict[str, Any],
                    best: Optional[list]) -> None:
    """Write model and optimizer variables, the best weights and the state into
    ``workdir/checkpoint``, replacing the previous checkpoint by renames."""
    ckpt = workdir / CHECKPOINT
    tmp, old = ckpt.with_name(CHECKPOINT + ".tmp"), ckpt.with_name(CHECKPOINT + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    np.savez(tmp / "weights.npz", *[np.asarray(v) for v in model.variables])
    optimizer = getattr(model, "optimizer", None)
    np.savez(tmp / "optimizer.npz", *([np.asarray(v) for v in optimizer.variables] if optimizer else []))
    if best is not None:
        np.savez(tmp / "best.npz", *[np.asarray(w) for w in best])
    (tmp / STATE_FILE).write_text(json.dumps({**state, "config": record}, indent=1, default=_plain))
    fsync_paths(*tmp.iterdir(), tmp)  # on disk before the renames: a power cut must not leave empty files behind them
    if not ckpt.exists() and old.exists():
        old.rename(ckpt)  # a kill left the previous checkpoint as .old: it stays the one to fall back on
    shutil.rmtree(old, ignore_errors=True)
    if ckpt.exists():
        ckpt.rename(old)
    tmp.rename(ckpt)
    fsync_paths(workdir)
    shutil.rmtree(old, ignore_errors=True)


def checkpoint_exists(workdir: Optional[Path]) -> bool:
    """Whether ``workdir`` holds a checkpoint (also one a kill left half-renamed)."""
    if workdir is None:
        return False
    ckpt = workdir / CHECKPOINT
    return (ckpt / STATE_FILE).is_file() or (ckpt.with_name(CHECKPOINT + ".old") / STATE_FILE).is_file()


def remove_checkpoint(workdir: Path) -> None:
    """Delete the checkpoint of an earlier run in ``workdir`` (a new run starts afresh there)."""
    import shutil

    for name in (CHECKPOINT, CHECKPOINT + ".old", CHECKPOINT + ".tmp"):
        if (Path(workdir) / name).is_dir():
            shutil.rmtree(Path(workdir) / name)


def load_checkpoint(workdir: Path, record: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint of ``workdir`` as a dict (state, ``weights``, ``optimizer``, ``best``
    arrays); refuses one written with other settings than ``record``."""
    ckpt = workdir / CHECKPOINT
    if not (ckpt / STATE_FILE).is_file() and (ckpt.with_name(CHECKPOINT + ".old") / STATE_FILE).is_file():
        ckpt = ckpt.with_name(CHECKPOINT + ".old")  # killed between the two renames
    try:
        state = json.loads((ckpt / STATE_FILE).read_text())
        saved = state.pop("config")
    except (ValueError, KeyError, AttributeError, OSError) as exc:
        raise _damaged(ckpt, exc) from None
    if "data" not in saved:  # written before checkpoints recorded their data
        record = {k: v for k, v in record.items() if k != "data"}
    if saved.get("data") != record.get("data"):
        raise ConfigError(f"{ckpt}: the checkpoint was trained on other images or labels (then {describe_data(saved.get('data'))}; "
                          f"now {describe_data(record.get('data'))}); resume with the same data and split, or use a fresh workdir")
    if saved != record:
        diff = {k: (saved.get(k), v) for k, v in record.items() if saved.get(k) != v}
        diff.update({k: (v, None) for k, v in saved.items() if k not in record})
        raise SettingsChanged(ckpt, diff)
    try:
        state["weights"] = load_arrays(ckpt / "weights.npz")
        state["optimizer"] = load_arrays(ckpt / "optimizer.npz")
        state["best"] = load_arrays(ckpt / "best.npz") if (ckpt / "best.npz").is_file() else None
    except (ValueError, OSError, *DAMAGED_NPZ) as exc:
        raise _damaged(ckpt, exc) from None
    return state


def _damaged(ckpt: Path, exc: Exception) -> ConfigError:
    return ConfigError(f"{ckpt}: the checkpoint is damaged ({type(exc).__name__}: {exc}), so the run cannot be resumed; "
                       "start it again with --overwrite (Trainer: overwrite=True)")


def data_fingerprint(train, val) -> Optional[dict[str, Any]]:
    """What a checkpoint records of its data (image counts and a hash of the labels and of a sample of the
    images), so that a run is not resumed on other data; None for ``tf.data`` input, which cannot be read twice."""
    parts = {}
    for name, data in (("train", train), ("val", val)):
        if data is None:
            continue
        images, labels = getattr(data, "images", None), getattr(data, "labels", None)
        if not isinstance(images, np.ndarray) or labels is None:
            return None
        digest = hashlib.sha256(np.ascontiguousarray(labels).tobytes())
        for image in images[:: max(1, len(images) // 256)]:
            digest.update(np.ascontiguousarray(image).tobytes())
        parts[name] = {"images": int(len(images)), "sha256": digest.hexdigest()[:16]}
    return parts


def describe_data(fingerprint: Optional[dict[str, Any]]) -> str:
    if not fingerprint:
        return "data given as tf.data"
    return ", ".join(f"{v['images']} {k} images" for k, v in fingerprint.items())


def load_arrays(path: Path) -> list[np.ndarray]:
    """The arrays ``np.savez(path, *arrays)`` wrote, in their original order."""
    with np.load(path) as f:
        return [f[k] for k in sorted(f.files, key=lambda name: int(name.split("_")[1]))]


def assign(variables, arrays) -> None:
    """Assign saved arrays to variables, one for one."""
    variables = list(variables)
    if len(variables) != len(arrays):
        raise ConfigError(f"checkpoint holds {len(arrays)} arrays for {len(variables)} variables; it belongs to "
                          "another model: use a fresh workdir")
    for v, a in zip(variables, arrays):
        v.assign(a)


def truncate_history(workdir: Path, rows: int) -> None:
    """Keep the header and the first ``rows`` rows of ``history.csv`` (the epochs a checkpoint
    holds), so that a resumed run appends after them and repeats none."""
    path = workdir / HISTORY_CSV
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    atomic_write_text(path, "".join(lines[: rows + 1]) if rows else "")


def plot_history(history: list[dict[str, Any]], path) -> None:
    """Write a PNG of loss and accuracy per epoch, both phases on one axis with a phase marker."""
    from .._util import new_figure

    fig = new_figure((10, 3.8))
    axes = fig.subplots(1, 2)
    x = np.arange(1, len(history) + 1)
    for ax, key in zip(axes, ("loss", "accuracy")):
        for k, style in ((key, "-"), (f"val_{key}", "--")):
            values = [r.get(k, np.nan) for r in history]
            if not all(v is None or (isinstance(v, float) and np.isnan(v)) for v in values):  # no validation: no line
                ax.plot(x, [np.nan if v is None else v for v in values], style, label=k)
        switch = next((i for i, r in enumerate(history) if r["phase"] == "finetune"), None)
        if switch:
            ax.axvline(switch + 0.5, color="grey", lw=0.8)
            ax.text(switch + 0.7, ax.get_ylim()[1], "fine-tune", va="top", fontsize=8, color="grey")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


__all__ = ["DivergedError", "EpochRecord", "TrainingCheckpoint", "checkpoint_exists", "load_checkpoint", "plot_history",
           "remove_checkpoint", "save_checkpoint", "truncate_history"]
