"""EfficientNetB0 and EfficientNetV2B0 (Keras applications), with their pretrained entries."""

import keras

from .._registry import PretrainedCfg, register_model, register_pretrained
from ._backbone import Backbone, load_backbone


@register_model("effnetb0", family="efficientnet", description="EfficientNetB0 (Tan & Le 2019), the seed report's best backbone")
def effnetb0(*, input_size: int, weights=None) -> Backbone:
    # Rescaling and ImageNet normalisation are built into keras' EfficientNet.
    model = load_backbone(keras.applications.EfficientNetB0, "effnetb0", weights, input_shape=(input_size, input_size, 3))
    return Backbone(model, default_dropout=0.2)


register_pretrained(
    PretrainedCfg(
        name="effnetb0.pbc96",
        architecture="effnetb0",
        input_size=128,
        repo_id="bloodcell/effnetb0-pbc96",
        revision="main",  # the release copy is zoo/effnetb0.pbc96; the sha256s pin its content
        published=False,
        sha256="2adbf8e3585ed4e7fa6e3d2721cdc3af36ce4ef26a8423ee82ef244bbccaf2cb",
        config_sha256="aaeff54f2c4f636888bad3557ae98ad889a7b7ac7cd47ad1970a32686f90b316",
        size_bytes=16858776,
        num_params=4059819,
        init="random",
        metrics={
            "accuracy": 0.978021978021978,
            "balanced_accuracy": 0.9813023908479895,
            "macro_f1": 0.9790695844058439,
            "robustness_mean": 0.968217338217338,
        },
        description="Trained from random init on a CPU in two stages on the same split of pbc96: 44 epochs at "
        "96x96 (two phases, \"robust\" augmentation, label smoothing 0.1, cosine schedule), then 10 epochs at "
        "128x128 started from those weights (3.7 hours of epochs in all); measured on a held-out 10% of pbc96 "
        "(1,365 images)",
    )
)


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
