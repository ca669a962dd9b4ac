"""Ablation for zero-shot generalisation: what each ingredient does to PBC and to BCCD.

Each variant fine-tunes the previous default (``mnv3s.pbc96`` 0.1, 128 px, trained from random
init) for 24 epochs on the same pbc96 training split (Lion, cosine decay from 1.5e-4 per step,
label smoothing 0.1, class weights, the ``"robust"`` preset plus the variant's ingredients), keeps
the weights of the lowest validation loss, and measures the held-out pbc96 split (accuracy and the
12 corruptions x 5 severities) and all of BCCD zero-shot. Ingredients (``+``-separated):

- ``norm``: :class:`bloodcell.models.StainNormalization` in front of the backbone;
- ``stain``: :class:`bloodcell.augment.RandomStain` (optical-density jitter, rate 0.8);
- ``scale``: half of the images magnified up to 2.2x (``RandomAffine(magnify=...)``);
- ``blur``: defocus or motion blur on 30% of the images;
- ``mild``: stain, scale and blur at about half those rates (0.5; 0.25 up to 2.0x; 0.15);
- ``polish``: 12 more epochs at 4e-5, from the best weights of the same variant without it
  (``norm+mild+polish`` goes on from ``norm+mild``, which must be in the same command first).

Two rows need no training: the previous default as it is, and with the normalisation put in
front of it. About 40-75 minutes a variant on the 2-core CPU; results are appended to
``benchmarks/results/ablation.json``.

Usage: python benchmarks/bench_ablation.py VARIANT [VARIANT ...] [--pbc ../shared/data/pbc96] [--bccd ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "ablation.json"
BASE = ROOT / "zoo" / "mnv3s.pbc96-0.1"


def layers_for(ingredients: set[str]):
    from bloodcell.augment import RandomAffine, RandomCorruptions, RandomStain
    from bloodcell.augment.presets import _preset_layers

    layers = _preset_layers("robust", seed=0)
    mild = "mild" in ingredients
    if mild:
        ingredients = ingredients | {"stain", "scale", "blur"}
    f32 = {"dtype": "float32"}
    if "scale" in ingredients:
        layers[0] = RandomAffine(flip="horizontal_and_vertical", rotation=0.5, translation=0.1, zoom=0.1,
                                 magnify=2.0 if mild else 2.2, magnify_rate=0.25 if mild else 0.5, **f32)
    extra = []
    if "stain" in ingredients:
        extra.append(RandomStain(rate=0.5 if mild else 0.8, **f32))
    if "blur" in ingredients:
        extra.append(RandomCorruptions(("defocus_blur", "motion_blur"), severity=(0.0, 5.0),
                                       rate=0.15 if mild else 0.3, **f32))
    return layers[:1] + extra + layers[1:]


def measure(clf, test, bccd) -> dict:
    from bloodcell.evaluation import evaluate, evaluate_robustness

    report, outside = evaluate(clf, test), evaluate(clf, bccd)
    rob = evaluate_robustness(clf, test)
    return {"pbc_accuracy": report.accuracy, "pbc_macro_f1": report.macro_f1, "robustness_mean": rob.robustness_mean,
            "per_corruption": rob.per_corruption_mean, "bccd_accuracy": outside.accuracy,
            "bccd_balanced_accuracy": outside.balanced_accuracy}


TRAINED: dict[str, object] = {}  # variant -> its model, for a "polish" variant to go on from


def run(variant: str, train, val, test, bccd, epochs: int) -> dict:
    import bloodcell  # before TensorFlow: bloodcell imports it without its start-up log lines
    import keras
    import tensorflow as tf

    from bloodcell.augment import Augmentation
    from bloodcell.pipeline import make_dataset
    from bloodcell.training.policy import class_weights_from_labels

    ingredients = set(variant.split("+")) - {"polish"}
    base = bloodcell.load_classifier(BASE).model
    if variant == "previous":
        return measure(bloodcell.Classifier(base), test, bccd)
    model = base.with_classes(base.class_names, normalization="stain" if ingredients & {"norm", "norm-at-test"} else None)
    rate = 1.5e-4
    if variant.endswith("+polish"):
        parent = "+".join(i for i in variant.split("+") if i != "polish")
        if parent not in TRAINED:
            raise SystemExit(f"{variant} goes on from {parent}: run it first in the same command")
        model, rate, epochs = TRAINED[parent].copy(), 4e-5, 12
    if variant == "norm-at-test":
        return measure(bloodcell.Classifier(model), test, bccd)
    aug = Augmentation(variant, layers_for(ingredients), len(base.class_names))
    weights = tf.constant(class_weights_from_labels(train.labels, len(base.class_names)))
    steps = -(-len(train) // 64)
    model.compile(optimizer=keras.optimizers.Lion(keras.optimizers.schedules.CosineDecay(rate, epochs * steps)),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1), metrics=["accuracy"])
    ds = make_dataset(train.images, train.labels, batch_size=64, augment=aug, seed=1, repeat=True)
    ds = ds.map(lambda x, y: (x, y, tf.linalg.matvec(y, weights)))
    best = keras.callbacks.EarlyStopping(monitor="val_loss", patience=epochs, restore_best_weights=True)
    start = time.perf_counter()
    model.fit(ds, steps_per_epoch=steps, epochs=epochs, verbose=0, callbacks=[best],
              validation_data=make_dataset(val.images, val.labels, batch_size=64, shuffle=False))
    TRAINED[variant] = model
    result = measure(bloodcell.Classifier(model), test, bccd)
    result["training_minutes"] = round((time.perf_counter() - start) / 60, 1)
    return {**result, "epochs": epochs, "seed": 1, "best_epoch": int(best.best_epoch) + 1}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("variants", nargs="+", help="previous, norm-at-test, or ingredients such as norm+stain+scale+blur")
    ap.add_argument("--pbc", default=str(ROOT.parent / "shared" / "data" / "pbc96"))
    ap.add_argument("--bccd", default=str(ROOT.parent / "shared" / "data" / "bccd-wbc"))
    ap.add_argument("--epochs", type=int, default=24)
    args = ap.parse_args(argv)

    from bloodcell.data import SPLIT_FRACTIONS, SPLIT_SEED, load_dataset, split

    data = load_dataset(args.pbc, image_size=128)
    train, val, test = split(data, SPLIT_FRACTIONS, seed=SPLIT_SEED)  # the split the previous default was trained on
    bccd = load_dataset(args.bccd, image_size=128)
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"variants": {}}
    for variant in args.variants:
        row = run(variant, train, val, test, bccd, args.epochs)
        results["variants"][variant] = row
        RESULTS.write_text(json.dumps(results, indent=1) + "\n")
        print(variant, {k: row[k] for k in ("pbc_accuracy", "robustness_mean", "bccd_accuracy")}, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
