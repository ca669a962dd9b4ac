"""MobileNetV3Small (Keras applications), with its pretrained entries."""

import keras

from ..registry import register_model
from ._head import Backbone, load_backbone


@register_model("mnv3s", family="mobilenet", description="MobileNetV3Small (Howard et al. 2019), fast on CPUs")
def mnv3s(*, input_size: int, weights=None) -> Backbone:
    model = load_backbone(
        keras.applications.MobileNetV3Small,
        "mnv3s",
        weights,
        input_shape=(input_size, input_size, 3),
        include_preprocessing=True,
    )
    return Backbone(model, default_dropout=0.2)
