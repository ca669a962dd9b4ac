"""``bloodcell train``: load, split (group-aware), train in two phases, evaluate and save."""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from .._fs import atomic_write_text, relative_path
from .._lock import locked
from .._choices import LOSSES, LR_SCHEDULES, NORMALIZATIONS, OPTIMIZERS, PRECISIONS, PRESETS
from ..data import SPLIT_FRACTIONS, SPLIT_SEED
from ..errors import ConfigError, InputNotFoundError
from ..training.config import TrainConfig
from ..training.processes import finish, tell_stopped, why_stopped
from ..training.small_data import SMALL_DATA, SMALL_DATA_SETTINGS, SOUP_MODELS
from .._fs import TEST_FILES, TRAINED_ON, pixel_digests
from ._common import UsageError, default_workdir, is_within, refuse_working_directory, seed_value


class _DefaultsOnce(argparse.ArgumentDefaultsHelpFormatter):
    """Adds "(default: ...)" to an option's help unless the help already says its default."""

    def _get_help_string(self, action):
        text = action.help or ""
        return text if "default:" in text else super()._get_help_string(action)


def register(subparsers) -> None:
    d = TrainConfig()
    small = SMALL_DATA_SETTINGS
    p = subparsers.add_parser(
        "train",
        help="train a classifier on a data set (folder of class folders or npz)",
        description="Split DATA (stratified, duplicates kept on one side), train with the two-phase "
        "Trainer, measure on the held-out split and write a save_pretrained folder. DATA's classes are "
        "its class folders (or the npz's labels); with --init a bloodcell model, they may differ from "
        "that model's: it then gets a new head for them.",
        formatter_class=_DefaultsOnce,
    )
    p.add_argument("data", metavar="DATA", help="a folder with one subfolder per class, or an .npz")
    p.add_argument("--model", default=None, metavar="ARCH",
                   help="architecture name (see `bloodcell list`); required with --init random|imagenet|FILE.h5, "
                   "implied by --init MODEL (default: none)")
    p.add_argument("--init", default="random", metavar="random|imagenet|MODEL",
                   help="start from random weights, ImageNet weights (backbone), or a trained bloodcell model "
                   "(a folder, hf://owner/repo@rev or a zoo name; any input size and classes)")
    p.add_argument("--loss", choices=LOSSES, default=d.loss, help="training loss")
    p.add_argument("--no-class-weights", action="store_true", help="do not weight classes by inverse frequency")
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing, metavar="F",
                   help="label smoothing of the loss, in [0, 1)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=None, help=f"optimizer (default: {d.optimizer}; {small['optimizer']} for small data)")
    p.add_argument("--lr", type=float, nargs=2, metavar=("HEAD", "FINETUNE"), default=None,
                   help="learning rates of the two phases (default: the optimizer's, e.g. 3e-4 3e-5 for lion; "
                   "3e-4 3e-5 with adam for small data)")
    p.add_argument("--weight-decay", type=float, default=None, metavar="W",
                   help="decoupled weight decay (default: none, 0.004 for adamw)")
    p.add_argument("--augment", choices=(*PRESETS, "none"), default=d.augment, help="augmentation preset")
    p.add_argument("--lr-schedule", choices=[s or "none" for s in LR_SCHEDULES], default=None,
                   help=f"learning-rate schedule of each phase (default: none; {small['lr_schedule']} for small data)")
    p.add_argument("--precision", choices=[x for x in PRECISIONS if x], default=None,
                   help="mixed precision (default: float32)")
    p.add_argument("--normalization", choices=[x for x in NORMALIZATIONS if x], default=None,
                   help="per-image stain normalisation in front of the backbone (default: the --init model's, "
                   "else none)")
    p.add_argument("--head-epochs", type=int, default=None, metavar="N",
                   help="most epochs of phase 1 (the head alone, or the whole network) "
                   f"(default: {d.head_epochs}; {small['head_epochs']}, all run, for small data)")
    p.add_argument("--finetune-epochs", type=int, default=None, metavar="M",
                   help=f"most epochs of phase 2 (the top backbone layers) (default: {d.finetune_epochs}; "
                   f"{small['finetune_epochs']} for small data)")
    p.add_argument("--unfreeze", default=None, metavar="N|F",
                   help="top backbone layers trained in phase 2: a count (a whole number, 12) or a fraction (with "
                   "a point, 0.3; 1.0 is all) (default: 0.3 after a frozen phase 1, else all)")
    p.add_argument("--batch-size", type=int, default=None, metavar="N",
                   help=f"images per training step (default: {d.batch_size}; {small['batch_size']} for small data)")
    p.add_argument("--input-size", type=int, default=None, metavar="S",
                   help="side of the model's input in pixels (default: the --init model's, else 96)")
    p.add_argument("--val-fraction", type=float, default=None, metavar="F",
                   help=f"share of DATA held out for validation (default: {SPLIT_FRACTIONS[1]}; small data, a class under "
                   f"{SMALL_DATA} images: no split, cross-validation instead)")
    p.add_argument("--test-fraction", type=float, default=None, metavar="F",
                   help=f"share of DATA held out for the test (default: {SPLIT_FRACTIONS[2]}; small data: cross-validation)")
    p.add_argument("--seed", type=seed_value, default=d.seed, help="seed of the initialisation, order and augmentation")
    p.add_argument("--split-seed", type=seed_value, default=SPLIT_SEED, metavar="N",
                   help="seed of the validation/test split (or of the cross-validation folds); the zoo's pbc96 "
                   "models were trained with the default, so their held-out images stay held out")
    p.add_argument("--out", default=None, metavar="FOLDER", help="where the trained model goes (default: runs/ARCH)")
    p.add_argument("--workdir", default=None, metavar="FOLDER", help="checkpoints and history (default: OUT.work)")
    p.add_argument("--resume", action="store_true", help="continue the run checkpointed in the workdir")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a model already in --out, and start afresh over the workdir's checkpoint (once the "
                   "new run's settings are checked)")
    p.add_argument("--robustness", action="store_true", help="also measure accuracy under corruptions")
    p.add_argument("--no-soup", action="store_true",
                   help="small data from a bloodcell model (--init MODEL): train one model on all the images (default: "
                   f"{SOUP_MODELS}, with successive seeds, and save the average of their weights, a model soup)")
    p.add_argument("--dataset-name", default=None, metavar="NAME",
                   help="the training data's name for the model card (default: DATA's folder or file name)")
    p.add_argument("--license", default=None, metavar="ID",
                   help="licence of the trained weights for the model card, e.g. cc-by-4.0 (default: unknown, "
                   "and the card asks you to fill it in)")
    p.set_defaults(func=run)


def _split_ids(root: Path, part):
    """The images of ``part``: paths relative to the data folder, or a digest of an npz's rows."""
    if part.paths:
        return sorted(str(relative_path(p, root)) for p in part.paths)
    import hashlib

    return hashlib.sha256(part.images.tobytes() + np.asarray(part.labels, np.int64).tobytes()).hexdigest()


def _check_split(workdir: Path, args, val_set, test_set) -> None:
    """Record the validation/test split in the workdir; on --resume, refuse a different one.

    A resumed run with another split would go on training on images now held out for testing.
    """

    root = Path(args.data)
    split = {"val": _split_ids(root, val_set), "test": _split_ids(root, test_set)}
    path = workdir / "split.json"
    if args.resume and path.is_file():
        saved = json.loads(path.read_text())
        if saved != split:
            raise UsageError(
                f"{path}: the checkpointed run held out other validation/test images than this command "
                "would; resume with the same DATA, --val-fraction, --test-fraction and --split-seed as the first run "
                "(a run started before --split-seed existed split with its --seed: pass that value as --split-seed)"
            )
        return
    workdir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(split))


def _check_paths(data: Path, out: Path, workdir: Path) -> None:
    """Refuse, before the locks create any folder, a missing DATA and outputs inside it or on files."""
    if not data.exists():
        raise InputNotFoundError(f"{data}: no such file or folder; expected a class-folder tree or an .npz file")
    if workdir.resolve() == out.resolve() or out.resolve() in workdir.resolve().parents:
        raise UsageError(f"--workdir {workdir}: is --out {out} or inside it, and the saved model replaces that folder "
                         "as a whole; give a --workdir outside --out (default: OUT.work)")
    for flag, path in (("--out", out), ("--workdir", workdir)):
        if is_within(path, data):
            raise UsageError(f"{flag} {path}: is inside DATA {data}, where its files would be read as images; "
                             "choose a folder outside it")
        if path.exists() and not path.is_dir():
            raise UsageError(f"{flag} {path}: is a file, expected a folder; choose another {flag}")


def _check_outputs(out: Path, workdir: Path, args) -> None:
    """Refuse, before any data is read or file written, outputs that would fail or destroy something
    (after :func:`_check_paths`)."""
    from ..folder import card_refusal, is_generated_card
    from ..training.callbacks import checkpoint_exists

    if args.resume and not checkpoint_exists(workdir):
        raise UsageError(f"--resume: {workdir} holds no checkpoint, so there is nothing to resume; drop --resume "
                         "to start a new run (or give the --workdir of the run to continue)")
    if (out / "config.json").exists() and not (args.resume or args.overwrite):
        raise UsageError(f"--out {out}: already holds a trained model; choose another --out, or add --overwrite "
                         "to replace it")
    if (out / "README.md").exists() and not is_generated_card(out / "README.md"):
        raise UsageError(f"--out {card_refusal(out / 'README.md')}; choose another --out")
    others = sorted(p.name + ("/" if p.is_dir() else "") for p in out.iterdir() if not p.name.startswith(".")
                    ) if out.is_dir() and not (out / "config.json").exists() else []
    if others:  # a data set, say: a model written among its class folders would be read with them
        raise UsageError(f"--out {out}: exists and holds other files ({', '.join(others[:3])}"
                         f"{', ...' if len(others) > 3 else ''}) but no model; choose a new or empty folder")
    if not args.resume and checkpoint_exists(workdir) and not args.overwrite:
        raise UsageError(f"--workdir {workdir}: holds a checkpoint of an earlier run; add --resume to continue it "
                         "(a small-data run, which cross-validates, cannot be), --overwrite to start again, or choose "
                         "another --out or --workdir")


def _starting_point(args):
    """(architecture, weights for Trainer, the parent Classifier or None), from --model and --init."""
    from ..registry import architecture_info

    if args.model is not None:
        info = architecture_info(args.model)  # an unknown name fails before any work
        if args.init == "imagenet" and not info.imagenet:
            raise UsageError(f"--init imagenet: {args.model} has no ImageNet weights; use --init random, or --init a "
                             "trained bloodcell model")
        if args.init.endswith(".h5") and not info.imagenet:
            raise UsageError(f"--init {args.init}: {args.model} has no Keras backbone to load a weights file into; use "
                             "--init random, or --init a trained bloodcell model (its folder)")
    if args.init in ("random", "imagenet") or args.init.endswith(".h5"):
        if args.model is None:
            raise UsageError(f"--model is required with --init {args.init} (it is implied only by --init MODEL, "
                             "a trained bloodcell model)")
        if args.init.endswith(".h5") and not Path(args.init).is_file():
            raise UsageError(f"--init {args.init}: no such weights file; give a Keras '..._notop.h5' file, "
                             "'imagenet', 'random' or a bloodcell model")
        return args.model, {"random": None}.get(args.init, args.init), None
    from .. import load_classifier

    parent = load_classifier(args.init)
    if args.model is not None and args.model != parent.architecture:
        raise UsageError(f"--init {args.init} is a {parent.architecture} model but --model is {args.model}; "
                         f"drop --model (it is implied) or start from a {args.model} model")
    return parent.architecture, args.init, parent


def _seen_by_parent(args, data, measured, small: bool = False) -> str:
    """A warning (empty if none) when ``measured`` (the images the figures come from) may hold images the
    ``--init`` model trained on (:func:`bloodcell.zoo.images_it_may_have_trained_on`)."""
    from ..zoo import images_it_may_have_trained_on

    others, shared = images_it_may_have_trained_on(args.init, data, args.data, measured)
    if not others:
        return ""
    evaluate = (f"measure the new model only on images --init {args.init} held out (those its test_files.json "
                "lists)")
    fix = (f"cross-validated on all of DATA, they cannot avoid them: {evaluate}" if small else
           f"use its split (--split-seed {SPLIT_SEED} and the default fractions) on the same images it was made "
           f"from, or {evaluate}")
    return (f"{others} of the {len(measured)} images measured are not among the images --init {args.init} held "
            f"out from its training (its test_files.json), though DATA holds {shared} of those: they may be "
            f"images it trained on, so the figures may overstate; {fix}")


def _data_name(args) -> str:
    """DATA's name as the card and messages give it (``.`` and ``..`` by the folder they stand for)."""
    return Path(args.data).resolve().name


def _data_record(args, data) -> dict:
    """What the model card says of the training data: its name, class counts and licence."""
    name = args.dataset_name or Path(_data_name(args)).stem
    return {"dataset_id": name, "dataset_name": name, "license": args.license,
            "dataset_counts": data.class_counts()}


def _unfreeze(text: "str | None"):
    """``--unfreeze``: a layer count (a whole number) or a fraction of the layers (written with a point, as
    ``Trainer(unfreeze=1.0)`` is all of them); None when not given."""
    if text is None:
        return None
    try:
        value = float(text) if "." in text or "e" in text.lower() else int(text)
    except ValueError:
        raise UsageError(f"--unfreeze {text}: expected a layer count (12) or a fraction (0.3)") from None
    if isinstance(value, float) and not 0.0 <= value <= 1.0:
        raise UsageError(f"--unfreeze {text}: a fraction (written with a point) is in 0.0..1.0; give a whole number "
                         "for a layer count")
    if isinstance(value, int) and value < 0:
        raise UsageError(f"--unfreeze {text}: expected a layer count >= 0")
    return value


def _settings(args, input_size: int, small: bool) -> dict:
    """TrainConfig fields from the options; for small data, SMALL_DATA_SETTINGS where an option was not given."""
    unfreeze = _unfreeze(args.unfreeze)
    given = dict(
        optimizer=args.optimizer,
        learning_rates=tuple(args.lr) if args.lr else None,
        head_epochs=args.head_epochs,
        finetune_epochs=args.finetune_epochs,
        batch_size=args.batch_size,
        lr_schedule=args.lr_schedule,
    )
    settings = {k: v for k, v in given.items() if v is not None}
    if small:
        settings = {**{k: v for k, v in SMALL_DATA_SETTINGS.items()
                       if k not in settings and not (k == "learning_rates" and args.optimizer
                                                     and args.optimizer != SMALL_DATA_SETTINGS["optimizer"])},
                    **settings}
    if settings.get("lr_schedule") == "none":
        settings["lr_schedule"] = None
    settings.update(
        loss=args.loss,
        class_weights=not args.no_class_weights,
        label_smoothing=args.label_smoothing,
        weight_decay=args.weight_decay,
        unfreeze=unfreeze,
        augment=None if args.augment == "none" else args.augment,
        seed=args.seed,
        precision=None if args.precision == "float32" else args.precision,
        input_size=input_size,
        normalization=args.normalization,
    )
    if small and settings.get("lr_schedule") == "plateau" and settings.get("patience", ...) is None:
        raise UsageError("--lr-schedule plateau follows the validation loss, and small data have no validation split "
                         "(they are cross-validated); use --lr-schedule cosine or none, or give --val-fraction and "
                         "--test-fraction to split them")
    try:
        TrainConfig(**settings)  # bad settings fail before any training
    except ConfigError as exc:  # named as the command line writes them, without the Python API's None
        message = str(exc)
        for field, flag in _FLAGS.items():
            message = re.sub(rf"\b{field}\b", flag, message)
        raise UsageError(message.replace(" or None, got", ", got").replace(" (None: the default)", "")) from None
    return settings


#: The options of TrainConfig fields whose errors name the field.
_FLAGS = {"input_size": "--input-size", "batch_size": "--batch-size", "learning_rates": "--lr",
          "weight_decay": "--weight-decay", "label_smoothing": "--label-smoothing", "seed": "--seed",
          "head_epochs": "--head-epochs", "finetune_epochs": "--finetune-epochs", "unfreeze": "--unfreeze"}


#: The options behind each setting a checkpoint records (``Trainer``'s record): those above, and the rest.
_RECORD_FLAGS = {**_FLAGS, "architecture": "--model", "build": "--input-size/--normalization",
                 "class_names": "DATA's classes", "init_from": "--init", "epochs": "--head-epochs/--finetune-epochs",
                 "optimizer": "--optimizer", "loss": "--loss", "class_weights": "--no-class-weights",
                 "augment": "--augment", "lr_schedule": "--lr-schedule", "precision": "--precision",
                 "backend": "KERAS_BACKEND", "processes": "the number of processes"}


def _option(value) -> str:
    """A recorded setting as the command line would give it."""
    if isinstance(value, (list, tuple)):
        return " ".join(map(_option, value))
    return "none" if value is None else str(value)


def run(args) -> int:
    if args.resume and args.overwrite:
        raise UsageError("--resume continues the checkpointed run and --overwrite starts afresh over it; give one")
    for name in ("val_fraction", "test_fraction"):
        value = getattr(args, name)
        if value is not None and not 0 < value < 0.5:
            raise UsageError(f"--{name.replace('_', '-')} must be between 0 and 0.5, got {value}")
    for name in ("head_epochs", "finetune_epochs"):
        if getattr(args, name) is not None and getattr(args, name) < 0:
            raise UsageError("--head-epochs and --finetune-epochs must be >= 0")
    process_id = _join()
    arch, weights, parent = _starting_point(args)
    out = Path(args.out or f"runs/{arch}")
    refuse_working_directory(out, "the model is saved", "runs/my-model")
    workdir = Path(args.workdir) if args.workdir else default_workdir(out)
    _check_paths(Path(args.data), out, workdir)  # before the locks, which create their folders' parents
    try:
        if process_id:  # another process of a multi-process run: it trains, process 0 writes
            return _run(args, arch, weights, parent, out, workdir, writes=False)
        # Held for the whole run: a second run into the same --out or --workdir refuses at once.
        with locked(out, flag="--out"), locked(workdir, flag="--workdir"):
            code = _run(args, arch, weights, parent, out, workdir)
        if code:
            tell_stopped(f"it exited with code {code}")
        else:
            finish()  # the model is written: the other processes may end
        return code
    except KeyboardInterrupt:
        tell_stopped("it was interrupted")
        _say_interrupted(args, workdir)
        return 130
    except BaseException as exc:  # the other processes would wait for this one
        tell_stopped(why_stopped(exc))
        raise


def _say_interrupted(args, workdir: Path, resumable: bool = True) -> None:
    """How to go on after Ctrl-C: resume from the checkpoint (also when training had ended and the model
    was being measured or saved: the resumed run does that), or start again when there is none."""
    from ..training.callbacks import checkpoint_exists

    # --overwrite started the run afresh and would be refused beside --resume
    again = [a for a in args.argv if a not in ("--resume", "--overwrite")]
    if not resumable:  # small data: its cross-validation models are not kept
        print("bloodcell train: interrupted; a small-data run cannot be resumed: start it again with "
              f"bloodcell {shlex.join(again)}" + (" --overwrite" if checkpoint_exists(workdir) else ""), file=sys.stderr)
    elif checkpoint_exists(workdir):
        print(f"bloodcell train: interrupted; the last finished epoch is checkpointed in {workdir}: continue with "
              f"bloodcell {shlex.join(again)} --resume", file=sys.stderr)
    else:
        print("bloodcell train: interrupted before the first epoch ended, so nothing is checkpointed; run the command "
              "again to start over", file=sys.stderr)


def _join() -> int:
    """Join the multi-process run the KERAS_DISTRIBUTION_* variables describe, before anything is
    read or written; this process's id (0 without them)."""
    from ..training.processes import join_from_env, process_info

    return process_info(join_from_env())[0]


def _warn_of_weak_figures(calibration, accuracy: float, num_classes: int, initialised: bool) -> None:
    """Say on the terminal what the model card says of a run that learnt (next to) nothing measurable."""
    from ..card import EDGE_OF_RANGE

    fitted = (calibration or {}).get("fitted_on") or ""
    edge = fitted.find(EDGE_OF_RANGE)
    if edge >= 0:
        print(f"bloodcell train: warning: calibration: {fitted[edge:]}", file=sys.stderr)
    if accuracy <= 1.5 / num_classes:
        print(f"bloodcell train: warning: the measured accuracy ({accuracy:.1%}) is near chance for {num_classes} classes "
              "(its probabilities, and so its review flags, mean little): give more images or epochs"
              + ("" if initialised else ", or start from a bloodcell model with --init"), file=sys.stderr)


def _say_class_changes(args, parent, data) -> None:
    """Say which classes of DATA get a new output unit and which of the --init model's are dropped."""
    from .._classes import class_changes

    changes = class_changes(parent.class_names, data.class_names)
    new, dropped = changes.get("new_classes"), changes.get("dropped_classes")
    if new or dropped:
        parts = ([f"new output units, trained from scratch, for {', '.join(new)}"] if new else []) + (
            [f"the --init model's units for {', '.join(dropped)} dropped"] if dropped else [])
        hint = (f"; folders match its classes ignoring case, plurals and aliases: rename a folder to one of "
                f"{', '.join(parent.class_names)} to keep that class's trained unit" if new else "")
        print(f"classes: {'; '.join(parts)}{hint}", file=sys.stderr)


def _run(args, arch, weights, parent, out: Path, workdir: Path, writes: bool = True) -> int:
    from ..training import Trainer
    from ..training.callbacks import OnTrainBegin, SettingsChanged
    from ..training.small_data import is_small

    _check_outputs(out, workdir, args)
    input_size = args.input_size if args.input_size is not None else (parent.input_size if parent is not None else 96)
    _settings(args, input_size, small=False)  # bad options fail before the data are read

    from ..data import load_dataset, split
    from ..evaluation import evaluate

    t0 = time.time()
    data = load_dataset(args.data, image_size=input_size).present_classes()
    if parent is not None:
        _say_class_changes(args, parent, data)
    small = args.val_fraction is None and args.test_fraction is None and is_small(data)
    settings = _settings(args, input_size, small)
    command = "bloodcell " + shlex.join(a for a in args.argv if a != "--resume")
    if small:
        try:
            return _train_small(args, data, arch if parent is None else None, weights, settings, out, workdir, command,
                                t0, writes)
        except KeyboardInterrupt:
            _say_interrupted(args, workdir, resumable=False)
            return 130
    val_fraction, test_fraction = args.val_fraction or SPLIT_FRACTIONS[1], args.test_fraction or SPLIT_FRACTIONS[2]
    train_set, val_set, test_set = split(data, (1 - val_fraction - test_fraction, val_fraction, test_fraction),
                                         seed=args.split_seed)
    print(f"data: {len(data.class_names)} classes, {len(train_set)} train, {len(val_set)} validation, "
          f"{len(test_set)} test (loaded in {time.time() - t0:.0f}s)", file=sys.stderr)
    if not len(train_set):
        raise UsageError(f"--val-fraction {val_fraction} --test-fraction {test_fraction}: leave no image of "
                         f"{_data_name(args)} for training; give smaller fractions, or more images")
    for flag, part in (("--val-fraction", val_set), ("--test-fraction", test_set)):
        if not len(part):
            raise UsageError(f"{flag} {val_fraction if flag == '--val-fraction' else test_fraction}: leaves no image "
                             f"of {_data_name(args)} in that split; give a larger fraction, or more images")
    seen = _seen_by_parent(args, data, test_set) if parent is not None else ""
    if seen:
        print(f"bloodcell train: warning: {seen}", file=sys.stderr)
    trainer = Trainer(arch if parent is None else None, weights=weights, class_names=data.class_names,
                      workdir=workdir, **settings)
    command_file = workdir / "command.txt"

    def record_run() -> None:
        _check_split(workdir, args, val_set, test_set)
        if not (args.resume and command_file.is_file()):
            atomic_write_text(command_file, command + "\n")

    if writes and args.resume:
        _check_split(workdir, args, val_set, test_set)  # another split is refused before anything runs
    # The checkpoint goes, and the split and command of this run are written, once fit has checked everything:
    # a run refused for a bad option leaves an earlier run resumable.
    try:
        trainer.fit(train_set, val_set, resume=args.resume, overwrite=args.overwrite,
                    callbacks=[OnTrainBegin(record_run)] if writes else None)
    except SettingsChanged as exc:
        changes = "; ".join(f"{_RECORD_FLAGS.get(k, k)}: {_option(then)} then, {_option(now)} now"
                            for k, (then, now) in exc.diff.items())
        raise UsageError(f"--resume: {exc.checkpoint} was written by a run with other options ({changes}); resume "
                         "with the options of the first run (its command.txt), or add --overwrite to start again"
                         ) from None
    except ConfigError as exc:  # the layer count is checked against the model, once it is built
        if str(exc).startswith("unfreeze="):
            raise UsageError("--unfreeze " + str(exc).removeprefix("unfreeze=")) from None
        raise
    if not writes:
        return _done_elsewhere(trainer, out)
    if trainer.resumed and command_file.is_file():  # (a checkpoint of Trainer.fit's own has none)
        command = command_file.read_text().strip()  # the run's first command
    clf = trainer.classifier
    clf.name = out.name
    report = evaluate(clf, test_set)
    clf.metrics = report.headline()
    if args.robustness:
        from ..evaluation import evaluate_robustness

        rob = evaluate_robustness(clf, test_set)
        clf.metrics["robustness_mean"] = rob.robustness_mean
        clf.extra["robustness"] = rob.summary()
    # A resumed run's processes do not add up to one wall time: only the epochs' sum (wall_time_s)
    # covers the whole run.
    clf.training.update({
        "command": command,
        "data": f"{_data_name(args)}: {len(train_set)} train / {len(val_set)} validation images",
    })
    if trainer.resumed:
        clf.training["resumed"] = True
        clf.training["last_process_wall_time_s"] = round(time.time() - t0)
    else:
        clf.training["total_wall_time_s"] = round(time.time() - t0)
    # the share held out, not the one asked for: each class rounds on its own, so small data can come out below it
    share = len(test_set) / len(data)
    clf.extra["eval_data"] = (f"a held-out {share:.0%} split of {_data_name(args)} ({len(test_set)} images, "
                              "never seen in training)"
                              + (f"; it holds no images of {', '.join(report.absent)}, whose figures are not measured"
                                 if report.absent else "")
                              + (f"; warning: {seen}" if seen else ""))
    if report.absent:
        print(f"bloodcell train: warning: the test split holds no images of {', '.join(report.absent)}; the figures "
              "do not cover those classes (use more images of them, or a larger --test-fraction)", file=sys.stderr)
    _warn_of_weak_figures(clf.extra.get("calibration"), report.accuracy, len(data.class_names), parent is not None)
    clf.extra.update(_data_record(args, data))
    clf.save_pretrained(out)
    # Beside the model, as in the zoo's folders: `evaluate --write-metrics` then refuses to measure it on
    # images it trained on, and `train --init` warns of it.
    if test_set.paths:
        atomic_write_text(out / TEST_FILES, json.dumps([str(relative_path(p, args.data)) for p in test_set.paths]))
    else:
        (out / TEST_FILES).unlink(missing_ok=True)  # an earlier run's list would name other images
    # Also by their pixels, whatever the data's form (an .npz has no file names) or later renaming.
    atomic_write_text(out / TRAINED_ON, json.dumps(pixel_digests(train_set.images) + pixel_digests(val_set.images)))
    report.plot_confusion(workdir / "confusion.png")
    print(report.to_text())
    print(f"saved {out} (accuracy {report.accuracy:.2%}, macro F1 {report.macro_f1:.2%}); "
          f"history and checkpoints in {workdir}", file=sys.stderr)
    return 0


def _done_elsewhere(trainer, out: Path) -> int:
    print(f"bloodcell train: process {trainer.process_id} of {trainer.num_processes} done training; waiting for "
          f"process 0 to write {out}", file=sys.stderr)
    finish()
    return 0


def _train_small(args, data, model, weights, settings, out, workdir, command, t0, writes: bool = True) -> int:
    """Small data: cross-validate for the figures, then train the model on every image (from a bloodcell
    model: SOUP_MODELS of them, with successive seeds, and average their weights)."""
    from ..calibration import calibrate_predictions
    from ..evaluation import metrics_from_predictions
    from ..models import average_models
    from ..training import Trainer
    from ..training.small_data import cross_validated_predictions, feature_check_for, folds_for

    if args.resume:
        raise UsageError("--resume: a small-data run (cross-validation, then the final model) cannot be "
                         "resumed, its cross-validation models are not kept; run it again with --overwrite instead "
                         "of --resume (it takes minutes)")
    folds = folds_for(data)
    # From a bloodcell model every seed starts from its weights (all but the output units of classes it lacks),
    # so the models stay in one basin and average well; from ImageNet each seed draws its own head.
    from_parent = model is None
    seeds = [args.seed + i for i in range(SOUP_MODELS if from_parent and not args.no_soup else 1)]
    final = (f"{len(seeds)} models trained on all of them, their weights averaged" if len(seeds) > 1
             else "a model trained on all of them")
    counts = ", ".join(f"{c} {n}" for c, n in data.class_counts().items())
    print(f"data: {len(data.class_names)} classes, {len(data)} images ({counts}): small data, so no split: "
          + (f"{folds}-fold cross-validation, then {final}" if folds else
             f"too few distinct images of a class to hold any out, {final}; no figure, no calibration, and no "
             "prediction will be flagged for review on confidence"), file=sys.stderr)
    seen = _seen_by_parent(args, data, data, small=True) if from_parent and folds else ""
    if seen:
        print(f"bloodcell train: warning: {seen}", file=sys.stderr)

    def train_one(part, workdir=None, seed=args.seed):
        trainer = Trainer(model, weights=weights, class_names=data.class_names, workdir=workdir,
                          **{**settings, "seed": seed, "verbose": 0})
        trainer.fit(part, overwrite=args.overwrite and workdir is not None)
        return trainer

    report = None
    if folds:
        proba, labels, proba_tta, cv_scores = cross_validated_predictions(
            lambda part: train_one(part).classifier, data, folds, seed=args.split_seed, tta=True, scores=True)
        report = metrics_from_predictions(labels, proba.argmax(axis=1), len(data.class_names),
                                          class_names=data.class_names)
        print(f"cross-validation ({folds} folds): accuracy {report.accuracy:.2%}, balanced accuracy "
              f"{report.balanced_accuracy:.2%} ({time.time() - t0:.0f}s so far)", file=sys.stderr)
    if writes:
        workdir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(workdir / "command.txt", command + "\n")
    trainer = train_one(data, workdir)
    clf = trainer.classifier
    if len(seeds) > 1:
        others = [train_one(data, seed=seed).classifier.model for seed in seeds[1:]]
        clf.model.set_weights(average_models([clf.model, *others]).get_weights())
    if not writes:
        return _done_elsewhere(trainer, out)
    clf.name = out.name
    clf.training.update({"command": command, "data": f"{_data_name(args)}: {len(data)} images, all used",
                         "total_wall_time_s": round(time.time() - t0)})
    if len(seeds) > 1:
        clf.training["weights"] = (f"the weight average (a model soup) of {len(seeds)} models trained on all "
                                   f"{len(data)} images from {args.init}, with seeds {', '.join(map(str, seeds))}; "
                                   "the settings, epochs, time and history here are the first one's")
    if report is not None:
        check = feature_check_for(clf, data, cv_scores, folds)
        record = calibrate_predictions(clf, proba, labels, raw_tta=proba_tta, check=check, description=(
            f"the {folds}-fold cross-validated predictions on {_data_name(args)} ({len(labels)} images, each "
            "from a model trained without it); this model was trained on all of them"),
            outliers=None if check is None else cv_scores > check.threshold)
        from ..card import TEMPERATURE_KEPT

        kept = TEMPERATURE_KEPT in record["fitted_on"]
        print(f"calibrated on those predictions: temperature {'kept at ' if kept else ''}{record['temperature']:.3f}"
              f"{' (every one was right)' if kept else ''}, review below {record['review_below']:.3f}", file=sys.stderr)
        _warn_of_weak_figures(record, report.accuracy, len(data.class_names), model is None)  # None: from a bloodcell model
        headline = report.headline()
        headline["cross_validated_images"] = headline.pop("test_images")  # no test split: every image, held out in turn
        clf.metrics = {**headline, "cross_validation_folds": folds}
        clf.extra["eval_data"] = (f"{folds}-fold cross-validation over {_data_name(args)} ({len(data)} images): "
                                  "each image classified by a model trained without it, with the same settings"
                                  + (f" (one model, where this one is the average of {len(seeds)})" if len(seeds) > 1 else "")
                                  + (f"; warning: {seen}" if seen else ""))
    clf.extra.update(_data_record(args, data))
    clf.save_pretrained(out)
    (out / TEST_FILES).unlink(missing_ok=True)  # no image was held out: an earlier run's list would name other images
    atomic_write_text(out / TRAINED_ON, json.dumps(pixel_digests(data.images)))  # for evaluate --write-metrics
    if report is not None:
        report.plot_confusion(workdir / "confusion.png")
        print(f"cross-validated ({folds} folds: each image classified by a model trained without it)")
        print(report.to_text())
    print(f"saved {out}" + (f" (cross-validated accuracy {report.accuracy:.2%})" if report else
                            " (no held-out figure: too few images)") + f"; history in {workdir}", file=sys.stderr)
    return 0
