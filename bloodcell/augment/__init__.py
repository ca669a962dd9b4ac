"""Augmentation presets for training, usable in ``tf.data`` pipelines.

Presets (``build_augmentation(preset)``), applied to float32 batches of values 0..255 with one-hot
labels:

- ``"seed"``: the seed report's pipeline: random flips, rotation, translation and zoom,
  RandAugment and CutMix (labels mixed by area).
- ``"robust"``: ``"seed"`` plus what microscope images suffer at test time: colour shifts
  (exposure, contrast, saturation, hue) and, on a share of the images, one of the corruptions of
  :mod:`bloodcell.corruptions` (blur, JPEG, pixelation, noise, stain blots, bubbles, ...) at a
  random severity, with the same code that :func:`bloodcell.corruptions.corrupt` evaluates with.
- ``"domain"``: ``"robust"`` plus what differs between labs: stain and light in optical density
  (:class:`RandomStain`, half the images), magnification and framing (a quarter magnified up to
  2x) and focus (defocus or motion blur, 15%), for models meant to work on other labs' images
  (the bundled default's recipe).
- ``None``: no augmentation.

Modules: ``layers`` (the layers), ``presets`` (the presets and :class:`Augmentation`),
``preview`` (:func:`preview_grid`), ``_seeding`` (stateless draws in ``tf.data`` maps) and
``_kernels`` (the fused XLA functions).

RandAugment's eleven operations are Keras 3's own layers, and :class:`CutMix` is Keras 3's with a
faster paste; :class:`PerImageRandAugment`
draws the operations per image (Keras 3 draws them per batch). Flip, rotation, translation and
zoom are one :class:`RandomAffine` warp instead of Keras' four layers: one resampling blurs less
than four. Every layer is created with ``dtype="float32"``, so the presets keep working under a
``mixed_float16`` or ``mixed_bfloat16`` global policy.

Speed: the warps (``RandomAffine`` and RandAugment's rotation, shear and translation) gather whole
pixels in one function compiled with XLA, which TensorFlow ships (3-6x faster than TensorFlow's
``ImageProjectiveTransformV3`` on a CPU, uint8 images read as uint8; the same values within 0.02
grey levels); :class:`CutMix` is ``keras.layers.CutMix`` pasting its boxes in one fused function;
RandAugment's auto contrast, contrast, colour degeneration and posterization run XLA-compiled,
and equalization applies Keras' lookup tables in one fused function.
Where XLA is unavailable the same functions run unfused (equalization: Keras' own code).
"""

from .. import _tf  # noqa: F401,I001  (TensorFlow without its start-up log lines)
from ._seeding import stateless_seeds
from .layers import CutMix, PerImageRandAugment, RandomAffine, RandomColorShift, RandomCorruptions, RandomStain
from .presets import PRESETS, Augmentation, build_augmentation, describe_preset
from .preview import preview_grid

__all__ = [
    "PRESETS",
    "Augmentation",
    "CutMix",
    "PerImageRandAugment",
    "RandomAffine",
    "RandomColorShift",
    "RandomCorruptions",
    "RandomStain",
    "build_augmentation",
    "describe_preset",
    "preview_grid",
    "stateless_seeds",
]
