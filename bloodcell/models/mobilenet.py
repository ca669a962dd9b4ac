"""MobileNetV3Small (Keras applications), with its pretrained entries."""

import keras

from ..registry import PretrainedCfg, register_model, register_pretrained
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


register_pretrained(
    PretrainedCfg(
        name="mnv3s.pbc96",
        architecture="mnv3s",
        bundled=True,
        sha256="1465c055704842eb37a3994eb7076540645661240e4b42b31451f11f8e2fccab",
        size_bytes=4186936,
        num_params=943736,
        init="random",
        metrics={
            "accuracy": 0.978021978021978,
            "balanced_accuracy": 0.9805279271502596,
            "macro_f1": 0.9782899835536538,
            "robustness_mean": 0.9657509157509157,
        },
        description="Trained from random init on a CPU with the two-phase Trainer, \"robust\" augmentation "
        "and a cosine schedule (76 epochs, 80 minutes); measured on a held-out 10% of pbc96 (1,365 images)",
    )
)
