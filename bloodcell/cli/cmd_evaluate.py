"""``bloodcell evaluate``: accuracy, per-class metrics, confusion matrix and robustness on labelled data."""

from __future__ import annotations

from ..data import subset_from_split_file
from ..errors import DataError
from .._fs import TEST_FILES, TRAINED_ON, bloodcell_config, pixel_digests
from ._common import UsageError, check_output_file, classes_option, default_workdir, seed_value

import json
import sys
from pathlib import Path

import numpy as np

#: Figure formats that --plot and --robustness-plot write (through matplotlib).
PLOT_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="measure a classifier on labelled data (folder of class folders or npz)",
        description="Classify labelled images and report accuracy, balanced accuracy, per-class "
        "precision/recall/F1 and the confusion matrix; optionally accuracy under image corruptions.",
    )
    p.add_argument("data", metavar="DATA", help="a folder with one subfolder per class, or an .npz")
    p.add_argument("--model", default=None, metavar="SOURCE",
                   help="zoo name, local folder or hf://owner/repo[@revision] (default: the bundled model)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--plot", default=None, metavar="FILE",
                   help="write the normalised confusion matrix as a picture (.png, .pdf, .svg or .jpg)")
    p.add_argument("--review-plot", default=None, metavar="FILE",
                   help="write the accuracy of the unflagged cells against the share flagged for review as a picture "
                        "(.png, .pdf, .svg or .jpg)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the --plot, --review-plot and --robustness-plot files if they exist (default: refuse)")
    p.add_argument("--robustness", action="store_true", help="also measure accuracy under each corruption")
    p.add_argument("--robustness-plot", default=None, metavar="FILE",
                   help="write accuracy against severity as a picture (.png, .pdf, .svg or .jpg; implies --robustness)")
    p.add_argument("--severities", default=None, metavar="LIST",
                   help="severities to test, e.g. 1,3,5 (default 1..5; implies --robustness)")
    p.add_argument("--corruptions", default=None, metavar="LIST",
                   help="comma-separated corruption names (default all; see bloodcell.corruptions; implies "
                   "--robustness)")
    p.add_argument("--tta", action="store_true", help="average over flips and 90-degree rotations (8x slower)")
    p.add_argument("--classes", default=None, metavar="LIST",
                   help="comma-separated classes the cells can be: answers restricted to them, as in predict "
                   "(default: all the model's classes)")
    p.add_argument("--split-file", default=None, metavar="FILE",
                   help="JSON list of paths relative to DATA (e.g. a training run's test_files.json): "
                   "evaluate only those images")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="evaluate a stratified random subset of N images (for quick runs)")
    p.add_argument("--seed", type=seed_value, default=0, help="seed of --limit sampling and of the corruptions")
    p.add_argument("--batch-size", type=int, default=64, metavar="N",
                   help="images per forward pass; lower it if memory runs out (default 64)")
    p.add_argument("--write-metrics", action="store_true",
                   help="record the figures in the --model folder's config.json and model card "
                   "(a local folder; needs the whole data or --split-file, without --limit, --tta, --classes, "
                   "--severities or --corruptions)")
    p.set_defaults(func=run)


def stratified_indices(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of ``n`` rows drawn at random, each class in proportion to its count."""
    from .._checks import largest_remainder

    classes, counts = np.unique(labels, return_counts=True)
    take = largest_remainder(n, counts / len(labels))
    rng = np.random.default_rng(seed)
    picked = [rng.choice(np.flatnonzero(labels == c), k, replace=False) for c, k in zip(classes, take)]
    return np.sort(np.concatenate(picked))


def _int_list(text: str, option: str) -> tuple[int, ...]:

    try:
        return tuple(int(s) for s in text.split(","))
    except ValueError:
        raise UsageError(f"{option} expects comma-separated integers like 1,3,5, got {text!r}") from None


def _writable_folder(args) -> Path:

    from ..zoo import is_zoo_name

    if args.model and is_zoo_name(args.model):
        raise UsageError(f"--write-metrics writes into a model folder, and {args.model!r} names the zoo's entry; "
                         f"for a folder of that name here, write ./{args.model}")
    if not args.model:
        raise UsageError("--write-metrics records the figures in a model folder: pass --model FOLDER (one written by "
                         "bloodcell train or save_pretrained); the bundled default is not written to")
    folder = Path(args.model)
    if not (folder / "config.json").is_file():
        raise UsageError(
            f"--write-metrics needs --model to be a local model folder (with config.json), got {args.model!r}; "
            "save a Hub model into a folder with Classifier.save_pretrained first"
        )
    if args.limit is not None or args.tta or args.severities or args.corruptions or args.classes:
        raise UsageError(
            "--write-metrics records headline figures, so it measures the full split without TTA over all the "
            "model's classes: drop --limit, --tta, --severities, --corruptions and --classes"
        )
    # a run of `bloodcell train` before the list was written beside the model left it in its work folder
    listed = next((f for f in (folder / TEST_FILES, default_workdir(folder) / TEST_FILES) if f.is_file()), None)
    if listed is not None and not args.split_file:
        raise UsageError(
            f"--write-metrics: {listed} lists the images held out from the training of {folder}; pass "
            f"--split-file {listed} (without it the figures would count images it trained on)"
        )
    return folder


def _trained_on(folder: Path, data) -> int:
    """How many of ``data``'s images the run that wrote ``folder`` trained or validated on (its TRAINED_ON
    list of pixel digests; 0 without one)."""
    listed = folder / TRAINED_ON
    if not listed.is_file():
        return 0
    try:
        trained = set(json.loads(listed.read_text()))
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError) as exc:
        raise UsageError(f"{listed}: not a list of image digests ({exc}); delete it if the model's figures are to be "
                         "replaced") from None
    return sum(d in trained for d in pixel_digests(data.images))


def _check_training_images(args, folder: Path | None, data) -> None:
    """--write-metrics on images the model trained or validated on would record training figures: refused; a
    plain evaluation of a model folder on them is said to overstate."""
    from ..zoo import is_zoo_name

    model = folder or (Path(args.model) if args.model and not is_zoo_name(args.model) else None)
    seen = _trained_on(model, data) if model is not None and model.is_dir() else 0
    if not seen:
        return
    where = f"images {model} was trained or validated on ({model / TRAINED_ON})"
    held = (f"pass --split-file {model / TEST_FILES}, the images it held out" if (model / TEST_FILES).is_file()
            else "measure on images it did not train on")
    if folder is not None:
        cross_validated = "cross_validation_folds" in ((bloodcell_config(folder / "config.json") or {}).get("metrics")
                                                       or {})
        raise UsageError(f"--write-metrics: {seen} of the {len(data)} images are {where}; figures over them are not "
                         f"held out: {held}" + (" (its cross-validated figures are in its card)" if cross_validated
                                                else ""))
    print(f"bloodcell evaluate: warning: {seen} of the {len(data)} images are {where}: the figures overstate; {held}",
          file=sys.stderr)



def _write_metrics(folder: Path, args, report, rob, data) -> None:
    """Record ``report`` (and ``rob``) in the folder's config.json and regenerate its model card."""
    import shlex

    from ..folder import update_config

    def changes(cfg: dict) -> dict:
        old = cfg.get("metrics") or {}
        metrics = report.headline()
        if rob is not None:
            metrics["robustness_mean"] = rob.robustness_mean
            cfg["robustness"] = rob.summary()
        else:
            cfg.pop("robustness", None)  # figures of an earlier measurement must not sit beside new ones
        cfg["metrics"] = metrics
        # A training run's own description of its held-out split stays when the same split is measured.
        if not (args.split_file and cfg.get("eval_data") and old.get("test_images") == len(data)):
            where = f"the images listed in {Path(args.split_file).name}" if args.split_file else "all images"
            cfg["eval_data"] = f"{where} of {Path(args.data).resolve().name} ({len(data)} images)"
        # what the card's Hub metadata says was measured: this data, its held-out list or all of it
        cfg["eval_dataset"] = {"name": Path(args.data).resolve().name, "split": "test" if args.split_file else "all"}
        cfg["evaluation_command"] = "bloodcell " + shlex.join(getattr(args, "argv", []))
        return cfg

    update_config(folder, changes)


def run(args) -> int:
    from .. import load_classifier
    from ..data import load_dataset
    from ..evaluation import evaluate, evaluate_robustness

    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be at least 1, got {args.limit}")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    severities = _int_list(args.severities, "--severities") if args.severities else (1, 2, 3, 4, 5)
    corruptions = [c.strip() for c in args.corruptions.split(",") if c.strip()] if args.corruptions else None
    robustness = args.robustness or bool(args.robustness_plot or args.severities or args.corruptions)

    seen: dict[Path, str] = {}
    for flag, path in (("--plot", args.plot), ("--robustness-plot", args.robustness_plot),
                       ("--review-plot", args.review_plot)):
        if path:
            check_output_file(flag, path, args.data, PLOT_SUFFIXES, overwrite=args.overwrite)
            same = seen.setdefault(Path(path).resolve(), flag)
            if same != flag:  # the second picture would replace the first
                raise UsageError(f"{same} and {flag} both name {path}; give each picture its own file")
    folder = _writable_folder(args) if args.write_metrics else None
    clf = load_classifier(args.model)
    classes = classes_option(clf, args.classes)  # a bad name fails before any work
    data = load_dataset(args.data, image_size=clf.input_size)
    if not len(data):
        raise DataError(f"{args.data}: holds no images, so there is nothing to evaluate; give labelled images")
    if args.split_file:
        data = subset_from_split_file(data, args.split_file, args.data)
    _check_training_images(args, folder, data)
    if args.limit is not None and args.limit < len(data):
        data = data.subset(stratified_indices(data.labels, args.limit, args.seed))

    rob = None
    if robustness:  # first, so that bad corruption names or severities fail before any work
        rob = evaluate_robustness(clf, data, corruptions=corruptions, severities=severities, seed=args.seed,
                                  batch_size=args.batch_size, tta=args.tta, classes=classes)
    report = evaluate(clf, data, batch_size=args.batch_size, tta=args.tta, classes=classes)

    source = args.model or f"{clf.name} (bundled default)"
    if args.json:
        out = {"model": str(source), "data": str(args.data), "evaluation": report.to_dict()}
        if rob is not None:
            out["robustness"] = rob.to_dict()
        print(json.dumps(out))
    else:
        print(f"model {source} on {args.data}: {len(data)} images\n")
        print(report.to_text())
        if rob is not None:
            print("\naccuracy under corruption\n")
            print(rob.to_text())
    for path, draw in ((args.plot, report.plot_confusion), (args.review_plot, report.plot_risk_coverage),
                       (args.robustness_plot, rob.plot if rob is not None else None)):
        if path:  # after the report is out: a picture that cannot be written loses nothing
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            draw(path)
    if folder is not None:
        from ..folder import CARD_NAME, card_kept_because, is_generated_card

        _write_metrics(folder, args, report, rob, data)
        card = folder / CARD_NAME
        print(f"wrote the figures into {folder / 'config.json'} and {card}" if is_generated_card(card) else
              f"wrote the figures into {folder / 'config.json'}; {card} {card_kept_because(card)}, so it was left "
              "as it is (delete it to have one written)", file=sys.stderr)
    timing = f"evaluated in {report.seconds:.1f}s" + (f", robustness in {rob.seconds:.1f}s" if rob else "")
    print(timing, file=sys.stderr)
    return 0
