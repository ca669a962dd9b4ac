"""Average the weights of bloodcell models fine-tuned from one parent: a "model soup" (Wortsman et
al., ICML 2022), as timm's ``avg_checkpoints.py`` averages checkpoints.

    python scripts/average_weights.py OUT SOURCE SOURCE... [--data ../shared/data/pbc96] [--name NAME]

The sources (zoo names, folders or hf:// addresses) must share architecture, build settings and
classes; every weight, batch-norm statistics included, is the mean of theirs. Models fine-tuned
from one parent stay in one basin of the loss, so their average is a model of its own, often better
than each of them (the soup); models trained apart are not (check it before use).

With ``--data``, the average is calibrated as ``Trainer.fit`` calibrates a model it trained
(temperature, out-of-distribution check, review threshold): on the validation part of
``split(DATA, SPLIT_FRACTIONS, seed=SPLIT_SEED)`` (bloodcell.data), the split the zoo's models were trained on, with training
images as the check's reference. Without it the folder has no calibration (raw probabilities).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import bloodcell
from bloodcell.folder import parent_record
from bloodcell.models import average_models


def average(sources: list[str]):
    """The Classifier whose weights are the mean of ``sources``' (a clean error when they differ in build)."""
    models = [bloodcell.load_classifier(s) for s in sources]
    try:
        soup = average_models([clf.model for clf in models], names=sources)
    except bloodcell.ConfigError as exc:
        raise SystemExit(str(exc)) from None
    models[0].model.set_weights(soup.get_weights())
    return models[0], models


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("sources", nargs="+")
    ap.add_argument("--data", type=Path, default=None, help="pbc96: calibrate on its validation split")
    ap.add_argument("--name", default=None)
    args = ap.parse_args(argv)
    if len(args.sources) < 2:
        raise SystemExit(f"got {len(args.sources)} source; give at least two models to average")
    soup, models = average(args.sources)
    soup.extra.pop("calibration", None)
    soup.metrics = {}
    parents = {(clf.training.get("init_from") or {}).get("source") for clf in models}
    soup.training = {
        "init": f"the weight average of {len(models)} bloodcell models",
        "averaged_from": [parent_record(s, clf.class_names, clf.training) for s, clf in zip(args.sources, models)],
        **({"init_from": models[-1].training["init_from"]} if len(parents) == 1 and None not in parents else {}),
        "hardware": "none (weights averaged, no training)",
        "command": "python scripts/average_weights.py OUT " + " ".join(args.sources)
                   + (f" --data {args.data}" if args.data else ""),
        "epochs_run": {"averaged": 0},
        "wall_time_s": 0,
    }
    if args.data:
        from bloodcell.data import SPLIT_FRACTIONS, SPLIT_SEED, load_dataset, split
        from bloodcell.calibration import calibrate
        from bloodcell.training.epochs import reference_images

        train, val, _ = split(load_dataset(args.data, image_size=soup.input_size), SPLIT_FRACTIONS, seed=SPLIT_SEED)
        calibrate(soup, val, verbose=0, **reference_images(train, SPLIT_SEED),
                  description=f"the validation split of {args.data.name} ({len(val)} images)")
    soup.name = args.name or soup.name
    print(soup.save_pretrained(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
