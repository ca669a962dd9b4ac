"""Train a candidate default (mnv3s at 128 px) on a GPU machine that has no TensorFlow.

bloodcell's own Trainer feeds its augmentation through tf.data; the device machines this project
is sometimes lent carry JAX but not TensorFlow. This script trains the same ClassifierModel
(built by bloodcell.models, Keras on JAX) for a fixed wall-clock time with the augmentations of
the ``domain`` and ``robust`` presets written again in NumPy/OpenCV, run in worker processes:
flips, rotation, translation, zoom and magnification (RandomAffine), stain strength and balance in
optical density (RandomStain), exposure/contrast/saturation/hue (RandomColorShift), the twelve
corruptions of bloodcell.corruptions at severities 1..5 (RandomCorruptions) and CutMix.
RandAugment is left out. The learning rate follows a cosine over the time budget (with warm-up),
so a run ends at its schedule's end whatever the machine's speed.

Data: the WebP pack written by scripts/gpu_pack.py (train and validation parts of the default's
split). Output: ``NAME.weights.h5`` (the ClassifierModel's weights, loadable into
``build_model("mnv3s", input_size=128, normalization="stain", ...)``) and ``NAME.json`` (settings,
device, steps, images seen, validation accuracy). scripts/gpu_import.py turns the two into a model
folder; ``bloodcell train pbc96 --init FOLDER`` can then polish it on the original images, and
benchmarks/bench_candidates.py measures it. Needs numpy, pillow, opencv-python-headless and Keras
with JAX (what the project's GPU machines carry); TensorFlow is not needed.

    python scripts/gpu_train.py --data .gpu/pbc96.npz --out OUT --name scratch --seconds 360
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import math
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from bloodcell._colour import RGB_TO_YIQ, YIQ_TO_RGB  # noqa: E402  (TensorFlow-free modules)
from bloodcell._severity import REFERENCE_SIZE, SEVERITY_PARAMS, STAIN_COLOURS, param  # noqa: E402
from bloodcell.imageio import resize_image  # noqa: E402

SIZE = 128
CORRUPTIONS = tuple(SEVERITY_PARAMS)


# ----------------------------------------------------------------------------- one image, float32 0..255


def affine(img, rng, a):
    fx = -1.0 if rng.random() < 0.5 else 1.0
    fy = -1.0 if rng.random() < 0.5 else 1.0
    angle = (2 * rng.random() - 1) * a.rotation * 2 * math.pi
    scale = 1 + (2 * rng.random() - 1) * a.zoom
    if rng.random() < a.magnify_rate:
        scale = math.exp(rng.random() * math.log(a.magnify))
    tx, ty = ((2 * rng.random(2) - 1) * a.translation * SIZE).tolist()
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    a00, a01, a10, a11 = cos * fx, -sin * fy, sin * fx, cos * fy
    c = (SIZE - 1) / 2
    m = np.array([[a00, a01, c - a00 * c - a01 * c + tx], [a10, a11, c - a10 * c - a11 * c + ty]], np.float32)
    return cv2.warpAffine(img, m, (SIZE, SIZE), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT_101)


def stain(img, rng, a):
    gain = math.exp(math.log(a.stain[0]) + (math.log(a.stain[1]) - math.log(a.stain[0])) * rng.random())
    channel = np.exp((2 * rng.random(3) - 1) * math.log1p(a.stain_channel))
    off = (2 * rng.random(6) - 1) * a.stain_mix
    m = np.diag(gain * channel)
    m[0, 1], m[0, 2], m[1, 0], m[1, 2], m[2, 0], m[2, 1] = off
    od = -np.log((img + 1.0) / 256.0)
    return np.clip(256.0 * np.exp(-(od @ m.T.astype(np.float32))) - 1.0, 0, 255)


def colour(img, gain=1.0, contrast=1.0, saturation=1.0, hue=0.0):
    angle = 2 * math.pi * hue
    cs, sn = saturation * math.cos(angle), saturation * math.sin(angle)
    chroma = np.array([[1, 0, 0], [0, cs, -sn], [0, sn, cs]], np.float32)
    m = (YIQ_TO_RGB @ chroma @ RGB_TO_YIQ) * (gain * contrast)
    mean = img.mean() * gain
    return img @ m.T + (1.0 - contrast) * mean


def colour_shift(img, rng, a):
    sev = a.shift_severity * rng.random(3)
    up = rng.random(3) < 0.5
    gain = param("brightness_up" if up[0] else "brightness_down", sev[0])
    contrast = param("contrast_up" if up[1] else "contrast_down", sev[1])
    faded = param("saturation", sev[2])
    return np.clip(colour(img, gain, contrast, 1 / faded if up[2] else faded, (2 * rng.random() - 1) * a.hue), 0, 255)


def disk_kernel(radius):
    r = max(radius, 1e-3)
    ext = int(math.ceil(r)) + 1
    yy, xx = np.mgrid[-ext:ext + 1, -ext:ext + 1].astype(np.float32)
    k = np.clip(r + 0.5 - np.sqrt(xx * xx + yy * yy), 0, 1)
    return k / k.sum()


def line_kernel(length, angle):
    ext = int(math.ceil(length / 2)) + 1
    k = np.zeros((2 * ext + 1, 2 * ext + 1), np.float32)
    for t in np.linspace(-length / 2, length / 2, max(3, int(length * 4))):
        x, y = ext + t * math.cos(angle), ext + t * math.sin(angle)
        x0, y0 = int(math.floor(x)), int(math.floor(y))
        fx, fy = x - x0, y - y0
        for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
            k[y0 + dy, x0 + dx] += w
    return k / k.sum()


def corrupt(img, name, s, rng):
    px = SIZE / REFERENCE_SIZE
    if name == "defocus_blur":
        return cv2.filter2D(img, -1, disk_kernel(param(name, s) * px), borderType=cv2.BORDER_REFLECT_101)
    if name == "motion_blur":
        return cv2.filter2D(img, -1, line_kernel(param(name, s) * px, rng.random() * math.pi),
                            borderType=cv2.BORDER_REFLECT_101)
    if name == "jpeg":
        ok, buf = cv2.imencode(".jpg", np.clip(img, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, int(round(param(name, s)))])
        return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED).astype(np.float32)
    if name == "pixelate":
        side = max(1, int(round(SIZE * param(name, s))))
        small = cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (SIZE, SIZE), interpolation=cv2.INTER_NEAREST)
    if name == "gaussian_noise":
        return img + rng.normal(0, param(name, s) * 255, img.shape).astype(np.float32)
    if name.startswith("brightness"):
        return colour(img, gain=param(name, s))
    if name.startswith("contrast"):
        return colour(img, contrast=param(name, s))
    if name == "saturation":
        return colour(img, saturation=param(name, s))
    if name == "stain_blots":
        coverage, opacity = param(name, s, 0), param(name, s, 1)
        grid = 24
        field = cv2.resize(rng.normal(size=(5, 5)).astype(np.float32), (grid, grid), interpolation=cv2.INTER_CUBIC)
        fine = cv2.resize(rng.normal(size=(12, 12)).astype(np.float32), (grid, grid), interpolation=cv2.INTER_LINEAR)
        field = field + 0.4 * fine
        k = min(int(round(coverage * grid * grid)), grid * grid - 1)
        threshold = np.sort(field.ravel())[::-1][k]
        mask = 1 / (1 + np.exp(-(field - threshold) / 0.08)) * (0.75 + 0.25 * np.tanh(fine))
        mask = cv2.resize(mask, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)[..., None]
        tint = np.clip(STAIN_COLOURS[rng.integers(len(STAIN_COLOURS))] + rng.uniform(-0.05, 0.05, 3), 0, 1)
        return img * (1 - opacity * mask * (1 - tint))
    if name == "bubbles":
        count, radius = int(math.floor(param(name, s, 0) + 0.5)), param(name, s, 1)
        yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
        white, dark = np.zeros((SIZE, SIZE), np.float32), np.zeros((SIZE, SIZE), np.float32)
        for _ in range(count):
            cy, cx = rng.uniform(0.1, 0.9, 2) * SIZE
            r = max(radius * SIZE * rng.uniform(0.8, 1.2), 1e-3)
            d = np.sqrt(((yy - cy) / r) ** 2 + ((xx - cx) / r) ** 2)
            halo = 0.55 * np.exp(-(((d - 0.88) / 0.07) ** 2)) + 0.15 * (d < 1.0)
            rim = 0.45 * np.exp(-(((d - 1.02) / 0.035) ** 2))
            white = 1 - (1 - white) * (1 - halo)
            dark = 1 - (1 - dark) * (1 - rim)
        return img * ((1 - dark) * (1 - white))[..., None] + 255.0 * white[..., None]
    raise ValueError(name)


def augment(img, rng, a):
    x = affine(img, rng, a).astype(np.float32)
    if rng.random() < a.stain_rate:
        x = stain(x, rng, a)
    if rng.random() < a.blur_rate:
        x = corrupt(x, ("defocus_blur", "motion_blur")[rng.integers(2)], 5 * rng.random(), rng)
    if rng.random() < a.shift_rate:
        x = colour_shift(x, rng, a)
    if rng.random() < a.corrupt_rate:
        x = corrupt(x, CORRUPTIONS[rng.integers(len(CORRUPTIONS))], 1 + 4 * rng.random(), rng)
    return np.clip(x, 0, 255)


# ----------------------------------------------------------------------------- batches in worker processes

_DATA: dict = {}


def make_batch(seed: int, index: int):
    images, labels, weights, a = _DATA["images"], _DATA["labels"], _DATA["weights"], _DATA["args"]
    rng = np.random.default_rng((seed, index))
    idx = rng.integers(0, len(images), a.batch_size)
    x = np.stack([augment(images[i], rng, a) for i in idx])
    y = np.eye(_DATA["classes"], dtype=np.float32)[labels[idx]]
    y = y * (1 - a.label_smoothing) + a.label_smoothing / _DATA["classes"]
    w = weights[labels[idx]].astype(np.float32)
    for j in np.flatnonzero(rng.random(len(idx)) < a.cutmix_rate):  # a box of another image of the batch
        k = rng.integers(len(idx))
        lam = rng.random()
        h = int(round(SIZE * math.sqrt(1 - lam)))
        y0, x0 = rng.integers(0, SIZE - h + 1, 2)
        x[j, y0:y0 + h, x0:x0 + h] = x[k, y0:y0 + h, x0:x0 + h]
        share = h * h / SIZE**2
        y[j] = (1 - share) * y[j] + share * y[k]
    return np.round(x).astype(np.uint8), y, w


def batches(pool, seed: int, prefetch: int):
    pending, index = collections.deque(), 0
    while True:
        while len(pending) < prefetch:
            pending.append(pool.apply_async(make_batch, (seed, index)))
            index += 1
        yield pending.popleft().get()


def device_names() -> list[str]:
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return [f"{d.device_kind} ({d})" for d in jax.devices()]
    if keras.backend.backend() == "torch":
        import torch

        return [torch.cuda.get_device_name(0)] if torch.cuda.is_available() else ["cpu"]
    return [keras.backend.backend()]


def decode(blob, offsets):
    out = []
    for i in range(len(offsets) - 1):
        im = Image.open(io.BytesIO(blob[offsets[i]:offsets[i + 1]].tobytes())).convert("RGB")
        out.append(resize_image(np.asarray(im), SIZE))
    return np.stack(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--init", default=None, help="a .weights.h5 of the same model to start from (default: random)")
    p.add_argument("--seconds", type=float, default=360.0, help="training time; the schedule spans it")
    p.add_argument("--optimizer", default="adamw", choices=("adamw", "lion"))
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--warmup", type=float, default=0.05, help="share of the time spent warming up")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps-per-epoch", type=int, default=40)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--rotation", type=float, default=0.5)
    p.add_argument("--translation", type=float, default=0.1)
    p.add_argument("--zoom", type=float, default=0.1)
    p.add_argument("--magnify", type=float, default=2.0)
    p.add_argument("--magnify-rate", type=float, default=0.25)
    p.add_argument("--stain", type=float, nargs=2, default=(0.5, 1.6))
    p.add_argument("--stain-channel", type=float, default=0.25)
    p.add_argument("--stain-mix", type=float, default=0.1)
    p.add_argument("--stain-rate", type=float, default=0.5)
    p.add_argument("--blur-rate", type=float, default=0.15)
    p.add_argument("--shift-severity", type=float, default=3.0)
    p.add_argument("--hue", type=float, default=0.03)
    p.add_argument("--shift-rate", type=float, default=0.5)
    p.add_argument("--corrupt-rate", type=float, default=0.35)
    p.add_argument("--cutmix-rate", type=float, default=0.5)
    a = p.parse_args()

    pack = np.load(a.data)
    t0 = time.time()
    train_x, val_x = decode(pack["train_blob"], pack["train_offsets"]), decode(pack["val_blob"], pack["val_offsets"])
    train_y, val_y = pack["train_labels"], pack["val_labels"]
    class_names = [str(c) for c in pack["class_names"]]
    counts = np.bincount(train_y, minlength=len(class_names))
    _DATA.update(images=train_x, labels=train_y, weights=len(train_y) / (len(class_names) * counts),
                 classes=len(class_names), args=a)
    print(f"{a.name}: decoded {len(train_x)} + {len(val_x)} images in {time.time() - t0:.0f} s", flush=True)
    pool = mp.get_context("fork").Pool(a.workers)  # forked before JAX starts its threads

    import keras

    from bloodcell.models import build_model

    keras.utils.set_random_seed(a.seed)
    model = build_model("mnv3s", class_names=class_names, input_size=SIZE, dropout=0.2, bn_momentum=0.9,
                        normalization="stain")
    if a.init:
        model.load_weights(a.init)
    opt_cls = keras.optimizers.AdamW if a.optimizer == "adamw" else keras.optimizers.Lion
    model.compile(optimizer=opt_cls(learning_rate=a.lr, weight_decay=a.weight_decay),
                  loss=keras.losses.CategoricalCrossentropy(), metrics=["categorical_accuracy"])
    a.out.mkdir(parents=True, exist_ok=True)
    log = {"name": a.name, "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
           "backend": keras.backend.backend(), "devices": device_names(), "architecture": model.architecture,
           "build": model.spec.to_config(), "class_names": class_names, "epochs": []}
    start = {}

    def lr_at(frac):
        if frac < a.warmup:
            return a.lr * max(frac / a.warmup, 0.01)
        return a.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, (frac - a.warmup) / (1 - a.warmup))))

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            start.setdefault("t", time.time())
            self.model.optimizer.learning_rate = lr_at((time.time() - start["t"]) / a.seconds)

        def on_epoch_end(self, epoch, logs=None):
            elapsed = time.time() - start["t"]
            log["epochs"].append({"epoch": epoch, "elapsed": round(elapsed, 1), **{k: float(v) for k, v in (logs or {}).items()},
                                  "lr": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))})
            if epoch % 10 == 0:
                print(f"{a.name}: epoch {epoch} {elapsed:.0f} s {log['epochs'][-1]}", flush=True)
            if epoch % 25 == 24:
                self.model.save_weights(a.out / f"{a.name}.weights.h5")
            if elapsed >= a.seconds:
                self.model.stop_training = True

    model.fit(batches(pool, a.seed, prefetch=2 * a.workers), steps_per_epoch=a.steps_per_epoch,
              epochs=100000, callbacks=[Clock()], verbose=0)
    pool.terminate()
    model.save_weights(a.out / f"{a.name}.weights.h5")
    probs = model.predict(val_x, batch_size=512, verbose=0)
    log["val_accuracy"] = float((probs.argmax(1) == val_y).mean())
    log["images_seen"] = len(log["epochs"]) * a.steps_per_epoch * a.batch_size
    log["train_seconds"] = round(time.time() - start["t"], 1)
    (a.out / f"{a.name}.json").write_text(json.dumps(log, indent=1))
    print(f"{a.name}: val accuracy {log['val_accuracy']:.4f} after {log['images_seen']} images, "
          f"{len(log['epochs'])} epochs in {log['train_seconds']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
