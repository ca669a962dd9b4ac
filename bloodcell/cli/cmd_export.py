"""``bloodcell export``: write a classifier as ONNX, LiteRT (.tflite) or a TensorFlow SavedModel."""

from __future__ import annotations


from .._choices import EXPORT_FORMATS

FORMAT_CHOICES = tuple(EXPORT_FORMATS)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a classifier to ONNX, LiteRT or SavedModel",
        description=(
            "Export a classifier for inference without bloodcell. The exported model takes uint8 "
            "images (N, S, S, 3), RGB 0..255, as input 'image' and returns softmax probabilities as "
            "'output_0'; class names and preprocessing are written to a JSON file beside it (inside the "
            "folder, as bloodcell.json, for saved_model)."
        ),
    )
    p.add_argument("source", nargs="?", default=None, metavar="SOURCE",
                   help="zoo name, local folder or hf://owner/repo[@revision] (default: the bundled model)")
    p.add_argument("--format", required=True, choices=FORMAT_CHOICES,
                   help="onnx: a .onnx file; litert: a .tflite file; saved_model: a TensorFlow SavedModel folder")
    p.add_argument("--out", default=None, metavar="PATH",
                   help="output file (.onnx / .tflite) or folder (saved_model); must not exist "
                        "(default: <name>.onnx, <name>.tflite or <name>_saved_model here)")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from .. import load_classifier
    from ..export import check_format, check_output, metadata_path
    from ._common import check_writable

    check_format(args.format)
    if args.out:
        check_output(Path(args.out), args.format)  # before a model is downloaded or loaded
        check_writable(args.out)
    else:  # the default output goes into the working directory, named after the model
        try:
            check_writable(Path.cwd() / "export")
        except OSError as exc:  # named as the folder, not as a file the user never named
            raise type(exc)(exc.errno, exc.strerror, str(Path.cwd())) from None
    out = load_classifier(args.source).export(args.out, format=args.format)
    print(f"{out}\n{metadata_path(out, args.format)}")
    return 0
