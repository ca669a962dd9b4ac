"""Names the library accepts for its settings, in a module light enough for the command line to
import before TensorFlow loads (its choices come from here, not from copies)."""

#: Augmentation presets (``None`` means no augmentation); see :mod:`bloodcell.augment`.
PRESETS = ("seed", "robust", "domain")
OPTIMIZERS = ("lion", "adam", "nadam", "adamw")
LOSSES = ("crossentropy", "focal")
LR_SCHEDULES = (None, "plateau", "cosine")
PRECISIONS = (None, "float32", "mixed_float16", "mixed_bfloat16")
#: Input normalisations of a model: ``None`` the backbone's own preprocessing only (in training
#: from a bloodcell model: that model's own), ``"none"`` none even where that model has one.
NORMALIZATIONS = (None, "stain", "none")
#: Export formats and the file suffix each needs ("" for the SavedModel folder).
EXPORT_FORMATS = {"onnx": ".onnx", "litert": ".tflite", "saved_model": ""}
