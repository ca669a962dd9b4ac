"""One helper run over every registered architecture, and the registry's rules."""

import numpy as np
import pytest
import keras

import bloodcell
from bloodcell.models import get_backbone
from bloodcell.registry import PretrainedCfg, register_model, register_pretrained

SIZE = 32


def check_architecture(name: str, tmp_path, normalization=None) -> None:
    model = bloodcell.build_model(name, input_size=SIZE, num_classes=5, normalization=normalization)
    x = np.random.default_rng(0).integers(0, 256, (3, SIZE, SIZE, 3), dtype=np.uint8)
    p = np.asarray(model(x.astype("float32"), training=False))
    assert p.shape == (3, 5)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    assert (p >= 0).all()

    path = tmp_path / f"{name}.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)  # safe_mode stays on
    np.testing.assert_allclose(np.asarray(reloaded(x.astype("float32"), training=False)), p, atol=1e-5)
    # and the zoo's own format: config.json + weights, the network rebuilt from the registry by name
    folder = bloodcell.Classifier(model, name=name).save_pretrained(tmp_path / name)
    again = bloodcell.load_classifier(folder)
    assert (again.architecture, again.class_names) == (name, model.class_names)
    np.testing.assert_allclose(np.asarray(again.model(x.astype("float32"), training=False)), p, atol=1e-5)

    backbone = get_backbone(model)
    assert backbone.name == "backbone"
    n_trainable = len(model.trainable_weights)
    backbone.trainable = False
    assert 0 < len(model.trainable_weights) < n_trainable
    assert {w.path for w in model.trainable_weights} == {"predictions/kernel", "predictions/bias"}
    backbone.trainable = True
    assert len(model.trainable_weights) == n_trainable


@pytest.mark.parametrize("name", bloodcell.list_models())
def test_every_architecture(name, tmp_path):
    # with stain normalisation in front for every other one, as the bundled default has it
    check_architecture(name, tmp_path, "stain" if bloodcell.list_models().index(name) % 2 else None)


def test_expected_architectures_registered():
    assert {"effnetb0", "effv2b0", "mnv3s", "vgg16", "microcell"} <= set(bloodcell.list_models())


def test_random_init_lowers_batchnorm_momentum():
    model = bloodcell.build_model("microcell", input_size=SIZE)
    bns = [l for l in get_backbone(model)._flatten_layers() if isinstance(l, keras.layers.BatchNormalization)]
    assert bns and all(bn.momentum == 0.9 for bn in bns)
    model = bloodcell.build_model("microcell", input_size=SIZE, bn_momentum=0.8)
    assert all(
        l.momentum == 0.8 for l in get_backbone(model)._flatten_layers() if isinstance(l, keras.layers.BatchNormalization)
    )


def test_uint8_input_accepted():
    model = bloodcell.build_model("microcell", input_size=SIZE)
    x = np.full((2, SIZE, SIZE, 3), 128, np.uint8)
    np.testing.assert_allclose(model.predict(x, verbose=0), model.predict(x.astype("float32"), verbose=0), atol=1e-6)


def test_unknown_architecture_lists_known_names():
    with pytest.raises(bloodcell.ModelNotFoundError) as err:
        bloodcell.build_model("effnetb1")
    msg = str(err.value)
    assert "effnetb1" in msg and "effnetb0" in msg and "mnv3s" in msg
    # a trained model named where an architecture is expected: how to use it
    with pytest.raises(bloodcell.ModelNotFoundError, match=r"'mnv3s.pbc96' is a trained model: load it with "
                                                          r"load_classifier\('mnv3s.pbc96'\), or train from it"):
        bloodcell.Trainer("mnv3s.pbc96")


def test_bad_build_arguments():
    with pytest.raises(bloodcell.BloodcellError, match="input_size"):
        bloodcell.build_model("microcell", input_size=8)
    with pytest.raises(bloodcell.BloodcellError, match="num_classes"):
        bloodcell.build_model("microcell", num_classes=1)
    with pytest.raises(bloodcell.BloodcellError, match="weights='/nope.h5'"):
        bloodcell.build_model("mnv3s", weights="/nope.h5")
    for weights, message in (("/nope.h5", "no such file"), (123, "got a value of type int")):  # named so whatever the builder
        with pytest.raises(bloodcell.ConfigError, match=f"weights={weights!r}: expected None, 'imagenet' or the path.*{message}"):
            bloodcell.build_model("microcell", weights=weights)


def test_custom_layer_arguments_are_checked_by_name():
    import tensorflow as tf

    from bloodcell.models import StainNormalization
    from bloodcell.models.microcell import SqueezeExcite

    for kwargs, message in (({"low": "a"}, "low must be a percentile"), ({"target_low": 5}, "target_low must be three"),
                            ({"target_high": (1, 2)}, "target_high must be three"), ({"grid": 0}, "grid must be")):
        with pytest.raises(bloodcell.BloodcellError, match=f"StainNormalization: {message}"):
            StainNormalization(**kwargs)
    layer = StainNormalization()
    unknown_size = tf.function(lambda x: layer(x), input_signature=[tf.TensorSpec((None, None, None, 3))], autograph=False)
    with pytest.raises(bloodcell.BloodcellError, match=r"expected RGB images of a known size.*keras.Input"):
        unknown_size(tf.zeros((1, 32, 32, 3)))
    for ratio in (0, -2, 1.5):
        with pytest.raises(bloodcell.BloodcellError, match="SqueezeExcite: ratio must be a whole number >= 1"):
            SqueezeExcite(ratio=ratio)
    with pytest.raises(bloodcell.BloodcellError, match="register_model: expected an architecture name without '.'"):
        register_model("mnv3s.mine", family="mobilenet")


def test_imagenet_weights_unreachable_gives_clear_error(monkeypatch, capsys):
    # Point keras' download at a closed local port: the real download code path fails fast.
    from keras.src.applications import efficientnet

    monkeypatch.setattr(efficientnet, "BASE_WEIGHTS_PATH", "http://127.0.0.1:9/")
    monkeypatch.setenv("KERAS_HOME", "/tmp/bloodcell-test-empty-keras-home")
    with pytest.raises(bloodcell.BloodcellError, match="could not fetch the ImageNet weights of 'effnetb0'.*--init random") as info:
        bloodcell.build_model("effnetb0", weights="imagenet", input_size=96)
    assert info.value.exit_code == 1  # a download that failed (the command line's rule), not a bad option
    out, err = capsys.readouterr()
    assert out == "" and "Downloading" in err  # stdout is the commands' output (--json): keras' notice goes to stderr


def test_registry_refuses_duplicates():
    with pytest.raises(ValueError, match="already registered"):

        @register_model("mnv3s", family="mobilenet")
        def again(**kwargs):
            raise AssertionError("never built")

    with pytest.raises(ValueError, match="not registered"):
        register_pretrained(PretrainedCfg(name="nope.x", architecture="nope"))


def test_pretrained_spec_survives_save_load_and_rebuild(tmp_path):
    # A weights file in the Keras-applications "notop" layout stands in for ImageNet (offline).
    base = keras.applications.MobileNetV3Small(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3),
                                               include_preprocessing=True)
    notop = tmp_path / "mnv3s_notop.weights.h5"
    base.save_weights(notop)
    model = bloodcell.build_model("mnv3s", input_size=SIZE, weights=str(notop))
    momenta = {l.momentum for l in get_backbone(model)._flatten_layers() if isinstance(l, keras.layers.BatchNormalization)}
    assert model.bloodcell_spec.weights == "file" and model.bloodcell_spec.bn_momentum == momenta.pop() != 0.9

    clf = bloodcell.Classifier(model)
    clf.save_pretrained(tmp_path / "saved")
    loaded = bloodcell.load_classifier(tmp_path / "saved").model
    rebuilt = bloodcell.models.rebuild_model(model)
    for m in (loaded, rebuilt):
        assert m.bloodcell_spec == model.bloodcell_spec
        kept = {l.momentum for l in get_backbone(m)._flatten_layers() if isinstance(l, keras.layers.BatchNormalization)}
        assert kept == {model.bloodcell_spec.bn_momentum}
