"""How the zoo does on cells no PBC camera took: zero-shot on BCCD, and few-shot adaptation.

BCCD-WBC (``../shared/data/bccd-wbc``: 351 white cells from another lab, microscope and stain) is
the yardstick; no shipped model is trained on it.

1. Zero-shot: every zoo entry (release entries from their ``zoo/<name>`` folder), and any model
   folder given with ``--extra``,
   classifies all of BCCD with ``bloodcell evaluate``: accuracy over its 8 classes, per class, the
   confusion matrix, and the accuracy when the answer is restricted to the 5 classes BCCD holds
   (``predict(classes=...)``). The default's confusion matrix is drawn into ``docs/img``.
2. The acceptance run: ``bloodcell train FEW --init <default> --out OUT`` where FEW holds 10 images
   of each BCCD class with at least 20 (draw 0), timed, then ``bloodcell evaluate`` on the other
   images of those classes.
3. The soup: on the curve's three draws of 10 images a class, what ``bloodcell train`` saves with
   small data from the default (the weight average of ``SOUP_MODELS`` models trained on all the
   images with successive seeds) against the first of them alone (``--no-soup``).
4. The few-shot curve: k = 1, 5, 10, 25 labelled images a class (at most half of a class; mean
   of 3 draws), trained with the small-data settings ``bloodcell train`` picks
   (``SMALL_DATA_SETTINGS``) (a) from the default model and (b) from random init of the same
   architecture, the baseline without this library; one model each (no soup); accuracy on the
   rest of those classes.
5. Every label: a 4-fold cross-validation over all the images of those classes, each quarter
   classified by a model trained from the default with the same settings on the other three
   quarters (about 260 images): what BCCD's labels allow this recipe, against the curve's k.

Writes ``benchmarks/results/outside.json``; ``--skip-soup``, ``--skip-curve`` and ``--skip-every``
keep those parts of the file as they are. Usage:
    python benchmarks/bench_outside.py [--bccd ../shared/data/bccd-wbc] [--skip-soup] [--skip-curve] [--skip-every] [--extra NAME=FOLDER ...]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from _measured import weights_sha256  # noqa: E402  (benchmarks/ is the script's folder)

MIN_IMAGES = 20  # classes with at least this many images take part in few-shot
SHOTS = (1, 5, 10, 25)
DRAWS = 3
EVERY_LABEL_FOLDS = 4


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    from bloodcell.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def zero_shot(name: str, source: str, bccd: Path, present: list[str]) -> dict:
    import bloodcell
    from bloodcell.data import load_dataset

    code, out, err = run_cli(["evaluate", str(bccd), "--model", source, "--json"])
    if code:
        raise SystemExit(f"bloodcell evaluate {bccd} --model {source}: exit {code}\n{err}")
    ev = json.loads(out)["evaluation"]
    clf = bloodcell.load_classifier(source)
    data = load_dataset(bccd, image_size=clf.input_size)
    proba = clf.predict_proba(data.images)
    restricted = clf.predict_proba(data.images, classes=present).argmax(1)
    truth = [clf.class_names.index(data.class_names[i]) for i in data.labels]
    return {
        "model": name,
        "weights_sha256": weights_sha256(source),
        "accuracy": ev["accuracy"],
        "balanced_accuracy": ev["balanced_accuracy"],
        "mean_confidence": float(proba.max(1).mean()),
        "accuracy_restricted_to_present_classes": float((restricted == truth).mean()),
        "per_class_recall": {c: ev["per_class"][c]["recall"] for c in present},
        "class_names": ev["class_names"],
        "confusion_matrix": ev["confusion_matrix"],
        "absent": ev["absent"],
    }


def draw(bccd: Path, classes: list[str], k: int, seed: int, root: Path) -> tuple[Path, Path, dict]:
    """FEW (k images of each class, at most half of it) and REST folders for one draw."""
    import numpy as np

    few, rest = root / f"few_k{k}_s{seed}", root / f"rest_k{k}_s{seed}"
    rng = np.random.default_rng(seed)
    used = {}
    for c in classes:
        files = sorted((bccd / c).iterdir())
        take = min(k, len(files) // 2)
        order = rng.permutation(len(files))
        used[c] = take
        for part, idx in ((few, order[:take]), (rest, order[take:])):
            (part / c).mkdir(parents=True, exist_ok=True)
            for i in idx:
                shutil.copy(files[i], part / c / files[i].name)
    return few, rest, used


def bccd_classes(bccd: Path) -> tuple[dict[str, int], list[str], list[str]]:
    """Images of each class, the classes with images, and those with enough for the few-shot runs."""
    from bloodcell.data import load_dataset

    counts = load_dataset(bccd, image_size=32).class_counts()
    return counts, [c for c, n in counts.items() if n], [c for c, n in counts.items() if n >= MIN_IMAGES]


def acceptance_run(bccd: Path, classes: list[str], init: str, root: Path, flags: tuple[str, ...] = ()) -> dict:
    """The acceptance run: ``bloodcell train FEW --init INIT [FLAGS]`` on draw 0 (10 images of each of
    ``classes``), timed, and its accuracy on the rest of those classes' images."""
    import bloodcell

    few, rest, used = draw(bccd, classes, 10, 0, root)
    out = root / "few_model"
    start = time.perf_counter()
    code, _, err = run_cli(["train", str(few), "--init", init, *flags, "--out", str(out)])
    seconds = time.perf_counter() - start
    if code:
        raise SystemExit(f"bloodcell train {few} --init {init}: exit {code}\n{err[-3000:]}")
    code, out_json, err = run_cli(["evaluate", str(rest), "--model", str(out), "--json"])
    ev = json.loads(out_json)["evaluation"]
    return {
        "command": " ".join(["bloodcell train FEW --init", init, *flags, "--out OUT"]),
        "init_weights_sha256": weights_sha256(init),
        "few": used, "rest_images": ev["n"], "seconds": round(seconds, 1),
        "accuracy_on_rest": ev["accuracy"], "balanced_accuracy_on_rest": ev["balanced_accuracy"],
        "cross_validated_accuracy": bloodcell.load_classifier(out).metrics.get("accuracy"),
        "confusion_matrix": ev["confusion_matrix"], "class_names": ev["class_names"],
        # calibrated on the run's cross-validated predictions (it has no split of its own)
        "ece_on_rest": (ev.get("calibration") or {}).get("ece"), "review_on_rest": ev.get("review"),
    }


def small_data_run(few: Path, rest: Path, init: str, seed: int):
    """(FEW's classes as a Dataset, a function that trains one model on a part of them with the small-data
    settings from ``init``, "default" or "random" (seeded with ``seed`` unless given another), and returns
    it, a function that measures a model on REST)."""
    import bloodcell
    from bloodcell.data import load_dataset
    from bloodcell.training.small_data import SMALL_DATA_SETTINGS

    default = bloodcell.load_classifier()
    data = load_dataset(few, image_size=default.input_size).present_classes()
    settings = {**SMALL_DATA_SETTINGS, "verbose": 0, "input_size": default.input_size, "augment": "seed"}

    def train(part, seed=seed):
        kwargs = {**settings, "seed": seed}
        if init == "default":
            trainer = bloodcell.Trainer(weights=bloodcell.DEFAULT_MODEL, class_names=data.class_names, **kwargs)
        else:
            trainer = bloodcell.Trainer(default.architecture, class_names=data.class_names,
                                        normalization="stain" if default.model.normalization else None, **kwargs)
        trainer.fit(part)
        return trainer.classifier

    test = load_dataset(rest, image_size=default.input_size, class_names=data.class_names)
    return data, train, lambda clf: bloodcell.evaluate(clf, test).accuracy


def fine_tune(few: Path, rest: Path, init: str, seed: int) -> float:
    """Train with the small-data settings on FEW (no cross-validation) and measure on REST."""
    data, train, measure = small_data_run(few, rest, init, seed)
    return measure(train(data))


def soup_and_single(few: Path, rest: Path, seed: int) -> tuple[float, float]:
    """As ``bloodcell train FEW --init <default>``: ``SOUP_MODELS`` models trained on all of FEW from the
    default, with seeds ``seed``, ``seed + 1``, ...; accuracy on REST of the first alone and of their weight average."""
    from bloodcell.models import average_models
    from bloodcell.training.small_data import SOUP_MODELS

    data, train, measure = small_data_run(few, rest, "default", seed)
    models = [train(data, seed + i) for i in range(SOUP_MODELS)]
    alone = measure(models[0])
    models[0].model.set_weights(average_models([m.model for m in models]).get_weights())
    return alone, measure(models[0])


def every_label(bccd: Path, classes: list[str], root: Path) -> dict:
    """Cross-validation over every image of ``classes`` (``EVERY_LABEL_FOLDS`` folds), each fold's
    model trained from the default with the small-data settings and the training seed."""
    from bloodcell.data import SPLIT_SEED
    from bloodcell.training.small_data import cross_validate

    every = root / "every"
    every.mkdir()
    for c in classes:
        (every / c).symlink_to((bccd / c).resolve(), target_is_directory=True)
    data, train, _ = small_data_run(every, every, "default", SPLIT_SEED)
    report = cross_validate(train, data, EVERY_LABEL_FOLDS, seed=SPLIT_SEED)
    return {"folds": EVERY_LABEL_FOLDS, "images": int(len(data)), "accuracy": report.accuracy,
            "balanced_accuracy": report.balanced_accuracy, "class_names": list(data.class_names),
            "confusion_matrix": report.confusion.tolist()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bccd", default=str(ROOT.parent / "shared" / "data" / "bccd-wbc"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "outside.json"))
    ap.add_argument("--figure", default=str(ROOT / "docs" / "img" / "bccd_confusion.png"))
    ap.add_argument("--skip-soup", action="store_true", help="keep the soup's figures of --out as they are")
    ap.add_argument("--skip-curve", action="store_true", help="keep the curve of --out as it is")
    ap.add_argument("--skip-every", action="store_true", help="keep the every-label figure of --out as it is")
    ap.add_argument("--extra", nargs="*", default=[], metavar="NAME=FOLDER", help="more models to measure zero-shot")
    args = ap.parse_args(argv)
    bccd = Path(args.bccd)
    if not bccd.is_dir():
        raise SystemExit(f"{bccd}: no such folder; give --bccd the BCCD-WBC class folders")

    import bloodcell
    from bloodcell.evaluation import Report

    counts, present, few_classes = bccd_classes(bccd)
    old = json.loads(Path(args.out).read_text()) if Path(args.out).is_file() else {}
    result = {"data": {"name": bccd.name, "counts": {c: counts[c] for c in present}},
              "machine": f"{os.cpu_count()}-core CPU, {platform.machine()}", "zero_shot": [], **{
                  k: old[k] for k, skip in (("few_shot_soup", args.skip_soup), ("few_shot_curve", args.skip_curve),
                                  ("few_shot_every_label", args.skip_every))
                  if k in old and skip}}
    # Release entries are measured from their zoo/<name> folder (what their Hub repo holds): no Hub needed.
    models = [(n, str(ROOT / "zoo" / n) if (ROOT / "zoo" / n).is_dir() else n) for n in bloodcell.list_pretrained()]
    models += [tuple(e.split("=", 1)) for e in args.extra]
    for name, source in models:
        row = zero_shot(name, source, bccd, present)
        result["zero_shot"].append(row)
        print(f"zero-shot {name}: accuracy {row['accuracy']:.4f} (restricted to BCCD's classes "
              f"{row['accuracy_restricted_to_present_classes']:.4f}), mean confidence {row['mean_confidence']:.3f}",
              flush=True)
        if name == bloodcell.DEFAULT_MODEL:
            import numpy as np

            report = Report.from_confusion(np.array(row["confusion_matrix"]), row["class_names"])
            report.plot_confusion(args.figure, title=f"{name} on BCCD, zero-shot: accuracy {100 * row['accuracy']:.1f}%")

    with tempfile.TemporaryDirectory(prefix="bloodcell-outside-") as tmp:
        tmp = Path(tmp)
        acc = result["few_shot_acceptance"] = acceptance_run(bccd, few_classes, bloodcell.DEFAULT_MODEL, tmp)
        print(f"few-shot (10 a class, {acc['seconds']:.0f}s): accuracy on the rest {acc['accuracy_on_rest']:.4f}",
              flush=True)
        if not args.skip_soup:
            runs = [soup_and_single(*draw(bccd, few_classes, 10, seed + 1, tmp)[:2], seed) for seed in range(DRAWS)]
            alone, soup = [r[0] for r in runs], [r[1] for r in runs]
            result["few_shot_soup"] = {"k": 10, "draws": DRAWS, "alone": alone, "soup": soup,
                                       "mean_alone": sum(alone) / DRAWS, "mean_soup": sum(soup) / DRAWS}
            print(f"k=10 from the default: the model alone {result['few_shot_soup']['mean_alone']:.4f}, the soup "
                  f"{result['few_shot_soup']['mean_soup']:.4f} ({alone} -> {soup})", flush=True)
        if not args.skip_curve:
            curve = []
            for k in SHOTS:
                for init in ("default", "random"):
                    accs = []
                    for seed in range(DRAWS):
                        few, rest, used = draw(bccd, few_classes, k, seed + 1, tmp)
                        accs.append(fine_tune(few, rest, init, seed))
                    curve.append({"k": k, "init": init, "images_per_class": used, "accuracies": accs,
                                  "mean": sum(accs) / len(accs)})
                    print(f"k={k} from {init}: mean accuracy {curve[-1]['mean']:.4f} ({accs})", flush=True)
            result["few_shot_curve"] = curve
        if not args.skip_every:
            every = result["few_shot_every_label"] = every_label(bccd, few_classes, tmp)
            print(f"every label ({every['folds']}-fold cross-validation over {every['images']} images): accuracy "
                  f"{every['accuracy']:.4f}", flush=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
