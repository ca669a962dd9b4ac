"""VGG16 (Keras applications) with its caffe-style preprocessing as a serialisable layer."""

import keras

from .._registry import register_model
from ._backbone import Backbone, load_backbone

IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="bloodcell")
class CaffePreprocess(keras.layers.Layer):
    """RGB 0..255 to BGR minus the ImageNet channel means, as ``keras.applications.vgg16`` expects."""

    def __init__(self, mean=IMAGENET_BGR_MEAN, **kwargs):
        super().__init__(**kwargs)
        self.mean = tuple(float(m) for m in mean)

    def call(self, inputs):
        x = keras.ops.cast(inputs, self.compute_dtype)
        return keras.ops.flip(x, axis=-1) - keras.ops.convert_to_tensor(self.mean, dtype=self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "mean": list(self.mean)}


@register_model(
    "vgg16",
    family="vgg",
    description="VGG16 (Simonyan & Zisserman 2014); a builder only, too slow to train on a CPU",
    trainable_here=False,
)
def vgg16(*, input_size: int, weights=None) -> Backbone:
    model = load_backbone(keras.applications.VGG16, "vgg16", weights, input_shape=(input_size, input_size, 3))
    return Backbone(model, preprocessing=[CaffePreprocess(name="caffe_preprocess")], default_dropout=0.5)
