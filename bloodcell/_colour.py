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
