"""What a model's ``preprocessing`` record says (in ``config.json`` and a zoo entry alike).

A leaf module, free of Keras: the registry's entries and the saved folders describe their
preprocessing with the same words.
"""

from __future__ import annotations

PREPROCESSING: dict[str, str] = {
    "input": "RGB, uint8 or float values 0..255, shape (N, S, S, 3)",
    "resize": "centre crop to a square, then Lanczos resize to S x S (bloodcell.imageio.resize_image)",
    "normalisation": "inside the model (the backbone's own preprocessing layers)",
}
STAIN_NORMALISATION = ("per-image stain normalisation inside the model (bloodcell.models.StainNormalization), then the "
                       "backbone's own preprocessing layers")


def preprocessing_record(stain: bool) -> dict[str, str]:
    """The ``preprocessing`` record of a model with (or without) stain normalisation in front."""
    return {**PREPROCESSING, "normalisation": STAIN_NORMALISATION} if stain else dict(PREPROCESSING)
