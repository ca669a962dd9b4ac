"""Classifier inference, input handling, bad input and the save/load round trip."""

import json
import re

import keras
import numpy as np
import pytest
from PIL import Image

import bloodcell
from bloodcell import Classifier, load_classifier
from bloodcell.errors import BloodcellError

from conftest import synthetic_cell

SIZE = 32


@pytest.fixture(scope="module")
def clf():
    return Classifier(bloodcell.build_model("microcell", input_size=SIZE), name="tiny")


def test_predict_proba_shapes_and_sums(clf, cells):
    p = clf.predict_proba(cells)
    assert p.shape == (len(cells), 8) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    labels = clf.predict(cells)
    assert labels == [clf.class_names[i] for i in p.argmax(1)]
    assert all(label in bloodcell.CLASS_NAMES for label in labels)


def test_accepts_single_image_paths_pil_and_lists(clf, image_dir, cells):
    single = clf.predict_proba(cells[0])
    np.testing.assert_allclose(single, clf.predict_proba(cells[:1]), atol=1e-6)
    paths = sorted(image_dir.iterdir())
    p_paths = clf.predict_proba(paths)
    assert p_paths.shape == (len(paths), 8)
    p_pil = clf.predict_proba([Image.open(p) for p in paths])
    np.testing.assert_allclose(p_paths, p_pil, atol=1e-6)
    assert clf.predict_proba(str(paths[0])).shape == (1, 8)


def test_modes_are_converted(clf, image_dir):
    from bloodcell.imageio import read_image

    for name in ("grey.png", "rgba.png", "palette.png", "grey16.png", "rgb.jpg"):
        img = read_image(image_dir / name)
        assert img.dtype == np.uint8 and img.shape == (80, 80, 3), name
    grey16 = read_image(image_dir / "grey16.png")  # the red channel of synthetic_cell(80, 1), times 257
    np.testing.assert_array_equal(grey16[..., 1], synthetic_cell(80, 1)[..., 0])
    rgba = read_image(image_dir / "rgba.png")
    np.testing.assert_array_equal(rgba, read_image(image_dir / "rgb.png"))


def test_any_size_is_resized_like_training(clf):
    from bloodcell.imageio import resize_image

    big = synthetic_cell(120, 3)
    np.testing.assert_allclose(clf.predict_proba(big[None]), clf.predict_proba(resize_image(big, SIZE)[None]), atol=1e-6)
    wide = np.concatenate([big, big[:, :40]], axis=1)  # 120 x 160: centre-cropped to a square
    assert clf.predict_proba(wide).shape == (1, 8)


def test_tta_averages_dihedral_views(clf, cells):
    p = clf.predict_proba(cells, tta=True)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    rotated = np.rot90(cells, 1, axes=(1, 2))
    np.testing.assert_allclose(p, clf.predict_proba(rotated, tta=True), atol=1e-5)


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda d: d / "missing.png", "no such file"),
        (lambda d: _write(d / "empty.jpg", b""), "empty"),
        (lambda d: _write(d / "text.jpg", b"hello, not an image"), "not a readable image"),
        (lambda d: d, "is a folder"),
    ],
)
def test_bad_files_raise_value_error_naming_the_file(clf, tmp_path, make, match):
    path = make(tmp_path)
    with pytest.raises(ValueError, match=match) as err:
        clf.predict([path])
    assert str(path) in str(err.value)


def test_truncated_jpeg(clf, tmp_path):
    path = tmp_path / "cut.jpg"
    Image.fromarray(synthetic_cell(64)).save(path, quality=95)
    path.write_bytes(path.read_bytes()[:400])
    with pytest.raises(ValueError, match="cut.jpg.*(damaged|truncated)"):
        clf.predict([path])


def test_huge_image_refused_without_decoding(clf, tmp_path):
    path = tmp_path / "huge.png"
    Image.new("L", (10_000, 10_000), 200).save(path)  # 100 megapixels
    with pytest.raises(ValueError, match="huge.png.*(limit|too large)"):
        clf.predict([path])


def test_huge_jpeg_decoded_at_reduced_scale(clf, tmp_path):
    path = tmp_path / "huge.jpg"
    Image.fromarray(synthetic_cell(64)).resize((10_000, 10_000)).save(path, quality=50)
    assert clf.predict_proba([path]).shape == (1, 8)


def test_bad_arrays(clf):
    with pytest.raises(ValueError, match="0..1"):
        clf.predict(np.random.rand(2, SIZE, SIZE, 3))
    with pytest.raises(ValueError, match="shape"):
        clf.predict(np.zeros((2, SIZE, SIZE, 5), np.uint8))
    with pytest.raises(ValueError, match="empty list"):
        clf.predict([])


def test_save_pretrained_round_trip(clf, tmp_path, cells):
    clf.metrics = {"accuracy": 0.5}
    folder = clf.save_pretrained(tmp_path / "m")
    assert {p.name for p in folder.iterdir()} == {"config.json", "model.weights.h5", "README.md"}
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["architecture"] == "microcell" and cfg["input_size"] == SIZE
    assert cfg["class_names"] == list(bloodcell.CLASS_NAMES)
    assert cfg["metrics"] == {"accuracy": 0.5}
    assert {"bloodcell_version", "keras_version", "preprocessing", "weights_sha256"} <= cfg.keys()
    again = load_classifier(folder)
    np.testing.assert_array_equal(again.predict_proba(cells), clf.predict_proba(cells))
    assert again.metrics == {"accuracy": 0.5}
    assert "accuracy" in (folder / "README.md").read_text()


def test_card_of_unnamed_model_is_titled_by_its_folder(clf, tmp_path):
    unnamed = Classifier(clf.model)
    card = (unnamed.save_pretrained(tmp_path / "my-lab-model") / "README.md").read_text()
    assert "\n# my-lab-model\n" in card and "model_name: my-lab-model" in card
    assert "\n# tiny\n" in (clf.save_pretrained(tmp_path / "other") / "README.md").read_text()


def test_save_keeps_other_files(clf, tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    clf.save_pretrained(folder)
    assert (folder / "notes.txt").read_text() == "mine"
    assert not [p for p in folder.iterdir() if p.name.startswith(".tmp")]


def test_save_refuses_folders_it_would_pull_away_or_copy_whole(clf, tmp_path, monkeypatch):
    """A save swaps in a new folder: never the working folder or one above it (``..`` included),
    nor a folder of other folders that holds no model; links are carried over as links."""
    (tmp_path / "proj" / "sub").mkdir(parents=True)
    (tmp_path / "docs").mkdir()
    monkeypatch.chdir(tmp_path / "proj" / "sub")
    for target, message in (("..", "is the working folder or one above it"), (".", "is the working folder"),
                            (tmp_path, "is the working folder or one above it"),
                            (tmp_path / "docs" / "..", "working folder"), (tmp_path / "proj", "working folder")):
        with pytest.raises(bloodcell.ConfigError, match=message):
            clf.save_pretrained(target)
    (tmp_path / "other" / "photos").mkdir(parents=True)
    with pytest.raises(bloodcell.ConfigError, match=r"holds folders \(photos/\) but no model"):
        clf.save_pretrained(tmp_path / "other")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs", "other", "proj"]
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "notes.txt").symlink_to(tmp_path / "docs" / "missing.txt")  # a link to nothing
    clf.save_pretrained(folder)
    assert (folder / "notes.txt").is_symlink() and (folder / "config.json").is_file()


def test_a_config_that_could_not_be_loaded_again_is_refused_before_saving(clf, tmp_path):
    (tmp_path / "afile").write_text("x")
    copy = Classifier(clf.model, name="ok", metrics={"accuracy": np.float32(0.5)})  # NumPy numbers are numbers
    assert load_classifier(copy.save_pretrained(tmp_path / "np")).metrics["accuracy"] == 0.5
    for change, target, message in (
            (dict(name=123), "n1", "'name' must be a string or null, got 123"),
            (dict(metrics={"accuracy": "high"}), "n2", "metric 'accuracy' must be a number, got \"high\""),
            (dict(extra={"x": object()}), "n3", "object <object object at"),
            ({}, "afile/sub", "afile is a file, not a folder")):
        bad = Classifier(clf.model, **{"name": "ok", **change})
        with pytest.raises(bloodcell.ConfigError, match=re.escape(message)) as info:
            bad.save_pretrained(tmp_path / target)
        assert "\n" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "np"]


def test_an_architecture_this_version_lacks_is_named_with_its_config(clf, tmp_path):
    import json

    folder = clf.save_pretrained(tmp_path / "m")
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "architecture": "resnet9000"}))
    with pytest.raises(bloodcell.ModelNotFoundError) as info:
        load_classifier(folder)
    assert str(info.value).startswith(f"{folder / 'config.json'}: unknown architecture 'resnet9000'; known: ")
    assert str(info.value).endswith("Saved by a newer bloodcell? pip install -U bloodcell")


def test_tampered_weights_refused(clf, tmp_path):
    folder = clf.save_pretrained(tmp_path / "m")
    with open(folder / "model.weights.h5", "ab") as f:
        f.write(b"x")
    with pytest.raises(bloodcell.ChecksumError, match="sha256"):
        load_classifier(folder)


def test_load_errors(tmp_path):
    with pytest.raises(bloodcell.ModelNotFoundError, match=r"not-a-model: neither a zoo entry nor a folder here; "
                       r"zoo entries: .*mnv3s\.pbc96"):
        load_classifier("not-a-model")
    with pytest.raises(bloodcell.ModelNotFoundError, match="did you mean 'mnv3s.pbc96'"):
        load_classifier("mnv3s.pbc69")
    with pytest.raises(bloodcell.ModelNotFoundError, match="'microcell' has no pretrained weights"):
        load_classifier("microcell")
    with pytest.raises(bloodcell.BloodcellError, match="no such folder"):
        load_classifier(str(tmp_path / "nope") + "/")
    with pytest.raises(bloodcell.BloodcellError, match="no config.json"):
        load_classifier(tmp_path)
    with pytest.raises(bloodcell.BloodcellError, match="no pretrained weights"):
        load_classifier("vgg16")


def test_default_model_loads_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    clf = load_classifier()
    assert clf.name == bloodcell.DEFAULT_MODEL
    assert clf.class_names == bloodcell.CLASS_NAMES
    assert clf.predict_proba(synthetic_cell(96)).shape == (1, 8)


def test_unknown_build_option_is_a_one_line_error(clf, tmp_path):
    import json

    clf.save_pretrained(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["build"]["drop_path"] = 0.1
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(BloodcellError, match=r"config.json: unknown model build option\(s\) \['drop_path'\].*pip install -U"):
        bloodcell.load_classifier(tmp_path / "m")
    cfg["build"].pop("drop_path")
    # A value of another type is named with its JSON (a string "32" does not read as the number 32) ...
    for key, value, wanted in (("dropout", "lots", "a number"), ("input_size", "32", "an integer"),
                               ("normalization", [1, 2], "an object or null")):
        bad = {**cfg, "build": {**cfg["build"], key: value}}
        (tmp_path / "m" / "config.json").write_text(json.dumps(bad))
        with pytest.raises(BloodcellError, match=rf'm/config.json: build.{key} must be {wanted}, got {re.escape(json.dumps(value))}; '
                                                 "re-save"):
            bloodcell.load_classifier(tmp_path / "m")
    # ... and a value the model's builder refuses names the file too.
    (tmp_path / "m" / "config.json").write_text(json.dumps({**cfg, "build": {**cfg["build"], "dropout": 2.0}}))
    with pytest.raises(BloodcellError, match=r"m/config.json: model build options .* are not valid \(dropout must be in"):
        bloodcell.load_classifier(tmp_path / "m")
    from dataclasses import fields

    from bloodcell.models._model import _BUILD_TYPES, ModelSpec

    assert set(_BUILD_TYPES) == {f.name for f in fields(ModelSpec)} - {"architecture"}  # every option is checked
    model = bloodcell.build_model("microcell", input_size=32, dropout=np.float32(0.25), bn_momentum=np.float64(0.9))
    assert model.dropout == 0.25 and type(model.dropout) is float  # NumPy numbers are numbers


def test_save_without_card_removes_a_stale_generated_card(clf, tmp_path):
    folder = tmp_path / "m"
    clf.save_pretrained(folder)
    assert (folder / "README.md").is_file()
    clf.save_pretrained(folder, card=False)
    assert not (folder / "README.md").exists()
    (folder / "README.md").write_text("# my notes\n")
    clf.save_pretrained(folder, card=False)
    assert (folder / "README.md").read_text() == "# my notes\n"


def test_predict_files_rejects_bad_batch_size(clf, image_dir):
    with pytest.raises(BloodcellError, match="batch_size must be a positive integer, got 0"):
        list(clf.predict_files(sorted(image_dir.iterdir()), batch_size=0))


def test_save_never_replaces_a_users_readme(clf, tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "README.md").write_text("# my notes\n")
    with pytest.raises(BloodcellError, match="README.md: is not a bloodcell model card"):
        clf.save_pretrained(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["README.md"]
    assert (folder / "README.md").read_text() == "# my notes\n"


def test_save_keeps_a_card_edited_by_hand_and_another_librarys_model(clf, tmp_path):
    folder = clf.save_pretrained(tmp_path / "m")
    clf.save_pretrained(folder)  # an untouched card is the generated one: replaced
    edited = (folder / "README.md").read_text() + "\n## Notes from our lab\n\nValidated on 300 local smears.\n"
    (folder / "README.md").write_text(edited)
    with pytest.raises(BloodcellError, match="README.md: was edited after bloodcell wrote it.*card=False"):
        clf.save_pretrained(folder)
    clf.save_pretrained(folder, card=False)
    assert (folder / "README.md").read_text() == edited
    other = tmp_path / "vit"
    other.mkdir()
    (other / "config.json").write_text('{"model_type": "vit"}')
    with pytest.raises(BloodcellError, match=r"config.json: is not a bloodcell config \(another library's model\?\)"):
        clf.save_pretrained(other)
    assert (other / "config.json").read_text() == '{"model_type": "vit"}'


def test_weights_of_another_architecture_are_a_one_line_error(clf, tmp_path):
    other = Classifier(bloodcell.build_model("mnv3s", input_size=SIZE), name="other")
    other.save_pretrained(tmp_path / "other")
    clf.save_pretrained(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["weights_sha256"] = None
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "other" / "model.weights.h5").replace(tmp_path / "m" / "model.weights.h5")
    with pytest.raises(BloodcellError, match="weights do not fit architecture 'microcell'") as err:
        load_classifier(tmp_path / "m")
    assert "\n" not in str(err.value)


def test_zoo_entry_must_match_its_files(monkeypatch):
    import dataclasses

    from bloodcell import zoo
    from bloodcell.registry import pretrained_entry

    entry = pretrained_entry(bloodcell.DEFAULT_MODEL)
    wrong = dataclasses.replace(entry, input_size=entry.input_size + 32)
    monkeypatch.setattr(zoo, "pretrained_entry", lambda name: wrong)
    with pytest.raises(BloodcellError, match=rf"config.json has input_size={entry.input_size}, the entry declares "
                                             rf"input_size={entry.input_size + 32}"):
        load_classifier(bloodcell.DEFAULT_MODEL)


def test_card_states_initialisation_and_hardware():
    from bloodcell.card import render_model_card

    base = {"architecture": "mnv3s", "input_size": 96, "class_names": list(bloodcell.CLASS_NAMES)}
    card = render_model_card({**base, "training": {"init": "random", "hardware": "a 2-core CPU"}})
    assert "Trained from random initialisation on a 2-core CPU" in card
    card = render_model_card({**base, "training": {"init": "imagenet (weights file)", "hardware": "1 GPU (H200)"}})
    assert "initialised from ImageNet weights**, then trained on 1 GPU (H200)" in card
    assert "random initialisation" not in card


def test_card_of_a_model_without_data_records_claims_nothing():
    from bloodcell.card import render_model_card

    base = {"architecture": "mnv3s", "input_size": 96, "class_names": list(bloodcell.CLASS_NAMES),
            "training": {"init": "random"}}
    card = render_model_card(base)
    assert "cc-by-4.0" not in card and "pbc96" not in card and "PBC images" not in card
    assert "license: unknown" in card and "To fill in" in card
    card = render_model_card({**base, "dataset_id": "my-lab", "dataset_name": "my-lab", "license": "mit"})
    assert "license: mit" in card and "my-lab" in card and "To fill in" not in card


def test_classes_take_pbc_folder_aliases(clf, cells):
    ig = clf.predict_proba(cells, classes="ig,neutrophil")
    assert (ig[:, [clf.class_names.index("immature_granulocyte"), clf.class_names.index("neutrophil")]].sum(1) > 0.999).all()


def test_naming_the_outputs_of_a_shared_model_leaves_its_other_classifiers_alone():
    model = bloodcell.build_model("microcell", input_size=32, class_names=["a", "b"])
    first = bloodcell.Classifier(model)
    second = bloodcell.Classifier(model, class_names=["x", "y"])
    assert first.model.class_names == ("a", "b") and first.config()["class_names"] == ["a", "b"]
    assert second.model.class_names == ("x", "y")


def test_a_keras_model_without_class_names_needs_them(clf):
    plain = keras.models.clone_model(clf.model)
    assert not hasattr(plain, "class_names")
    with pytest.raises(bloodcell.ConfigError, match=r"without class names \(8 outputs\); pass class_names=\[\.\.\.\]"):
        Classifier(plain)
    assert Classifier(plain, class_names=bloodcell.CLASS_NAMES).class_names == bloodcell.CLASS_NAMES


def test_untrained_head_warning_points_at_the_callers_line(cells):
    clf = Classifier(bloodcell.build_model("microcell", input_size=SIZE), name="new")
    clf.training = {"init_from": {"source": "parent"}}
    for call in (clf.predict_proba, clf.predict):
        clf._warned_untrained = False
        with pytest.warns(UserWarning, match="new and not trained yet") as caught:
            call(cells)
        assert caught[0].filename == __file__


def test_predict_files_takes_an_iterator(clf, image_dir):
    paths = sorted(image_dir.iterdir())
    listed = [r.label for r in clf.predict_files(paths)]
    assert [r.label for r in clf.predict_files(iter(paths))] == listed and len(listed) == len(paths)
    globbed = sorted((r.path, r.label) for r in clf.predict_files(image_dir.glob("*")))  # glob's order is the OS's
    assert globbed == sorted((r.path, r.label) for r in clf.predict_files(paths))


def test_bad_items_in_a_list_are_named(clf, image_dir, tmp_path):
    good = sorted(image_dir.iterdir())[0]
    with pytest.raises(BloodcellError, match=r"images\[1\]: expected a path, a PIL image or an array, got NoneType"):
        clf.predict([good, None])
    with open(good, "rb") as f, pytest.raises(BloodcellError, match="open file; pass its path"):
        clf.predict(f)
    data = good.read_bytes()
    (tmp_path / "half.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(BloodcellError, match=r"images\[1\]: the PIL image is damaged, truncated or closed"):
        clf.predict([Image.open(good), Image.open(tmp_path / "half.png")])
    with Image.open(good) as img:
        pass
    with pytest.raises(BloodcellError, match="closed"):
        clf.predict(img)


def test_image_array_mistakes_are_named_with_their_fix(clf, cells):
    cells = cells.copy()
    cells[:, :4] = 255  # so that 0..1 images cast to integers hold ones
    with pytest.raises(BloodcellError, match="all 0 or 1.*multiply by 255"):
        clf.predict((cells / 255).astype(np.int64))
    for ones in (np.ones((2, 32, 32, 3), np.uint8), list(np.ones((2, 32, 32, 3), np.uint8))):  # uint8 too, batch or list
        with pytest.raises(BloodcellError, match="all 0 or 1, which looks like 0..1 images cast to uint8"):
            clf.predict(ones)
    assert len(clf.predict(np.zeros((2, 32, 32, 3), np.uint8))) == 2  # black images are images (and outliers)
    with pytest.raises(BloodcellError, match="channels-first: np.transpose"):
        clf.predict(np.transpose(cells, (0, 3, 1, 2)))
    for n in (2, 3, 5):  # 3: also one channels-first image
        with pytest.raises(BloodcellError, match=r"add a channel axis: images\[\.\.\., None\]"):
            clf.predict(cells[:n, ..., 0])
    rgba16 = np.concatenate([cells[:2].astype(np.uint16) * 257, np.full((*cells[:2].shape[:3], 1), 65535, np.uint16)], axis=-1)
    np.testing.assert_array_equal(clf.predict_proba(rgba16), clf.predict_proba(cells[:2]))  # opaque 16-bit RGBA


def test_flags_take_booleans_only(clf, cells):
    for kwargs in (dict(tta="no"), dict(calibrated="False"), dict(tta=1)):
        with pytest.raises(bloodcell.ConfigError, match=f"{next(iter(kwargs))}: expected True or False, got"):
            clf.predict_proba(cells[:2], **kwargs)
    assert clf.predict_checked(cells[:2], tta=np.bool_(False), verbose=0).probabilities.shape == (2, 8)


def test_argument_errors_name_the_argument_at_the_call(clf, image_dir, cells):
    paths = sorted(image_dir.iterdir())
    with pytest.raises(BloodcellError, match="workers must be a positive integer, got -1"):
        clf.predict_files(paths, workers=-1)  # at the call, not at the first next()
    with pytest.raises(BloodcellError, match=r"review_below: expected a probability in \[0, 1\], got 5"):
        clf.predict_files(paths, review_below=5)
    with pytest.raises(BloodcellError, match=r"review_below: expected a probability"):
        clf.predict_checked(cells, review_below=2)
    with pytest.raises(BloodcellError, match="classes: expected a list of class names .*got 3"):
        clf.predict_proba(cells, classes=3)
    with pytest.raises(BloodcellError, match="class_names: expected a list of non-empty class-name strings"):
        load_classifier(class_names=[1, 2])
    with pytest.raises(BloodcellError, match="proba: expected predict_proba's rows"):
        clf.needs_review([["a"] * 8])
    with pytest.raises(BloodcellError, match="batch_size must be a positive integer"):
        bloodcell.explain.class_activation_maps(clf, cells[:1], batch_size=0)


def test_greyscale_images_are_flagged_for_review(clf, cells):
    grey = np.repeat(cells.mean(axis=-1, keepdims=True).astype(np.uint8), 3, axis=-1)
    checked = clf.predict_checked(np.concatenate([cells, grey]), review_below=0.0)
    assert not checked.review[: len(cells)].any() and checked.review[len(cells):].all()
    assert checked.outlier[len(cells):].all()
    assert clf.predict_checked(grey, review_below=0.0, outliers=False).review.all()


def test_a_batch_of_deep_images_is_scaled_image_by_image(clf, cells):
    deep = cells[:3].astype(np.uint16) * 4  # 10-bit data
    deep[2] = cells[2].astype(np.uint16) * 16  # 12-bit data
    batch, alone = clf.preprocess(deep), np.stack([clf.preprocess(d)[0] for d in deep])
    np.testing.assert_array_equal(batch, alone)


def test_a_classifier_refuses_class_names_its_folder_could_not_load_with():
    model = bloodcell.build_model("microcell", input_size=32, class_names=["a", "b"])
    for names, message in ((["x", "x"], "name the same class"), (["x", ""], "non-empty"), (["X", "x"], "ignoring case")):
        with pytest.raises(bloodcell.ConfigError, match=message):
            bloodcell.Classifier(model, class_names=names)
    with pytest.raises(bloodcell.ConfigError, match="the model is a 'microcell' model, got architecture='mnv3s'"):
        bloodcell.Classifier(model, architecture="mnv3s")
    assert bloodcell.Classifier(model, class_names=np.array(["p", "q"])).class_names == ("p", "q")
