"""``bloodcell train``: load, split (group-aware), train in two phases, evaluate and save."""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a classifier on a data set (folder of class folders or npz)",
        description="Split DATA (stratified, duplicates kept on one side), train with the two-phase "
        "Trainer, measure on the held-out split and write a save_pretrained folder.",
    )
    p.add_argument("data", metavar="DATA", help="a folder with one subfolder per class, or an .npz")
    p.add_argument("--model", required=True, metavar="ARCH", help="architecture name (see `bloodcell list`)")
    p.add_argument("--init", default="random", metavar="random|imagenet|MODEL",
                   help="start from random weights, ImageNet weights (backbone), or a trained bloodcell model of "
                   "the same architecture (a folder, hf://owner/repo@rev or a zoo name; any input size)")
    p.add_argument("--loss", choices=("crossentropy", "focal"), default="crossentropy")
    p.add_argument("--no-class-weights", action="store_true", help="do not weight classes by inverse frequency")
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--optimizer", choices=("lion", "adam", "nadam", "adamw"), default="lion")
    p.add_argument("--lr", type=float, nargs=2, metavar=("HEAD", "FINETUNE"), default=None, help="learning rates")
    p.add_argument("--weight-decay", type=float, default=None)
    p.add_argument("--augment", choices=("seed", "robust", "none"), default="seed")
    p.add_argument("--lr-schedule", choices=("plateau", "cosine", "none"), default="none")
    p.add_argument("--precision", choices=("mixed_float16", "mixed_bfloat16", "float32"), default=None)
    p.add_argument("--head-epochs", type=int, default=30, metavar="N")
    p.add_argument("--finetune-epochs", type=int, default=10, metavar="M")
    p.add_argument("--unfreeze", type=float, default=None, metavar="N|F",
                   help="top backbone layers trained in phase 2: a count (>= 1) or a fraction (< 1)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--input-size", type=int, default=96)
    p.add_argument("--val-fraction", type=float, default=0.1, metavar="F")
    p.add_argument("--test-fraction", type=float, default=0.1, metavar="F")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", default=None, metavar="FOLDER", help="where the trained model goes (default runs/ARCH)")
    p.add_argument("--workdir", default=None, metavar="FOLDER", help="checkpoints and history (default OUT.work)")
    p.add_argument("--resume", action="store_true", help="continue the run checkpointed in the workdir")
    p.add_argument("--robustness", action="store_true", help="also measure accuracy under corruptions")
    p.set_defaults(func=run)


def _split_ids(root: Path, part):
    """The images of ``part``: paths relative to the data folder, or a digest of an npz's rows."""
    if part.paths:
        return sorted(str(Path(p).resolve().relative_to(root)) for p in part.paths)
    import hashlib

    return hashlib.sha256(part.images.tobytes() + np.asarray(part.labels, np.int64).tobytes()).hexdigest()


def _check_split(workdir: Path, args, val_set, test_set) -> None:
    """Record the validation/test split in the workdir; on --resume, refuse a different one.

    A resumed run with another split would go on training on images now held out for testing.
    """
    from . import UsageError

    root = Path(args.data).resolve()
    split = {"val": _split_ids(root, val_set), "test": _split_ids(root, test_set)}
    path = workdir / "split.json"
    if args.resume and path.is_file():
        saved = json.loads(path.read_text())
        if saved != split:
            raise UsageError(
                f"{path}: the checkpointed run held out other validation/test images than this command "
                "would; resume with the same DATA, --val-fraction, --test-fraction and --seed as the first run"
            )
        return
    workdir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(split))


def _check_outputs(data: Path, out: Path, workdir: Path, resume: bool) -> None:
    """Refuse, before any data is read or file written, outputs that would fail or destroy something."""
    from . import UsageError, is_within

    if not data.exists():
        raise FileNotFoundError(f"{data}: no such file or folder; expected a class-folder tree or an .npz file")
    for flag, path in (("--out", out), ("--workdir", workdir)):
        if is_within(path, data):
            raise UsageError(f"{flag} {path}: is inside DATA {data}, where its files would be read as images; "
                             "choose a folder outside it")
        if path.exists() and not path.is_dir():
            raise UsageError(f"{flag} {path}: is a file, expected a folder; choose another {flag}")
    if (out / "config.json").exists() and not resume:
        raise UsageError(f"--out {out}: already holds a trained model; choose another --out")
    from ..classifier import _is_generated_card

    if (out / "README.md").exists() and not _is_generated_card(out / "README.md"):
        raise UsageError(f"--out {out}: holds a README.md that is not a model card and would be replaced; "
                         "choose another --out")
    checkpoint = workdir / "checkpoint"
    if not resume and (checkpoint.exists() or checkpoint.with_name("checkpoint.old").exists()):
        raise UsageError(f"--workdir {workdir}: holds a checkpoint of an earlier run; add --resume to continue it, "
                         "or choose another --out or --workdir")


def run(args) -> int:
    from . import UsageError

    for name in ("val_fraction", "test_fraction"):
        if not 0 < getattr(args, name) < 0.5:
            raise UsageError(f"--{name.replace('_', '-')} must be between 0 and 0.5, got {getattr(args, name)}")
    if args.head_epochs < 0 or args.finetune_epochs < 0:
        raise UsageError("--head-epochs and --finetune-epochs must be >= 0")
    from ..data import load_dataset, split
    from ..evaluation import evaluate
    from ..training import Trainer

    out = Path(args.out or f"runs/{args.model}")
    workdir = Path(args.workdir) if args.workdir else out.with_name(out.name + ".work")
    _check_outputs(Path(args.data), out, workdir, args.resume)
    unfreeze = None
    if args.unfreeze is not None:
        unfreeze = int(args.unfreeze) if args.unfreeze >= 1 else float(args.unfreeze)

    t0 = time.time()
    data = load_dataset(args.data, image_size=args.input_size)
    train_set, val_set, test_set = split(
        data, (1 - args.val_fraction - args.test_fraction, args.val_fraction, args.test_fraction), seed=args.seed
    )
    print(f"data: {len(train_set)} train, {len(val_set)} validation, {len(test_set)} test "
          f"(loaded in {time.time() - t0:.0f}s)", file=sys.stderr)
    _check_split(workdir, args, val_set, test_set)
    trainer = Trainer(
        args.model,
        loss=args.loss,
        class_weights=not args.no_class_weights,
        label_smoothing=args.label_smoothing,
        optimizer=args.optimizer,
        learning_rates=tuple(args.lr) if args.lr else None,
        weight_decay=args.weight_decay,
        head_epochs=args.head_epochs,
        finetune_epochs=args.finetune_epochs,
        unfreeze=unfreeze,
        augment=None if args.augment == "none" else args.augment,
        batch_size=args.batch_size,
        seed=args.seed,
        workdir=workdir,
        lr_schedule=None if args.lr_schedule == "none" else args.lr_schedule,
        precision=None if args.precision == "float32" else args.precision,
        input_size=args.input_size,
        num_classes=len(data.class_names),
        class_names=data.class_names,
        weights=None if args.init == "random" else args.init,
    )
    workdir.mkdir(parents=True, exist_ok=True)
    command = "bloodcell " + shlex.join(a for a in args.argv if a != "--resume")
    command_file = workdir / "command.txt"
    if not (args.resume and command_file.is_file()):
        command_file.write_text(command + "\n")
    trainer.fit(train_set, val_set, resume=args.resume)
    if trainer.resumed:
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
        "data": f"{Path(args.data).name}: {len(train_set)} train / {len(val_set)} validation images",
    })
    if trainer.resumed:
        clf.training["resumed"] = True
        clf.training["last_process_wall_time_s"] = round(time.time() - t0)
    else:
        clf.training["total_wall_time_s"] = round(time.time() - t0)
    clf.extra["eval_data"] = f"a held-out {args.test_fraction:.0%} split of {Path(args.data).name} ({len(test_set)} images, never seen in training)"
    clf.save_pretrained(out)
    if test_set.paths:
        root = Path(args.data).resolve()
        rel = [str(Path(p).resolve().relative_to(root)) for p in test_set.paths]
        (workdir / "test_files.json").write_text(json.dumps(rel))
    report.plot_confusion(workdir / "confusion.png")
    print(report.to_text())
    print(f"saved {out} (accuracy {report.accuracy:.2%}, macro F1 {report.macro_f1:.2%}); "
          f"history and checkpoints in {workdir}", file=sys.stderr)
    return 0
