"""The settings of a training run, checked once, in one dataclass."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Optional, Union

from .._checks import check_choice, check_positive_int
from .._choices import LOSSES, LR_SCHEDULES, NORMALIZATIONS, OPTIMIZERS, PRECISIONS, PRESETS
from ..data import SPLIT_SEED
from ..errors import ConfigError
#: Default (first phase, second phase) learning rates; Lion wants rates about 3-10x lower than Adam.
DEFAULT_LEARNING_RATES = {"lion": (3e-4, 3e-5), "adam": (1e-3, 1e-4), "nadam": (1e-3, 1e-4), "adamw": (1e-3, 1e-4)}
#: Names a history row's ``phase`` can take: phase 1 trains the head alone or the whole network.
PHASES = ("head", "full", "finetune")
#: Weight decay of AdamW when none is given (Keras' default).
ADAMW_DECAY = 0.004


@dataclass(frozen=True)
class TrainConfig:
    """How a :class:`~bloodcell.Trainer` trains. Every field is checked when the config is made.

    Attributes:
        loss: ``"crossentropy"`` or ``"focal"`` (categorical focal loss).
        class_weights: weight each class by the inverse of its frequency in the training set
            (sklearn's "balanced"); with focal loss the weights become its per-class alpha.
        label_smoothing: label smoothing of the loss, in [0, 1).
        focal_gamma: the focal loss' focusing parameter.
        optimizer: ``"lion"`` (the seed report's best), ``"adam"``, ``"nadam"`` or ``"adamw"``.
        learning_rates: (first phase, second phase) learning rates; None: the optimizer's
            defaults (:data:`DEFAULT_LEARNING_RATES`; :attr:`rates` is the pair a run uses).
        weight_decay: decoupled weight decay of the optimizer (AdamW: 0.004 when None).
        head_epochs: most epochs of the first phase, which trains the head alone when the backbone
            is frozen (``"head"``) or the whole network (``"full"``, from random init).
        finetune_epochs: most epochs of the second phase (``"finetune"``): the top ``unfreeze``
            layers of the backbone train, batch-norm layers stay in inference mode.
        unfreeze: how many of the backbone's top layers with weights the second phase trains:
            a count, or a fraction of them (None: 0.3 after a frozen first phase, else all).
        freeze_backbone: freeze the backbone in the first phase (None: when the head is new on
            pretrained features, i.e. ImageNet weights or a bloodcell model with other classes).
        patience: early-stopping patience (first phase, second phase), in epochs without a
            lower validation loss; each phase ends with its best weights restored. None: no early
            stopping, each phase runs all its epochs and keeps its last weights (then ``fit`` needs
            no validation set).
        augment: augmentation preset (``bloodcell.augment.PRESETS``) or None.
        batch_size: images per training step.
        seed: seeds the model's initialisation, the data order and the augmentation: the same
            seed gives the same run.
        lr_schedule: None (constant), ``"cosine"`` (cosine decay over each phase's epochs) or
            ``"plateau"`` (halved after 2 epochs without a lower validation loss).
        precision: None or ``"float32"``, ``"mixed_float16"``, ``"mixed_bfloat16"``.
        input_size: side of the square images the model takes, in pixels (None: that of the
            bloodcell model given as ``weights``, else 96).
        normalization: None or ``"stain"``: per-image stain normalisation in front of the
            backbone (None with a bloodcell model as ``weights``: that model's own; ``"none"``:
            none, even where that model has one).
        deterministic: make TensorFlow's kernels deterministic (bit-identical seeded runs).
        verbose: 1 prints one line per epoch on stderr, 0 nothing.
    """

    loss: str = "crossentropy"
    class_weights: bool = True
    label_smoothing: float = 0.0
    focal_gamma: float = 2.0
    optimizer: str = "lion"
    learning_rates: Optional[tuple[float, float]] = None
    weight_decay: Optional[float] = None
    head_epochs: int = 30
    finetune_epochs: int = 10
    unfreeze: Union[int, float, None] = None
    freeze_backbone: Optional[bool] = None
    patience: Optional[tuple[int, int]] = (10, 3)
    augment: Optional[str] = "seed"
    batch_size: int = 64
    seed: int = SPLIT_SEED
    lr_schedule: Optional[str] = None
    precision: Optional[str] = None
    input_size: Optional[int] = None
    normalization: Optional[str] = None
    deterministic: bool = True
    verbose: int = 1

    def __post_init__(self) -> None:
        check_choice("loss", self.loss, LOSSES)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        check_choice("precision", self.precision, PRECISIONS)
        check_choice("augment", self.augment, (None, *PRESETS))
        check_choice("normalization", self.normalization, NORMALIZATIONS)
        if self.patience is not None:
            patience = tuple(self.patience) if isinstance(self.patience, (tuple, list)) else ()
            if len(patience) != 2 or not all(isinstance(p, int) and not isinstance(p, bool) and p >= 1 for p in patience):
                raise ConfigError(f"patience must be two positive integers (head, finetune) or None, got {self.patience!r}")
            object.__setattr__(self, "patience", patience)
        if self.patience is None and self.lr_schedule == "plateau":
            raise ConfigError("lr_schedule='plateau' follows the validation loss, which patience=None does without; "
                              "use 'cosine' or None")
        for name in ("head_epochs", "finetune_epochs"):
            check_positive_int(getattr(self, name), name, minimum=0)
        if self.head_epochs + self.finetune_epochs == 0:
            raise ConfigError(
                "head_epochs=0 and finetune_epochs=0: nothing to train; give one of the phases at least one epoch "
                "(--head-epochs N or --finetune-epochs M on the command line)"
            )
        unfreeze = self.unfreeze
        if unfreeze is not None and (
            isinstance(unfreeze, bool)
            or not isinstance(unfreeze, (int, float))
            or (isinstance(unfreeze, float) and not 0.0 <= unfreeze <= 1.0)
            or (isinstance(unfreeze, int) and unfreeze < 0)
        ):
            raise ConfigError(
                f"unfreeze={unfreeze!r}: expected a fraction of the backbone's layers in [0.0, 1.0] or a "
                "layer count >= 0 (None: the default)"
            )
        if not isinstance(self.label_smoothing, (int, float)) or not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        rates = self.learning_rates
        if rates is not None:  # None stays None: a copy with another optimizer (dataclasses.replace) takes its defaults
            if not isinstance(rates, (tuple, list)) or len(rates) != 2 or not all(
                    isinstance(r, (int, float)) and not isinstance(r, bool) and math.isfinite(r) and r > 0 for r in rates):
                raise ConfigError(f"learning_rates must be two positive numbers (head, finetune), got {rates!r}")
            object.__setattr__(self, "learning_rates", tuple(float(r) for r in rates))
        if self.weight_decay is not None and (isinstance(self.weight_decay, bool) or not isinstance(self.weight_decay, (int, float))
                                              or not math.isfinite(self.weight_decay) or self.weight_decay < 0):
            raise ConfigError(f"weight_decay must be a number >= 0 or None, got {self.weight_decay!r}")
        check_positive_int(self.batch_size, "batch_size")
        if self.input_size is not None:
            check_positive_int(self.input_size, "input_size", minimum=32)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            raise ConfigError(f"seed must be an integer in 0..2**32-1, got {self.seed!r}")
        for name in ("class_weights", "deterministic", "freeze_backbone"):
            value = getattr(self, name)
            if not isinstance(value, bool) and not (name == "freeze_backbone" and value is None):
                raise ConfigError(f"{name} must be True or False, got {value!r}")
        if isinstance(self.focal_gamma, bool) or not isinstance(self.focal_gamma, (int, float)) \
                or not math.isfinite(self.focal_gamma) or self.focal_gamma < 0:
            raise ConfigError(f"focal_gamma must be a number >= 0 (0: plain cross-entropy), got {self.focal_gamma!r}")

    @property
    def epochs(self) -> tuple[int, int]:
        """(first phase, second phase) epoch budgets."""
        return self.head_epochs, self.finetune_epochs

    def record(self) -> dict[str, Any]:
        """The settings that shape the trained weights (what a checkpoint is checked against and
        a model card records)."""
        d = dataclasses.asdict(self)
        for key in ("deterministic", "verbose", "head_epochs", "finetune_epochs", "input_size", "normalization"):
            d.pop(key)
        d["epochs"] = list(self.epochs)
        d["learning_rates"] = list(self.rates)
        d["patience"] = None if self.patience is None else list(self.patience)
        return d

    @property
    def rates(self) -> tuple[float, float]:
        """The (first phase, second phase) learning rates a run uses: ``learning_rates``, else the optimizer's."""
        return self.learning_rates or tuple(float(r) for r in DEFAULT_LEARNING_RATES[self.optimizer])

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))
