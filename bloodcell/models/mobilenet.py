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
        sha256="c212e543fadf612b6c5d28a1066f2a7f4cd36dfedad7ca99678616019fec9372",
        size_bytes=4186936,
        num_params=943736,
        init="random",
        metrics={
            "accuracy": 0.9626920263350403,
            "balanced_accuracy": 0.9569524796057622,
            "macro_f1": 0.9562915578304516,
            "robustness_mean": 0.6366130212143379,
        },
        description="Provisional default: trained from random init on a CPU with plain Keras (12 epochs); "
        "measured on a held-out 10% of pbc96 (1,367 images)",
    )
)
