"""The corruptions' severity tables (:data:`SEVERITY_PARAMS`), without TensorFlow.

:mod:`bloodcell.corruptions` builds its TensorFlow functions on them; scripts/gpu_train.py, which
runs where TensorFlow is not installed, reads the same tables.
"""

from __future__ import annotations

import numpy as np

#: Image side (pixels) that the lengths in :data:`SEVERITY_PARAMS` refer to.
REFERENCE_SIZE = 96

#: Per corruption: what it models and each parameter's values at severities 1..5.
SEVERITY_PARAMS: dict[str, dict] = {
    "defocus_blur": {
        "description": "out-of-focus objective: convolution with a uniform disk (reflected borders)",
        "parameters": {"disk radius (px at 96x96)": (1.0, 1.5, 2.0, 2.5, 3.0)},
    },
    "motion_blur": {
        "description": "stage or camera motion: convolution with a line segment at a random angle",
        "parameters": {"blur length (px at 96x96)": (2.5, 4.0, 5.5, 7.0, 9.0)},
    },
    "jpeg": {
        "description": "JPEG re-compression (libjpeg via TensorFlow)",
        "parameters": {"quality": (25, 18, 15, 10, 7)},
    },
    "pixelate": {
        "description": "low-resolution camera: area downsampling, nearest-neighbour upsampling",
        "parameters": {"scale (fraction of the side)": (0.6, 0.5, 0.4, 0.32, 0.25)},
    },
    "gaussian_noise": {
        "description": "sensor noise: additive Gaussian noise per pixel and channel",
        "parameters": {"sigma (fraction of 255)": (0.04, 0.07, 0.10, 0.14, 0.18)},
    },
    "brightness_up": {
        "description": "over-exposure: pixel values multiplied by a gain (clipped at 255)",
        "parameters": {"gain": (1.08, 1.16, 1.25, 1.35, 1.5)},
    },
    "brightness_down": {
        "description": "under-exposure: pixel values multiplied by a gain",
        "parameters": {"gain": (0.85, 0.72, 0.6, 0.5, 0.4)},
    },
    "contrast_up": {
        "description": "contrast raised about the image mean (clipped)",
        "parameters": {"contrast factor": (1.15, 1.3, 1.45, 1.6, 1.8)},
    },
    "contrast_down": {
        "description": "contrast lowered about the image mean (washed-out slide)",
        "parameters": {"contrast factor": (0.8, 0.65, 0.5, 0.38, 0.28)},
    },
    "saturation": {
        "description": "faded stain: chroma scaled towards grey in YIQ space (luma kept)",
        "parameters": {"saturation factor": (0.8, 0.65, 0.5, 0.35, 0.2)},
    },
    "stain_blots": {
        "description": "stain deposits: irregular semi-transparent purple, pink or brown blobs "
        "that absorb light (Beer-Lambert: pixel times the dye's transmittance)",
        "parameters": {
            "coverage (fraction of the image)": (0.06, 0.10, 0.15, 0.20, 0.26),
            "opacity": (0.30, 0.38, 0.46, 0.54, 0.62),
        },
    },
    "bubbles": {
        "description": "air bubbles under the coverslip: round washed-out discs with a bright "
        "refraction halo inside a thin dark rim",
        "parameters": {
            "count": (1, 1, 2, 2, 3),
            "radius (fraction of the side)": (0.10, 0.13, 0.16, 0.19, 0.22),
        },
    },
}

#: Parameter values at severity 0 (the unchanged image), the start of the interpolation.
IDENTITY: dict[str, tuple] = {
    "defocus_blur": (0.0,),
    "motion_blur": (0.0,),
    "jpeg": (100,),
    "pixelate": (1.0,),
    "gaussian_noise": (0.0,),
    "brightness_up": (1.0,),
    "brightness_down": (1.0,),
    "contrast_up": (1.0,),
    "contrast_down": (1.0,),
    "saturation": (1.0,),
    "stain_blots": (0.0, 0.0),
    "bubbles": (0, 0.0),
}

# Transmittance of stain deposits (fraction of light passed per RGB channel).
STAIN_COLOURS = np.array(
    [[0.55, 0.35, 0.75], [0.62, 0.42, 0.62], [0.95, 0.55, 0.75], [0.70, 0.50, 0.32]], np.float32
)


def table(name: str, index: int = 0) -> tuple:
    """Parameter ``index`` of corruption ``name`` at severities 0 (the identity) to 5."""
    return (IDENTITY[name][index],) + tuple(list(SEVERITY_PARAMS[name]["parameters"].values())[index])


def param(name: str, severity: float, index: int = 0) -> float:
    """Parameter ``index`` of corruption ``name`` at a severity in ``[0, 5]`` (interpolated)."""
    return float(np.interp(np.clip(severity, 0.0, 5.0), np.arange(6), table(name, index)))
