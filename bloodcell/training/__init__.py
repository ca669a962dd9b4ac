"""Training: the two-phase :class:`Trainer`, its :class:`TrainConfig`, policy and callbacks.

- :mod:`~bloodcell.training.config`: :class:`TrainConfig`, every setting checked in one place;
- :mod:`~bloodcell.training.policy`: what each phase trains (freezing), the optimizer and the loss;
- :mod:`~bloodcell.training.callbacks`: the per-epoch record and the atomic checkpoint;
- :mod:`~bloodcell.training.trainer`: :class:`Trainer`, which runs the phases with Keras' ``fit``.
"""

import importlib

from .config import DEFAULT_LEARNING_RATES, LOSSES, LR_SCHEDULES, OPTIMIZERS, PHASES, PRECISIONS, TrainConfig

# Imported on first use: they load Keras, which the command line wants after parsing its arguments.
_LAZY = {"Trainer": "trainer", "class_weights_from_labels": "policy", "plot_history": "callbacks"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["DEFAULT_LEARNING_RATES", "LOSSES", "LR_SCHEDULES", "OPTIMIZERS", "PHASES", "PRECISIONS",
           "TrainConfig", "Trainer", "class_weights_from_labels", "plot_history"]
