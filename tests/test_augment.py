import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from synth_cells import make_cells

import bloodcell
from bloodcell.augment import _kernels, layers as augment_layers
from bloodcell.augment import (
    PRESETS,
    Augmentation,
    CutMix,
    PerImageRandAugment,
    RandomAffine,
    RandomColorShift,
    RandomCorruptions,
    build_augmentation,
    describe_preset,
    preview_grid,
    stateless_seeds,
)

CUSTOM_LAYERS = [
    RandomAffine(flip="vertical", rotation=0.25, translation=0.05, zoom=0.2, fill_mode="constant",
                 interpolation="nearest", fill_value=3.0, seed=5),
    PerImageRandAugment(num_ops=3, factor=0.2, rate=0.7, posterize_bits=(5, 7),
                        operations=["random_brightness", "equalization"], seed=6),
    RandomColorShift(severity=(0.5, 2.0), hue=0.1, rate=0.3, seed=7),
    RandomCorruptions(["jpeg", "bubbles"], severity=(2.0, 4.0), rate=0.6, seed=8),
    CutMix(factor=0.5, seed=9),
]


@pytest.fixture(scope="module")
def batch():
    images = make_cells(8, 32, seed=3)
    labels = tf.one_hot(np.arange(8) % 8, 8)
    return images, labels


@pytest.fixture
def restore_policy():
    policy = keras.config.dtype_policy()
    yield
    keras.config.set_dtype_policy(policy)


def run_in_tf_data(augmentation, images, labels):
    ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
    ds = ds.map(lambda x, y: augmentation(x, y), num_parallel_calls=tf.data.AUTOTUNE)
    return list(ds)


@pytest.mark.parametrize("preset", [None, *PRESETS])
def test_presets_run_in_tf_data(batch, preset):
    images, labels = batch
    out = run_in_tf_data(build_augmentation(preset, seed=1), images, labels)
    assert len(out) == 2
    for x, y in out:
        assert x.shape == (4, 32, 32, 3) and x.dtype == tf.float32
        assert y.shape == (4, 8) and y.dtype == tf.float32
        assert 0.0 <= float(tf.reduce_min(x)) and float(tf.reduce_max(x)) <= 255.0
        np.testing.assert_allclose(tf.reduce_sum(y, axis=1), 1.0, atol=1e-5)
    if preset is None:
        np.testing.assert_array_equal(np.concatenate([x for x, _ in out]), images)


def test_cutmix_mixes_labels(batch):
    images, labels = batch
    x, y = build_augmentation("seed", seed=2)(images, labels, seed=tf.constant([3, 4]))
    assert x.shape == images.shape
    np.testing.assert_allclose(tf.reduce_sum(y, axis=1), 1.0, atol=1e-5)
    assert float(tf.reduce_max(y)) <= 1.0 and np.count_nonzero(y.numpy() > 1e-6) > len(images)


@pytest.mark.parametrize("policy", ["mixed_float16"])  # bfloat16: tests/test_training.py
def test_presets_under_mixed_precision(batch, restore_policy, policy):
    images, labels = batch
    keras.config.set_dtype_policy(policy)
    for preset in PRESETS:
        augmentation = build_augmentation(preset, seed=1)
        assert all(layer.compute_dtype == "float32" for layer in augmentation.layers)
        for x, y in run_in_tf_data(augmentation, images, labels):
            assert x.dtype == tf.float32 and y.dtype == tf.float32
            assert np.isfinite(x.numpy()).all()
            np.testing.assert_allclose(tf.reduce_sum(y, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("layer", CUSTOM_LAYERS, ids=lambda layer: type(layer).__name__)
def test_custom_layers_round_trip(batch, layer):
    config = layer.get_config()
    own = set(inspect.signature(type(layer).__init__).parameters) - {"self", "kwargs"}
    assert own <= set(config), f"missing from get_config: {own - set(config)}"
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer) and restored.get_config() == config
    images, _ = batch
    x = tf.constant(images, tf.float32)
    with stateless_seeds([layer], tf.constant([1, 1])):
        a = layer(x, training=True)
    with stateless_seeds([clone], tf.constant([1, 1])):
        b = clone(x, training=True)
    np.testing.assert_allclose(a, b, atol=1e-4)
    np.testing.assert_array_equal(layer(x, training=False), x)


def test_custom_layers_in_a_saved_model(tmp_path, batch):
    inputs = keras.Input((32, 32, 3))
    outputs = RandomCorruptions(["defocus_blur"], rate=0.5, seed=1)(RandomAffine(seed=1)(inputs))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(outputs))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert [type(layer).__name__ for layer in loaded.layers[1:3]] == ["RandomAffine", "RandomCorruptions"]
    x = np.asarray(batch[0], np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-4)


def test_seeded_calls_are_reproducible(batch):
    images, labels = batch
    augmentation = build_augmentation("robust", seed=0)
    a = augmentation(images, labels, seed=tf.constant([5, 6]))
    b = augmentation(images, labels, seed=tf.constant([5, 6]))
    c = augmentation(images, labels, seed=tf.constant([5, 7]))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_random_affine_identity_and_flips(batch):
    x = tf.constant(batch[0], tf.float32)
    still = RandomAffine(flip=None, rotation=0.0, translation=0.0, zoom=0.0)(x)
    np.testing.assert_allclose(still, x, atol=1e-3)
    flipped = RandomAffine(flip="horizontal", rotation=0.0, translation=0.0, zoom=0.0, seed=1)(x).numpy()
    mirrored = x.numpy()[:, :, ::-1]
    same = [np.allclose(f, o, atol=1e-3) for f, o in zip(flipped, x.numpy())]
    flips = [np.allclose(f, m, atol=1e-3) for f, m in zip(flipped, mirrored)]
    assert all(s or f for s, f in zip(same, flips)) and any(flips) and any(same)


def test_rand_augment_draws_operations_per_image(batch):
    x = tf.constant(np.concatenate([batch[0]] * 4), tf.float32)
    layer = PerImageRandAugment(num_ops=2, factor=0.3, seed=3)
    assert "solarization" not in layer._AUGMENT_LAYERS and len(layer._AUGMENT_LAYERS) == 10
    idxes = layer.get_random_transformation(x)["layer_idxes"].numpy()
    assert idxes.shape == (32, 2) and len(np.unique(idxes)) > 3 and idxes.max() < 10
    out = layer(x, training=True)
    assert out.shape == x.shape and out.dtype == tf.float32
    # Chosen per image: the first half posterized to 4 bits, the second half left alone.
    poster = PerImageRandAugment(num_ops=1, posterize_bits=(4, 5))
    k = poster._AUGMENT_LAYERS.index("random_posterization")
    idxes = tf.constant([[k]] * 16 + [[len(poster._AUGMENT_LAYERS)]] * 16)
    out = poster.transform_images(x, {"layer_idxes": idxes}).numpy()
    np.testing.assert_array_equal(out[:16], (x.numpy()[:16].astype(np.uint8) >> 4) << 4)
    np.testing.assert_array_equal(out[16:], x.numpy()[16:])
    unchanged = PerImageRandAugment(num_ops=2, rate=0.0, seed=1)(x, training=True)
    np.testing.assert_array_equal(unchanged, x)


def test_corruption_and_colour_rates(batch):
    x = tf.constant(batch[0], tf.float32)

    def changed(layer):
        out = layer(x, training=True).numpy()
        return np.abs(out - x.numpy()).mean(axis=(1, 2, 3)) > 0.5

    assert not changed(RandomCorruptions(["gaussian_noise"], rate=0.0, seed=1)).any()
    assert changed(RandomCorruptions(["gaussian_noise"], rate=1.0, seed=1)).all()
    assert not changed(RandomColorShift(rate=0.0, seed=1)).any()
    assert changed(RandomColorShift(severity=(2.0, 3.0), rate=1.0, seed=1)).all()
    some = changed(RandomCorruptions(["gaussian_noise", "defocus_blur"], rate=0.5, seed=4))
    assert some.any() and not some.all()


def test_layer_argument_errors():
    with pytest.raises(ValueError, match="unknown corruption 'fog'"):
        RandomCorruptions(["fog"])
    with pytest.raises(ValueError, match="rate"):
        RandomColorShift(rate=1.5)
    with pytest.raises(ValueError, match="severity"):
        RandomCorruptions(severity=(3, 6))
    with pytest.raises(ValueError, match="flip"):
        RandomAffine(flip="diagonal")
    with pytest.raises(ValueError, match="posterize_bits"):
        PerImageRandAugment(posterize_bits=(0, 9))
    with pytest.raises(ValueError, match="operations"):
        PerImageRandAugment(operations=["fog"])


def test_describe_preset():
    assert describe_preset(None) == []
    seed_rows, robust_rows = describe_preset("seed"), describe_preset("robust")
    assert [r["layer"] for r in seed_rows] == [
        "bloodcell.augment.RandomAffine", "bloodcell.augment.PerImageRandAugment", "bloodcell.augment.CutMix"
    ]
    assert robust_rows[:3] == seed_rows and len(robust_rows) == 3 + 1 + 12
    for row in robust_rows:
        assert set(row) == {"layer", "parameters", "probability", "description"}
        assert 0.0 < row["probability"] <= 1.0 and row["description"]
    corruption_share = sum(r["probability"] for r in robust_rows if "RandomCorruptions" in r["layer"])
    assert corruption_share == pytest.approx(0.35)


def test_unknown_preset():
    with pytest.raises(ValueError, match="'heavy'.*seed, robust"):
        build_augmentation("heavy")
    assert isinstance(build_augmentation("none"), Augmentation) and build_augmentation("none").layers == []


def test_preview_grid(batch):
    images = batch[0][:5]
    grid = preview_grid(images, "robust", n=5, seed=1, columns=4, views=2)
    assert grid.dtype == np.uint8 and grid.shape == (2 * 3 * 34 - 2, 4 * 34 - 2, 3)
    np.testing.assert_array_equal(grid[:32, :32], images[0])
    np.testing.assert_array_equal(grid, preview_grid(images, "robust", n=5, seed=1, columns=4, views=2))
    with pytest.raises(ValueError, match="uint8"):
        preview_grid(images.astype(np.float32), "seed")
    for bad, message in (({"n": 2.5}, "n must be a positive integer"), ({"seed": None}, "seed must be an integer >= 0")):
        with pytest.raises(bloodcell.ConfigError, match=message):
            preview_grid(images, None, **bad)


def test_augment_preview_cli(tmp_path):
    from bloodcell.cli import main

    for k, name in enumerate(("lymphocyte", "platelet")):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i, cell in enumerate(make_cells(3, 40, seed=k)):
            Image.fromarray(cell).save(tmp_path / "data" / name / f"{i}.png")
    out = tmp_path / "grid.png"
    assert main(["augment-preview", str(tmp_path / "data"), "--preset", "seed", "--out", str(out), "-n", "4",
                 "--image-size", "32", "--columns", "2"]) == 0
    assert Image.open(out).size == (2 * 34 - 2, 4 * 34 - 2)
    np.savez(tmp_path / "d.npz", images=make_cells(4, 32), labels=np.arange(4))
    assert main(["augment-preview", str(tmp_path / "d.npz"), "--out", str(tmp_path / "g.png"), "--scale", "2"]) == 0
    assert main(["augment-preview", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert main(["augment-preview", str(tmp_path / "d.npz"), "--out", str(tmp_path / "g.txt")]) == 2
    inside = tmp_path / "data" / "platelet" / "grid.png"  # would be read as a training image
    assert main(["augment-preview", str(tmp_path / "data"), "--out", str(inside)]) == 2
    assert not inside.exists()


@pytest.fixture
def without_xla():
    _kernels._XLA = False
    yield
    _kernels._XLA = None


def _random_affine_rows(n, size, scale, rng):
    angle, shift = rng.uniform(0, 2 * np.pi, n), rng.uniform(-0.8, 0.8, n) * size
    cos, sin, c = np.cos(angle) * scale, np.sin(angle) * scale, (size - 1) / 2
    zeros = np.zeros(n)
    rows = [cos, -sin, c - cos * c + sin * c + shift, sin, cos, c - sin * c - cos * c - shift, zeros, zeros]
    return np.stack(rows, 1).astype(np.float32)


@pytest.mark.parametrize("xla", [True, False], ids=["xla", "unfused"])
@pytest.mark.parametrize("fill_mode", ["reflect", "nearest", "constant"])
def test_warp_matches_tensorflow_kernel(request, xla, fill_mode):
    if not xla:
        request.getfixturevalue("without_xla")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 24, 24, 3), dtype=np.uint8)
    for scale in (0.3, 1.0, 4.0, 12.0):  # zoomed in, as is, and far beyond the edges
        rows = _random_affine_rows(12, 24, scale, rng)
        want = tf.raw_ops.ImageProjectiveTransformV3(
            images=tf.cast(images, tf.float32), transforms=rows, output_shape=[24, 24], fill_value=7.0,
            interpolation="BILINEAR", fill_mode=fill_mode.upper(),
        )
        for dtype, index in ((tf.uint8, "int32"), (tf.float32, "int32"), (tf.uint8, "int64")):
            got = _kernels._fused(_kernels._bilinear_warp)(
                tf.cast(images, dtype), tf.constant(rows), fill_mode, 7.0, index
            )
            # XLA reorders the float arithmetic: within a hundredth of a grey level.
            np.testing.assert_allclose(got, want, atol=0.02 if xla else 1e-4)


def test_cutmix_equals_keras_cutmix():
    rng = np.random.default_rng(1)
    images = tf.constant(rng.integers(0, 256, (16, 20, 20, 3)).astype(np.float32))
    labels = tf.one_hot(np.arange(16) % 8, 8)
    want = keras.layers.CutMix(factor=0.8, seed=5)({"images": images, "labels": labels}, training=True)
    got = CutMix(factor=0.8, seed=5)({"images": images, "labels": labels}, training=True)
    np.testing.assert_array_equal(got["images"], want["images"])
    np.testing.assert_array_equal(got["labels"], want["labels"])


@pytest.mark.parametrize("operation", ["random_rotation", "random_shear", "random_translation"])
def test_randaugment_geometry_matches_keras_layers(monkeypatch, operation):
    # The rotation, shear and translation of RandAugment run through the fused warp; the
    # result must be what Keras' own layers compute from the same draws.
    rng = np.random.default_rng(2)
    images = tf.constant(rng.integers(0, 256, (20, 24, 24, 3)).astype(np.float32))

    def run():
        layer = PerImageRandAugment(operations=[operation], num_ops=1, rate=1.0, factor=0.5, seed=3)
        return layer(images, training=True).numpy()

    fused = run()
    monkeypatch.setattr(augment_layers, "_geometry_matrix", lambda *args: None)
    keras_layers = run()
    assert np.abs(keras_layers - images.numpy()).mean() > 10  # the operation did change the images
    np.testing.assert_allclose(fused, keras_layers, atol=0.02)


def test_presets_without_xla(batch, without_xla):
    images, labels = batch
    for preset in PRESETS:
        x, y = build_augmentation(preset)(images, labels, seed=tf.constant([5, 6]))
        assert x.shape == images.shape and x.dtype == tf.float32
        assert 0.0 <= float(tf.reduce_min(x)) and float(tf.reduce_max(x)) <= 255.0
        np.testing.assert_allclose(tf.reduce_sum(y, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("xla", [True, False], ids=["xla", "unfused"])
def test_randaugment_fused_operations(request, xla):
    # The operations compiled with XLA run on groups padded to a power of two; what comes back
    # are the group's own images, changed as Keras' layer changes them.
    if not xla:
        request.getfixturevalue("without_xla")
    rng = np.random.default_rng(4)
    images = tf.constant(rng.integers(20, 200, (13, 16, 16, 3)).astype(np.float32))
    auto = PerImageRandAugment(operations=["auto_contrast"], num_ops=1, rate=1.0, seed=1)(images, training=True)
    want = keras.layers.AutoContrast(value_range=(0, 255))(images)
    np.testing.assert_allclose(auto, want, atol=0.01)
    for operation in _kernels._FUSED_OPERATIONS:
        layer = PerImageRandAugment(operations=[operation], num_ops=1, rate=1.0, factor=0.5, seed=2)
        out = layer(images, training=True).numpy()
        assert out.shape == images.shape and np.isfinite(out).all()
        assert 0.0 <= out.min() and out.max() <= 255.0
        assert np.abs(out - images.numpy()).mean() > 0.1, operation


def test_randaugment_equalization_equals_keras():
    # Equalization builds its lookup tables with TensorFlow ops and applies them in one fused
    # function; the result must be Keras' layer's, value for value.
    rng = np.random.default_rng(5)
    for count in (1, 6, 21):
        scaled = rng.integers(0, 256, (count, 20, 20, 3)) * rng.uniform(0.2, 1.0, (count, 1, 1, 1))
        images = tf.constant(np.concatenate([scaled, np.round(scaled[:2])]).astype(np.float32))
        want = keras.layers.Equalization(value_range=(0, 255))(images)
        got = PerImageRandAugment(operations=["equalization"], num_ops=1, rate=1.0, seed=1)(images, training=True)
        np.testing.assert_array_equal(got, want)


def test_fused_paths_edge_cases(restore_policy):
    # A group just over a power of two, a float16 policy and unknown image sizes all take the
    # fused paths or fall back to Keras' code, with the shapes and dtypes they came with.
    many = tf.zeros((2049, 4, 4, 3))
    for operation in ("random_rotation", "auto_contrast", "equalization"):
        layer = PerImageRandAugment(operations=[operation], num_ops=1, rate=1.0)
        assert layer(many, training=True).shape == many.shape
    keras.config.set_dtype_policy("mixed_float16")
    out = PerImageRandAugment(operations=["equalization"], num_ops=1, rate=1.0)(
        tf.random.uniform((5, 8, 8, 3), 0, 255), training=True
    )
    assert out.dtype == tf.float16
    keras.config.set_dtype_policy("float32")
    affine = RandomAffine(seed=1)
    randaugment = PerImageRandAugment(operations=["random_rotation", "equalization"], num_ops=2, rate=1.0)
    spec = [tf.TensorSpec([None, None, None, 3])]
    for layer in (affine, randaugment):
        run = tf.function(lambda images, layer=layer: layer(images, training=True), input_signature=spec)
        assert run(tf.zeros((2, 10, 12, 3))).shape == (2, 10, 12, 3)


@pytest.mark.parametrize("xla", [True, False], ids=["xla", "unfused"])
def test_colour_shift_fused_equals_color_transform(request, batch, xla):
    # The fused colour shift (channel sums, one pass) computes color_transform's matrices, offset
    # and clip; images of unknown size take color_transform itself.
    if not xla:
        request.getfixturevalue("without_xla")
    images = tf.constant(batch[0].astype(np.float32))
    layer = RandomColorShift(severity=(1.0, 3.0), hue=0.05, rate=1.0, seed=0)
    seed = tf.constant([3, 4])
    fused = layer._apply(images, seed).numpy()
    unknown_size = tf.TensorSpec([None, None, None, 3], tf.float32)
    reference = tf.function(layer._apply, input_signature=[unknown_size, tf.TensorSpec([2], tf.int32)])(images, seed)
    np.testing.assert_allclose(fused, reference, atol=1e-3)
    assert np.abs(fused - batch[0]).mean() > 5  # the images did change
    assert 0.0 <= fused.min() and fused.max() <= 255.0


def test_eager_calls_on_batches_of_any_size_draw_no_retracing_warning(batch):
    import logging

    images, labels = batch
    seen = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logger = logging.getLogger("tensorflow")
    logger.addHandler(handler)
    try:
        for preset in ("seed", "robust"):
            augmentation = build_augmentation(preset, seed=0)
            for n in range(1, 8):
                augmentation(images[:n], labels[:n])
        logger.warning("5 out of the last 5 calls to <function theirs at 0x1> triggered tf.function retracing.")
    finally:
        logger.removeHandler(handler)
    assert [m for m in seen if "retracing" in m] == [
        "5 out of the last 5 calls to <function theirs at 0x1> triggered tf.function retracing."]


def test_augmentation_refuses_labels_and_seeds_it_would_garble():
    from bloodcell.augment import build_augmentation
    from bloodcell.errors import ConfigError

    aug = build_augmentation("seed", seed=0)
    x = make_cells(4, 32).astype("float32")
    for labels in (np.arange(4), np.arange(4)[:, None], tf.one_hot(np.arange(4), 3)):
        with pytest.raises(ConfigError, match=r"expected one-hot labels \(N, 8\).*tf.one_hot"):
            aug(x, labels)
    with pytest.raises(ConfigError, match=r"seed: expected a \(2,\) integer tensor"):
        aug(x, tf.one_hot(np.arange(4), 8), seed=5)


def test_augmentation_refuses_images_it_would_garble():
    from bloodcell.augment import RandomColorShift, build_augmentation
    from bloodcell.errors import ConfigError, DataError

    aug, y = build_augmentation("robust", seed=0), tf.one_hot(np.arange(4), 8)
    for shape in ((4, 32, 32), (4, 32, 32, 4), (4, 32, 32, 1)):
        with pytest.raises(DataError, match=r"images: expected a batch of RGB images \(N, H, W, 3\)"):
            aug(np.zeros(shape, np.uint8), y)
    with pytest.raises(DataError, match="0..1 convention.*multiply the images by 255"):
        aug(np.full((4, 32, 32, 3), 0.5, np.float32), y)
    for wide in (np.full((4, 32, 32, 3), 4000, np.uint16), np.full((4, 32, 32, 3), -1.0, np.float32)):
        with pytest.raises(DataError, match="expects 8-bit values in 0..255; scale 16-bit images to 8 bits"):
            aug(wide, y)
    with pytest.raises(DataError, match=r"labels: expected one row per image \(4\), got 3"):
        aug(np.zeros((4, 32, 32, 3), np.uint8), y[:3])
    with pytest.raises(DataError, match="RandomColorShift: expected RGB images"):
        RandomColorShift(rate=1.0, seed=0)(np.zeros((2, 32, 32, 4), np.float32))
    with pytest.raises(ConfigError, match="num_classes must be an integer >= 2"):
        build_augmentation("seed", num_classes=0)
    with pytest.raises(ConfigError, match="seed must be"):
        build_augmentation("seed", seed="3")
    a, b = build_augmentation("robust", seed=np.int64(3)), build_augmentation("robust", seed=3)  # a seed from NumPy
    x = make_cells(4, 32)
    np.testing.assert_array_equal(a(x, y)[0], b(x, y)[0])


def test_a_seed_gives_the_same_augmentation_eagerly_and_traced():
    from bloodcell.augment import build_augmentation

    x = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3)).astype(np.uint8)
    y, seed = tf.one_hot(np.arange(5), 8), tf.constant([3, 4], tf.int64)
    aug = build_augmentation("seed", seed=0)
    eager = aug(x, y, seed=seed)[0].numpy()  # what preview_grid shows
    traced = aug.traced((32, 32, 3))(tf.constant(x), y, seed)[0].numpy()  # what the tf.data pipeline runs
    np.testing.assert_array_equal(eager, traced)


def test_random_affine_refuses_modes_its_kernel_would_turn_black():
    from bloodcell.errors import ConfigError

    for kw in ({"interpolation": "bicubic"}, {"fill_mode": "mirror"}, {"fill_value": "x"}):
        with pytest.raises(ConfigError, match="must be"):
            augment_layers.RandomAffine(**kw)
    assert augment_layers.RandomAffine(fill_mode="REFLECT", interpolation="Bilinear").fill_mode == "reflect"


def test_layers_built_by_a_user_follow_a_mixed_precision_policy():
    x = make_cells(4, 32).astype("float32")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        for layer in (augment_layers.RandomCorruptions(seed=1, rate=1.0), augment_layers.RandomColorShift(seed=1, rate=1.0),
                      augment_layers.RandomStain(seed=1, rate=1.0)):
            out = layer(x)
            assert out.dtype == tf.float16 and np.isfinite(out.numpy()).all()
    finally:
        keras.config.set_dtype_policy(previous)


def test_randaugment_operations_go_both_ways():
    flat = np.full((120, 32, 32, 3), 128, np.float32)
    flat[:, 8:24, 8:24] = 220
    def run(op):
        layer = augment_layers.PerImageRandAugment(num_ops=1, factor=0.3, rate=1.0, operations=[op], seed=1)
        return layer(flat, training=True).numpy()
    change = run("random_brightness").mean((1, 2, 3)) - flat.mean()
    assert change.min() < -10 and change.max() > 10
    spread = run("random_contrast").std((1, 2, 3)) / flat.std()
    assert spread.min() < 0.9 and spread.max() > 1.1
    centres = np.array([np.argwhere(im[..., 0] > 170).mean(0) for im in run("random_translation")]) - 15.5
    assert (centres.min(0) < -2).all() and (centres.max(0) > 2).all()


def test_preview_of_non_square_images():
    from bloodcell.augment import preview_grid

    grid = preview_grid(np.zeros((2, 32, 40, 3), np.uint8), "seed", n=2, views=1, columns=2)
    assert grid.shape == (2 * 32 + 2, 2 * 40 + 2, 3)


def test_augmentation_takes_a_seed_of_unknown_static_length():
    from bloodcell.augment import build_augmentation

    aug = build_augmentation("seed", seed=0)
    x = make_cells(4, 32).astype("float32")
    seeds = tf.data.Dataset.random(seed=1).batch(2)  # shape (None,): the pipeline's own idiom
    ds = tf.data.Dataset.from_tensors((x, tf.one_hot(np.arange(4), 8)))
    images, labels = next(iter(tf.data.Dataset.zip((ds, seeds)).map(lambda xy, s: aug(xy[0], xy[1], seed=s))))
    assert images.shape == (4, 32, 32, 3) and np.allclose(labels.numpy().sum(1), 1)
