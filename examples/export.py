"""Export a classifier to ONNX, LiteRT (.tflite) and a TensorFlow SavedModel, and run each export.

    python examples/export.py --out-dir exports                 # the bundled default model
    python examples/export.py --model runs/my-mnv3s --formats onnx
    python examples/export.py --tiny                            # a small untrained microcell, 32x32

Each export takes uint8 images (N, S, S, 3), RGB 0..255, already resized to S x S, as input
``image`` and returns softmax probabilities as ``output_0``. This script runs every export with
its own runtime (onnxruntime, the LiteRT interpreter, TensorFlow) on the sample images and
compares the probabilities with Keras'. Needs ``pip install "bloodcell[export]"``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from _common import SAMPLE_IMAGES, parser, run, without_litert_info


def run_onnx(path: Path, images):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"image": images})[0]


def run_litert(path: Path, images):
    from ai_edge_litert.interpreter import Interpreter

    with without_litert_info():
        interpreter = Interpreter(model_path=str(path))
        runner = interpreter.get_signature_runner("serving_default")
        return runner(image=images)["output_0"]


def run_saved_model(path: Path, images):
    import tensorflow as tf

    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    return serve(image=tf.constant(images))["output_0"].numpy()


RUNTIMES = {"onnx": run_onnx, "litert": run_litert, "saved_model": run_saved_model}


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="zoo name, folder or hf://owner/repo (default: bundled)")
    p.add_argument("--formats", nargs="+", choices=tuple(RUNTIMES), default=list(RUNTIMES))
    p.add_argument("--out-dir", default=None, help="where the exports go (default: a temporary folder)")
    args = p.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="bloodcell-export-")
    out_dir = Path(args.out_dir or tmp.name)

    import numpy as np

    import bloodcell
    from bloodcell.export import metadata_path
    from bloodcell.imageio import load_images

    if args.tiny:
        clf = bloodcell.Classifier(bloodcell.build_model("microcell", input_size=32), name="tiny-microcell")
    else:
        clf = bloodcell.load_classifier(args.model)
    images = load_images(sorted(SAMPLE_IMAGES.glob("*.jpg")), clf.input_size)  # uint8 (16, S, S, 3)
    reference = clf.predict_proba(images)

    for fmt in args.formats:
        suffix = {"onnx": ".onnx", "litert": ".tflite", "saved_model": ""}[fmt]
        path = clf.export(out_dir / f"{clf.name}{suffix}", format=fmt)
        meta = json.loads(metadata_path(path, fmt).read_text())
        proba = RUNTIMES[fmt](path, images)
        diff = float(np.abs(proba - reference).max())
        same = int((proba.argmax(1) == reference.argmax(1)).sum())
        print(f"{fmt:<12} {path.name:<28} input {meta['input']['shape']} {meta['input']['dtype']}: "
              f"max |p - p_keras| = {diff:.1e}, same class for {same}/{len(images)} images")
    print(f"metadata beside each export, e.g. class names: {meta['class_names'][:3]}...")
    tmp.cleanup()


if __name__ == "__main__":
    run(main)
