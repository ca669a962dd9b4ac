"""Calibrated probabilities: temperature scaling, its metrics, and a classifier that carries it."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

import bloodcell
from bloodcell.calibration import (apply_calibration, apply_temperature, calibration_metrics, fit_temperature,
                                   plot_reliability, risk_coverage)
from bloodcell.data import Dataset
from bloodcell.errors import DataError

SIZE = 32


def _calibrated_sample(n=3000, k=5, seed=0):
    """Probabilities and labels drawn from them: calibrated by construction."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, (n, k))
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    y = np.array([rng.choice(k, p=row) for row in p])
    return p, y


def test_fit_temperature_recovers_the_temperature_that_made_probabilities_over_confident():
    p, y = _calibrated_sample()
    for t in (0.4, 2.0):
        distorted = apply_temperature(p, t)
        fitted = fit_temperature(distorted, y)
        assert fitted == pytest.approx(1 / t, rel=0.1)
        before, after = calibration_metrics(distorted, y), calibration_metrics(apply_temperature(distorted, fitted), y)
        assert after["ece"] < before["ece"] / 3 and after["nll"] < before["nll"]
        assert after["accuracy"] == before["accuracy"]  # a temperature never changes the answer
    for bad in (-1, 0, float("nan"), "2", True):  # -1 would reverse the ranking, 0 give NaN
        with pytest.raises(bloodcell.ConfigError, match="temperature: expected a finite number above 0"):
            apply_temperature(p, bad)


def test_predictions_without_an_error_fit_no_temperature():
    from bloodcell.calibration import calibrate_predictions

    class Holder:
        extra: dict = {}

    p = np.array([[0.6, 0.4], [0.3, 0.7], [0.55, 0.45]] * 10)
    y = p.argmax(1)
    record = calibrate_predictions(Holder(), p, y, description="30 cross-validated predictions")
    assert record["temperature"] == 1.0 and "no temperature was fitted" in record["fitted_on"]
    assert fit_temperature(p, y) < 0.1  # what it would have been: every answer made nearly certain
    y[0] = 1  # one error is enough to bound the fit
    assert 0.1 < calibrate_predictions(Holder(), p, y, description="d")["temperature"] < 10


def test_recalibrating_on_cells_it_gets_all_right_keeps_the_models_temperature():
    from bloodcell.calibration import calibrate_predictions

    class Calibrated:
        temperature = 0.5
        extra = {"calibration": {"method": "temperature", "temperature": 0.5}}

    p = np.array([[0.6, 0.4], [0.3, 0.7], [0.55, 0.45]] * 10)
    record = calibrate_predictions(Calibrated(), p, p.argmax(1), description="30 cells of my lab")
    assert record["temperature"] == 0.5 and "the model's own (T = 0.5) is kept" in record["fitted_on"]
    assert record["ece_previous"] == pytest.approx(record["ece_after"]) and record["ece_after"] < record["ece_before"]


def test_outliers_count_towards_the_review_share_up_to_half_of_it():
    from bloodcell.calibration import calibrate_predictions, review_threshold
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(3), 40)
    few = np.zeros(40, bool)
    few[0] = True
    many = np.zeros(40, bool)
    many[:4] = True  # 10% outliers, more than the 5% to flag
    confidence = p.max(axis=1)
    assert np.mean(confidence[~few] < review_threshold(p, 0.05, flagged=few)) == pytest.approx(1 / 39)
    assert np.mean(confidence[~many] < review_threshold(p, 0.05, flagged=many)) == pytest.approx(1 / 36)

    class Holder:
        extra: dict = {}

    class Check:
        def flags(self, features):
            return many

        def to_record(self):
            return {}

    labels = np.where(rng.random(40) < 0.3, (p.argmax(1) + 1) % 3, p.argmax(1))
    record = calibrate_predictions(Holder(), p, labels, description="d", check=Check(),
                                   features=np.zeros((40, 2)))
    assert record["review_below"] > 0 and record["review_flagged"] == pytest.approx(5 / 40)
    card = bloodcell.card.render_model_card({"name": "m", "architecture": "microcell", "class_names": ["a", "b", "c"],
                                             "input_size": 32, "build": {}, "calibration": record})
    assert "12.5% of the calibration images are flagged; the aim was 5%" in card
    # outlier flags given as such (from other models' features, as a small-data run's cross-validation)
    flags = np.arange(40) < 3
    again = calibrate_predictions(Holder(), p, labels, description="d", outliers=flags)
    assert again["review_flagged"] >= 3 / 40 and "features" not in again
    with pytest.raises(DataError, match="outliers: expected one flag per image"):
        calibrate_predictions(Holder(), p, labels, description="d", outliers=flags[:5])
    # a model without a check of its own says which test flags its outliers
    bare = bloodcell.card.render_model_card({"name": "m", "architecture": "microcell", "class_names": ["a", "b", "c"],
                                             "input_size": 32, "build": {}, "calibration": again})
    assert "no out-of-distribution check of its own" in bare and "colour-statistics test" in bare


def test_calibration_metrics_of_known_cases():
    y = np.array([0, 1, 0, 1])
    sure = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    m = calibration_metrics(sure, y)
    assert m["ece"] == pytest.approx(0.0) and m["brier"] == pytest.approx(0.0) and m["accuracy"] == 1.0
    wrong = sure[:, ::-1]
    assert calibration_metrics(wrong, y)["ece"] == pytest.approx(1.0)
    assert calibration_metrics(np.full((4, 2), 0.5), y)["ece"] == pytest.approx(0.0)  # 50% sure, 50% right
    with pytest.raises(DataError, match="labels"):
        calibration_metrics(sure, np.array([0, 1, 2, 0]))


def test_reliability_diagram_is_drawn(tmp_path):
    p, y = _calibrated_sample(500)
    plot_reliability(tmp_path / "r.png", {"calibrated": (p, y), "sharpened": (apply_temperature(p, 0.5), y)})
    from PIL import Image

    with Image.open(tmp_path / "r.png") as img:
        assert img.format == "PNG" and min(img.size) > 200


@pytest.fixture(scope="module")
def overconfident():
    """A tiny classifier made over-confident (its head reads standardised features, times 20), and
    data it labels right about 70% of the time (its own answer, else a random class)."""
    keras.utils.set_random_seed(0)
    model = bloodcell.build_model("microcell", input_size=SIZE, num_classes=3, class_names=("a", "b", "c"))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (120, SIZE, SIZE, 3), dtype=np.uint8)
    features = keras.Model(model.inputs, model.get_layer("avg_pool").output).predict(images.astype("float32"), verbose=0)
    mean, std = features.mean(0), features.std(0) + 1e-6
    head = model.get_layer("predictions")
    kernel, _ = head.get_weights()
    head.set_weights([20 * kernel / std[:, None], -20 * (mean / std) @ kernel])
    own = bloodcell.Classifier(model).predict_proba(images, verbose=0).argmax(axis=1)
    labels = np.where(rng.random(120) < 0.6, own, rng.integers(0, 3, 120))
    return bloodcell.Classifier(model, name="over"), Dataset(images[:60], labels[:60], ("a", "b", "c")), \
        Dataset(images[60:], labels[60:], ("a", "b", "c"))


def test_calibrate_lowers_the_ece_of_an_over_confident_model_and_survives_a_save(overconfident, tmp_path):
    clf, fit_on, held_out = overconfident
    before = bloodcell.evaluate(clf, held_out, verbose=0)
    # a model this often wrong cannot be made safe by a 5% review: said as it is calibrated
    with pytest.warns(UserWarning, match=r"the model is 70% right on these 60 images, so flagging 5% of them for "
                                         r"review leaves most of its errors unflagged"):
        record = clf.calibrate(fit_on.images, fit_on.labels, verbose=0)  # as sklearn's fit(X, y); (images, labels) too
    # 60 cells: the out-of-distribution check is refitted to half of them, which bloodcell predict's mark says
    assert clf.feature_check.fitted_on.startswith("half of the calibration images")
    after = bloodcell.evaluate(clf, held_out, verbose=0)
    assert clf.temperature == record["temperature"] > 1.0
    assert after.ece < before.ece / 2 and after.accuracy == before.accuracy
    assert record["ece_after"] < record["ece_before"]
    raw = clf.predict_proba(held_out.images, calibrated=False, verbose=0)
    expected = apply_temperature(raw, clf.temperature)
    outside = clf.predict_checked(held_out.images, verbose=0).outlier  # these keep the network's own (T = 1)
    assert clf.temperature_outside == 1.0 and outside.mean() < 0.5
    expected[outside] = raw[outside]
    np.testing.assert_allclose(clf.predict_proba(held_out.images, verbose=0), expected, rtol=1e-5, atol=1e-6)

    clf.save_pretrained(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["calibration"]["temperature"] == pytest.approx(clf.temperature)
    assert "Calibration" in (tmp_path / "m" / "README.md").read_text()
    again = bloodcell.load_classifier(tmp_path / "m")
    np.testing.assert_allclose(again.predict_proba(held_out.images, verbose=0),
                               clf.predict_proba(held_out.images, verbose=0), rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore:calibrate. the model is")  # the over-confident model is 70% right
def test_test_time_augmentation_has_its_own_temperature_and_threshold(overconfident, tmp_path):
    from bloodcell.calibration import apply_calibration

    clf, fit_on, held_out = overconfident
    record = clf.calibrate(fit_on, verbose=0)
    tta = record["tta"]
    raw = clf.predict_proba(fit_on.images, tta=True, calibrated=False, verbose=0)
    assert tta["temperature"] != pytest.approx(record["temperature"])  # the mean of 8 views is softer
    checked = clf.predict_checked(fit_on.images, tta=True, verbose=0)
    expected = apply_calibration(raw, tta["temperature"], outside=checked.outlier, temperature_outside=1.0)
    np.testing.assert_allclose(checked.probabilities, expected, rtol=1e-5, atol=1e-6)
    # the TTA threshold flags the share it was fitted to flag, on the images it was fitted on
    assert checked.review.mean() == pytest.approx(tta["review_flagged"])
    assert np.array_equal(checked.review, clf.needs_review(checked.probabilities, tta=True) | checked.outlier)
    single = clf.predict_checked(fit_on.images, verbose=0)
    assert single.review.mean() == pytest.approx(record["review_flagged"])
    report = bloodcell.evaluate(clf, fit_on, tta=True, verbose=0)  # the review figures of the mode measured
    assert report.review["threshold"] == pytest.approx(tta["review_below"])
    assert report.review["flagged"] == pytest.approx(tta["review_flagged"])
    clf.save_pretrained(tmp_path / "m")
    assert f"T = {tta['temperature']:.4f}" in (tmp_path / "m" / "README.md").read_text()
    again = bloodcell.load_classifier(tmp_path / "m")
    np.testing.assert_allclose(again.predict_proba(held_out.images, tta=True, verbose=0),
                               clf.predict_proba(held_out.images, tta=True, verbose=0), rtol=1e-5, atol=1e-6)
    # a record of before this mode had its own (or calibrate(tta=False)) scales TTA as one view
    assert "tta" not in clf.calibrate(fit_on, tta=False, verbose=0)
    tta_raw = clf.predict_proba(held_out.images, tta=True, calibrated=False, verbose=0)
    outside = clf.predict_checked(held_out.images, verbose=0).outlier
    np.testing.assert_allclose(clf.predict_proba(held_out.images, tta=True, verbose=0),
                               apply_calibration(tta_raw, clf.temperature, outside=outside, temperature_outside=1.0),
                               rtol=1e-5, atol=1e-6)


def test_a_folder_without_calibration_predicts_as_before(tmp_path):
    clf = bloodcell.Classifier(bloodcell.build_model("microcell", input_size=SIZE), name="plain")
    assert clf.temperature == 1.0
    x = np.random.default_rng(1).integers(0, 256, (4, SIZE, SIZE, 3), dtype=np.uint8)
    np.testing.assert_array_equal(clf.predict_proba(x, verbose=0), clf.predict_proba(x, calibrated=False, verbose=0))
    clf.save_pretrained(tmp_path / "m")
    assert "calibration" not in json.loads((tmp_path / "m" / "config.json").read_text())


def test_evaluate_reports_calibration(overconfident):
    clf, _, held_out = overconfident
    report = bloodcell.evaluate(clf, held_out, verbose=0)
    d = report.to_dict()["calibration"]
    assert set(d) >= {"ece", "nll", "brier", "mean_confidence"} and 0 <= d["ece"] <= 1
    assert "ECE" in report.to_text()


@pytest.mark.filterwarnings("ignore:calibrate. the model is")  # the over-confident model is 70% right
def test_the_review_flag_follows_the_threshold(overconfident, tmp_path, capsys, monkeypatch):
    from PIL import Image

    from bloodcell.cli import main

    clf, fit_on, held_out = overconfident
    record = clf.calibrate(fit_on, verbose=0)
    proba = clf.predict_proba(fit_on.images, verbose=0)
    assert clf.review_below == record["review_below"]
    assert clf.needs_review(proba).mean() == pytest.approx(0.05, abs=0.03)  # about 5% of the calibration images
    assert not clf.needs_review(proba, below=0.0).any()
    np.testing.assert_array_equal(clf.needs_review(proba, below=1.0), proba.max(axis=1) < 1.0)
    with pytest.raises(bloodcell.ConfigError, match=r"below: expected a probability in \[0, 1\]"):
        clf.needs_review(proba, below=2)
    with pytest.raises(DataError, match="expected predict_proba's rows"):
        clf.needs_review(proba[:, :2])
    assert clf.needs_review(np.full((1, proba.shape[1]), np.nan)).all()  # no answer is no answer to trust
    report = bloodcell.evaluate(clf, held_out, verbose=0)
    assert report.review["threshold"] == clf.review_below and 0 <= report.review["flagged"] <= 1
    curve = report.risk_coverage
    held_proba = clf.predict_proba(held_out.images, verbose=0)
    for point in curve[1:]:  # a point's threshold, given to needs_review, flags that point's share
        assert clf.needs_review(held_proba, below=point["threshold"]).mean() == pytest.approx(point["flagged"])
    assert curve[0]["flagged"] == 0 and curve[0]["accuracy"] == pytest.approx(report.accuracy)
    report.plot_risk_coverage(tmp_path / "rc.png")
    assert (tmp_path / "rc.png").stat().st_size > 1000
    drawn = []  # the model's own operating point is marked beside the curve
    monkeypatch.setattr(bloodcell.calibration, "save_figure", lambda fig, path, **kw: drawn.append(fig))
    report.plot_risk_coverage(tmp_path / "rc2.png")
    marked = [line for line in drawn[0].axes[0].get_lines() if line.get_label().startswith("review threshold")]
    assert len(marked) == 1 and marked[0].get_xdata()[0] == pytest.approx(100 * report.review["flagged"])

    clf.save_pretrained(tmp_path / "m")
    (tmp_path / "cells").mkdir()
    for i, img in enumerate(held_out.images[:6]):
        Image.fromarray(img).save(tmp_path / "cells" / f"{i}.png")
    model = clf.predict_proba(held_out.images[:6], verbose=0)
    for below, expected in ((None, clf.needs_review(model)), (0.0, np.zeros(6, bool)), (1.0, model.max(1) < 1.0)):
        argv = ["predict", str(tmp_path / "cells"), "--model", str(tmp_path / "m"), "--json", "--no-outlier-check"]
        assert main(argv + ([] if below is None else ["--review-below", str(below)])) == 0
        rows = sorted((json.loads(line) for line in capsys.readouterr().out.splitlines()), key=lambda r: r["path"])
        assert [r["review"] for r in rows] == list(expected), below
    assert main(["predict", str(tmp_path / "cells"), "--model", str(tmp_path / "m"), "--review-below", "1.5"]) == 2
    assert "--review-below" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:calibrate. the model is")  # the over-confident model is 70% right
def test_recalibrating_on_a_few_cells_keeps_the_models_own_feature_check(overconfident):
    clf, fit_on, held_out = overconfident
    clf.calibrate(fit_on, verbose=0)  # 60 images: a check is fitted
    check = clf.feature_check
    assert check is not None
    clf.calibrate(held_out.subset(np.arange(12)), verbose=0)  # too few to refit it
    assert clf.feature_check is not None and clf.feature_check.threshold == check.threshold
    card = bloodcell.card.render_model_card(clf.config())
    assert "out-of-distribution ones below" in card and "bloodcell.ood" in card


def test_a_model_never_right_is_warned_of_with_the_class_order(overconfident):
    clf, fit_on, _ = overconfident
    mine = bloodcell.Classifier(clf.model, name="c")
    own = mine.predict_proba(fit_on.images, verbose=0).argmax(axis=1)
    with pytest.warns(UserWarning, match=r"the model is 0% right on these 60 images.*labels in another order than "
                                         r"clf.class_names"):
        mine.calibrate(fit_on.images, (own + 1) % 3, tta=False, verbose=0)
    with pytest.raises(bloodcell.ConfigError, match="tta: expected True or False, got 'no'"):
        mine.calibrate(fit_on, tta="no", verbose=0)


def test_a_reference_too_small_or_not_images_is_refused(overconfident):
    clf, cal, _ = overconfident
    with pytest.raises(bloodcell.ConfigError, match=r"reference: 3 images; the check's Gaussian needs at least 20"):
        bloodcell.Classifier(clf.model, name="c").calibrate(cal, reference=cal.images[:3], verbose=0)
    with pytest.raises(bloodcell.ConfigError, match=r"reference: expected images .* got a Dataset; pass its .images"):
        bloodcell.Classifier(clf.model, name="c").calibrate(cal, reference=cal, verbose=0)
    with pytest.raises(bloodcell.ConfigError, match=r"reference: expected images or a list of image paths, got the single"):
        bloodcell.Classifier(clf.model, name="c").calibrate(cal, reference="short/dir", verbose=0)


def test_logits_and_bad_shapes_are_refused_where_probabilities_are_expected():
    from bloodcell.calibration import review_summary, review_threshold

    logits = np.array([[3.0, 1.0, 0.5], [2.5, 2.0, 0.1]])
    for call in (lambda: calibration_metrics(logits, [0, 1]), lambda: fit_temperature(logits, [0, 1])):
        with pytest.raises(DataError, match="proba: expected probabilities .*apply a softmax to logits first"):
            call()
    with pytest.raises(DataError, match=r"proba: expected probabilities of shape \(N, classes\), got shape \(2,\)"):
        review_threshold([0.9, 0.8])
    p = np.array([[0.9, 0.1], [0.6, 0.4], [0.7, 0.3]])
    with pytest.raises(DataError, match=r"flagged: expected one flag per prediction \(3\)"):
        review_threshold(p, flagged=[True, False])
    with pytest.raises(DataError, match=r"outliers: expected one flag per prediction \(3\)"):
        review_summary(p, [0, 0, 0], 0.5, outliers=[True])
    # The functions that apply a calibration check their input as the others do.
    with pytest.raises(DataError, match="apply a softmax to logits first"):
        apply_temperature(logits, 2.0)
    # a diverged network's NaN answers pass through, to be flagged for review (needs_review)
    kept = apply_temperature(np.array([[0.9, 0.1], [np.nan, np.nan]]), 2.0)
    assert kept[0] == pytest.approx([0.75, 0.25]) and np.isnan(kept[1]).all()
    with pytest.raises(DataError, match=r"outside: expected one flag per row of proba \(3\)"):
        apply_calibration(p, 2.0, outside=[True], temperature_outside=1.0)
    bad = [(lambda: calibration_metrics(p, [0, 0, 0], bins=0), "bins must be a positive integer, got 0"),
           (lambda: risk_coverage(p, [0, 0, 0], points=2.5), "points must be an integer >= 2, got 2.5"),
           (lambda: review_summary(p, [0, 0, 0], float("nan")), r"threshold: expected a confidence in \[0, 1\]"),
           (lambda: review_summary(p, [0, 0, 0], 2.0), r"threshold: expected a confidence in \[0, 1\]"),
           (lambda: review_threshold(p, "0.1"), r"share: expected a fraction in \[0, 1\)")]
    for call, message in bad:
        with pytest.raises(bloodcell.BloodcellError, match=message):
            call()
    assert review_threshold(p, np.float32(0.3)) == pytest.approx(0.65)  # NumPy numbers are numbers


def test_review_share_is_checked_by_its_name(overconfident):
    clf, cal, _ = overconfident
    with pytest.raises(bloodcell.ConfigError, match=r"review_share: expected a fraction in \[0, 1\) \(0.05 flags 5%"):
        bloodcell.Classifier(clf.model, name="c").calibrate(cal, review_share=5, verbose=0)


def test_tied_confidences_are_flagged_together_never_fewer_than_the_share():
    from bloodcell.calibration import _flagged, review_threshold, risk_coverage

    # Ties at 1 (a saturated float32 softmax): no threshold in [0, 1] flags them, so none of them is.
    sure = np.array([[1.0, 0.0]] * 18 + [[0.7, 0.3], [0.8, 0.2]])
    assert review_threshold(sure[:18]) == 1.0 and not _flagged(sure[:18], 1.0).any()
    assert review_threshold(sure, 0.2) == 1.0 and _flagged(sure, 1.0).sum() == 2

    conf = np.array([0.6, 0.6] + [0.9] * 18)
    p = np.stack([conf, 1 - conf], axis=1)
    threshold = review_threshold(p, 0.05)
    assert _flagged(p, threshold).sum() == 2  # the share asks for one: its tie comes too, never none
    labels = np.array([1, 0] + [0] * 18)
    for order in (np.arange(20), np.arange(20)[::-1]):  # the curve does not depend on the order of the rows
        point = risk_coverage(p[order], labels[order], points=5)[1]  # aiming at 12.5%: 2.5 cells
        assert point["flagged"] == _flagged(p, point["threshold"]).mean() and point["accuracy"] == 1.0
