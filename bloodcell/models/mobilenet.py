"""MobileNetV3Small (Keras applications), with its pretrained entries."""

import keras

from .._preprocessing import preprocessing_record
from .._registry import PretrainedCfg, register_model, register_pretrained
from ._backbone import Backbone, load_backbone


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
        input_size=128,
        preprocessing=preprocessing_record(stain=True),
        bundled=True,
        sha256="7f4e6421689aa6029f73d47d4215c1d5611fb25d86f9fdccaf7220294467bfbe",
        size_bytes=4188744,
        num_params=943736,
        init="the weight average of 2 fine-tunes of the previous default (itself trained from random init on a CPU)",
        metrics={
            "accuracy": 0.9875457875457876,
            "balanced_accuracy": 0.9892134953482571,
            "macro_f1": 0.9883411445532759,
            "robustness_mean": 0.9755677655677656,
        },
        description="A model soup: the mean of the weights of two fine-tunes of the previous bundled default "
        "(the 'robust' preset for 4 epochs on a CPU; corruption-heavy augmentation for 300 s on a GPU), chosen "
        "by validation robustness among 8 candidates; measured on its held-out 10% of pbc96 (1,365 images)",
    )
)
