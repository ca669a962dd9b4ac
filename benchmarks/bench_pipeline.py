"""Input-pipeline throughput against the mnv3s training step and image_dataset_from_directory.

Measures on pbc96 (96x96, batch 64), in one process:
  - model: train steps per second of ``build_model("mnv3s")`` (Adam) on batches already in memory,
    i.e. how fast training consumes images when the input costs nothing;
  - bloodcell pipelines: ``make_dataset`` (images decoded once, in memory) and
    ``dataset_from_files`` (decoded and resized while iterating), with presets None/"seed"/"robust",
    and ``make_dataset`` augmenting one batch per call instead of chunks of 32 batches;
  - baselines: ``keras.utils.image_dataset_from_directory`` followed by the same augmentation
    mapped per batch, as Keras' guides write it (``.map(lambda x, y: augment(x, y))``), and the
    same with ``num_parallel_calls=AUTOTUNE`` and ``prefetch``;
  - training fed by each pipeline (``model.fit`` images/s; pipeline and model share the CPUs);
  - the two costs the baseline adds up: image_dataset_from_directory without augmentation
    (decoding) and the augmentation alone on a batch of 64 in memory;
  - the corruption evaluation workload: 1,400 images x 12 corruptions x 5 severities.
The measurements are interleaved over ``--reps`` rounds and the median is kept, because other
processes on a shared machine slow all of them alike. Each is a steady state: pipelines are timed
after ``--warmup`` batches (which drain what they computed ahead while starting: ``make_dataset``
holds one chunk of 2,048 images per CPU in flight, at most four, plus its prefetch buffer; the
warm-up of 200 batches of 64 exceeds that, three times over on two CPUs, and 400 batches are timed), and training over the last two of
three epochs on one iterator.

Usage: python benchmarks/bench_pipeline.py [--data ../shared/data/pbc96] [--batches 400] [--warmup 200] [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, installed or not

import numpy as np  # noqa: E402


def throughput(dataset, batches: int, warmup: int) -> float:
    """Images per second while iterating ``batches`` batches, after ``warmup`` batches.

    The warm-up drains what the pipeline computed ahead while it started (its prefetch buffers
    and the chunks in flight), so that the timed batches are computed while they are waited for.
    """
    it = iter(dataset)
    for _ in range(warmup):
        next(it)
    count = 0
    start = time.perf_counter()
    for _ in range(batches):
        images, _ = next(it)
        count += int(images.shape[0])
    return count / (time.perf_counter() - start)


class augmentation_only:
    """Iterable of ``augmentation`` applied to one in-memory batch again and again."""

    def __init__(self, augmentation, batch):
        self.fn = augmentation.traced(tuple(batch[0].shape[1:]), batch[0].dtype)
        self.batch = batch

    def __iter__(self):
        import tensorflow as tf

        step = 0
        while True:
            step += 1
            yield self.fn(*self.batch, tf.constant([step, 0], tf.int64))


def fit_throughput(model, dataset, steps: int, batch_size: int) -> float:
    """Images per second that ``model.fit`` trains on when fed by ``dataset`` (repeating).

    One ``fit`` of three epochs of ``steps`` steps on one iterator; the median of the last two
    epochs is kept, so that the pipeline's start (filling its buffers) is not counted.
    """
    import keras

    class EpochTimes(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.start)

    times = EpochTimes()
    model.fit(dataset, steps_per_epoch=steps, epochs=3, verbose=0, callbacks=[times], shuffle=False)  # the pipelines shuffle
    return steps * batch_size / statistics.median(times.seconds[1:])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data/pbc96")
    ap.add_argument("--batches", type=int, default=400, help="batches timed per pipeline and round")
    ap.add_argument("--warmup", type=int, default=200, help="batches taken before timing, per pipeline and round")
    ap.add_argument("--reps", type=int, default=3, help="interleaved rounds (median reported)")
    ap.add_argument("--fit-steps", type=int, default=20, help="training steps per timed epoch, per feed and round")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--skip-corruptions", action="store_true")
    ap.add_argument("--out", default="benchmarks/results/pipeline.json")
    args = ap.parse_args()

    import bloodcell  # before TensorFlow: bloodcell imports it without its start-up log lines
    import keras
    import tensorflow as tf

    from bloodcell import CLASS_NAMES
    from bloodcell.augment import build_augmentation
    from bloodcell.corruptions import CORRUPTIONS, corrupt
    from bloodcell.data import load_dataset
    import bloodcell.pipeline
    from bloodcell.pipeline import dataset_from_files, make_dataset

    load_before = os.getloadavg()
    t0 = time.perf_counter()
    data = load_dataset(args.data, image_size=96)
    load_s = time.perf_counter() - t0
    print(f"loaded {len(data.images)} images in {load_s:.1f} s")
    bs = args.batch_size

    model = bloodcell.build_model("mnv3s")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy")
    batch = (
        tf.constant(data.images[:bs].astype(np.float32)),
        tf.one_hot(data.labels[:bs], len(CLASS_NAMES)),
    )

    pipelines = {}
    for preset in (None, "seed", "robust"):
        pipelines[f"make_dataset[{preset}]"] = make_dataset(
            data.images, data.labels, batch_size=bs, augment=preset, seed=42, repeat=True
        )
    # The same pipeline augmenting one batch per call instead of chunks of batches.
    chunk_batches, bloodcell.pipeline._CHUNK_BATCHES = bloodcell.pipeline._CHUNK_BATCHES, 1
    for preset in ("seed", "robust"):
        pipelines[f"make_dataset[{preset}, one batch per call]"] = make_dataset(
            data.images, data.labels, batch_size=bs, augment=preset, seed=42, repeat=True
        )
    bloodcell.pipeline._CHUNK_BATCHES = chunk_batches
    for preset in ("seed", "robust"):
        pipelines[f"dataset_from_files[{preset}]"] = dataset_from_files(
            data.paths, data.labels, image_size=96, batch_size=bs, augment=preset, seed=42, repeat=True
        )
    directory = keras.utils.image_dataset_from_directory(
        args.data, labels="inferred", label_mode="categorical", class_names=list(CLASS_NAMES),
        image_size=(96, 96), batch_size=bs, shuffle=True, seed=42, verbose=False,
    ).repeat()
    # The two costs the baseline adds up: decoding alone, and the augmentation alone (one traced
    # call per batch of 64 already in memory, as the baseline runs it).
    pipelines["image_dataset_from_directory[None]"] = directory
    for preset in ("seed", "robust"):
        pipelines[f"augmentation only[{preset}]"] = augmentation_only(build_augmentation(preset, seed=42), batch)
    for preset in ("seed", "robust"):
        aug = build_augmentation(preset, seed=42)
        pipelines[f"image_dataset_from_directory+map[{preset}]"] = directory.map(lambda x, y, a=aug: a(x, y))
        pipelines[f"image_dataset_from_directory+parallel_map+prefetch[{preset}]"] = directory.map(
            lambda x, y, a=aug: a(x, y), num_parallel_calls=tf.data.AUTOTUNE
        ).prefetch(tf.data.AUTOTUNE)

    # Training fed by a pipeline: both share the CPUs, as in real training.
    feeds = {"fit[in-memory batch]": tf.data.Dataset.from_tensors(batch).repeat()}
    for preset in ("seed", "robust"):
        feeds[f"fit[make_dataset[{preset}]]"] = pipelines[f"make_dataset[{preset}]"]
        feeds[f"fit[image_dataset_from_directory+map[{preset}]]"] = pipelines[f"image_dataset_from_directory+map[{preset}]"]

    runs: dict[str, list[float]] = {k: [] for k in ("model[mnv3s train step]", *pipelines)}
    fits: dict[str, list[float]] = {k: [] for k in feeds}
    for rep in range(args.reps):
        runs["model[mnv3s train step]"].append(fit_throughput(model, feeds["fit[in-memory batch]"], args.fit_steps, bs))
        for name, ds in pipelines.items():
            runs[name].append(throughput(ds, args.batches, args.warmup))
        for name, ds in feeds.items():
            fits[name].append(fit_throughput(model, ds, args.fit_steps, bs))
        print(f"round {rep + 1}/{args.reps}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in {**runs, **fits}.items()))

    med = {k: statistics.median(v) for k, v in runs.items()}
    fit_med = {k: statistics.median(v) for k, v in fits.items()}
    model_ips = med["model[mnv3s train step]"]
    ratios = {}
    for preset in ("seed", "robust"):
        ours = med[f"make_dataset[{preset}]"]
        files = med[f"dataset_from_files[{preset}]"]
        naive = med[f"image_dataset_from_directory+map[{preset}]"]
        tuned = med[f"image_dataset_from_directory+parallel_map+prefetch[{preset}]"]
        ratios[preset] = {
            "augmentation only / image_dataset_from_directory[None]":
                med[f"augmentation only[{preset}]"] / med["image_dataset_from_directory[None]"],
            "make_dataset / model": ours / model_ips,
            "dataset_from_files / model": files / model_ips,
            "make_dataset / image_dataset_from_directory+map": ours / naive,
            "make_dataset, one batch per call / image_dataset_from_directory+map":
                med[f"make_dataset[{preset}, one batch per call]"] / naive,
            "dataset_from_files / image_dataset_from_directory+map": files / naive,
            "make_dataset / image_dataset_from_directory+parallel_map+prefetch": ours / tuned,
        }

    corruption = None
    if not args.skip_corruptions:
        rng = np.random.default_rng(0)
        sample = data.images[rng.choice(len(data.images), 1400, replace=False)]
        corrupt(sample[:8], "jpeg", 1)
        start = time.perf_counter()
        for name in CORRUPTIONS:
            for severity in range(1, 6):
                corrupt(sample, name, severity, seed=0)
        corruption = {"images": 1400, "corruptions": len(CORRUPTIONS), "severities": 5,
                      "seconds": time.perf_counter() - start}

    result = {
        "data": str(args.data),
        "images": int(len(data.images)),
        "image_size": 96,
        "batch_size": bs,
        "load_dataset_seconds": load_s,
        "images_per_second_median": med,
        "images_per_second_runs": runs,
        "training_images_per_second_median": fit_med,
        "training_images_per_second_runs": fits,
        "ratios": ratios,
        "requirements": {
            f"{preset}: make_dataset >= 3x model": ratios[preset]["make_dataset / model"] >= 3
            for preset in ("seed", "robust")
        } | {
            f"{preset}: make_dataset >= 2x image_dataset_from_directory+map":
                ratios[preset]["make_dataset / image_dataset_from_directory+map"] >= 2
            for preset in ("seed", "robust")
        },
        "corruption_evaluation": corruption,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
    }
    print(f"\nmnv3s train step: {model_ips:.0f} images/s")
    for name, ips in med.items():
        print(f"{name:62s} {ips:8.0f} images/s")
    for name, ips in fit_med.items():
        print(f"{name:62s} {ips:8.0f} images/s trained")
    for preset, r in ratios.items():
        for k, v in r.items():
            print(f"{preset:7s} {k:70s} {v:5.2f}x")
    if corruption:
        print(f"corruption evaluation (1400 x 12 x 5): {corruption['seconds']:.1f} s")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
