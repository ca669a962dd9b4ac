"""Classify blood-cell images with a pretrained model.

    python examples/classify.py                      # the 16 sample images, bundled default model
    python examples/classify.py my_cells/ --model hf://owner/repo

Nothing here trains, so ``--tiny`` changes nothing: the sample images are already small.
"""

from __future__ import annotations

from _common import SAMPLE_IMAGES, parser, run


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("paths", nargs="*", default=[str(SAMPLE_IMAGES)], help="image files or folders")
    p.add_argument("--model", default=None, help="zoo name, folder or hf://owner/repo[@revision] (default: bundled)")
    args = p.parse_args()

    import numpy as np

    import bloodcell
    from bloodcell.imageio import find_image_files, load_images

    clf = bloodcell.load_classifier(args.model)
    print(clf)

    # 1. File paths in, class names out.
    files = find_image_files(args.paths)
    labels = clf.predict(files)
    for path, label in zip(files, labels):
        print(f"{path.name:<50} {label}")

    # 2. Probabilities of an array of images (any size: resized like in training).
    images = load_images(files, clf.input_size)  # uint8 (N, S, S, 3), S = clf.input_size
    proba = clf.predict_proba(images)
    print(f"\nprobabilities: shape {proba.shape}, rows sum to {proba.sum(axis=1).min():.3f}..{proba.sum(axis=1).max():.3f}")
    top3 = np.argsort(-proba[0])[:3]
    print(f"top 3 for {files[0].name}: " + ", ".join(f"{clf.class_names[i]} {proba[0, i]:.3f}" for i in top3))

    # 3. Test-time augmentation: average over the 8 flips and 90-degree rotations.
    tta_labels = clf.predict(images, tta=True)
    changed = sum(a != b for a, b in zip(labels, tta_labels))
    print(f"with tta=True: {changed} of {len(files)} predictions change")

    # 4. Should a person look? `predict_checked` adds what `bloodcell predict` marks: the outlier check
    #    (for the bundled default, from its own features in the same forward pass) and the review flag.
    size = images.shape[1]
    photo = np.tile(np.linspace(0, 255, size, dtype=np.uint8)[None, :, None], (size, 1, 3))  # a grey ramp
    checked = clf.predict_checked(np.concatenate([images[:3], photo[None]]))
    print(f"outlier flags for 3 cells and a grey ramp: {checked.outlier.tolist()}")
    print(f"review flags (below {clf.review_below:.2f}, or an outlier): {checked.review.tolist()}")

if __name__ == "__main__":
    run(main)
