"""Turn a run of scripts/gpu_train.py into a bloodcell model folder (config.json, weights, card).

    python scripts/gpu_import.py RUN.weights.h5 RUN.json OUT [--init-source mnv3s.pbc96]

RUN.json is the log gpu_train.py wrote beside the weights: its build settings and classes rebuild
the model; its settings, device, images seen and time go into the folder's training record, which
the card renders. ``--init-source`` names the bloodcell model the run started from (its
``--init``); that model's own record is kept as ``init_from``, as ``load_classifier(source,
class_names=...)`` does.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

import bloodcell
from bloodcell.folder import parent_record
from bloodcell.models import ModelSpec, build_from_spec


def describe_devices(names: list[str]) -> str:
    """JAX device names as a card says them: ["NVIDIA H200 (cuda:0)"] -> "an NVIDIA H200 GPU"; names of
    other devices stay as they are."""
    if not names:
        return "a GPU"
    gpu = re.compile(r" \((?:cuda|rocm|gpu):\d+\)$")
    if not all(gpu.search(name) for name in names):
        return ", ".join(names)
    kinds = Counter(gpu.sub("", name) for name in names)
    return ", ".join(f"an {kind} GPU" if n == 1 else f"{n} {kind} GPUs" for kind, n in kinds.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path)
    parser.add_argument("log", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--init-source", default=None, help="the bloodcell model the run's --init weights came from")
    parser.add_argument("--name", default=None)
    parser.add_argument("--hardware", default=None, help="what the run ran on (default: the devices in RUN.json)")
    args = parser.parse_args()
    log = json.loads(args.log.read_text())
    settings = log["settings"]
    model = build_from_spec(ModelSpec.from_config(log["architecture"], log["build"], str(args.log)),
                            class_names=log["class_names"])
    model.load_weights(args.weights)
    flags = " ".join(f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
                     for k, v in settings.items() if k not in ("data", "out", "name", "init") and v is not None)
    training = {
        "init": "random",
        "hardware": args.hardware or describe_devices(log.get("devices") or []),
        "distribution": {"backend": log["backend"], "processes": 1, "devices": 1},
        "recipe": (f"scripts/gpu_train.py: {len(log['epochs'])} epochs of {settings['steps_per_epoch']} steps "
                   f"({log['images_seen']} images, batch {settings['batch_size']}) in {log['train_seconds']:.0f} s, "
                   f"{settings['optimizer']} at {settings['lr']} with a cosine over the time, label smoothing "
                   f"{settings['label_smoothing']}, class weights; augmentations of the domain and robust presets "
                   "in NumPy/OpenCV (no RandAugment), on the WebP pack of the default's train split"),
        "command": f"python scripts/gpu_train.py --data .gpu/pbc96.npz --name {log['name']} {flags}",
        "wall_time_s": log["train_seconds"],
        "images_seen": log["images_seen"],
        "epochs_run": {"full": len(log["epochs"])},
        "validation_accuracy": log["val_accuracy"],
        "data": "pbc96: the default's 10939 training images (validation: its 1369), as WebP quality 90",
    }
    if args.init_source:
        parent = bloodcell.load_classifier(args.init_source)
        training["init"] = f"bloodcell model {parent.name or args.init_source}"
        training["init_from"] = parent_record(parent.name or args.init_source, parent.class_names, parent.training)
    clf = bloodcell.Classifier(model, name=args.name or f"mnv3s-gpu-{log['name']}", training=training)
    print(clf.save_pretrained(args.out))


if __name__ == "__main__":
    main()
