"""The two-phase :class:`Trainer`: resumable, seeded and distributable.

Phase 1 ("head") trains the head with the backbone frozen (for models starting from ImageNet
weights) or the whole network (from random init); phase 2 ("finetune") unfreezes the top layers
of the backbone, keeps batch-norm layers in inference mode and trains at the lower rate. Each
phase stops early on validation loss and restores its best weights.

``weights``: None (random init), ``"imagenet"``, an ImageNet weights file, or a trained bloodcell
model (a :class:`Classifier`, a saved folder, ``hf://owner/repo@revision`` or a zoo name) whose
weights start the whole network, at any input size, for fine-tuning on new data.

Every epoch is one ``model.fit`` call on a dataset seeded by (seed, epoch), and every epoch ends
with a checkpoint, so a run killed at any point and resumed ends exactly where an uninterrupted
run ends.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import keras
import numpy as np

from .classifier import Classifier
from .errors import BloodcellError
from .models import ModelSpec, build_model, get_backbone, rebuild_model

OPTIMIZERS = ("lion", "adam", "nadam", "adamw")
LOSSES = ("crossentropy", "focal")
LR_SCHEDULES = (None, "plateau", "cosine")
PRECISIONS = (None, "float32", "mixed_float16", "mixed_bfloat16")
#: Default (head, finetune) learning rates; Lion wants rates about 3-10x lower than Adam.
DEFAULT_LEARNING_RATES = {"lion": (3e-4, 3e-5), "adam": (1e-3, 1e-4), "nadam": (1e-3, 1e-4), "adamw": (1e-3, 1e-4)}
PHASES = ("head", "finetune")
STATE_FILE = "state.json"


def class_weights_from_labels(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Inverse-frequency class weights ``n / (k * count_c)`` (sklearn's "balanced"); 0 for absent classes."""
    counts = np.bincount(np.asarray(labels, int), minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / (num_classes * np.maximum(counts, 1)), 0.0)
    return weights.astype(np.float32)


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise BloodcellError(f"{name}={value!r} is not supported; choose one of {', '.join(map(repr, choices))}")


@dataclass
class _State:
    """What a checkpoint holds besides the weights; written as ``state.json``."""

    phase: int = 0
    epoch: int = 0  # epochs finished in this phase
    best_loss: float = math.inf
    best_epoch: int = -1
    wait: int = 0
    lr: float = 0.0
    plateau_wait: int = 0
    done: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)


class Trainer:
    """Two-phase training of a bloodcell model (see the module docstring)."""

    def __init__(
        self,
        model: Union[str, keras.Model],
        *,
        loss: str = "crossentropy",
        class_weights: bool = True,
        label_smoothing: float = 0.0,
        focal_gamma: float = 2.0,
        optimizer: str = "lion",
        learning_rates: Optional[tuple[float, float]] = None,
        weight_decay: Optional[float] = None,
        head_epochs: int = 30,
        finetune_epochs: int = 10,
        unfreeze: Union[int, float, None] = None,
        freeze_backbone: Optional[bool] = None,
        patience: tuple[int, int] = (10, 3),
        augment: Optional[str] = "seed",
        batch_size: int = 64,
        seed: int = 42,
        workdir: Union[str, os.PathLike, None] = None,
        distribution=None,
        lr_schedule: Optional[str] = None,
        precision: Optional[str] = None,
        input_size: int = 96,
        num_classes: int = 8,
        class_names: Optional[Sequence[str]] = None,
        weights: Union[str, os.PathLike, Classifier, None] = None,
        deterministic: bool = True,
        verbose: int = 1,
    ):
        _check_choice("loss", loss, LOSSES)
        _check_choice("optimizer", optimizer, OPTIMIZERS)
        _check_choice("lr_schedule", lr_schedule, LR_SCHEDULES)
        _check_choice("precision", precision, PRECISIONS)
        from .augment import PRESETS

        _check_choice("augment", augment, (None, *PRESETS))
        if len(patience) != 2 or min(patience) < 1:
            raise BloodcellError(f"patience must be two positive integers (head, finetune), got {patience!r}")
        if head_epochs < 0 or finetune_epochs < 0 or head_epochs + finetune_epochs == 0:
            raise BloodcellError(
                f"head_epochs={head_epochs}, finetune_epochs={finetune_epochs}: both must be >= 0 and one > 0"
            )
        if unfreeze is not None and (
            isinstance(unfreeze, bool)
            or not isinstance(unfreeze, (int, float))
            or (isinstance(unfreeze, float) and not 0.0 <= unfreeze <= 1.0)
            or (isinstance(unfreeze, int) and unfreeze < 0)
        ):
            raise BloodcellError(
                f"unfreeze={unfreeze!r}: expected a fraction of the backbone's layers in [0.0, 1.0] or a "
                "layer count >= 0 (None: the default)"
            )
        self.loss, self.class_weights, self.label_smoothing, self.focal_gamma = loss, class_weights, label_smoothing, focal_gamma
        self.optimizer_name = optimizer
        self.learning_rates = tuple(learning_rates or DEFAULT_LEARNING_RATES[optimizer])
        self.weight_decay = weight_decay
        self.epochs = (int(head_epochs), int(finetune_epochs))
        self.patience = tuple(int(p) for p in patience)
        self.augment, self.batch_size, self.seed = augment, int(batch_size), int(seed)
        self.workdir = Path(workdir) if workdir is not None else None
        self.distribution, self.lr_schedule, self.precision = distribution, lr_schedule, precision
        self.deterministic, self.verbose = deterministic, verbose
        self.class_names = tuple(class_names) if class_names else None
        self._model_arg = model
        # A trained bloodcell model as ``weights`` starts the whole network (backbone and head)
        # from its weights, at this trainer's input size; the network is then trained unfrozen.
        self._init_source = weights if _is_bloodcell_source(weights) else None
        self._init_record: Optional[dict[str, Any]] = None
        if self._init_source is not None:
            if not isinstance(model, str):
                raise BloodcellError(
                    "weights: a bloodcell model to start from needs model= an architecture name, got a "
                    f"{type(model).__name__}; pass Trainer('{getattr(weights, 'architecture', 'effnetb0')}', weights=...)"
                )
            weights = None
        self._build_args = dict(input_size=input_size, num_classes=num_classes, weights=weights)
        self.model: Optional[keras.Model] = None
        self._freeze_backbone = freeze_backbone
        self._unfreeze = unfreeze
        self.history: list[dict[str, Any]] = []
        self.resumed = False  # set by fit(): whether it continued a checkpointed run
        self._train_weights: Optional[np.ndarray] = None

    # -- model -------------------------------------------------------------------------------
    def _scope(self):
        import contextlib

        return self.distribution.scope() if self.distribution is not None else contextlib.nullcontext()

    def _make_model(self) -> keras.Model:
        if self.precision:
            keras.mixed_precision.set_dtype_policy(self.precision)
        try:
            with self._scope():
                keras.utils.set_random_seed(self.seed)
                if isinstance(self._model_arg, str):
                    model = build_model(self._model_arg, **self._build_args)
                    if self._init_source is not None:
                        self._load_init(model)
                    return model
                spec: Optional[ModelSpec] = getattr(self._model_arg, "bloodcell_spec", None)
                if spec is None:
                    raise BloodcellError(
                        f"model {self._model_arg.name!r} was not made by bloodcell.build_model; pass an "
                        "architecture name or a model from build_model"
                    )
                if self.distribution is None and not self.precision:
                    return self._model_arg
                # Variables must be created under the strategy / dtype policy: rebuild and copy.
                return rebuild_model(self._model_arg)
        finally:
            if self.precision:
                keras.mixed_precision.set_dtype_policy("float32")

    def _load_init(self, model: keras.Model) -> None:
        """Copy the weights of the bloodcell model ``self._init_source`` into ``model``."""
        from .classifier import load_classifier

        source = self._init_source
        src = source if isinstance(source, Classifier) else load_classifier(source)
        arch = model.bloodcell_spec.architecture
        if src.architecture != arch:
            raise BloodcellError(
                f"weights={str(source)!r}: a {src.architecture} model, expected a {arch} one to start a {arch} "
                f"from; train --model {src.architecture}, or start from a {arch} model"
            )
        if len(src.class_names) != model.bloodcell_spec.num_classes:
            raise BloodcellError(
                f"weights={str(source)!r}: has {len(src.class_names)} classes, this model "
                f"{model.bloodcell_spec.num_classes}; start from a model with the same classes"
            )
        model.set_weights(src.model.get_weights())  # convolutional weights do not depend on the input size
        parent = src.training or {}
        self._init_record = {
            "source": src.name if isinstance(source, Classifier) else str(source),
            "class_names": list(src.class_names),
            **{k: parent[k] for k in ("init", "hardware", "command", "wall_time_s") if k in parent},
            **({"input_size": src.input_size} if src.input_size else {}),
        }

    @property
    def spec(self) -> ModelSpec:
        return self.model.bloodcell_spec

    def _freezes_backbone(self) -> bool:
        if self._freeze_backbone is not None:
            return self._freeze_backbone
        return self.spec.weights is not None  # pretrained features: train the head alone first

    def _unfreeze_count(self) -> int:
        """How many of the backbone's top layers (with weights) phase 2 trains."""
        layers = [l for l in get_backbone(self.model).layers if l.weights]
        unfreeze = self._unfreeze
        if unfreeze is None:
            unfreeze = 0.3 if self._freezes_backbone() else 1.0
        n = int(round(unfreeze * len(layers))) if isinstance(unfreeze, float) else int(unfreeze)
        if not 0 <= n <= len(layers):
            raise BloodcellError(
                f"unfreeze={self._unfreeze!r}: the {self.spec.architecture} backbone has {len(layers)} layers with "
                f"weights; pass a count in 0..{len(layers)} or a fraction in [0.0, 1.0]"
            )
        return n

    def _set_phase_trainable(self, phase: int) -> None:
        backbone = get_backbone(self.model)
        if phase == 0:
            backbone.trainable = not self._freezes_backbone()
            return
        layers = [l for l in backbone.layers if l.weights]
        n = self._unfreeze_count()
        backbone.trainable = True
        for i, layer in enumerate(layers):
            layer.trainable = i >= len(layers) - n and not isinstance(layer, keras.layers.BatchNormalization)

    def _make_optimizer(self, lr: float):
        kwargs: dict[str, Any] = {"learning_rate": lr}
        name = self.optimizer_name
        if self.weight_decay is not None:
            kwargs["weight_decay"] = self.weight_decay
        elif name == "adamw":
            kwargs["weight_decay"] = 0.004
        cls = {"lion": keras.optimizers.Lion, "adam": keras.optimizers.Adam,
               "nadam": keras.optimizers.Nadam, "adamw": keras.optimizers.AdamW}[name]
        return cls(**kwargs)

    def make_loss(self, class_weights: Optional[np.ndarray] = None):
        """The Keras loss for this trainer; focal loss takes the class weights as per-class alpha."""
        if self.loss == "focal":
            alpha = (class_weights / class_weights.sum()).tolist() if class_weights is not None else 0.25
            return keras.losses.CategoricalFocalCrossentropy(
                alpha=alpha, gamma=self.focal_gamma, label_smoothing=self.label_smoothing
            )
        return keras.losses.CategoricalCrossentropy(label_smoothing=self.label_smoothing)

    def _compile(self, phase: int, lr: float) -> None:
        self._set_phase_trainable(phase)
        with self._scope():
            self.model.compile(
                optimizer=self._make_optimizer(lr),
                loss=self.make_loss(self._train_weights if self.loss == "focal" else None),
                metrics=["accuracy"],
            )
            self.model.optimizer.build(self.model.trainable_variables)

    # -- data --------------------------------------------------------------------------------
    def _epoch_dataset(self, data, *, train: bool, epoch_seed: int):
        import tensorflow as tf

        if isinstance(data, tf.data.Dataset):
            return data
        from .pipeline import make_dataset

        images, labels = np.asarray(data.images), np.asarray(data.labels)
        if images.shape[1:3] != (self.spec.input_size, self.spec.input_size):
            from .imageio import resize_images

            images = resize_images(images, self.spec.input_size)
        ds = make_dataset(
            images,
            labels,
            num_classes=self.spec.num_classes,
            batch_size=self.batch_size,
            augment=self.augment if train else None,
            shuffle=train,
            seed=epoch_seed,
        )
        if train and self.loss == "crossentropy" and self._train_weights is not None:
            w = tf.constant(self._train_weights)
            # Per-sample weight = sum_c w_c * y_c, so mixed (CutMix/MixUp) labels are weighted too.
            ds = ds.map(lambda x, y: (x, y, tf.linalg.matvec(y, w)), num_parallel_calls=tf.data.AUTOTUNE)
        return ds

    def _reseed(self, epoch_seed: int) -> None:
        keras.utils.set_random_seed(epoch_seed)
        for layer in self.model._flatten_layers(include_self=True, recursive=True):
            for i, sg in enumerate(getattr(layer, "_seed_generators", [])):
                sg.state.assign(np.array([epoch_seed, i], dtype=sg.state.dtype))

    # -- checkpoints -------------------------------------------------------------------------
    def _ckpt_dir(self) -> Optional[Path]:
        return self.workdir / "checkpoint" if self.workdir else None

    def _save_checkpoint(self, state: _State, best_weights: Optional[list]) -> None:
        ckpt = self._ckpt_dir()
        if ckpt is None:
            return
        tmp = ckpt.with_name("checkpoint.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        np.savez(tmp / "weights.npz", *[np.asarray(v) for v in self.model.weights])
        np.savez(tmp / "optimizer.npz", *[np.asarray(v) for v in self.model.optimizer.variables])
        if best_weights is not None:
            np.savez(tmp / "best.npz", *best_weights)
        state_d = {**state.__dict__, "config": self._config()}
        (tmp / STATE_FILE).write_text(json.dumps(state_d, indent=1))
        old = ckpt.with_name("checkpoint.old")
        shutil.rmtree(old, ignore_errors=True)
        if ckpt.exists():
            ckpt.rename(old)
        tmp.rename(ckpt)
        shutil.rmtree(old, ignore_errors=True)

    def _load_checkpoint(self) -> tuple[Optional[_State], Optional[list]]:
        ckpt = self._ckpt_dir()
        if ckpt is None:
            raise BloodcellError("resume=True needs a workdir; pass Trainer(..., workdir=FOLDER)")
        if not (ckpt / STATE_FILE).is_file() and ckpt.with_name("checkpoint.old").is_dir():
            ckpt = ckpt.with_name("checkpoint.old")  # killed between the two renames
        if not (ckpt / STATE_FILE).is_file():
            return None, None
        d = json.loads((ckpt / STATE_FILE).read_text())
        saved = d.pop("config")
        if saved != self._config():
            diff = {k: (saved.get(k), v) for k, v in self._config().items() if saved.get(k) != v}
            raise BloodcellError(
                f"{ckpt}: checkpoint was written with other settings {diff} (saved, now); resume with "
                "the same settings or use a fresh workdir"
            )
        state = _State(**d)
        self._compile(state.phase, state.lr)
        for variables, name in ((self.model.weights, "weights.npz"), (self.model.optimizer.variables, "optimizer.npz")):
            for v, array in zip(variables, _load_arrays(ckpt / name)):
                v.assign(array)
        best = _load_arrays(ckpt / "best.npz") if (ckpt / "best.npz").is_file() else None
        return state, best

    def _config(self) -> dict[str, Any]:
        return {
            "architecture": self.spec.architecture,
            "build": self.spec.to_config(),
            "loss": self.loss,
            "class_weights": self.class_weights,
            "label_smoothing": self.label_smoothing,
            "optimizer": self.optimizer_name,
            "learning_rates": list(self.learning_rates),
            "weight_decay": self.weight_decay,
            "epochs": list(self.epochs),
            "patience": list(self.patience),
            "augment": self.augment,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "lr_schedule": self.lr_schedule,
            "precision": self.precision,
            "unfreeze": self._unfreeze,
            "freeze_backbone": self._freeze_backbone,
            **({"init_from": self._init_record["source"]} if self._init_record else {}),
        }

    # -- training ----------------------------------------------------------------------------
    def _epoch_lr(self, state: _State) -> float:
        base = self.learning_rates[state.phase]
        if self.lr_schedule == "cosine":
            total = max(self.epochs[state.phase], 1)
            return 0.5 * base * (1 + math.cos(math.pi * state.epoch / total))
        if self.lr_schedule == "plateau":
            return state.lr or base
        return base

    def fit(self, train, val, *, resume: bool = False) -> list[dict[str, Any]]:
        """Run both phases on ``train`` with early stopping on ``val``; returns the history rows.

        ``train``/``val`` are :class:`bloodcell.data.Dataset` objects (reshuffled and augmented
        per epoch, reproducibly) or ``tf.data`` datasets of (images 0..255, one-hot labels).
        With ``resume=True`` the run continues from the workdir's checkpoint if there is one
        (``self.resumed`` tells which happened).
        """
        import tensorflow as tf

        for name, data in (("train", train), ("val", val)):
            if hasattr(data, "labels") and len(data.labels) == 0:
                raise BloodcellError(
                    f"{name}: the {'training' if name == 'train' else 'validation'} set is empty; give it "
                    "images (with split(), use larger fractions or more data per class)"
                )
        if self.deterministic:
            tf.config.experimental.enable_op_determinism()
        if self.model is None:
            self.model = self._make_model()
        if self.epochs[1] > 0:
            self._unfreeze_count()  # a bad unfreeze fails now, not after the head phase
        if self.class_names is None:
            self.class_names = tuple(getattr(train, "class_names", None) or ())
        if self._init_record and self.class_names and tuple(self._init_record["class_names"]) != self.class_names:
            raise BloodcellError(
                f"weights={self._init_record['source']!r}: its classes {self._init_record['class_names']} are not "
                f"the data's {list(self.class_names)}; start from a model with the same classes in the same order"
            )
        if self.class_weights and hasattr(train, "labels"):
            self._train_weights = class_weights_from_labels(train.labels, self.spec.num_classes)
        state, best = (self._load_checkpoint() if resume else (None, None))
        self.resumed = state is not None
        if state is None:
            if self.workdir is not None and not resume and self._ckpt_dir().exists():
                raise BloodcellError(
                    f"{self.workdir}: holds a checkpoint of an earlier run; pass resume=True (--resume) to "
                    "continue it, or use another workdir"
                )
            state = _State(phase=0 if self.epochs[0] > 0 else 1)
            state.lr = self.learning_rates[state.phase]
            self._compile(state.phase, state.lr)
        elif self.verbose:
            print(f"resuming {PHASES[state.phase]} phase after epoch {state.epoch}", file=sys.stderr)
        self.history = state.history
        val_ds = self._epoch_dataset(val, train=False, epoch_seed=self.seed)
        while not state.done:
            phase = state.phase
            if state.epoch >= self.epochs[phase] or state.wait >= self.patience[phase]:
                best = self._end_phase(state, best)
                continue
            lr = self._epoch_lr(state)
            self.model.optimizer.learning_rate.assign(lr)
            epoch_seed = self.seed * 1000 + phase * 500 + state.epoch
            self._reseed(epoch_seed)
            t0 = time.time()
            h = self.model.fit(
                self._epoch_dataset(train, train=True, epoch_seed=epoch_seed),
                validation_data=val_ds,
                epochs=1,
                shuffle=False,  # the epoch's dataset is already shuffled, reproducibly
                verbose=0,
            )
            row = {"phase": PHASES[phase], "epoch": state.epoch + 1, "lr": lr, "seconds": round(time.time() - t0, 1),
                   "trainable_weights": len(self.model.trainable_weights)}
            row.update({k: float(v[-1]) for k, v in h.history.items()})
            state.history.append(row)
            state.epoch += 1
            if row["val_loss"] < state.best_loss:
                state.best_loss, state.best_epoch, state.wait = row["val_loss"], state.epoch, 0
                best = [np.asarray(v) for v in self.model.weights]
            else:
                state.wait += 1
                if self.lr_schedule == "plateau":
                    state.plateau_wait += 1
                    if state.plateau_wait >= 2:
                        state.lr, state.plateau_wait = lr * 0.5, 0
            state.lr = state.lr if self.lr_schedule == "plateau" else lr
            if self.verbose:
                print(
                    f"[{PHASES[phase]}] epoch {state.epoch}/{self.epochs[phase]}  loss {row['loss']:.4f}  "
                    f"acc {row.get('accuracy', float('nan')):.4f}  val_loss {row['val_loss']:.4f}  "
                    f"val_acc {row.get('val_accuracy', float('nan')):.4f}  lr {lr:.2e}  {row['seconds']:.0f}s",
                    file=sys.stderr,
                    flush=True,
                )
            self._save_checkpoint(state, best)
            self._write_history()
        self._write_history(plot=True)
        return self.history

    def _end_phase(self, state: _State, best):
        """Restore the phase's best weights and move on to the next phase (or finish)."""
        if best is not None:
            for v, b in zip(self.model.weights, best):
                v.assign(b)
        if state.phase == 0 and self.epochs[1] > 0:
            state.phase, state.epoch, state.wait, state.plateau_wait = 1, 0, 0, 0
            state.best_loss, state.best_epoch = math.inf, -1
            state.lr = self.learning_rates[1]
            self._compile(1, state.lr)
            best = None
        else:
            state.done = True
        self._save_checkpoint(state, best)
        return best

    # -- outputs -----------------------------------------------------------------------------
    def _write_history(self, plot: bool = False) -> None:
        if self.workdir is None or not self.history:
            return
        keys = list(dict.fromkeys(k for row in self.history for k in row))
        tmp = self.workdir / "history.csv.tmp"
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(self.history)
        os.replace(tmp, self.workdir / "history.csv")
        if plot:
            plot_history(self.history, self.workdir / "history.png")

    @property
    def classifier(self) -> Classifier:
        """The trained model as a :class:`Classifier`, ready for ``save_pretrained``."""
        if self.model is None:
            raise BloodcellError("the trainer has no model yet; call fit(train, val) first")
        model = self.model
        if self.distribution is not None or self.precision:
            model = rebuild_model(self.model)
        names = self.class_names or None
        clf = Classifier(model, **({"class_names": names} if names else {}))
        if self._init_record:
            init = f"bloodcell model {self._init_record['source']}"
        else:
            init = {None: "random", "imagenet": "imagenet"}.get(self.spec.weights, "imagenet (weights file)")
        clf.training = {
            "init": init,
            **({"init_from": {k: v for k, v in self._init_record.items() if k != "class_names"}}
               if self._init_record else {}),
            "hardware": _hardware(),
            "settings": self._config(),
            "epochs_run": {p: sum(1 for r in self.history if r["phase"] == p) for p in PHASES},
            "wall_time_s": round(sum(r["seconds"] for r in self.history)),
        }
        return clf


def _is_bloodcell_source(weights) -> bool:
    """Whether ``weights`` names a trained bloodcell model (not None, "imagenet" or a weights file)."""
    if isinstance(weights, Classifier):
        return True
    if weights is None or weights == "imagenet" or not isinstance(weights, (str, os.PathLike)):
        return False
    path = Path(weights)
    return not (path.is_file() or path.suffix == ".h5")  # a folder, hf://owner/repo[@rev] or a zoo name


def _hardware() -> str:
    """What TensorFlow trains on here, e.g. ``"a 2-core CPU"`` or ``"1 GPU (NVIDIA H200)"``."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return f"a {os.cpu_count()}-core CPU"
    try:
        name = tf.config.experimental.get_device_details(gpus[0]).get("device_name") or "unknown"
    except (RuntimeError, ValueError):
        name = "unknown"
    return f"{len(gpus)} GPU{'s' if len(gpus) > 1 else ''} ({name})"


def _load_arrays(path: Path) -> list[np.ndarray]:
    """The arrays ``np.savez(path, *arrays)`` wrote, in their original order."""
    with np.load(path) as f:
        return [f[k] for k in sorted(f.files, key=lambda name: int(name.split("_")[1]))]


def plot_history(history: list[dict[str, Any]], path) -> None:
    """Write a PNG of loss and accuracy per epoch, both phases on one axis with a phase marker."""
    from ._util import new_figure

    fig = new_figure((10, 3.8))
    axes = fig.subplots(1, 2)
    x = np.arange(1, len(history) + 1)
    for ax, key in zip(axes, ("loss", "accuracy")):
        for k, style in ((key, "-"), (f"val_{key}", "--")):
            ax.plot(x, [r.get(k, np.nan) for r in history], style, label=k)
        switch = next((i for i, r in enumerate(history) if r["phase"] == "finetune"), None)
        if switch:
            ax.axvline(switch + 0.5, color="grey", lw=0.8)
            ax.text(switch + 0.7, ax.get_ylim()[1], "fine-tune", va="top", fontsize=8, color="grey")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
