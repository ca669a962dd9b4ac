"""A compact CNN after Microcell-Net (Dwivedi & Dutta 2023), with batch norm and squeeze-and-excite.

The seed report extended Microcell-Net with normalisation layers, squeeze-and-excite blocks and
label smoothing (the last is a :class:`bloodcell.Trainer` option).
"""

import keras

from .._registry import register_model
from ..errors import ConfigError
from ._backbone import BACKBONE_NAME, Backbone


@keras.saving.register_keras_serializable(package="bloodcell")
class SqueezeExcite(keras.layers.Layer):
    """Channel attention (Hu et al. 2018): global pool, bottleneck MLP, sigmoid gate."""

    def __init__(self, ratio: int = 4, **kwargs):
        super().__init__(**kwargs)
        if isinstance(ratio, bool) or not isinstance(ratio, int) or ratio < 1:
            raise ConfigError(f"SqueezeExcite: ratio must be a whole number >= 1 (channels per bottleneck unit), "
                              f"got {ratio!r}")
        self.ratio = ratio

    def build(self, input_shape):
        channels = int(input_shape[-1])
        self.reduce = keras.layers.Dense(max(channels // self.ratio, 4), activation="relu", name="reduce")
        self.expand = keras.layers.Dense(channels, activation="sigmoid", name="expand")
        self.reduce.build((None, channels))
        self.expand.build((None, max(channels // self.ratio, 4)))

    def call(self, inputs):
        s = keras.ops.mean(inputs, axis=(1, 2))
        s = self.expand(self.reduce(s))
        return inputs * keras.ops.expand_dims(keras.ops.expand_dims(s, 1), 1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "ratio": self.ratio}


def _block(x, filters: int, index: int):
    for j in (1, 2):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"block{index}_conv{j}")(x)
        x = keras.layers.BatchNormalization(name=f"block{index}_bn{j}")(x)
        x = keras.layers.ReLU(name=f"block{index}_relu{j}")(x)
    x = SqueezeExcite(ratio=4, name=f"block{index}_se")(x)
    return keras.layers.MaxPooling2D(2, name=f"block{index}_pool")(x)


@register_model("microcell", family="microcell", description="Custom CNN after Microcell-Net with batch norm and squeeze-and-excite",
                imagenet=False)
def microcell(*, input_size: int, weights=None) -> Backbone:
    if weights is not None:
        raise ConfigError(
            f"microcell has no ImageNet weights; got weights={weights!r}, use weights=None "
            "(or load a trained bloodcell folder with bloodcell.load_classifier)"
        )
    inputs = keras.Input((input_size, input_size, 3))
    x = keras.layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    for i, filters in enumerate((32, 64, 128, 256), start=1):
        x = _block(x, filters, i)
    x = keras.layers.Conv2D(256, 1, use_bias=False, name="top_conv")(x)
    x = keras.layers.BatchNormalization(name="top_bn")(x)
    x = keras.layers.ReLU(name="top_relu")(x)
    return Backbone(keras.Model(inputs, x, name=BACKBONE_NAME), default_dropout=0.3)
