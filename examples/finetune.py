"""Train (fine-tune) a classifier on your own labelled data with the two-phase Trainer.

    python examples/finetune.py my_cells/ --out runs/my-model          # from the pretrained default
    python examples/finetune.py cells.npz --init random --model effnetb0 --loss focal
    python examples/finetune.py --tiny             # the default on 128 sample images, 1 epoch a phase

DATA is a folder with one subfolder per class, or an .npz with ``images`` (N, H, W, 3) uint8 and
``labels`` (N,) class ids. In tiny mode the 16 shipped sample cells in 8 views each (shifted crops, flipped
or turned) are written to an .npz first, so the .npz path is exercised too.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from _common import data_argument, parser, run, tiny_npz


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("data", nargs="?", help="class-folder tree or .npz")
    p.add_argument("--model", default=None, help="architecture for --init random or imagenet (see `bloodcell list`)")
    p.add_argument("--init", default="default",
                   help="default (the pretrained default model), another bloodcell model (zoo name, folder or "
                   "hf://...), imagenet or random")
    p.add_argument("--loss", choices=("crossentropy", "focal"), default="crossentropy")
    p.add_argument("--no-class-weights", action="store_true")
    p.add_argument("--augment", choices=("seed", "robust", "domain", "none"), default="seed",
                   help="augmentation preset (bloodcell.augment.PRESETS; domain: the stain, scale and blur shifts "
                   "of other labs)")
    p.add_argument("--head-epochs", type=int, default=30)
    p.add_argument("--finetune-epochs", type=int, default=10)
    p.add_argument("--input-size", type=int, default=None, help="default: the --init model's, else 96")
    p.add_argument("--out", default="runs/finetuned", help="folder for the trained model")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run (same --out)")
    args = p.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="bloodcell-finetune-")
    args.data = data_argument(p, args.data, args.tiny, lambda: tiny_npz(Path(tmp.name)))
    if args.tiny:
        args.head_epochs, args.finetune_epochs = 1, 1
        args.out = str(Path(tmp.name) / "finetuned")
    if args.init in ("random", "imagenet") and not args.model:
        p.error(f"--init {args.init} needs --model ARCH")
    if args.init not in ("random", "imagenet") and args.model:
        p.error(f"--model {args.model}: the architecture is the --init model's ({args.init}); drop --model, or "
                "add --init random or --init imagenet to train that architecture from scratch")

    import bloodcell

    parent = None if args.init in ("random", "imagenet") else bloodcell.load_classifier(
        None if args.init == "default" else args.init)
    args.input_size = args.input_size or (parent.input_size if parent else 96)
    data = bloodcell.load_dataset(args.data, image_size=args.input_size).present_classes()
    print(f"{len(data)} images: {data.class_counts()}")
    # Stratified, and every duplicate group on one side: no image leaks into the test set.
    train, val, test = bloodcell.split(data, (0.8, 0.1, 0.1), seed=42)
    print(f"split: {len(train)} train, {len(val)} validation, {len(test)} test")

    out = Path(args.out)
    trainer = bloodcell.Trainer(
        None if parent else args.model,     # implied by a bloodcell model to start from
        weights=parent or ("imagenet" if args.init == "imagenet" else None),  # other classes: a new head
        input_size=args.input_size,
        loss=args.loss,                      # "focal" takes the class weights as per-class alpha
        class_weights=not args.no_class_weights,
        optimizer="lion",
        head_epochs=args.head_epochs,        # phase 1: the head alone ("head", backbone frozen) or all ("full")
        finetune_epochs=args.finetune_epochs,  # phase 2: top backbone layers unfrozen, lower rate
        patience=(10, 3),
        augment=None if args.augment == "none" else args.augment,
        batch_size=32 if args.tiny else 64,
        workdir=out.with_name(out.name + ".work"),  # checkpoints each epoch, history.csv, history.png
        seed=42,
    )
    history = trainer.fit(train, val, resume=args.resume)
    for row in history:
        print(f"{row['phase']:>8} epoch {row['epoch'] + 1}: loss {row['loss']:.3f}, val_loss {row['val_loss']:.3f}, "
              f"val_accuracy {row['val_accuracy']:.3f}, {row['trainable_weights']} trainable tensors")

    clf = trainer.classifier
    report = bloodcell.evaluate(clf, test)
    print(f"held-out test: accuracy {report.accuracy:.3f}, macro F1 {report.macro_f1:.3f} ({report.n} images)")
    clf.name = out.name
    # From a bloodcell model, on data like its own: the test split may hold images it trained on.
    seen, shared = ((0, 0) if parent is None else bloodcell.zoo.images_it_may_have_trained_on(
        None if args.init == "default" else args.init, data, args.data, test))
    if seen:
        print(f"warning: {seen} of the {len(test)} test images are not among the {shared} images of DATA that "
              f"--init {args.init} held out from its training: it may have trained on them, so this figure may "
              "overstate; it is not recorded in the model card")
    else:
        clf.metrics = {"accuracy": report.accuracy, "macro_f1": report.macro_f1, "test_images": report.n}
    clf.save_pretrained(out)
    print(f"saved {sorted(p.name for p in out.iterdir())} to {'<tmp>/' + out.name if args.tiny else out}")
    again = bloodcell.load_classifier(out)
    print(f"reloaded: {again}")
    tmp.cleanup()


if __name__ == "__main__":
    run(main)
