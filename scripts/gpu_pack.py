"""Pack the training and validation images of the default's split for scripts/gpu_train.py.

A device machine receives at most 64 MiB with the working tree, and pbc96's JPEG files take 91 MB,
so the images travel re-encoded as WebP (quality 90, about 2.5 kB an image). The split is the
default's own: ``split(load_dataset(pbc96), SPLIT_FRACTIONS, seed=SPLIT_SEED)``; its test part is checked
against the default's ``test_files.json`` and never packed.

    python scripts/gpu_pack.py ../shared/data/pbc96 .gpu/pbc96.npz
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from bloodcell.data import SPLIT_FRACTIONS, SPLIT_SEED, load_dataset, split
from bloodcell.zoo import bundled_path


def encode(images: np.ndarray, quality: int) -> tuple[np.ndarray, np.ndarray]:
    blobs = []
    for image in images:
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, "WEBP", quality=quality, method=6)
        blobs.append(np.frombuffer(buf.getvalue(), np.uint8))
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    return np.concatenate(blobs), offsets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--quality", type=int, default=90)
    args = parser.parse_args()
    dataset = load_dataset(args.data, image_size=96)
    train, val, test = split(dataset, SPLIT_FRACTIONS, seed=SPLIT_SEED)
    root = args.data.resolve()
    test_files = sorted(str(Path(p).resolve().relative_to(root)) for p in test.paths)
    expected = sorted(json.loads((bundled_path("mnv3s.pbc96") / "test_files.json").read_text()))
    if test_files != expected:
        raise SystemExit("the split's test part differs from the default's test_files.json")
    arrays = {"class_names": np.array(dataset.class_names)}
    for name, part in (("train", train), ("val", val)):
        blob, offsets = encode(part.images, args.quality)
        arrays[f"{name}_blob"], arrays[f"{name}_offsets"], arrays[f"{name}_labels"] = blob, offsets, part.labels
        print(f"{name}: {len(part)} images, {blob.nbytes / 1e6:.1f} MB")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, **arrays)


if __name__ == "__main__":
    main()
