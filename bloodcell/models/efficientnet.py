"""EfficientNetB0 and EfficientNetV2B0 (Keras applications), with their pretrained entries."""

import keras

from ..registry import register_model
from ._head import Backbone, load_backbone


@register_model("effnetb0", family="efficientnet", description="EfficientNetB0 (Tan & Le 2019), the seed report's best backbone")
def effnetb0(*, input_size: int, weights=None) -> Backbone:
    # Rescaling and ImageNet normalisation are built into keras' EfficientNet.
    model = load_backbone(keras.applications.EfficientNetB0, "effnetb0", weights, input_shape=(input_size, input_size, 3))
    return Backbone(model, default_dropout=0.2)


@register_model("effv2b0", family="efficientnet", description="EfficientNetV2B0 (Tan & Le 2021)")
def effv2b0(*, input_size: int, weights=None) -> Backbone:
    model = load_backbone(
        keras.applications.EfficientNetV2B0,
        "effv2b0",
        weights,
        input_shape=(input_size, input_size, 3),
        include_preprocessing=True,
    )
    return Backbone(model, default_dropout=0.2)
