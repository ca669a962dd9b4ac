"""The out-of-distribution check from a model's own features (bloodcell.ood) and the predictions that use it."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from synth_cells import make_cells, make_non_cells

import bloodcell
from bloodcell.data import Dataset
from bloodcell.ood import FeatureCheck, feature_layer, fit_feature_check

SIZE = 64


def _stained_otherwise(images: np.ndarray) -> np.ndarray:
    """The cells as another lab's stain and camera might show them: bluish, darker, less contrast."""
    x = images.astype(np.float32) * np.array([0.62, 0.78, 1.1], np.float32)
    return np.clip(0.75 * x + 0.25 * x.mean(), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def checked():
    """A small classifier (random init: the check needs no training) calibrated on synthetic cells
    of two made-up classes, its check fitted to other synthetic cells."""
    keras.utils.set_random_seed(0)
    clf = bloodcell.Classifier(bloodcell.build_model("microcell", input_size=SIZE, class_names=("round", "lobed")),
                               name="tiny")
    cal = make_cells(120, SIZE, seed=1)
    labels = np.random.default_rng(0).integers(0, 2, len(cal))
    record = clf.calibrate(Dataset(cal, labels, ("round", "lobed")), reference=make_cells(160, SIZE, seed=0),
                           reference_description="160 synthetic cells", verbose=0)
    return clf, record


@pytest.mark.filterwarnings("ignore:calibrate. the model is")  # tiny synthetic models, far from right
def test_the_check_separates_non_cells_and_shifted_cells_from_in_domain_ones(checked):
    clf, record = checked
    check = clf.feature_check
    assert record["features"]["layer"] == check.layer == feature_layer(clf.model)
    cells = clf.predict_checked(make_cells(100, SIZE, seed=2), verbose=0)
    assert cells.outlier.mean() <= 0.05
    for kind, images in make_non_cells(20, SIZE, seed=3).items():
        assert clf.predict_checked(images, verbose=0).outlier.mean() >= 0.9, kind
    shifted = clf.predict_checked(_stained_otherwise(make_cells(100, SIZE, seed=2)), verbose=0)
    assert shifted.outlier.mean() >= 0.8
    assert np.median(shifted.ood_scores) > np.quantile(cells.ood_scores, 0.99)


def test_checked_predictions_come_from_one_pass_and_survive_a_save(checked, tmp_path):
    clf, _ = checked
    images = np.concatenate([make_cells(6, SIZE, seed=4), make_non_cells(2, SIZE, seed=4)["text"]])
    out = clf.predict_checked(images, verbose=0)
    np.testing.assert_allclose(out.probabilities, clf.predict_proba(images, verbose=0), rtol=1e-5, atol=1e-6)
    assert out.outlier[-2:].all() and out.review[-2:].all()
    np.testing.assert_array_equal(out.review, clf.needs_review(out.probabilities) | out.outlier)
    assert not clf.predict_checked(images, review_below=0.0, outliers=False, verbose=0).review.any()

    clf.save_pretrained(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["calibration"]["features"]["layer"] == clf.feature_check.layer
    assert "out of distribution" in (tmp_path / "m" / "README.md").read_text()
    again = bloodcell.load_classifier(tmp_path / "m")
    np.testing.assert_allclose(again.predict_checked(images, verbose=0).ood_scores, out.ood_scores, rtol=1e-4)

    from PIL import Image

    for i, img in enumerate(images):
        Image.fromarray(img).save(tmp_path / f"{i}.png")
    files = list(again.predict_files([tmp_path / f"{i}.png" for i in range(len(images))], flag_outliers=True))
    assert [f.outlier for f in files] == list(out.outlier) and [f.review for f in files] == list(out.review)


def test_a_model_without_a_check_keeps_the_colour_test():
    clf = bloodcell.Classifier(bloodcell.build_model("microcell", input_size=SIZE), name="old")
    assert clf.feature_check is None
    images = np.concatenate([make_cells(4, SIZE, seed=5), make_non_cells(2, SIZE, seed=5)["checkerboard"]])
    out = clf.predict_checked(images, verbose=0)
    assert out.ood_scores is None and out.outlier.tolist() == bloodcell.find_outliers(images).tolist()


def test_fit_feature_check_threshold_and_record():
    rng = np.random.default_rng(0)
    inside = rng.normal(0, 1, (400, 12)) * np.linspace(3, 0.5, 12)
    check = fit_feature_check(inside[:300], inside[300:], layer="x", share=0.05, components=4)
    assert check.flags(inside[300:]).mean() == pytest.approx(0.05, abs=0.011)
    assert check.flags(inside[:5] + 40).all()
    again = FeatureCheck.from_record(json.loads(json.dumps(check.to_record())))
    np.testing.assert_allclose(again.scores(inside), check.scores(inside), rtol=1e-5)
    with pytest.raises(bloodcell.BloodcellError, match="calibration.features"):
        FeatureCheck.from_record({"layer": "x", "mean": [0.0]})


def test_a_threshold_set_on_a_few_images_still_flags_about_its_share():
    from bloodcell.ood import fit_feature_check

    rng = np.random.default_rng(0)
    features = lambda n: rng.normal(size=(n, 16)) * np.linspace(3, 0.5, 16)  # noqa: E731
    rates = []
    for _ in range(20):
        check = fit_feature_check(features(200), features(20), layer="x", share=0.005)
        rates.append(check.flags(features(4000)).mean())
    # The 99.5th percentile of 20 scores is about their maximum, which 1 in 21 in-domain images exceeds.
    assert np.mean(rates) < 0.02 and "log-normal" in check.fitted_on
    assert "log-normal" not in fit_feature_check(features(200), features(400), layer="x").fitted_on


def test_too_few_threshold_images_and_numbers_that_are_not_finite_are_refused():
    rng = np.random.default_rng(1)
    features = lambda n: rng.normal(size=(n, 8)) * np.linspace(3, 0.5, 8)  # noqa: E731
    with pytest.raises(bloodcell.DataError, match="need at least 2 images to fit and 10 to set the threshold, got 200 and 2"):
        fit_feature_check(features(200), features(2), layer="x")
    held = features(50)
    held[3, 0] = np.nan
    with pytest.raises(bloodcell.DataError, match="1 of the 50 rows of threshold_features are not finite"):
        fit_feature_check(features(200), held, layer="x")
    check = fit_feature_check(features(200), features(50), layer="x")
    probe = features(3)
    probe[1, 2], probe[2, 0] = np.nan, np.inf
    assert check.flags(probe).tolist() == [False, True, True]  # as far out of the domain as can be
    record = check.to_record()
    for key, value in (("threshold", float("nan")), ("residual_variance", 0.0)):
        with pytest.raises(bloodcell.ConfigError, match="not finite"):
            FeatureCheck.from_record({**record, key: value})


@pytest.mark.filterwarnings("ignore:calibrate. the model is")  # tiny synthetic models, far from right
def test_calibrating_with_a_reference_on_a_few_labelled_cells_sets_the_threshold_on_more():
    keras.utils.set_random_seed(0)
    clf = bloodcell.Classifier(bloodcell.build_model("microcell", input_size=32, num_classes=2, class_names=("a", "b")))
    images = make_cells(400, size=32)
    # as Trainer.fit does with 16 validation images: training images as the reference
    clf.calibrate((images[:2], np.array([0, 1])), reference=images[2:202], verbose=0, tta=False)
    check = clf.feature_check
    assert "threshold on the other half and the 2 calibration images" in check.fitted_on
    assert clf.predict_checked(images[202:], verbose=0).outlier.mean() < 0.05  # not ~25%, as from 2 scores


def test_a_saved_check_finds_its_layer_by_position_and_edits_of_its_record_count(checked, tmp_path):
    """Keras numbers unnamed layers per process (conv2d_3 in a notebook's second model is conv2d in a
    fresh process): the record keeps the layer's position, and the check reads the layer there."""
    clf, _ = checked
    images = np.concatenate([make_cells(6, SIZE, seed=4), make_non_cells(2, SIZE, seed=4)["text"]])
    clf.save_pretrained(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    features = cfg["calibration"]["features"]
    assert clf.model.backbone.layers[features["layer_index"]].name == features["layer"] == clf.feature_check.layer
    features["layer"] = "conv2d_3"  # its name in the process that saved it
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    again = bloodcell.load_classifier(tmp_path / "m")
    assert again.feature_check.layer == clf.feature_check.layer
    np.testing.assert_allclose(again.predict_checked(images, verbose=0).ood_scores,
                               clf.predict_checked(images, verbose=0).ood_scores, rtol=1e-4)
    # The check is read from the record: an edit there counts at once, as it is saved; the check itself is frozen.
    again.extra["calibration"]["features"]["threshold"] = 0.0
    assert again.predict_checked(images, verbose=0).outlier.all()
    with pytest.raises(AttributeError):
        again.feature_check.threshold = 1.0
    again.extra["calibration"]["features"]["layer_index"] = 999
    with pytest.raises(bloodcell.ConfigError, match="calibration.features.layer_index is 999, but the backbone has"):
        again.predict_checked(images, verbose=0)


@pytest.mark.filterwarnings("ignore:calibrate. the model is")  # tiny synthetic models, far from right
def test_a_backbone_whose_layers_cannot_be_read_calibrates_without_a_check():
    """An unbuilt Sequential backbone (allowed) has layers whose outputs no functional model can
    read: calibration fits the temperature and says the colour test stands in."""
    from bloodcell import _registry
    from bloodcell.models import Backbone
    from bloodcell.ood import tappable_layer
    from bloodcell.registry import register_model

    def build(*, input_size, weights=None):
        return Backbone(keras.Sequential([keras.layers.Rescaling(1 / 255), keras.layers.Conv2D(4, 3, strides=4)],
                                         name="backbone"))

    try:
        register_model("seq_test_cnn", family="mine", imagenet=False)(build)
        clf = bloodcell.Classifier(bloodcell.build_model("seq_test_cnn", input_size=32, class_names=("a", "b")))
        assert tappable_layer(clf.model) is None
        images = make_cells(40, size=32)
        with pytest.warns(UserWarning, match="backbone is not a functional model, so no out-of-distribution check"):
            record = clf.calibrate((images, np.arange(40) % 2), verbose=0, tta=False)
        assert "features" not in record and clf.feature_check is None and record["temperature"] > 0
        out = clf.predict_checked(np.concatenate([images[:2], make_non_cells(1, 32, seed=0)["text"]]), verbose=0)
        assert out.ood_scores is None and out.outlier.tolist() == [False, False, True]  # the colour test
    finally:
        _registry._ARCHITECTURES.pop("seq_test_cnn", None)
