"""The two-phase Trainer on tiny models and data."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import keras
import numpy as np
import pytest

import bloodcell
from bloodcell.data import Dataset
from bloodcell.training import Trainer, class_weights_from_labels

SIZE = 32
ROOT = Path(__file__).resolve().parents[1]


def toy_data(n_per_class=(24, 12, 8), seed=0, size=SIZE) -> Dataset:
    """Three imbalanced, easily separable classes: red, green and blue squares on grey noise."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for c, n in enumerate(n_per_class):
        for _ in range(n):
            img = rng.integers(90, 140, (size, size, 3)).astype(np.uint8)
            y0, x0 = rng.integers(0, size // 2, 2)
            img[y0 : y0 + size // 2, x0 : x0 + size // 2, c] = 230
            images.append(img)
            labels.append(c)
    return Dataset(np.stack(images), np.array(labels), class_names=("red", "green", "blue"))


def tiny_trainer(**kw) -> Trainer:
    args = dict(input_size=SIZE, num_classes=3, class_names=("red", "green", "blue"), head_epochs=2,
                finetune_epochs=1, batch_size=16, augment=None, optimizer="adam", verbose=0)
    args.update(kw)
    return Trainer("microcell", **args)


def test_a_copy_of_a_config_with_another_optimizer_takes_that_optimizers_learning_rates(tmp_path):
    import dataclasses

    from bloodcell.training.config import DEFAULT_LEARNING_RATES, TrainConfig

    lion = TrainConfig()
    adam = dataclasses.replace(lion, optimizer="adam")
    assert lion.learning_rates is None and lion.rates == DEFAULT_LEARNING_RATES["lion"]
    assert adam.rates == DEFAULT_LEARNING_RATES["adam"] and adam.record()["learning_rates"] == list(adam.rates)
    assert dataclasses.replace(TrainConfig(learning_rates=(1, 2)), optimizer="adam").rates == (1.0, 2.0)
    (tmp_path / "file").write_text("x")
    with pytest.raises(bloodcell.ConfigError, match="workdir=.*: is a file, expected a folder"):
        Trainer("microcell", workdir=tmp_path / "file")


def test_class_weights_balanced():
    w = class_weights_from_labels(np.array([0, 0, 0, 1]), 3)
    np.testing.assert_allclose(w, [4 / 9, 4 / 3, 0.0], rtol=1e-6)


def test_two_phases_freeze_then_partly_unfreeze(tmp_path, monkeypatch):
    from bloodcell.models import ClassifierModel

    traced = []  # the train step is traced once a phase (not again for metrics built in its first trace)
    monkeypatch.setattr(ClassifierModel, "train_step", lambda self, data: traced.append(1) or keras.Model.train_step(self, data))
    trainer = tiny_trainer(freeze_backbone=True, unfreeze=0.5, workdir=tmp_path)
    history = trainer.fit(toy_data(), toy_data(seed=1))
    assert len(traced) == 2
    phases = [r["phase"] for r in history]
    assert phases.count("head") >= 1 and phases.count("finetune") >= 1
    model = trainer.model
    backbone = model.get_layer("backbone")
    # After fit the model is in its phase-2 state: the top half of the weighted layers, minus batch norm.
    weighted = [l for l in backbone.layers if l.weights]
    trainable = [l for l in weighted if l.trainable]
    assert 0 < len(trainable) < len(weighted)
    assert not any(isinstance(l, keras.layers.BatchNormalization) for l in trainable)
    assert all(weighted.index(l) >= len(weighted) // 2 for l in trainable)
    head_counts = {r["trainable_weights"] for r in history if r["phase"] == "head"}
    ft_counts = {r["trainable_weights"] for r in history if r["phase"] == "finetune"}
    assert head_counts == {2}  # only the dense head
    assert min(ft_counts) > 2
    assert (tmp_path / "history.csv").is_file() and (tmp_path / "history.png").is_file()
    clf = trainer.classifier
    assert clf.class_names == ("red", "green", "blue")
    assert clf.predict_proba(toy_data().images[:4]).shape == (4, 3)


def test_focal_and_class_weights_change_the_loss():
    y = keras.utils.to_categorical([0, 1], 3)
    p = np.array([[0.7, 0.2, 0.1], [0.3, 0.6, 0.1]], np.float32)
    w = np.array([0.5, 2.0, 1.0], np.float32)
    ce = tiny_trainer(loss="crossentropy").make_loss()
    per_sample = -np.log([0.7, 0.6])
    assert float(ce(y, p)) == pytest.approx(per_sample.mean(), rel=1e-5)
    sw = y @ w  # the trainer's per-sample weights
    assert float(ce(y, p, sample_weight=sw)) == pytest.approx((per_sample * [0.5, 2.0]).mean(), rel=1e-5)
    focal = tiny_trainer(loss="focal", focal_gamma=2.0).make_loss(w)
    alpha = w / w.sum()
    expected = alpha[[0, 1]] * (1 - np.array([0.7, 0.6])) ** 2 * per_sample
    assert float(focal(y, p)) == pytest.approx(expected.mean(), rel=1e-4)


def test_sample_weights_follow_mixed_labels(tmp_path):
    trainer = tiny_trainer()
    data = toy_data()
    trainer.model = trainer._make_model()
    trainer._train_weights = class_weights_from_labels(data.labels, 3)
    x, y, sw = next(iter(trainer._epoch_dataset(data, train=True, epoch_seed=0)))
    np.testing.assert_allclose(sw.numpy(), y.numpy() @ trainer._train_weights, rtol=1e-6)


def test_early_stopping_restores_best(tmp_path):
    train = toy_data()
    rng = np.random.default_rng(5)
    noisy_val = Dataset(toy_data(seed=2).images, rng.integers(0, 3, 44), class_names=train.class_names)
    trainer = tiny_trainer(head_epochs=8, finetune_epochs=0, patience=(2, 1), learning_rates=(3e-3, 1e-4))
    history = trainer.fit(train, noisy_val)
    losses = [r["val_loss"] for r in history]
    best = int(np.argmin(losses))
    assert len(history) <= best + 1 + 2  # stopped within `patience` epochs of the best
    clf = trainer.classifier
    y = keras.utils.to_categorical(noisy_val.labels, 3)
    raw = float(keras.losses.CategoricalCrossentropy()(y, clf.predict_proba(noisy_val.images, calibrated=False)))
    assert raw == pytest.approx(losses[best], rel=1e-3)
    # the temperature fitted on val at the end of training can only lower the loss there
    calibrated = float(keras.losses.CategoricalCrossentropy()(y, clf.predict_proba(noisy_val.images)))
    assert clf.temperature != 1.0 and calibrated <= raw + 1e-6


def test_resume_after_kill_equals_uninterrupted(tmp_path):
    """A run killed (SIGKILL) after an epoch and resumed in a new process ends with the weights and
    history of an uninterrupted run of the same seed, run here alongside: in a process that has
    already trained other models (the tests above), so seeded runs are also identical whatever ran
    before them in a process."""
    import threading

    settings = dict(head_epochs=2, finetune_epochs=1, augment="seed", freeze_backbone=True, patience=(10, 10))
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT / 'tests')!r})
        from test_training import tiny_trainer, toy_data
        t = tiny_trainer(workdir=sys.argv[1], **{settings!r})
        t.fit(toy_data(), toy_data(seed=1), resume=len(sys.argv) > 2)
        import numpy as np
        np.savez(sys.argv[1] + "/final.npz", *t.model.get_weights())
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    full, killed = tmp_path / "full", tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", script, str(killed)], env=env)
    state = killed / "checkpoint" / "state.json"

    def kill_after_the_first_epoch():
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            if state.is_file() and json.loads(state.read_text())["epoch"] >= 1:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)

    killer = threading.Thread(target=kill_after_the_first_epoch)
    killer.start()
    uninterrupted = tiny_trainer(workdir=full, **settings)
    uninterrupted.fit(toy_data(), toy_data(seed=1))
    killer.join()
    proc.wait()
    assert not (killed / "final.npz").exists()
    subprocess.run([sys.executable, "-c", script, str(killed), "resume"], check=True, env=env, timeout=300)
    a, b = uninterrupted.model.get_weights(), np.load(killed / "final.npz")
    for wa, k in zip(a, b.files, strict=True):
        np.testing.assert_array_equal(wa, b[k])
    ha = (full / "history.csv").read_text().splitlines()
    hb = (killed / "history.csv").read_text().splitlines()
    assert [l.split(",")[:2] for l in ha] == [l.split(",")[:2] for l in hb]  # same phases and epochs


def _killed_after_the_first_checkpoint(monkeypatch, settings) -> None:
    """Run ``tiny_trainer(**settings)`` until its first checkpoint is written, then stop it as a kill would."""
    import bloodcell.training.trainer as trainer_module
    saved = trainer_module.save_checkpoint

    def save_then_die(*args, **kwargs):
        saved(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer_module, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        tiny_trainer(**settings).fit(toy_data(), toy_data(seed=1))
    monkeypatch.setattr(trainer_module, "save_checkpoint", saved)


def test_resume_on_other_data_is_refused_and_the_checkpoint_kept(tmp_path, monkeypatch):
    settings = dict(workdir=tmp_path, head_epochs=2, finetune_epochs=0, patience=(5, 5))
    _killed_after_the_first_checkpoint(monkeypatch, settings)
    state = (tmp_path / "checkpoint" / "state.json").read_text()
    with pytest.raises(bloodcell.ConfigError, match=r"trained on other images or labels \(then 44 train images, "
                                                    r"44 val images; now 44 train images, 44 val images\).*fresh workdir"):
        tiny_trainer(**settings).fit(toy_data(seed=2), toy_data(seed=1), resume=True)
    assert (tmp_path / "checkpoint" / "state.json").read_text() == state
    assert len(tiny_trainer(**settings).fit(toy_data(), toy_data(seed=1), resume=True)) == 2


def test_resume_after_a_kill_between_the_phases(tmp_path, monkeypatch):
    """Killed right after the checkpoint that ends phase one (no early-stopping state yet for phase
    two), the run resumes into phase two."""
    settings = dict(workdir=tmp_path, head_epochs=1, finetune_epochs=1, patience=(5, 5))
    _killed_after_the_first_checkpoint(monkeypatch, settings)
    history = tiny_trainer(**settings).fit(toy_data(), toy_data(seed=1), resume=True)
    assert len(history) == 2 and history[-1]["phase"] == "finetune"


def test_a_checkpoint_left_as_old_survives_the_next_save(tmp_path):
    """A kill between the renames leaves only checkpoint.old; the next save keeps it until the new
    checkpoint is in place."""
    from bloodcell.training.callbacks import CHECKPOINT, load_checkpoint, save_checkpoint
    trainer = tiny_trainer(head_epochs=1, finetune_epochs=0)
    trainer.fit(toy_data(), toy_data(seed=1))
    save_checkpoint(tmp_path, trainer.model, {"phase": 0, "epoch": 1, "history": []}, {}, None)
    (tmp_path / CHECKPOINT).rename(tmp_path / (CHECKPOINT + ".old"))
    real_rename, renames = Path.rename, []

    def rename(self, target):
        renames.append((Path(self).name, Path(target).name))
        if Path(self).name == CHECKPOINT + ".tmp":
            assert (tmp_path / CHECKPOINT).is_dir() or (tmp_path / (CHECKPOINT + ".old")).is_dir()
        return real_rename(self, target)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Path, "rename", rename)
        save_checkpoint(tmp_path, trainer.model, {"phase": 0, "epoch": 2, "history": []}, {}, None)
    assert renames[0] == (CHECKPOINT + ".old", CHECKPOINT)
    assert load_checkpoint(tmp_path, {})["epoch"] == 2


def test_validation_data_with_other_classes_is_refused_before_training():
    train = toy_data()
    val = toy_data(seed=1)
    other = Dataset(val.images, val.labels, class_names=tuple(reversed(train.class_names)))
    with pytest.raises(bloodcell.DataError, match=r"val: its classes .*val.relabel"):
        tiny_trainer().fit(train, other)
    with pytest.raises(bloodcell.DataError, match=r"train: expected a bloodcell Dataset or a tf.data dataset, got a tuple"):
        tiny_trainer().fit((train.images, train.labels), val)


def test_refuses_to_clobber_a_checkpoint(tmp_path):
    tiny_trainer(workdir=tmp_path, head_epochs=1, finetune_epochs=0).fit(toy_data(), toy_data(seed=1))
    with pytest.raises(bloodcell.BloodcellError, match="resume=True"):
        tiny_trainer(workdir=tmp_path, head_epochs=1, finetune_epochs=0).fit(toy_data(), toy_data(seed=1))


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_with_robust_augmentation(precision):
    import contextlib

    import tensorflow as tf

    trainer = tiny_trainer(precision=precision, augment="robust", head_epochs=1, finetune_epochs=0)
    on_cpu = precision == "mixed_float16" and not tf.config.list_physical_devices("GPU")
    with pytest.warns(UserWarning, match="float16 speeds up training on GPUs") if on_cpu else contextlib.nullcontext():
        history = trainer.fit(toy_data(), toy_data(seed=1))
    assert np.isfinite(history[-1]["loss"])
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    assert trainer.classifier.model.dtype_policy.name == "float32"


@pytest.mark.parametrize("schedule", ["plateau", "cosine"])
def test_lr_schedules(schedule):
    history = tiny_trainer(lr_schedule=schedule, head_epochs=3, finetune_epochs=0, learning_rates=(1e-3, 1e-4)).fit(
        toy_data(), toy_data(seed=1)
    )
    lrs = [r["lr"] for r in history]
    if schedule == "cosine":
        assert lrs[0] == pytest.approx(1e-3) and lrs[1] < lrs[0] and lrs[2] < lrs[1]
    else:
        assert all(lr <= 1e-3 for lr in lrs)


def test_random_init_converges_quickly():
    """From scratch, batch-norm momentum 0.9 gives useful validation accuracy in a few epochs,
    and the moving statistics have caught up with the data (at 0.99 they lag far behind)."""
    trainer = tiny_trainer(head_epochs=8, finetune_epochs=0, learning_rates=(3e-3, 1e-4), patience=(8, 1))
    trainer.fit(toy_data((30, 30, 30)), toy_data((10, 10, 10), seed=3))
    val = toy_data((10, 10, 10), seed=4)
    acc = np.mean(np.array(trainer.classifier.predict_proba(val.images)).argmax(1) == val.labels)
    assert acc >= 0.9
    # fit() ends with the calibration and the out-of-distribution check, fitted to the training images
    check = trainer.classifier.feature_check
    assert check is not None and check.images == 90 and "the 90 training images" in check.fitted_on
    assert trainer.classifier.predict_checked(val.images, verbose=0).outlier.mean() <= 0.2

    def first_bn_lag(momentum):
        model = bloodcell.build_model("microcell", input_size=SIZE, num_classes=3, bn_momentum=momentum)
        model.compile("adam", "categorical_crossentropy")
        data = toy_data((30, 30, 30))
        y = keras.utils.to_categorical(data.labels, 3)
        model.fit(data.images.astype("float32"), y, batch_size=16, epochs=4, verbose=0, shuffle=False)
        backbone = model.get_layer("backbone")
        probe = keras.Model(backbone.input, backbone.get_layer("block1_conv1").output)
        conv = np.asarray(probe(data.images.astype("float32") / 1.0))
        bn = backbone.get_layer("block1_bn1")
        true_mean = conv.mean(axis=(0, 1, 2))
        return np.abs(np.asarray(bn.moving_mean) - true_mean).mean() / (np.abs(true_mean).mean() + 1e-6)

    assert first_bn_lag(0.9) < 0.2 < first_bn_lag(0.99)


def test_bad_settings():
    with pytest.raises(bloodcell.BloodcellError, match="optimizer='sgdx'.*lion"):
        Trainer("microcell", optimizer="sgdx")
    with pytest.raises(bloodcell.BloodcellError, match="augment"):
        Trainer("microcell", augment="heavy")
    with pytest.raises(bloodcell.BloodcellError, match="patience"):
        Trainer("microcell", patience=(0, 3))
    empty = toy_data().subset([])
    with pytest.raises(bloodcell.BloodcellError, match="val: the validation set is empty"):
        tiny_trainer().fit(toy_data(), empty)


@pytest.mark.parametrize("bad", [-2, 1.5, "all", True])
def test_bad_unfreeze_is_refused_at_once(bad):
    with pytest.raises(bloodcell.errors.BloodcellError, match="unfreeze"):
        tiny_trainer(unfreeze=bad)


def test_unfreeze_beyond_the_backbone_fails_before_training(tmp_path):
    trainer = tiny_trainer(unfreeze=10_000, workdir=tmp_path)
    with pytest.raises(bloodcell.errors.BloodcellError, match=r"unfreeze=10000: the microcell backbone has \d+ layers"):
        trainer.fit(toy_data(), toy_data(seed=1))
    assert trainer.history == []


def test_start_from_a_trained_model_at_another_input_size(tmp_path):
    first = tiny_trainer(head_epochs=1, finetune_epochs=0)
    first.fit(toy_data(), toy_data(seed=1))
    parent = first.classifier
    parent.save_pretrained(tmp_path / "parent")

    second = tiny_trainer(weights=str(tmp_path / "parent"), input_size=48, head_epochs=0, finetune_epochs=1)
    second.model = second._make_model()
    assert second.model.inputs[0].shape[1] == 48
    for a, b in zip(second.model.get_weights(), parent.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    second.fit(toy_data(size=48), toy_data(seed=1, size=48))
    clf = second.classifier
    assert clf.input_size == 48
    assert clf.training["init"] == f"bloodcell model {tmp_path / 'parent'}"
    assert clf.training["init_from"]["init"] == "random" and clf.training["init_from"]["input_size"] == SIZE
    card = clf.save_pretrained(tmp_path / "child") / "README.md"
    assert "Initialised from the bloodcell model" in card.read_text() and "random initialisation" in card.read_text()

    other = Trainer("mnv3s", weights=str(tmp_path / "parent"), input_size=SIZE, num_classes=3, verbose=0)
    with pytest.raises(bloodcell.BloodcellError, match="a microcell model, expected a mnv3s one"):
        other.fit(toy_data(), toy_data(seed=1))
    renamed = tiny_trainer(weights=str(tmp_path / "parent"), class_names=("a", "b", "c"))
    with pytest.raises(bloodcell.BloodcellError, match="are not the data's"):
        renamed.fit(toy_data(), toy_data(seed=1))


def _tf_data(data: Dataset, batch=16, one_hot=False, size=None):
    import tensorflow as tf

    from PIL import Image

    images = data.images if size is None else np.stack([np.asarray(Image.fromarray(im).resize((size, size)))
                                                        for im in data.images])
    labels = keras.utils.to_categorical(data.labels, 3) if one_hot else data.labels.astype(np.int32)
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch)


def test_tf_data_is_augmented_weighted_and_sized_like_a_dataset(monkeypatch):
    import tensorflow as tf

    from bloodcell import pipeline

    augmented = []
    real = pipeline.augment_dataset
    monkeypatch.setattr(pipeline, "augment_dataset", lambda ds, augment, **kw: augmented.append(augment) or real(ds, augment, **kw))
    trainer = tiny_trainer(augment="seed", head_epochs=2, finetune_epochs=0, patience=None)
    # Integer labels at 48 px (image_dataset_from_directory's defaults), a filter that hides the length.
    train = _tf_data(toy_data(), size=48).filter(lambda x, y: True)
    assert int(train.cardinality()) < 0
    history = trainer.fit(train)
    assert len(history) == 2 and augmented[0] == "seed"
    np.testing.assert_allclose(trainer._train_weights, class_weights_from_labels(toy_data().labels, 3))
    assert trainer.classifier.input_size == SIZE
    from tensorflow.python.framework import config as tf_config

    assert not tf_config.is_op_determinism_enabled()  # as it was before fit()
    # One-hot labels, and a validation set of tf.data too, on which the model is calibrated as on a Dataset.
    trainer = tiny_trainer(head_epochs=1, finetune_epochs=0)
    trainer.fit(_tf_data(toy_data(), one_hot=True), _tf_data(toy_data(seed=1)))
    assert trainer.classifier.extra["calibration"]["images"] == len(toy_data(seed=1))
    # A tf.data dataset that names no classes (Keras' class_names do not survive a .map or .prefetch), and no
    # classes given: its label ids are the PBC classes, said in a warning that names them and the fix.
    unnamed = Trainer("microcell", input_size=SIZE, head_epochs=1, finetune_epochs=0, batch_size=16, augment=None,
                      patience=None, verbose=0)
    with pytest.warns(UserWarning, match=r"names no classes, so its labels are read as the PBC classes in order "
                                         r"\(0 = basophil, 1 = eosinophil, 2 = erythroblast\).*Trainer\(class_names="):
        unnamed.fit(_tf_data(toy_data()).prefetch(1))
    with pytest.raises(bloodcell.DataError, match=r"num_classes=2: the data have 3 classes \(red, green, blue\)"):
        Trainer("microcell", num_classes=2, input_size=SIZE).fit(toy_data(), toy_data(seed=1))
    with pytest.raises(bloodcell.DataError, match=r"train: .*unbatched.*\.batch\(32\)"):
        tiny_trainer().fit(_tf_data(toy_data()).unbatch(), toy_data(seed=1))
    with pytest.raises(bloodcell.DataError, match=r"train: .*got labels of shape \(None, 5\).*tf.one_hot"):
        tiny_trainer().fit(_tf_data(toy_data()).map(lambda x, y: (x, tf.one_hot(y, 5))), toy_data(seed=1))
    with pytest.raises(bloodcell.DataError, match=r"train: the dataset repeats forever; drop its .repeat\(\)"):
        tiny_trainer().fit(_tf_data(toy_data()).repeat(), toy_data(seed=1))
    for empty in (_tf_data(toy_data()).take(0), _tf_data(toy_data()).filter(lambda x, y: False)):  # known, unknown size
        with pytest.raises(bloodcell.DataError, match="val: the tf.data dataset holds no batches"):
            tiny_trainer().fit(_tf_data(toy_data()), empty)


def test_user_callbacks_run_in_each_phase():
    seen = []

    class Count(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(epoch)

    tiny_trainer(head_epochs=2, finetune_epochs=1, patience=None).fit(toy_data(), callbacks=[Count()])
    assert seen == [0, 1, 0]
    with pytest.raises(bloodcell.ConfigError, match="callbacks: expected keras.callbacks.Callback objects, got builtin_function_or_method"):
        tiny_trainer().fit(toy_data(), toy_data(seed=1), callbacks=[print])


def test_starting_from_a_bloodcell_model_keeps_its_input_size(tmp_path):
    parent = tiny_trainer(input_size=40, head_epochs=1, finetune_epochs=0)
    parent.fit(toy_data(), toy_data(seed=1))
    parent.classifier.save_pretrained(tmp_path / "parent")
    child = Trainer(weights=str(tmp_path / "parent"), head_epochs=1, finetune_epochs=0, batch_size=16, verbose=0)
    child.fit(toy_data(), toy_data(seed=1))
    assert child.classifier.input_size == 40
    assert Trainer("microcell", verbose=0)._make_model().inputs[0].shape[1] == 96


def test_each_epoch_of_tf_data_is_augmented_from_its_own_seed():
    # so that a run resumed at any epoch draws what the uninterrupted run drew (as for a Dataset)
    from bloodcell.training.config import TrainConfig
    from bloodcell.training.epochs import epochs_dataset

    config = TrainConfig(augment="seed", batch_size=8)

    def images(seeds):
        ds = epochs_dataset(_tf_data(toy_data(), batch=8), train=True, seeds=seeds, config=config, input_size=SIZE,
                            num_classes=3)
        return np.concatenate([x.numpy() for x, *_ in ds])

    both = images([11, 12])
    np.testing.assert_array_equal(both, np.concatenate([images([11]), images([12])]))
    assert not np.array_equal(images([11]), images([12]))


def test_settings_that_would_build_another_model_are_refused_with_a_model_object(tmp_path):
    model = bloodcell.build_model("microcell", input_size=SIZE, num_classes=3, class_names=("red", "green", "blue"))
    with pytest.raises(bloodcell.ConfigError, match=f"input_size=64: the model given takes {SIZE} px"):
        Trainer(model, input_size=64)
    with pytest.raises(bloodcell.ConfigError, match="normalization='stain': the model given has none"):
        Trainer(model, normalization="stain")
    with pytest.raises(bloodcell.ConfigError, match="a model object brings its own weights"):
        Trainer(model, weights=str(tmp_path / "w.weights.h5"))
    Trainer(model, input_size=SIZE, normalization="none")  # what it is: accepted


def test_a_diverged_run_stops_at_its_first_non_finite_epoch_and_keeps_the_last_finite_one(tmp_path):
    trainer = tiny_trainer(workdir=tmp_path, head_epochs=3, finetune_epochs=0, patience=None, learning_rates=(1e30, 1e30))
    with pytest.raises(bloodcell.ConfigError, match=r"epoch \d: the (training loss became nan|weights became NaN or infinite) \(the training diverged\).*"
                                                    r"lower the learning rate \(now 1.00e\+30\)"):
        trainer.fit(toy_data(), None)
    # blown up on the last step of the only epoch: the mean loss is finite, the answers are not
    blown = tiny_trainer(head_epochs=1, finetune_epochs=0, patience=None, learning_rates=(1e30, 1e30), batch_size=64)
    with pytest.raises(bloodcell.ConfigError, match=r"(answers are NaN or infinite|diverged).*lower the learning rate") as info:
        blown.fit(toy_data(), None)
    assert info.value.exit_code == 1  # epochs were run and written: not "nothing was done" (2)
    for settings, message in ((dict(learning_rates=(float("inf"), 1e-4)), "learning_rates must be two positive"),
                              (dict(weight_decay=float("nan")), "weight_decay must be"), (dict(seed=-1), "seed must be"),
                              (dict(class_weights="no"), "class_weights must be True or False"),
                              (dict(focal_gamma="x"), "focal_gamma must be a number")):
        with pytest.raises(bloodcell.ConfigError, match=message):
            tiny_trainer(**settings)
    for data in ("cells/", None, {"images": 1}):
        with pytest.raises(bloodcell.DataError, match="train: expected a bloodcell Dataset or a tf.data dataset"):
            tiny_trainer(patience=None).fit(data, None)
