"""Layers of bloodcell's own that sit inside classifier models (all serialisable by name)."""

from __future__ import annotations

import keras
import numpy as np

from ..errors import ConfigError

#: The mean over pbc96 images of each image's 1st and 95th percentile of each channel (R, G, B),
#: rounded down to whole levels: what :class:`StainNormalization` maps every image to by default.
PBC_LOW = (67.0, 20.0, 126.0)
PBC_HIGH = (254.0, 229.0, 204.0)


@keras.saving.register_keras_serializable(package="bloodcell")
class StainNormalization(keras.layers.Layer):
    """Per-image colour normalisation: each channel's ``low`` and ``high`` percentiles are mapped
    to ``target_low`` and ``target_high`` (by default those of PBC images), then clipped to 0..255.

    A slide stained or lit differently (another lab's Wright or May-Grünwald-Giemsa stain, a
    yellow or blue cast, a washed-out exposure) mostly changes each channel's levels; stretched
    back to the training data's levels, the cell keeps its own contrast. Percentiles are taken
    on the image averaged over blocks of ``input side // grid`` pixels, so that noise and single
    bright pixels do not move them. Input: RGB 0..255, (N, H, W, 3); output float32 0..255.
    """

    def __init__(self, low: float = 1.0, high: float = 95.0, target_low=PBC_LOW, target_high=PBC_HIGH,
                 grid: int = 48, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        for name, value in (("low", low), ("high", high)):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise ConfigError(f"StainNormalization: {name} must be a percentile (a number 0..100), got {value!r}")
        if not 0.0 <= float(low) < float(high) <= 100.0:
            raise ConfigError(f"StainNormalization: expected 0 <= low < high <= 100 (percentiles), got {low}, {high}")
        if isinstance(grid, bool) or not isinstance(grid, (int, np.integer)) or grid < 1:
            raise ConfigError(f"StainNormalization: grid must be a positive number of blocks per side, got {grid!r}")
        self.low, self.high, self.grid = float(low), float(high), int(grid)
        self.target_low, self.target_high = _levels_arg("target_low", target_low), _levels_arg("target_high", target_high)

    def _levels(self, x):
        if x.shape[1] is None or x.shape[2] is None or x.shape[-1] != 3:
            raise ConfigError(f"StainNormalization: expected RGB images of a known size (N, S, S, 3), got shape "
                              f"{tuple(x.shape)}; give the model input a fixed size, keras.Input((S, S, 3))")
        k = max(1, min(x.shape[1], x.shape[2]) // self.grid)
        pooled = keras.ops.average_pool(x, k, k, padding="valid") if k > 1 else x
        count = pooled.shape[1] * pooled.shape[2]
        ordered = keras.ops.sort(keras.ops.reshape(pooled, (-1, count, 3)), axis=1)
        low = ordered[:, int(round(self.low / 100.0 * (count - 1)))]
        high = ordered[:, int(round(self.high / 100.0 * (count - 1)))]
        return low[:, None, None, :], high[:, None, None, :]

    def call(self, inputs):
        x = keras.ops.cast(inputs, "float32")
        low, high = self._levels(x)
        target_low = keras.ops.convert_to_tensor(self.target_low, "float32")
        target_high = keras.ops.convert_to_tensor(self.target_high, "float32")
        y = (x - low) / keras.ops.maximum(high - low, 1.0) * (target_high - target_low) + target_low
        return keras.ops.clip(y, 0.0, 255.0)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "low": self.low, "high": self.high, "target_low": list(self.target_low),
                "target_high": list(self.target_high), "grid": self.grid}


def _levels_arg(name: str, value) -> tuple[float, float, float]:
    try:
        levels = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        levels = ()
    if len(levels) != 3 or not all(0.0 <= v <= 255.0 for v in levels):
        raise ConfigError(f"StainNormalization: {name} must be three levels 0..255 (R, G, B), got {value!r}")
    return levels
