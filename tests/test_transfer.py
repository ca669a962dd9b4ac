"""Other classes and other labs: new heads, --init with other classes, small data, --classes, subsets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import bloodcell
from bloodcell.cli import main
from bloodcell.data import Dataset, load_dataset

from test_training import SIZE, tiny_trainer, toy_data

COLOURS = {"red": 0, "green": 1, "blue": 2}


def coloured(n: int, channel: int, seed: int, size: int = SIZE, mix=None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        img = rng.integers(90, 140, (size, size, 3)).astype(np.uint8)
        y0, x0 = rng.integers(0, size // 2, 2)
        patch = img[y0 : y0 + size // 2, x0 : x0 + size // 2]
        for c in ([channel] if mix is None else mix):
            patch[..., c] = 230
        out.append(img)
    return np.stack(out)


def write_folder(root, classes: dict[str, np.ndarray]):
    for name, images in classes.items():
        (root / name).mkdir(parents=True)
        for i, img in enumerate(images):
            Image.fromarray(img).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    """A microcell trained on red, green and blue squares, saved as a folder."""
    trainer = tiny_trainer(head_epochs=4, finetune_epochs=0, learning_rates=(3e-3, 1e-4))
    trainer.fit(toy_data((30, 30, 30)), toy_data((10, 10, 10), seed=3))
    folder = tmp_path_factory.mktemp("parent") / "rgb"
    clf = trainer.classifier
    clf.name = "rgb"
    clf.save_pretrained(folder)
    return folder


def test_load_classifier_with_new_classes_keeps_the_backbone_and_shared_units(parent):
    clf = bloodcell.load_classifier(parent)
    new = bloodcell.load_classifier(parent, class_names=["blue", "purple", "red"])
    assert new.class_names == ("blue", "purple", "red")
    for a, b in zip(clf.model.backbone.get_weights(), new.model.backbone.get_weights()):
        np.testing.assert_array_equal(a, b)
    kernel, _ = clf.model.head.get_weights()
    new_kernel, _ = new.model.head.get_weights()
    np.testing.assert_array_equal(new_kernel[:, 0], kernel[:, 2])
    np.testing.assert_array_equal(new_kernel[:, 2], kernel[:, 0])
    assert new.training["init_from"]["class_names"] == ["red", "green", "blue"]
    assert new.training["init_from"]["new_classes"] == ["purple"]
    assert new.training["init_from"]["dropped_classes"] == ["green"]
    assert "(new: purple; dropped: green)" in bloodcell.card.render_model_card(new.config())


def test_class_names_match_the_parents_ignoring_case_and_pbc_aliases(parent):
    clf = bloodcell.load_classifier(parent)
    kernel, _ = clf.model.head.get_weights()
    same = bloodcell.load_classifier(parent, class_names=["Red", "GREEN", "blue"])
    assert same.class_names == ("Red", "GREEN", "blue")
    np.testing.assert_array_equal(same.model.head.get_weights()[0], kernel)  # the whole trained head
    pbc = bloodcell.build_model("microcell", input_size=SIZE)
    renamed = pbc.with_classes(["IG", "Neutrophil", "blast"])
    old_kernel, new_kernel = pbc.head.get_weights()[0], renamed.head.get_weights()[0]
    np.testing.assert_array_equal(new_kernel[:, 0], old_kernel[:, bloodcell.CLASS_NAMES.index("immature_granulocyte")])
    np.testing.assert_array_equal(new_kernel[:, 1], old_kernel[:, bloodcell.CLASS_NAMES.index("neutrophil")])


def test_a_new_head_trains_and_reloads_with_its_classes(parent, tmp_path):
    names = ("red", "green", "purple")
    images = np.concatenate([coloured(20, 0, 1), coloured(20, 1, 2), coloured(20, None, 3, mix=[0, 2])])
    data = Dataset(images, np.repeat(np.arange(3), 20), names)
    trainer = bloodcell.Trainer(weights=bloodcell.load_classifier(parent, class_names=names), input_size=SIZE,
                                head_epochs=4, finetune_epochs=1, batch_size=16, optimizer="adam", augment=None,
                                learning_rates=(3e-3, 1e-4), verbose=0)
    history = trainer.fit(data, data)
    assert history[0]["phase"] == "head"  # a new head on trained features: the backbone is frozen first
    clf = trainer.classifier
    assert clf.class_names == names
    clf.save_pretrained(tmp_path / "child")
    again = bloodcell.load_classifier(tmp_path / "child")
    assert again.class_names == names
    assert np.mean(np.array(again.predict(images)) == np.repeat(np.array(names), 20)) > 0.8
    card = (tmp_path / "child" / "README.md").read_text()
    assert "purple" in card and "Initialised from the bloodcell model" in card


@pytest.mark.parametrize("classes", [["red", "green"], ["red", "green", "blue", "purple"]], ids=["subset", "superset"])
def test_cli_init_with_other_classes(parent, tmp_path, classes, capsys):
    colours = {"red": coloured(12, 0, 4), "green": coloured(12, 1, 5), "blue": coloured(12, 2, 6),
               "purple": coloured(12, None, 7, mix=[0, 2])}
    data = write_folder(tmp_path / "data", {c: colours[c] for c in classes})
    out = tmp_path / "out"
    code = main(["train", str(data), "--init", str(parent), "--head-epochs", "2", "--finetune-epochs", "1",
                 "--batch-size", "8", "--augment", "none", "--val-fraction", "0.25", "--test-fraction", "0.25",
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    if "purple" in classes:  # said on the terminal, not only in the card
        assert "classes: new output units, trained from scratch, for purple" in err
    clf = bloodcell.load_classifier(out)
    assert clf.architecture == "microcell" and clf.input_size == SIZE  # implied by --init
    assert clf.class_names == tuple(sorted(classes, key=["red", "green", "blue", "purple"].index)) or \
        set(clf.class_names) == set(classes)
    origin = clf.training["init_from"]
    assert origin["class_names"] == ["red", "green", "blue"]
    assert origin["new_classes"] == [c for c in clf.class_names if c not in ("red", "green", "blue")]
    assert origin["dropped_classes"] == [c for c in ("red", "green", "blue") if c not in clf.class_names]


def test_cli_small_data_cross_validates_and_averages_with_the_models_it_trained(parent, tmp_path, capsys):
    data = write_folder(tmp_path / "data", {"red": coloured(10, 0, 8), "green": coloured(10, 1, 9)})
    out = tmp_path / "out"
    code = main(["train", str(data), "--init", str(parent), "--head-epochs", "1", "--batch-size", "4",
                 "--augment", "none", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "small data" in err and "3-fold cross-validation, then 3 models trained on all of them" in err
    clf = bloodcell.load_classifier(out)
    assert clf.metrics["cross_validation_folds"] == 3 and clf.metrics["cross_validated_images"] == 20
    # Its out-of-distribution check is its own lab's (not the colour statistics of the parent's data):
    # the Gaussian of its features of the 20 images, the threshold on their cross-validated scores.
    check = clf.feature_check
    assert check is not None and "threshold on their 3-fold cross-validated scores" in check.fitted_on
    inside = clf.predict_checked(coloured(10, 1, 30), verbose=0)
    noise = clf.predict_checked(np.random.default_rng(0).integers(0, 256, (6, SIZE, SIZE, 3), dtype=np.uint8), verbose=0)
    assert inside.ood_scores is not None  # the feature check decided, not the colour test
    assert noise.outlier.all() and inside.outlier.mean() <= 0.2, (inside.ood_scores, noise.ood_scores, check.threshold)
    assert "test_images" not in clf.metrics and "split: cross-validation" in (out / "README.md").read_text()
    assert 0 <= clf.metrics["accuracy"] <= 1
    assert "cross-validation" in json.loads((out / "config.json").read_text())["eval_data"]
    assert clf.training["settings"]["patience"] is None  # small data: every epoch runs, no validation split
    assert "weight average (a model soup) of 3 models" in clf.training["weights"] and "seeds 42, 43, 44" in clf.training["weights"]
    assert "where this one is the average of 3" in json.loads((out / "config.json").read_text())["eval_data"]
    # No split to calibrate on: the temperature and the review threshold come from the cross-validated predictions.
    calibration = clf.extra["calibration"]
    assert "3-fold cross-validated predictions" in calibration["fitted_on"] and calibration["images"] == 20
    assert clf.review_below is not None and 0.1 < clf.temperature < 10 and "review" in (out / "README.md").read_text()
    assert calibration["tta"]["review_below"] is not None  # the 8-view mode, fitted on the same predictions' views
    assert "calibrated on those predictions" in err
    # its figures are cross-validated: measured again on (copies of) its training images, they are not recorded
    copy = write_folder(tmp_path / "copy", {"red": coloured(6, 0, 8)[:2], "green": coloured(6, 1, 20)})
    before = (out / "config.json").read_text()
    assert main(["evaluate", str(copy), "--model", str(out), "--write-metrics"]) == 2
    err = capsys.readouterr().err
    assert "2 of the 8 images are images" in err and (out / "config.json").read_text() == before
    assert "(its cross-validated figures are in its card)" in err
    assert main(["evaluate", str(copy), "--model", str(out)]) == 0  # measured all the same, and said
    assert "warning: 2 of the 8 images are images" in capsys.readouterr().err
    # one image a class: nothing to hold out, so no cross-validated figure and no calibration, said on
    # screen; --no-soup trains one model
    single = write_folder(tmp_path / "single", {"red": coloured(1, 0, 8), "green": coloured(1, 1, 9)})
    assert main(["train", str(single), "--init", str(parent), "--head-epochs", "1", "--batch-size", "4",
                 "--augment", "none", "--out", str(tmp_path / "one"), "--no-soup"]) == 0
    err = capsys.readouterr().err
    assert "no held-out figure: too few images" in err and "hold any out, a model trained on all of them" in err
    alone = bloodcell.load_classifier(tmp_path / "one")
    assert "weights" not in alone.training and "average of" not in alone.extra.get("eval_data", "")
    assert main(["evaluate", str(single), "--model", str(tmp_path / "one"), "--write-metrics"]) == 2
    assert "cross-validated" not in capsys.readouterr().err  # it has no such figures


def test_predict_restricted_to_some_classes(parent, capsys, tmp_path):
    clf = bloodcell.load_classifier(parent)
    images = coloured(4, 2, 10)
    full = clf.predict_proba(images)
    some = clf.predict_proba(images, classes=["red", "green"])
    assert (some[:, 2] == 0).all()
    np.testing.assert_allclose(some.sum(1), 1.0, atol=1e-6)
    np.testing.assert_allclose(some[:, :2], full[:, :2] / full[:, :2].sum(1, keepdims=True), rtol=1e-5)
    assert set(clf.predict(images, classes=["red", "green"])) <= {"red", "green"}
    with pytest.raises(bloodcell.ConfigError, match="mauve is not a class of this model"):
        clf.predict(images, classes=["mauve"])
    np.testing.assert_allclose(clf.predict_proba(images, classes="Red,GREEN"), some)  # case ignored, as folders
    with pytest.raises(bloodcell.ConfigError, match="expected class names"):
        clf.predict(images, classes=["red", 1])
    for one in (["red"], ["red", "Red"], "red,"):  # one class would be every image's answer, and sure of it
        with pytest.raises(bloodcell.ConfigError, match="at least two different classes"):
            clf.predict(images, classes=one)
    sure = bloodcell.load_classifier(parent)
    kernel, bias = sure.model.head.get_weights()
    sure.model.head.set_weights([kernel, bias + np.array([0.0, 0.0, 500.0], np.float32)])  # certain of blue
    np.testing.assert_array_equal(sure.predict_proba(images, classes=["red", "green"], calibrated=False),
                                  np.tile([0.5, 0.5, 0.0], (len(images), 1)))  # no evidence left: uniform over them
    assert set(sure.predict(images, classes=["red", "green"])) <= {"red", "green"}
    path = tmp_path / "cell.png"
    Image.fromarray(images[0]).save(path)
    assert [(r.path, r.label) for r in clf.predict_files(path)] == [(path, clf.predict(images[:1])[0])]  # one path
    with pytest.raises(bloodcell.DataError, match="expected image file paths"):
        next(clf.predict_files([images[0]]))
    assert main(["predict", str(path), "--model", str(parent), "--classes", "red,green", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["label"] in ("red", "green") and record["probabilities"]["blue"] == 0
    capsys.readouterr()
    assert main(["predict", str(path), "--model", str(parent), "--classes", "mauve"]) == 2
    assert "error: --classes: mauve is not a class" in capsys.readouterr().err
    assert main(["train", str(tmp_path), "--init", str(parent), "--head-epochs", "0", "--finetune-epochs", "0"]) == 2
    assert "nothing to train" in capsys.readouterr().err
    assert main(["predict", str(path), "--model", str(parent), "--classes", "red"]) == 2


def test_evaluate_on_some_of_the_classes(parent, tmp_path, capsys):
    data = write_folder(tmp_path / "data", {"red": coloured(5, 0, 11), "blue": coloured(5, 2, 12)})
    report = bloodcell.evaluate(bloodcell.load_classifier(parent), load_dataset(data, image_size=SIZE))
    assert report.n == 10 and report.absent == ("green",)
    assert report.confusion[1].sum() == 0
    assert main(["evaluate", str(data), "--model", str(parent)]) == 0
    out = capsys.readouterr().out
    assert "no images of: green" in out
    assert main(["evaluate", str(data), "--model", str(parent), "--classes", "red,blue", "--json"]) == 0
    restricted = json.loads(capsys.readouterr().out)
    assert sum(row[1] for row in restricted["evaluation"]["confusion_matrix"]) == 0  # green is never the answer
    assert main(["evaluate", str(data), "--model", str(parent), "--classes", "mauve"]) == 2
    assert "error: --classes: mauve is not a class" in capsys.readouterr().err
    green = next(line for line in out.splitlines() if line.startswith("green "))
    if report.confusion[:, 1].sum() == 0:  # neither present nor predicted: nothing to measure, not 0.0000
        assert green.split()[1:] == ["–", "–", "–", "0"]


@pytest.mark.parametrize("normalization, kept", [(None, True), ("none", False)])
def test_training_from_a_model_keeps_its_normalisation_unless_told_none(tmp_path, normalization, kept):
    stained = bloodcell.build_model("microcell", input_size=SIZE, class_names=["red", "green", "blue"],
                                    normalization="stain")
    bloodcell.Classifier(stained, name="stained").save_pretrained(tmp_path / "parent")
    trainer = bloodcell.Trainer(weights=str(tmp_path / "parent"), input_size=SIZE, head_epochs=1, finetune_epochs=0,
                      batch_size=16, augment=None, optimizer="adam", verbose=0, normalization=normalization)
    trainer.fit(toy_data(), toy_data(seed=1))
    assert (trainer.classifier.model.normalization is not None) == kept


def test_the_card_says_whether_a_new_head_shares_units_with_its_parent():
    from bloodcell.card import render_model_card

    def card(names, new):
        parent = {"source": "p", "init": "random", "class_names": ["red", "green"], "new_classes": new,
                  "dropped_classes": ["red", "green"] if not set(names) & {"red", "green"} else []}
        return render_model_card({"name": "m", "architecture": "microcell", "class_names": names, "input_size": SIZE,
                                  "build": {}, "training": {"init": "bloodcell model p", "init_from": parent,
                                                            "epochs_run": {"head": 1}}})
    assert "all of them new" in card(["Eos", "Lymph"], ["Eos", "Lymph"])
    assert "units of the classes both share" in card(["red", "blast"], ["blast"])


def test_predicting_with_an_untrained_new_head_warns_once(parent):
    import warnings

    new = bloodcell.load_classifier(parent, class_names=["blue", "purple"])
    images = coloured(2, 2, 5)
    with pytest.warns(UserWarning, match="output units for purple are new and not trained yet"):
        new.predict(images)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new.predict(images)  # once per classifier
        bloodcell.load_classifier(parent).predict(images)  # a trained one: never
        # A head of classes the parent has (a subset, reordered) keeps trained units: nothing to warn of.
        subset = bloodcell.load_classifier(parent, class_names=["Blue", "red"])
        subset.predict(images)
        assert subset.untrained_classes() == [] and "no training since" in bloodcell.card.render_model_card(subset.config())
    with pytest.warns(UserWarning, match="exporting output units for purple that were never trained"):
        with pytest.raises(Exception):  # the warning comes first, whatever the exporter then does
            new.export(format="no-such-format")


def test_cli_init_keeps_the_parents_held_out_images_out_of_training(parent, tmp_path, capsys):
    import shutil

    from bloodcell.data import split

    data = write_folder(tmp_path / "data", {"red": coloured(12, 0, 4), "green": coloured(12, 1, 5),
                                            "blue": coloured(12, 2, 6)})
    # A parent that held out what the default split of DATA holds out (as the zoo's pbc96 models do).
    held = split(load_dataset(data, image_size=SIZE), (0.5, 0.25, 0.25), seed=42)[2]
    mine = tmp_path / "parent"
    shutil.copytree(parent, mine)
    (mine / "test_files.json").write_text(json.dumps([str(Path(p).relative_to(data)) for p in held.paths]))
    base = ["train", str(data), "--init", str(mine), "--head-epochs", "1", "--finetune-epochs", "0", "--batch-size", "8",
            "--augment", "none", "--val-fraction", "0.25", "--test-fraction", "0.25"]
    # --seed seeds the training, not the split: the parent's held-out images stay held out.
    assert main([*base, "--seed", "7", "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert "warning" not in err
    assert sorted(json.loads((tmp_path / "a" / "test_files.json").read_text())) == \
        sorted(json.loads((mine / "test_files.json").read_text()))
    # Another split measures on images the parent may have trained on: said on screen and in the card.
    assert main([*base, "--split-seed", "7", "--out", str(tmp_path / "b")]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "may overstate" in err and "--split-seed 42" in err and len(err.split("warning:")) == 2
    assert "may overstate" in bloodcell.load_classifier(tmp_path / "b").extra["eval_data"]
    # Other data that shares a file name or two with the parent's held-out list is not taken for its data.
    other = write_folder(tmp_path / "other", {"red": coloured(12, 0, 40), "green": coloured(12, 1, 41),
                                              "blue": coloured(12, 2, 42)})
    keep = set(json.loads((mine / "test_files.json").read_text())[:1])
    for p in other.rglob("*.png"):
        if str(p.relative_to(other)) not in keep:
            p.rename(p.with_name("x" + p.name))
    assert main([*base[:1], str(other), *base[2:], "--split-seed", "7", "--out", str(tmp_path / "c")]) == 0
    assert "warning" not in capsys.readouterr().err


def test_the_same_classes_in_another_order_keep_the_calibration():
    clf = bloodcell.load_classifier()
    names = [n.upper() for n in reversed(clf.class_names)]
    again = bloodcell.load_classifier(class_names=names)
    assert again.class_names == tuple(names) and not again.untrained_classes()
    assert again.temperature == clf.temperature and again.review_below == clf.review_below
    assert again.feature_check is not None and again.metrics == clf.metrics
    images = load_dataset(Path(__file__).parent / "data" / "pbc96_sample", image_size=clf.input_size).images[:4]
    np.testing.assert_allclose(again.predict_proba(images)[:, ::-1], clf.predict_proba(images), atol=1e-6)
    other = bloodcell.load_classifier(class_names=list(clf.class_names)[:7])
    assert other.temperature == 1.0 and other.feature_check is None  # other classes: a new head, uncalibrated
    # Training from it starts the whole network, as from a model of the same classes; other classes, a new head.
    from bloodcell.training.policy import start_from

    assert [start_from(parent, "p", order, clf.input_size)[2] for parent, order in (
        (clf, names), (again, clf.class_names), (clf, list(clf.class_names)[:7]), (other, clf.class_names))] == [
        False, False, True, True]


def test_copies_of_one_image_count_once_for_the_cross_validation_folds():
    from bloodcell.data import Dataset
    from bloodcell.training.small_data import folds_for

    images = np.concatenate([coloured(1, 0, 1).repeat(2, axis=0), coloured(5, 1, 2), coloured(5, 2, 3)])
    labels = np.array([0, 0] + [1] * 5 + [2] * 5)
    assert folds_for(Dataset(images, labels, ("a", "b", "c"))) == 0  # class a: one image, twice
    images[1] = coloured(1, 0, 9)[0]
    assert folds_for(Dataset(images, labels, ("a", "b", "c"))) == 2
