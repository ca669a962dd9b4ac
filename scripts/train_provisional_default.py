"""Train the provisional bundled default (mnv3s on pbc96, random init) with plain Keras.

Stands in until `bloodcell train` (the two-phase Trainer) produces the zoo's release models.
Split: 90/10 stratified by class with seed 42, byte-identical files kept on one side.
Usage: python scripts/train_provisional_default.py DATA OUT [--epochs N]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("out")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()

    import keras
    import tensorflow as tf

    import bloodcell
    from bloodcell.imageio import find_image_files, load_image

    keras.utils.set_random_seed(42)
    files = find_image_files([args.data])
    names = list(bloodcell.CLASS_NAMES)
    labels = np.array([names.index(f.parent.name) for f in files])
    digests = [hashlib.md5(f.read_bytes()).hexdigest() for f in files]
    images = np.stack([load_image(f, 96) for f in files])

    rng = np.random.default_rng(42)
    group_of = {d: i for i, d in enumerate(dict.fromkeys(digests))}
    groups = np.array([group_of[d] for d in digests])
    test = np.zeros(len(files), bool)
    for c in range(len(names)):
        g = np.unique(groups[labels == c])
        rng.shuffle(g)
        test |= np.isin(groups, g[: int(round(0.1 * len(g)))])
    train_idx, test_idx = np.flatnonzero(~test), np.flatnonzero(test)
    print(f"train {len(train_idx)}, test {len(test_idx)}", flush=True)

    aug = keras.Sequential([keras.layers.RandomFlip("horizontal_and_vertical"), keras.layers.RandomRotation(0.5, fill_mode="reflect")])
    ds = (
        tf.data.Dataset.from_tensor_slices((images[train_idx], keras.utils.to_categorical(labels[train_idx], 8)))
        .shuffle(len(train_idx), seed=42)
        .batch(args.batch_size)
        .map(lambda x, y: (aug(tf.cast(x, tf.float32), training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
    model = bloodcell.build_model("mnv3s")
    steps = args.epochs * int(np.ceil(len(train_idx) / args.batch_size))
    lr = keras.optimizers.schedules.CosineDecay(2e-3, steps, warmup_target=None)
    model.compile(keras.optimizers.Adam(lr), keras.losses.CategoricalCrossentropy(label_smoothing=0.05), metrics=["accuracy"])
    t0 = time.time()
    model.fit(ds, epochs=args.epochs, verbose=2)
    wall = time.time() - t0

    clf = bloodcell.Classifier(model, name="mnv3s.pbc96")
    pred = clf.predict_proba(images[test_idx]).argmax(1)
    y = labels[test_idx]
    acc = float((pred == y).mean())
    f1s = []
    for c in range(8):
        tp = np.sum((pred == c) & (y == c)); fp = np.sum((pred == c) & (y != c)); fn = np.sum((pred != c) & (y == c))
        f1s.append(2 * tp / max(2 * tp + fp + fn, 1))
    clf.metrics = {"accuracy": acc, "macro_f1": float(np.mean(f1s)), "test_images": int(len(test_idx))}
    clf.training = {
        "command": f"python scripts/train_provisional_default.py {args.data} {args.out} --epochs {args.epochs}",
        "init": "random",
        "data": "pbc96, 90% (stratified, seed 42, byte-identical files kept together)",
        "epochs": args.epochs,
        "wall_time_s": round(wall),
        "hardware": "2-core CPU",
        "note": "provisional default trained with plain Keras fit; to be replaced by a bloodcell Trainer release",
    }
    clf.extra["eval_data"] = f"a held-out 10% of pbc96 ({len(test_idx)} images)"
    clf.save_pretrained(args.out)
    Path(args.out, "test_files.json").write_text(json.dumps([str(files[i].relative_to(args.data)) for i in test_idx]))
    print(json.dumps(clf.metrics), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
