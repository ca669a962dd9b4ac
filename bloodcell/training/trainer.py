"""The two-phase :class:`Trainer`: resumable, seeded and distributable.

Phase 1 trains the head alone with the backbone frozen (``"head"``: pretrained features and a new
head) or the whole network (``"full"``: from random init, or continuing a bloodcell model of the
same classes); phase 2 (``"finetune"``) unfreezes the top layers of the backbone, keeps batch-norm
layers in inference mode and trains at the lower rate. Each phase is one ``model.fit`` with
Keras' early stopping on validation loss (best weights restored), the learning-rate schedule and
CSV logging, plus :class:`~bloodcell.training.callbacks.TrainingCheckpoint`.

Every epoch's data is a function of (seed, phase, epoch) (:func:`bloodcell.pipeline.make_epochs`)
and every epoch ends with a checkpoint, so a run killed at any point and resumed ends exactly
where an uninterrupted run ends.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import keras
import numpy as np

from .._checks import check_class_names, check_positive_int
from .._lock import locked
from .._util import outside_stacklevel
from .._tf import op_determinism
from ..classifier import Classifier, load_classifier
from ..errors import ConfigError, DataError
from ..models import ClassifierModel, as_classifier_model, build_model
from .callbacks import (
    HISTORY_CSV,
    DivergedError,
    EpochRecord,
    TrainingCheckpoint,
    assign,
    checkpoint_exists,
    data_fingerprint,
    load_checkpoint,
    plot_history,
    remove_checkpoint,
    save_checkpoint,
    truncate_history,
)
from .config import TrainConfig
from .epochs import (epoch_seed, epochs_dataset, reference_images, steps_per_epoch, tf_arrays, tf_input,
                     tf_input_counts)
from .processes import is_keras_distribution, join_from_env, meet, process_info, tell_stopped, why_stopped
from .policy import (
    check_fit_data,
    class_weights_from_counts,
    class_weights_from_labels,
    hardware,
    is_bloodcell_source,
    float32_policy,
    start_from,
    make_loss,
    make_optimizer,
    phase_name,
    set_trainable,
    unfreeze_count,
    warn_without_images,
)

ModelArg = Union[str, keras.Model, None]
WeightsArg = Union[str, os.PathLike, Classifier, None]


class Trainer:
    """Two-phase training of a bloodcell model (see the module docstring).

    Args:
        model: an architecture name (``bloodcell.list_models()``) or a
            :class:`~bloodcell.models.ClassifierModel` to go on training. None with a bloodcell
            model as ``weights``: that model's architecture.
        weights: None (random init), ``"imagenet"``, the path of an ImageNet weights file, or a
            trained bloodcell model (a :class:`~bloodcell.Classifier`, a saved folder,
            ``hf://owner/repo@revision`` or a zoo name) whose weights start the network, at any
            input size. Its classes may differ from the data's: the head is then new for the
            data's classes (units of classes both share keep their weights) and phase 1 trains
            it with the backbone frozen.
        class_names: the classes, in output order (default: the training data's).
        num_classes: the number of outputs when there are no class names (default 8).
        workdir: folder for checkpoints and ``history.csv``/``history.png`` (None: none kept).
            In a multi-process run only process 0 writes there; every process reads a checkpoint
            to resume from it, so it must be a folder they all see.
        distribution: a ``tf.distribute`` strategy to build and train the model under (TensorFlow
            backend), or a ``keras.distribution.DataParallel`` (JAX backend). None: when the
            ``KERAS_DISTRIBUTION_*`` variables are set, this process joins that multi-process run
            (:mod:`bloodcell.training.processes`); else one process on its default device.
        config: a :class:`TrainConfig`; or give its fields as keyword arguments.
        **settings: :class:`TrainConfig` fields (``optimizer="adamw"``, ``head_epochs=5``...).
    """

    def __init__(self, model: ModelArg = None, *, weights: WeightsArg = None,
                 class_names: Optional[Sequence[str]] = None, num_classes: Optional[int] = None,
                 workdir: Union[str, os.PathLike, None] = None, distribution=None,
                 config: Optional[TrainConfig] = None, **settings: Any):
        unknown = sorted(set(settings) - set(TrainConfig.fields()))
        if unknown:
            raise ConfigError(f"Trainer: unknown setting(s) {unknown}; known: {', '.join(TrainConfig.fields())}")
        if config is not None and settings:
            raise ConfigError("Trainer: pass either config=TrainConfig(...) or settings as keywords, not both")
        self.config = config or TrainConfig(**settings)
        self.workdir = Path(workdir) if workdir is not None else None
        if self.workdir is not None and self.workdir.exists() and not self.workdir.is_dir():
            raise ConfigError(f"workdir={str(workdir)!r}: is a file, expected a folder (for checkpoints and history); "
                              "give a folder's path")
        self.distribution = distribution if distribution is not None else join_from_env()
        self.process_id, self.num_processes, self.num_devices = process_info(self.distribution)
        if self.config.batch_size % self.num_processes:
            raise ConfigError(f"batch_size={self.config.batch_size}: a run of {self.num_processes} processes "
                              f"needs a multiple of {self.num_processes} (each process takes an equal share)")
        self.class_names = check_class_names(class_names) if class_names else None
        self.num_classes = check_positive_int(num_classes, "num_classes", minimum=2) if num_classes else None
        self._init_source = weights if is_bloodcell_source(weights) else None
        self._weights = None if self._init_source is not None else weights
        if isinstance(model, str):
            from ..registry import architecture_info

            architecture_info(model)  # an unknown name fails now, not in fit()
        elif model is None and self._init_source is None:
            raise ConfigError("Trainer: give model= an architecture name (see bloodcell.list_models()) or "
                              "weights= a trained bloodcell model to start from")
        elif model is not None and not isinstance(model, str):
            given = as_classifier_model(model)
            if self._init_source is not None:
                raise ConfigError(
                    "weights: a bloodcell model to start from needs model= an architecture name, got a "
                    f"{type(model).__name__}; pass Trainer('{getattr(weights, 'architecture', 'effnetb0')}', weights=...)"
                )
            self._check_given_model(given, weights)
        self._model_arg = model
        self._init_record: Optional[dict[str, Any]] = None
        self._untrained: list[str] = []
        self._new_head = self._weights is not None  # ImageNet features under a new head
        self.model: Optional[ClassifierModel] = None
        self.history: list[dict[str, Any]] = []
        self.resumed = False  # set by fit(): whether it continued a checkpointed run
        self._train_weights: Optional[np.ndarray] = None
        self._calibration: Optional[dict[str, Any]] = None  # fitted on val at the end of fit()
        self._user_callbacks: list[keras.callbacks.Callback] = []

    def __getattr__(self, name: str):
        # Settings read as attributes (trainer.batch_size, trainer.seed...), as before TrainConfig.
        if name != "config" and name in TrainConfig.fields():
            return getattr(self.config, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # -- model -------------------------------------------------------------------------------
    def _scope(self):
        return self.distribution.scope() if self.distribution is not None else contextlib.nullcontext()

    def _fit_scope(self):
        # A keras.distribution distributes fit's data in its scope; a tf.distribute strategy does without.
        return self._scope() if is_keras_distribution(self.distribution) else contextlib.nullcontext()

    @property
    def _writes(self) -> Optional[Path]:
        """The workdir where this process writes: process 0's only."""
        return self.workdir if self.process_id == 0 else None

    def _names(self) -> Sequence[str]:
        if self.class_names:
            return self.class_names
        return [f"class_{i}" for i in range(self.num_classes)] if self.num_classes not in (None, 8) else None

    def _make_model(self) -> ClassifierModel:
        """The model to train, built under the precision policy and the distribution scope."""
        cfg = self.config
        previous = keras.config.dtype_policy()
        if cfg.precision == "mixed_float16" and keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            if not tf.config.list_physical_devices("GPU"):
                warnings.warn(f"precision={cfg.precision!r}: float16 speeds up training on GPUs; this machine "
                              "has none, and on a CPU it runs slower (TensorFlow may log a line about DT_HALF); leave "
                              "precision unset (or mixed_bfloat16) here", UserWarning, stacklevel=outside_stacklevel())
        if cfg.precision:
            keras.mixed_precision.set_dtype_policy(cfg.precision)
        try:
            with self._scope():
                keras.utils.set_random_seed(cfg.seed)
                if isinstance(self._model_arg, ClassifierModel):
                    if self.distribution is None and not cfg.precision:
                        return self._model_arg
                    return self._model_arg.copy()  # variables must be created under the strategy / policy
                if self._init_source is not None:
                    return self._from_parent()
                return build_model(self._model_arg, class_names=self._names(), input_size=cfg.input_size or 96,
                                   weights=self._weights, normalization=cfg.normalization)
        finally:
            if cfg.precision:
                keras.mixed_precision.set_dtype_policy(previous)

    def _check_given_model(self, model: ClassifierModel, weights) -> None:
        """A model object is trained as it is: settings that would build another one are refused, not ignored."""
        cfg, fix = self.config, "model.with_classes(model.class_names, input_size=..., normalization=...) makes a copy that does"
        if weights is not None:
            raise ConfigError(f"weights={weights!r}: a model object brings its own weights; load them into it first "
                              "(model.load_weights(path)), or pass model= an architecture name to build one with them")
        if cfg.input_size is not None and cfg.input_size != model.input_size:
            raise ConfigError(f"input_size={cfg.input_size}: the model given takes {model.input_size} px images; leave "
                              f"input_size out, or train a copy at that size ({fix})")
        if cfg.normalization is not None and (cfg.normalization == "none") != (model.normalization is None):
            raise ConfigError(f"normalization={cfg.normalization!r}: the model given has "
                              f"{'none' if model.normalization is None else 'stain normalisation'}; leave normalization "
                              f"out, or train a copy with it ({fix})")

    def _from_parent(self) -> ClassifierModel:
        """The parent bloodcell model at this input size, with a new head if the classes differ."""
        source = self._init_source
        parent = source if isinstance(source, Classifier) else load_classifier(source)
        arch = self._model_arg or parent.architecture
        if parent.architecture != arch:
            raise ConfigError(
                f"weights={str(source)!r}: a {parent.architecture} model, expected a {arch} one to start a {arch} "
                f"from; train --model {parent.architecture}, or start from a {arch} model"
            )
        names = tuple(self._names() or parent.class_names)
        if self.num_classes and not self.class_names and len(names) != self.num_classes:
            raise ConfigError(f"weights={str(source)!r}: has {len(parent.class_names)} classes, num_classes is "
                              f"{self.num_classes}; give class_names to train it on other classes")
        label = (parent.name or "a Classifier") if isinstance(source, Classifier) else str(source)
        model, self._init_record, self._new_head = start_from(parent, label, names,
                                                              self.config.input_size or parent.input_size,
                                                              self.config.normalization)
        return model

    @property
    def spec(self):
        return self.model.spec

    def _frozen_first(self) -> bool:
        if self.config.freeze_backbone is not None:
            return self.config.freeze_backbone
        return self._new_head

    def _record(self) -> dict[str, Any]:
        """The settings a checkpoint is checked against (and the card records)."""
        return {
            "architecture": self.spec.architecture,
            "build": self.spec.to_config(),
            "class_names": list(self.model.class_names),
            **self.config.record(),
            **({"init_from": self._init_record["source"]} if self._init_record else {}),
            **({"backend": keras.backend.backend()} if keras.backend.backend() != "tensorflow" else {}),
            **({"processes": self.num_processes} if self.num_processes > 1 else {}),
        }

    def make_loss(self, class_weights: Optional[np.ndarray] = None) -> keras.losses.Loss:
        """The Keras loss of this trainer (see :func:`bloodcell.training.policy.make_loss`)."""
        return make_loss(self.config, class_weights)

    def _compile(self, phase: int, learning_rate: float) -> None:
        set_trainable(self.model, phase, frozen_first=self._frozen_first(), unfreeze=self.config.unfreeze)
        with self._scope():
            self.model.compile(
                optimizer=make_optimizer(self.config, learning_rate),
                loss=make_loss(self.config, self._train_weights if self.config.loss == "focal" else None),
                metrics=["accuracy"],
            )
            self.model.optimizer.build(self.model.trainable_variables)
            # Built here, the metrics' variables are not created inside the first traced train step,
            # which TensorFlow would then trace a second time (seconds a phase).
            one = keras.ops.ones((1, self.spec.num_classes), dtype="float32")
            self.model.compute_metrics(None, one, one)
            self.model.reset_metrics()

    # -- data --------------------------------------------------------------------------------
    def _epoch_dataset(self, data, *, train: bool, epoch_seed: int):
        """One epoch of ``data`` (a Dataset, or a ``tf.data`` dataset used as it is)."""
        return self._epochs_dataset(data, train=train, seeds=[epoch_seed])

    def _epochs_dataset(self, data, *, train: bool, seeds: Sequence[int]):
        return epochs_dataset(data, train=train, seeds=seeds, config=self.config, input_size=self.spec.input_size,
                              num_classes=self.spec.num_classes, class_weights=self._train_weights,
                              processes=(self.num_processes, self.process_id))

    # -- training ----------------------------------------------------------------------------
    def fit(self, train, val=None, *, resume: bool = False, overwrite: bool = False,
            callbacks: Optional[Sequence[keras.callbacks.Callback]] = None) -> list[dict[str, Any]]:
        """Run both phases on ``train`` with early stopping on ``val``; returns the history rows.

        ``train``/``val`` are :class:`bloodcell.data.Dataset` objects (reshuffled and augmented
        per epoch, reproducibly) or ``tf.data`` datasets of batches (images 0..255, labels as class
        ids or one-hot), such as ``keras.utils.image_dataset_from_directory`` makes: augmented
        too, resized to the model's input size, with the class weights counted in one pass over
        the labels. ``val`` may be None when ``patience`` is None.
        With ``resume=True`` the run continues from the workdir's checkpoint, which must exist;
        ``overwrite=True`` starts afresh where one exists, deleting it once the settings and data are
        checked (a bad setting leaves it to resume).
        ``callbacks``: Keras callbacks of your own (TensorBoard, TerminateOnNaN...), given to the
        ``model.fit`` of each phase after the Trainer's.
        """
        try:
            names, self._untrained = check_fit_data(train, val, self.class_names, self.config.patience)
            if names and not self.class_names and self.num_classes and self.num_classes != len(names):
                raise DataError(f"num_classes={self.num_classes}: the data have {len(names)} classes ({', '.join(names)}); "
                                "leave num_classes out to take the data's")
            if names and not self.class_names:
                self.class_names = names
            # A tf.data dataset that names no classes, with none given: its label ids mean the PBC classes.
            self._unnamed = not (names or self.class_names or self._init_source is not None
                                 or isinstance(self._model_arg, ClassifierModel) or self.num_classes not in (None, 8))
            with op_determinism(self.config.deterministic):  # as it was, after
                return self._fit_checked(train, val, resume, callbacks, overwrite)
        except BaseException as exc:  # the other processes of a multi-process run would wait for this one
            tell_stopped(why_stopped(exc))
            raise

    def _fit_checked(self, train, val, resume: bool, callbacks, overwrite: bool = False) -> list[dict[str, Any]]:
        import tensorflow as tf

        callbacks = list(callbacks or [])
        wrong = [type(c).__name__ for c in callbacks if not isinstance(c, keras.callbacks.Callback)]
        if wrong:
            raise ConfigError(f"callbacks: expected keras.callbacks.Callback objects, got {', '.join(wrong)}; pass a "
                              "list of Keras callbacks, e.g. [keras.callbacks.TerminateOnNaN()]")
        self._user_callbacks = callbacks

        # Building the model's variables is already a collective of a multi-process run's processes:
        # none may be left to wait in it by a refusal in another.
        meet("build")
        if self.model is None:
            self.model = self._make_model()
        if self.class_names and tuple(self.class_names) != self.model.class_names:
            if isinstance(self._model_arg, ClassifierModel) or len(self.class_names) != self.model.num_classes:
                raise DataError(f"the model's classes {list(self.model.class_names)} are not the data's "
                                f"{list(self.class_names)}; train a model built for these classes (or "
                                "model.with_classes(names) for a new head)")
            self.model.class_names = tuple(self.class_names)  # built before fit() knew the names
        if self.config.finetune_epochs > 0:
            unfreeze_count(self.model, self.config.unfreeze, self._frozen_first())  # fails now, not after phase 1
        if self.config.class_weights and hasattr(train, "labels"):
            self._train_weights = class_weights_from_labels(train.labels, self.spec.num_classes)
        if isinstance(train, tf.data.Dataset) or isinstance(val, tf.data.Dataset):
            train, val = self._tf_inputs(train, val)
        if self.num_processes > 1 and hasattr(train, "labels") and len(train.labels) < self.config.batch_size:
            raise DataError(f"{len(train.labels)} training images: a run of {self.num_processes} processes trains on "
                            f"whole batches of {self.config.batch_size}; give more images or a smaller batch_size")
        if self._writes is None:
            return self._fit(train, val, resume, overwrite)
        with locked(self.workdir, flag="workdir"):  # a second Trainer on this workdir refuses at once
            return self._fit(train, val, resume, overwrite)

    def _tf_inputs(self, train, val):
        """``tf.data`` inputs checked (and resized) for the model, of known length, with the class
        weights counted from the training labels (one pass over them, when needed)."""
        import tensorflow as tf

        size, k = self.spec.input_size, self.spec.num_classes
        if isinstance(val, tf.data.Dataset):
            val = tf_input(val, "val", input_size=size, num_classes=k)
            if int(val.cardinality()) == 0 or (int(val.cardinality()) < 0 and not any(True for _ in val.take(1))):
                raise DataError("val: the tf.data dataset holds no batches, so early stopping and the calibration "
                                "would have nothing to go by; give it images (or val=None with patience=None)")
        if not isinstance(train, tf.data.Dataset):
            return train, val
        train = tf_input(train, "train", input_size=size, num_classes=k)
        unknown = int(train.cardinality()) < 0
        if unknown or self.config.class_weights:
            batches, counts = tf_input_counts(train, k)
            if batches == 0:
                raise DataError("train: the tf.data dataset holds no batches; give it images")
            if unknown:
                train = train.apply(tf.data.experimental.assert_cardinality(batches))
            if self.config.class_weights:
                self._train_weights = class_weights_from_counts(counts)
            self._untrained = [c for c, n in zip(self.model.class_names, counts) if n == 0]
            if getattr(self, "_unnamed", False):
                ids = ", ".join(f"{i} = {c}" for i, (c, n) in enumerate(zip(self.model.class_names, counts)) if n)
                warnings.warn(f"train: the tf.data dataset names no classes, so its labels are read as the PBC classes "
                              f"in order ({ids}); if they are other classes, pass Trainer(class_names=...) (keras' "
                              "image_dataset_from_directory gives them as ds.class_names, before any .map or "
                              ".prefetch)", UserWarning, stacklevel=outside_stacklevel())
            else:
                warn_without_images(self._untrained, "add images, or train a model without these classes")
        return train, val

    def _fit(self, train, val, resume: bool, overwrite: bool = False) -> list[dict[str, Any]]:
        record = {**self._record(), "data": data_fingerprint(train, val)}  # a checkpoint resumes on its own data only
        if resume:
            if self.workdir is None:
                raise ConfigError("resume=True needs a workdir; pass Trainer(..., workdir=FOLDER)")
            if not checkpoint_exists(self.workdir):
                raise ConfigError(f"{self.workdir}: holds no checkpoint, so there is nothing to resume; "
                                  "drop resume=True (--resume) to start a new run")
            restore = load_checkpoint(self.workdir, record)
            state = {k: v for k, v in restore.items() if k not in ("weights", "optimizer", "best")}
        else:
            restore = None
            if overwrite and self._writes is not None and checkpoint_exists(self.workdir):
                remove_checkpoint(self.workdir)  # the settings and data checked: a failure before lost nothing
            # the process that writes decides: in a multi-process run the others may look before it has removed it
            if checkpoint_exists(self.workdir) and not (overwrite and self._writes is None):
                raise ConfigError(
                    f"{self.workdir}: holds a checkpoint of an earlier run; pass resume=True (--resume) to "
                    "continue it, overwrite=True (--overwrite) to start afresh, or use another workdir"
                )
            state = {"phase": 0 if self.config.head_epochs > 0 else 1, "epoch": 0, "stopped": False, "done": False,
                     "history": []}
            if self._writes is not None:
                self._writes.mkdir(parents=True, exist_ok=True)
                (self._writes / HISTORY_CSV).unlink(missing_ok=True)
        self.resumed = resume
        self.history = state["history"]
        val_ds = None if val is None else self._epoch_dataset(val, train=False, epoch_seed=self.config.seed)
        meet("train")  # every process has checked its checkpoint and taken its locks
        if restore is not None and state["done"]:
            assign(self.model.variables, restore["weights"])
        while not state["done"]:
            self._run_phase(state, train, val_ds, record, restore)
            restore = None
        self._check_answers_finite(train)
        self._calibration = None
        if val is not None and not hasattr(val, "images"):
            val = tf_arrays(val, self.model.class_names)  # read once more, as an epoch's validation is
        if val is not None and len(val):
            from ..calibration import calibrate

            self._calibration = calibrate(self.classifier, val, verbose=0, **reference_images(train, self.config.seed),
                                          description=f"the validation data of training ({len(val)} images)")
        if self._writes is not None:
            plot_history(self.history, self._writes / "history.png")
        return self.history

    def _check_answers_finite(self, train) -> None:
        """Refuse a model whose answers on a batch of its training images are not finite: weights blown up
        on an epoch's last steps, which the epochs' mean loss does not show (without validation data)."""
        if self.num_processes > 1:
            return
        x = np.asarray(next(iter(self._epoch_dataset(train, train=False, epoch_seed=self.config.seed).take(1)))[0])
        if not np.isfinite(np.asarray(self.model.predict_on_batch(x), np.float64)).all():  # numpy: any Keras backend
            rates = ", ".join(f"{r:.2e}" for r in self.config.rates)
            raise DivergedError(f"the trained model's answers are NaN or infinite (the training diverged on its last "
                              f"steps); lower the learning rates (now {rates}) or check the weight decay and "
                              "precision, and start again (--overwrite)")

    def _run_phase(self, state: dict[str, Any], train, val_ds, record, restore) -> None:
        cfg = self.config
        phase = state["phase"]
        self._compile(phase, cfg.rates[phase])
        if restore is not None:
            assign(self.model.variables, restore["weights"])
            if state["epoch"] > 0:  # at epoch 0 the phase's optimizer is new
                assign(self.model.optimizer.variables, restore["optimizer"])
        if self._writes is not None:
            truncate_history(self._writes, len(state["history"]))
        total = cfg.epochs[phase]
        name = phase_name(phase, self._frozen_first())
        early = None
        callbacks: list[keras.callbacks.Callback] = []
        if cfg.patience is not None:
            early = keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience[phase],
                                                  restore_best_weights=True)
            callbacks.append(early)
        plateau = None
        if cfg.lr_schedule == "cosine":
            base = cfg.rates[phase]
            callbacks.append(keras.callbacks.LearningRateScheduler(
                lambda epoch, lr: float(0.5 * base * (1 + np.cos(np.pi * epoch / max(total, 1))))))
        elif cfg.lr_schedule == "plateau":
            plateau = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2)
            callbacks.append(plateau)
        callbacks.append(EpochRecord(name, total, cfg.verbose if self.process_id == 0 else 0))  # one log for a run
        if self._writes is not None:
            callbacks.append(keras.callbacks.CSVLogger(str(self._writes / HISTORY_CSV), append=True))
        checkpoint = TrainingCheckpoint(self._writes, state, record, early, plateau, restore)
        callbacks.append(checkpoint)
        callbacks += self._user_callbacks
        first = state["epoch"]
        if first < total and not state["stopped"]:
            seeds = [epoch_seed(cfg.seed, phase, e) for e in range(first, total)]
            with self._fit_scope():
                self.model.fit(self._epochs_dataset(train, train=True, seeds=seeds), validation_data=val_ds,
                               epochs=total, initial_epoch=first,
                               steps_per_epoch=steps_per_epoch(train, cfg.batch_size, self.num_processes),
                               shuffle=False, verbose=0, callbacks=callbacks)
        elif restore is not None and restore.get("best") is not None:
            self.model.set_weights(restore["best"])  # the phase had ended; its best weights were not yet restored
        # The phase is over, with its best weights in the model: on to the next, or done.
        if phase == 0 and cfg.finetune_epochs > 0:
            state.update(phase=1, epoch=0, stopped=False)
        else:
            state["done"] = True
        state.pop("early_stopping", None)
        state.pop("plateau", None)
        if self._writes is not None:
            save_checkpoint(self._writes, self.model, state, record, None)

    # -- outputs -----------------------------------------------------------------------------
    @property
    def classifier(self) -> Classifier:
        """The trained model as a :class:`~bloodcell.Classifier`, ready for ``save_pretrained``."""
        if self.model is None:
            raise ConfigError("the trainer has no model yet; call fit(train, val) first")
        model = self.model
        if self.distribution is not None or self.config.precision:
            with float32_policy():
                model = self.model.copy()
        clf = Classifier(model)
        if self._init_record:
            init = f"bloodcell model {self._init_record['source']}"
        else:
            init = {None: "random", "imagenet": "imagenet"}.get(self.spec.weights, "imagenet (weights file)")
        phases = [phase_name(0, self._frozen_first()), phase_name(1, self._frozen_first())]
        clf.training = {
            "init": init,
            **({"init_from": dict(self._init_record)} if self._init_record else {}),
            "hardware": hardware(),
            "distribution": {"backend": keras.backend.backend(), "processes": self.num_processes,
                             "devices": self.num_devices},
            **({"classes_without_training_images": list(self._untrained)} if self._untrained else {}),
            "settings": self._record(),
            "epochs_run": {p: sum(1 for r in self.history if r["phase"] == p) for p in phases},
            "wall_time_s": round(sum(r["seconds"] for r in self.history)),
        }
        if self._calibration:
            clf.extra["calibration"] = dict(self._calibration)
        return clf


__all__ = ["Trainer"]
