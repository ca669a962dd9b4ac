"""Colour constants shared by cleaning, outlier statistics and corruptions."""

import numpy as np

#: Rec. 601 luma weights of R, G and B.
LUMA = np.array([0.299, 0.587, 0.114], np.float32)
#: RGB to YIQ: luma Y and two chroma axes (saturation scales and hue rotates the chroma plane).
RGB_TO_YIQ = np.array(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]],
    np.float32,
)
YIQ_TO_RGB = np.linalg.inv(RGB_TO_YIQ).astype(np.float32)

#: Mean spread of the three channels (max - min, 0..255) under which an image counts as colourless. Stained
#: cells are far above it: the lowest of pbc96's 13,673 images is 22, of BCCD's 351 cells 25.
COLOURLESS_SPREAD = 6.0


def colourless(images: np.ndarray) -> np.ndarray:
    """Which images of a uint8 batch (N, H, W, 3) are greyscale (or nearly): the models tell classes by
    the stain's colours, so their answers on such images are not to be trusted alone."""
    sample = images[:, ::4, ::4]  # every 16th pixel tells a stained image from a grey one
    r, g, b = sample[..., 0], sample[..., 1], sample[..., 2]
    spread = np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)  # uint8: max >= min
    return spread.reshape(len(images), -1).mean(axis=1) < COLOURLESS_SPREAD if len(images) else np.zeros(0, bool)
