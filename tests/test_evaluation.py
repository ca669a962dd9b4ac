"""Evaluation: metrics against hand-computed figures, reports, plots, robustness, the CLI."""

import io
import json
import shutil
import sys

import keras
import numpy as np
import pytest
from PIL import Image

import bloodcell
from bloodcell.cli import main
from bloodcell.cli.cmd_evaluate import stratified_indices
from bloodcell.data import Dataset
from bloodcell.evaluation import (
    Report,
    RobustnessReport,
    confusion_matrix,
    evaluate,
    evaluate_robustness,
    metrics_from_predictions,
)

# Ten labelled predictions over four classes and the metrics worked out by hand.
Y_TRUE = [0, 0, 0, 1, 1, 2, 2, 2, 3, 3]
Y_PRED = [0, 0, 1, 1, 1, 2, 3, 0, 3, 3]
HAND_CONFUSION = [
    [2, 1, 0, 0],
    [0, 2, 0, 0],
    [1, 0, 1, 1],
    [0, 0, 0, 2],
]
HAND_PRECISION = [2 / 3, 2 / 3, 1 / 1, 2 / 3]  # diagonal / column sums 3, 3, 1, 3
HAND_RECALL = [2 / 3, 2 / 2, 1 / 3, 2 / 2]  # diagonal / row sums 3, 2, 3, 2
HAND_F1 = [2 * 2 / (3 + 3), 2 * 2 / (2 + 3), 2 * 1 / (3 + 1), 2 * 2 / (2 + 3)]  # 2TP / (support + predicted)
HAND_SUPPORT = [3, 2, 3, 2]


def check_hand_figures(report: Report) -> None:
    assert report.confusion.tolist() == HAND_CONFUSION
    assert report.n == 10
    assert report.accuracy == pytest.approx(7 / 10)
    assert report.balanced_accuracy == pytest.approx((2 / 3 + 1 + 1 / 3 + 1) / 4)
    assert report.macro_precision == pytest.approx(np.mean(HAND_PRECISION))
    assert report.macro_recall == pytest.approx(np.mean(HAND_RECALL))
    assert report.macro_f1 == pytest.approx(np.mean(HAND_F1))
    assert report.weighted_precision == pytest.approx((3 * 2 / 3 + 2 * 2 / 3 + 3 * 1 + 2 * 2 / 3) / 10)
    assert report.weighted_recall == pytest.approx(7 / 10)
    assert report.weighted_f1 == pytest.approx((3 * 2 / 3 + 2 * 0.8 + 3 * 0.5 + 2 * 0.8) / 10)
    for i, m in enumerate(report.per_class.values()):
        assert m["precision"] == pytest.approx(HAND_PRECISION[i])
        assert m["recall"] == pytest.approx(HAND_RECALL[i])
        assert m["f1"] == pytest.approx(HAND_F1[i])
        assert m["support"] == HAND_SUPPORT[i]


def test_metrics_match_hand_computed_confusion():
    report = metrics_from_predictions(Y_TRUE, Y_PRED, 4, class_names=["a", "b", "c", "d"])
    check_hand_figures(report)
    assert list(report.per_class) == ["a", "b", "c", "d"]


def test_absent_classes_follow_sklearn_conventions():
    # Class 2 is predicted but never true; class 3 occurs nowhere and is left out of macro means.
    report = metrics_from_predictions([0, 0, 1, 1], [0, 2, 1, 1], 4)
    assert report.per_class["2"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert report.macro_precision == pytest.approx((1 + 1 + 0) / 3)
    assert report.macro_recall == pytest.approx((0.5 + 1 + 0) / 3)
    assert report.balanced_accuracy == pytest.approx((0.5 + 1) / 2)


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_metrics_match_sklearn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    y_true = rng.choice([0, 1, 2, 4, 5, 6], 300)  # classes 3 and 7 never true
    y_pred = np.where(rng.random(300) < 0.6, y_true, rng.integers(0, 8, 300))
    report = metrics_from_predictions(y_true, y_pred, 8)
    assert np.array_equal(report.confusion, sk.confusion_matrix(y_true, y_pred, labels=range(8)))
    assert report.accuracy == pytest.approx(sk.accuracy_score(y_true, y_pred))
    assert report.balanced_accuracy == pytest.approx(sk.balanced_accuracy_score(y_true, y_pred))
    for avg in ("macro", "weighted"):
        p, r, f, _ = sk.precision_recall_fscore_support(y_true, y_pred, average=avg, zero_division=0)
        assert (getattr(report, f"{avg}_precision"), getattr(report, f"{avg}_recall"), getattr(report, f"{avg}_f1")) \
            == pytest.approx((p, r, f))
    p, r, f, s = sk.precision_recall_fscore_support(y_true, y_pred, labels=range(8), zero_division=0)
    table = np.array([[m["precision"], m["recall"], m["f1"], m["support"]] for m in report.per_class.values()])
    np.testing.assert_allclose(table, np.stack([p, r, f, s], axis=1))


def test_confusion_matrix_rejects_bad_input():
    with pytest.raises(ValueError, match="one prediction per label"):
        confusion_matrix([0, 1], [0], 2)
    with pytest.raises(ValueError, match="0..1"):
        confusion_matrix([0, 2], [0, 1], 2)
    with pytest.raises(ValueError, match="at least one"):
        metrics_from_predictions([], [], 3)
    with pytest.raises(ValueError, match="got <U1 values such as 'a'; map class names to their positions"):
        confusion_matrix(["a"], ["b"], 2)
    for bad in ([[-1, 2], [0, 1]], [[1.0, 0.0], [0.25, 0.75]], [[np.nan, 1], [0, 1]]):  # a normalised matrix too
        with pytest.raises(ValueError, match="confusion: expected non-negative whole counts.*not a normalised matrix"):
            Report.from_confusion(bad, ["a", "b"])
    report = Report.from_confusion([[2, 0, 0], [0, 0, 0], [1, 0, 1]], ["a", "b", "c"])
    assert report.absent == ("b",) and "no images of: b (balanced accuracy runs over the 2 classes present" \
        in report.to_text()
    assert "runs over the 1 class present" in Report.from_confusion([[1, 0], [0, 0]], ["a", "b"]).to_text()


# A classifier whose predictions are known: the mean colour decides. Pure red -> 0, green -> 1,
# blue -> 2, black -> 3 (its bias 9 wins). Constant images look the same under every flip/rotation.
COLOURS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [0, 0, 0]], np.uint8)


@pytest.fixture(scope="module")
def colour_classifier():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    dense = keras.layers.Dense(4, activation="softmax")
    model = keras.Model(inputs, dense(x))
    dense.set_weights([np.hstack([0.1 * np.eye(3), np.zeros((3, 1))]), np.array([0, 0, 0, 9.0])])
    return bloodcell.Classifier(model, class_names=("a", "b", "c", "d"))


def colour_images(classes, size=8):
    return np.stack([np.broadcast_to(COLOURS[c], (size, size, 3)) for c in classes]).astype(np.uint8)


@pytest.mark.parametrize("tta", [False, True])
def test_evaluate_end_to_end_matches_hand_computed(colour_classifier, tta):
    images = colour_images(Y_PRED, size=12)  # resized to the classifier's 8x8 on the way
    data = Dataset(images, np.array(Y_TRUE), ("a", "b", "c", "d"))
    report = evaluate(colour_classifier, data, batch_size=3, tta=tta)
    check_hand_figures(report)
    assert report.tta is tta
    assert evaluate(colour_classifier, (images, Y_TRUE)).confusion.tolist() == HAND_CONFUSION


def test_evaluate_rejects_other_classes(colour_classifier):
    data = Dataset(colour_images([0, 1]), np.array([0, 1]))  # the 8 canonical classes
    with pytest.raises(ValueError, match="differ from the classifier"):
        evaluate(colour_classifier, data)
    with pytest.raises(ValueError, match="one label per image"):
        evaluate(colour_classifier, (colour_images([0, 1]), [0]))
    with pytest.raises(ValueError, match=r"\['basophil'\] are not classes of the classifier"):
        evaluate(colour_classifier, (colour_images([0, 1]), ["a", "basophil"]))


def test_a_name_where_a_classifier_is_expected_says_how_to_load_it(colour_classifier):
    with pytest.raises(bloodcell.ConfigError, match=r"got a str; load it with bloodcell.load_classifier\('mnv3s.pbc96'\)"):
        evaluate("mnv3s.pbc96", (colour_images([0, 1]), [0, 1]))
    with pytest.raises(bloodcell.ConfigError, match=r"load a saved or zoo model with bloodcell.load_classifier"):
        bloodcell.Classifier("mnv3s.pbc96")


def test_labels_may_be_class_names(colour_classifier):
    names = [colour_classifier.class_names[i].upper() for i in Y_TRUE]  # case ignored, as everywhere
    by_name = evaluate(colour_classifier, (colour_images(Y_PRED), names)).to_dict()
    assert by_name["confusion_matrix"] == HAND_CONFUSION


def test_report_dict_text_and_plot(colour_classifier, tmp_path):
    report = evaluate(colour_classifier, (colour_images(Y_PRED), Y_TRUE))
    d = json.loads(json.dumps(report.to_dict()))
    assert d["confusion_matrix"] == HAND_CONFUSION and d["accuracy"] == pytest.approx(0.7)
    assert set(d) >= {"n", "balanced_accuracy", "macro", "weighted", "per_class", "class_names"}
    assert d["per_class"]["c"]["support"] == 3
    text = report.to_text()
    assert "0.7000" in text and all(c in text for c in "abcd")
    pytest.importorskip("matplotlib")
    report.plot_confusion(tmp_path / "cm.png")
    with Image.open(tmp_path / "cm.png") as img:
        assert img.format == "PNG" and min(img.size) > 200


@pytest.fixture(scope="module")
def tiny():
    keras.utils.set_random_seed(0)
    clf = bloodcell.Classifier(bloodcell.build_model("microcell", input_size=32), name="tiny")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    return clf, Dataset(images, rng.integers(0, 8, 16))


def test_robustness_report(tiny, tmp_path):
    clf, data = tiny
    names = ["gaussian_noise", "defocus_blur", "bubbles"]
    rob = evaluate_robustness(clf, data, corruptions=names, severities=(1, 3, 5), seed=1)
    assert rob.corruptions == tuple(names) and rob.severities == (1, 3, 5) and rob.n == 16
    assert rob.clean_accuracy == pytest.approx(evaluate(clf, data).accuracy)
    table = np.array([rob.accuracy[c] for c in names])
    assert table.shape == (3, 3) and ((table >= 0) & (table <= 1)).all()
    assert rob.robustness_mean == pytest.approx(table.mean())
    assert list(rob.per_corruption_mean.values()) == pytest.approx(table.mean(axis=1))
    assert rob.per_severity_mean == pytest.approx(table.mean(axis=0))
    d = json.loads(json.dumps(rob.to_dict()))
    assert d["robustness_mean"] == pytest.approx(table.mean()) and d["accuracy"]["bubbles"] == rob.accuracy["bubbles"]
    assert all(c in rob.to_text() for c in names)
    again = evaluate_robustness(clf, data, corruptions=names, severities=(1, 3, 5), seed=1)
    assert again.accuracy == rob.accuracy
    pytest.importorskip("matplotlib")
    rob.plot(tmp_path / "rob.png")
    with Image.open(tmp_path / "rob.png") as img:
        assert img.format == "PNG" and min(img.size) > 200


def test_robustness_runs_every_corruption_by_default(tiny):
    from bloodcell.corruptions import CORRUPTIONS

    clf, data = tiny
    rob = evaluate_robustness(clf, data.subset(range(4)), severities=(2,))
    assert rob.corruptions == tuple(CORRUPTIONS) and all(len(v) == 1 for v in rob.accuracy.values())


def test_robustness_follows_the_corruption(colour_classifier):
    # Saturation keeps luma and scales chroma: at factor 0.8 (severity 1) every colour keeps its
    # class; at 0.2 (severity 5) pure blue becomes (23, 23, 74), whose blue logit 7.4 loses to the
    # bias 9 of class 3, while red (112, 61, 61) and green (120, 171, 120) stay above it.
    data = (colour_images([0, 1, 2, 3]), [0, 1, 2, 3])
    rob = evaluate_robustness(colour_classifier, data, corruptions="saturation", severities=(1, 5))
    assert rob.clean_accuracy == 1.0 and rob.accuracy["saturation"] == [1.0, 0.75]


def test_robustness_rejects_bad_arguments(tiny):
    clf, data = tiny
    with pytest.raises(ValueError, match="unknown corruption"):
        evaluate_robustness(clf, data, corruptions=["fog"])
    with pytest.raises(ValueError, match="severities"):
        evaluate_robustness(clf, data, severities=(0, 6))
    with pytest.raises(ValueError, match="corrupt_size: expected an image side of at least 8 pixels"):
        evaluate_robustness(clf, data, corrupt_size=4)
    with pytest.raises(ValueError, match=r"corruptions: jpeg given more than once, got \['jpeg', 'jpeg'\]"):
        evaluate_robustness(clf, data, corruptions=["jpeg", "jpeg"])
    with pytest.raises(ValueError, match="severities: 3 given more than once"):
        evaluate_robustness(clf, data, corruptions="jpeg", severities=(3, 3))
    with pytest.raises(ValueError, match="seed must be an integer, got None"):
        evaluate_robustness(clf, data, corruptions="jpeg", seed=None)


def test_robustness_at_another_size_corrupts_before_the_resize(tiny):
    from bloodcell.corruptions import corrupt
    from bloodcell.imageio import resize_images

    clf, data = tiny
    small = resize_images(data.images, 24)
    rob = evaluate_robustness(clf, (small, data.labels), corruptions=["jpeg", "pixelate"], severities=(2, 5),
                              seed=3, corrupt_size=24)
    assert rob.corrupt_size == 24 and rob.to_dict()["corrupt_size"] == 24 and "24x24" in rob.to_text()

    def by_hand(images):
        proba = clf.predict_proba(resize_images(images, clf.input_size))
        return float(np.mean(proba.argmax(1) == data.labels))

    assert rob.clean_accuracy == pytest.approx(by_hand(small))
    for name in ("jpeg", "pixelate"):
        assert rob.accuracy[name] == pytest.approx([by_hand(corrupt(small, name, s, seed=3)) for s in (2, 5)])


def test_robustness_report_mean_is_table_mean():
    rob = RobustnessReport(clean_accuracy=0.9, severities=(1, 2), accuracy={"x": [0.8, 0.6], "y": [0.5, 0.1]}, n=10, seed=0)
    assert rob.robustness_mean == pytest.approx(0.5)
    assert rob.per_corruption_mean == pytest.approx({"x": 0.7, "y": 0.3})
    assert rob.per_severity_mean == pytest.approx([0.65, 0.35])


def test_stratified_indices():
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    idx = stratified_indices(labels, 10, seed=0)
    assert len(idx) == 10 == len(set(idx))
    assert np.bincount(labels[idx]).tolist() == [5, 3, 2]
    assert np.array_equal(idx, stratified_indices(labels, 10, seed=0))
    assert not np.array_equal(idx, stratified_indices(labels, 10, seed=1))


# -- command line --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cli_files(tmp_path_factory, tiny):
    root = tmp_path_factory.mktemp("evaluate")
    tiny[0].save_pretrained(root / "model")
    rng = np.random.default_rng(1)
    for cls in ("basophil", "lymphocyte", "platelet"):
        (root / "data" / cls).mkdir(parents=True)
        for i in range(4):  # 40x40: resized to the model's 32x32 on loading
            Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(root / "data" / cls / f"{i}.png")
    return root


def run_json(capsys, *argv):
    assert main(["evaluate", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_evaluate_json_matches_python_api(cli_files, capsys):
    out = run_json(capsys, str(cli_files / "data"), "--model", str(cli_files / "model"))
    clf = bloodcell.load_classifier(cli_files / "model")
    data = bloodcell.data.load_dataset(cli_files / "data", image_size=32)
    expected = evaluate(clf, data).to_dict()
    assert out["evaluation"]["confusion_matrix"] == expected["confusion_matrix"]
    assert out["evaluation"]["n"] == 12 and "robustness" not in out
    # read from their files at another size than the model's, the images would be resized twice: said
    with pytest.warns(UserWarning, match=r"read from their files at 40 px and are resized again to the model's 32.*"
                                         r"image_size=32\)$"):
        evaluate(clf, bloodcell.data.load_dataset(cli_files / "data", image_size=40))


def test_cli_evaluate_text_plots_and_robustness(cli_files, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    argv = ["evaluate", str(cli_files / "data"), "--model", str(cli_files / "model"), "--plot", str(tmp_path / "cm.png"),
            "--corruptions", "jpeg,pixelate", "--severities", "1,5", "--robustness-plot", str(tmp_path / "rob.png")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "balanced acc." in out and "lymphocyte" in out and "pixelate" in out and "sev 5" in out
    for name in ("cm.png", "rob.png"):
        with Image.open(tmp_path / name) as img:
            assert img.format == "PNG"


def test_cli_evaluate_split_file_and_limit(cli_files, tmp_path, capsys):
    listed = ["basophil/0.png", "basophil/3.png", "platelet/1.png"]
    (tmp_path / "test_files.json").write_text(json.dumps(listed))
    model = ["--model", str(cli_files / "model")]
    out = run_json(capsys, str(cli_files / "data"), *model, "--split-file", str(tmp_path / "test_files.json"))
    support = {c: m["support"] for c, m in out["evaluation"]["per_class"].items() if m["support"]}
    assert support == {"basophil": 2, "platelet": 1}
    out = run_json(capsys, str(cli_files / "data"), *model, "--limit", "6", "--seed", "3")
    support = {c: m["support"] for c, m in out["evaluation"]["per_class"].items() if m["support"]}
    assert support == {"basophil": 2, "lymphocyte": 2, "platelet": 2}


def test_cli_evaluate_errors(cli_files, tmp_path, capsys):
    base = ["evaluate", str(cli_files / "data"), "--model", str(cli_files / "model")]
    (tmp_path / "split.json").write_text(json.dumps(["basophil/0.png", "monocyte/9.png"]))
    assert main([*base, "--split-file", str(tmp_path / "split.json")]) == 2
    assert "monocyte/9.png" in capsys.readouterr().err
    assert main([*base, "--severities", "1,x"]) == 2
    assert "--severities" in capsys.readouterr().err
    assert main([*base, "--corruptions", "fog"]) == 2
    assert "unknown corruption" in capsys.readouterr().err
    assert main([*base, "--corruptions", "jpg"]) == 2
    assert "unknown corruption(s) jpg; expected some of:" in (err := capsys.readouterr().err) and "did you mean 'jpeg'?" in err
    plot = tmp_path / "a.png"  # two pictures into one file: the first would be lost
    assert main([*base, "--plot", str(plot), "--review-plot", str(tmp_path / "." / "a.png")]) == 2
    assert f"--plot and --review-plot both name {tmp_path / '.' / 'a.png'}; give each picture its own file" \
        in capsys.readouterr().err and not plot.exists()


def test_cli_evaluate_write_metrics_updates_config_and_card(cli_files, tmp_path, capsys):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(cli_files / "model", folder)
    weights_before = (folder / "model.weights.h5").read_bytes()
    argv = ["evaluate", str(cli_files / "data"), "--model", str(folder), "--write-metrics", "--robustness"]
    assert main(argv) == 0
    capsys.readouterr()
    cfg = json.loads((folder / "config.json").read_text())
    expected = run_json(capsys, str(cli_files / "data"), "--model", str(folder), "--robustness")
    assert cfg["metrics"]["accuracy"] == expected["evaluation"]["accuracy"]
    assert cfg["metrics"]["macro_f1"] == pytest.approx(expected["evaluation"]["macro"]["f1"])
    assert cfg["metrics"]["robustness_mean"] == expected["robustness"]["robustness_mean"]
    assert cfg["metrics"]["test_images"] == 12
    assert cfg["evaluation_command"] == "bloodcell " + " ".join(argv)
    card = (folder / "README.md").read_text()
    assert "| robustness_mean |" in card and "| gaussian_noise |" in card and "--write-metrics" in card
    assert (folder / "model.weights.h5").read_bytes() == weights_before
    assert bloodcell.load_classifier(folder).metrics["robustness_mean"] == cfg["metrics"]["robustness_mean"]
    # Measuring again without --robustness must not leave the earlier robustness table behind.
    assert main(["evaluate", str(cli_files / "data"), "--model", str(folder), "--write-metrics"]) == 0
    cfg = json.loads((folder / "config.json").read_text())
    assert "robustness_mean" not in cfg["metrics"] and "robustness" not in cfg
    # The card's Hub metadata names what was measured: every image of DATA, not a "test" split of the training data.
    meta = (folder / "README.md").read_text().split("---")[1]
    assert "name: data" in meta and "split: all" in meta and "split: test" not in meta
    (tmp_path / "list.json").write_text(json.dumps(["basophil/0.png", "platelet/1.png"]))
    assert main(["evaluate", str(cli_files / "data"), "--model", str(folder), "--write-metrics",
                 "--split-file", str(tmp_path / "list.json")]) == 0
    assert "split: test" in (folder / "README.md").read_text().split("---")[1]
    edited = (folder / "README.md").read_text() + "\n## Our notes\n"  # a card with notes added is kept too
    (folder / "README.md").write_text(edited)
    capsys.readouterr()
    assert main(["evaluate", str(cli_files / "data"), "--model", str(folder), "--write-metrics",
                 "--split-file", str(tmp_path / "list.json")]) == 0
    assert "README.md was edited after bloodcell wrote it, so it was left as it is" in capsys.readouterr().err
    assert (folder / "README.md").read_text() == edited
    (folder / "README.md").write_text("# My notes\n")  # a README of one's own is never replaced, and not claimed
    assert main(["evaluate", str(cli_files / "data"), "--model", str(folder), "--write-metrics"]) == 0
    assert "README.md is not a bloodcell model card, so it was left as it is" in capsys.readouterr().err
    assert (folder / "README.md").read_text() == "# My notes\n"
    assert "gaussian_noise" not in (folder / "README.md").read_text()
    # Only a local folder, and only whole-split figures without TTA, can be recorded.
    assert main(["evaluate", str(cli_files / "data"), "--write-metrics"]) == 2
    assert "pass --model FOLDER (one written by bloodcell train or save_pretrained)" in capsys.readouterr().err
    assert main([*argv, "--limit", "3"]) == 2
    assert "--limit" in capsys.readouterr().err
    assert main([*argv, "--classes", "basophil,monocyte"]) == 2
    assert "--classes" in capsys.readouterr().err
    assert main(["evaluate", str(cli_files / "data"), "--model", "mnv3s.pbc96", "--write-metrics"]) == 2
    assert "names the zoo's entry; for a folder of that name here, write ./mnv3s.pbc96" in capsys.readouterr().err
    (folder / "test_files.json").write_text("[]")
    assert main(["evaluate", str(cli_files / "data"), "--model", str(folder), "--write-metrics"]) == 2
    assert f"pass --split-file {folder / 'test_files.json'}" in capsys.readouterr().err
    (folder / "test_files.json").unlink()  # where runs of `bloodcell train` before 0.x left it
    work = folder.with_name(folder.name + ".work")
    work.mkdir()
    (work / "test_files.json").write_text("[]")
    assert main(["evaluate", str(cli_files / "data"), "--model", str(folder), "--write-metrics"]) == 2
    assert f"pass --split-file {work / 'test_files.json'}" in capsys.readouterr().err


def test_cli_evaluate_classes_reach_the_robustness_run_and_plots_make_their_folder(cli_files, tmp_path, capsys):
    base = ["evaluate", str(cli_files / "data"), "--model", str(cli_files / "model"), "--json",
            "--corruptions", "jpeg", "--severities", "1", "--classes", "basophil,lymphocyte,platelet"]
    out = run_json(capsys, *base[1:], "--plot", str(tmp_path / "new" / "cm.png"))
    assert out["robustness"]["clean_accuracy"] == pytest.approx(out["evaluation"]["accuracy"])
    # the restriction is part of the figures: recorded in both reports
    assert out["evaluation"]["classes"] == out["robustness"]["classes"] == ["basophil", "lymphocyte", "platelet"]
    assert (tmp_path / "new" / "cm.png").is_file()
    # a plot is not replaced unless asked
    before = (tmp_path / "new" / "cm.png").read_bytes()
    assert main([*base, "--plot", str(tmp_path / "new" / "cm.png")]) == 2
    assert "--plot" in capsys.readouterr().err and (tmp_path / "new" / "cm.png").read_bytes() == before
    run_json(capsys, *base[1:], "--plot", str(tmp_path / "new" / "cm.png"), "--overwrite")


def test_evaluate_refuses_classes_that_leave_out_labelled_images(cli_files, capsys):
    """--classes means the classes the cells can be: images of other classes could only count as wrong."""
    clf = bloodcell.load_classifier(cli_files / "model")
    data = bloodcell.data.load_dataset(cli_files / "data", image_size=32)
    with pytest.raises(bloodcell.DataError, match="the data hold 4 images of lymphocyte, 4 images of platelet, which "
                                                  "it leaves out"):
        evaluate(clf, data, classes=["basophil", "monocyte"])
    assert main(["evaluate", str(cli_files / "data"), "--model", str(cli_files / "model"),
                 "--classes", "basophil,monocyte"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and "add lymphocyte, platelet to it" in errors[0]
    # classes left out on purpose are not reported as absent from the data
    restricted = evaluate(clf, data, classes=["basophil", "lymphocyte", "platelet", "monocyte"])
    assert restricted.absent == ["monocyte"] and "runs over the 3 classes present" in restricted.to_text()


def test_cli_refuses_plots_it_cannot_write_before_any_work(cli_files, tmp_path, capsys):
    model = str(cli_files / "model")
    assert main(["evaluate", str(cli_files / "data"), "--model", model, "--plot", str(tmp_path / "cm.txt")]) == 2
    assert "--plot" in capsys.readouterr().err
    inside = cli_files / "data" / "cm.png"
    assert main(["evaluate", str(cli_files / "data"), "--model", model, "--robustness-plot", str(inside)]) == 2
    assert "inside it" in capsys.readouterr().err and not inside.exists()


def test_cli_unwritable_output_is_one_line_exit_1(cli_files, tmp_path, capsys):
    (tmp_path / "file.txt").write_text("not a folder")
    plot = tmp_path / "file.txt" / "cm.png"
    assert main(["evaluate", str(cli_files / "data"), "--model", str(cli_files / "model"), "--plot", str(plot)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(plot) in err and "check the path and its permissions" in err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_long_work_shows_a_progress_bar_on_a_terminal_only(tiny, tmp_path, monkeypatch):
    """predict_proba, evaluate, evaluate_robustness and load_dataset show a tqdm bar on a terminal's
    stderr; verbose=0 shows none, and output that is not a terminal (a pipe, a log) never holds one."""
    from bloodcell import _progress

    clf, data = tiny
    monkeypatch.setattr(_progress, "DELAY_S", 0.0)  # the real delay hides work shorter than 2 s
    folder = tmp_path / "cells"
    (folder / "lymphocyte").mkdir(parents=True)
    for i, img in enumerate(np.repeat(data.images, 5, axis=0)):
        Image.fromarray(img).save(folder / "lymphocyte" / f"{i}.png")
    calls = {
        "predict": lambda **kw: clf.predict_proba(data.images, batch_size=4, **kw),
        "robustness": lambda **kw: evaluate_robustness(clf, data, corruptions=["jpeg"], severities=(1, 2), **kw),
        "reading cells": lambda **kw: bloodcell.load_dataset(folder, image_size=32, workers=2, **kw),
    }
    for desc, call in calls.items():
        for stream, kw, shown in ((_Terminal(), {}, True), (_Terminal(), {"verbose": 0}, False), (io.StringIO(), {}, False)):
            monkeypatch.setattr(sys, "stderr", stream)
            call(**kw)
            text = stream.getvalue()
            assert (desc in text) == shown, (desc, kw, type(stream).__name__, text[-200:])
    monkeypatch.setattr(sys, "stderr", stream := _Terminal())
    evaluate(clf, data, batch_size=4)
    assert "predict" in stream.getvalue()


def test_report_text_when_every_image_is_flagged(tiny):
    clf, data = tiny
    flagging = bloodcell.Classifier(clf.model, name="unsure", extra={"calibration": {
        "method": "temperature", "temperature": 1.0, "review_below": 1.0}})
    report = bloodcell.evaluate(flagging, data, verbose=0)
    assert report.review["flagged"] == 1.0 and report.review["accuracy_unflagged"] is None
    assert "accuracy of the others n/a (all flagged)" in report.to_text()


def test_robustness_arguments_are_checked_not_truncated(tiny):
    clf, data = tiny
    with pytest.raises(bloodcell.ConfigError, match=r"severities: expected integers in \[1, 2, 3, 4, 5\], got \[2.7\]"):
        evaluate_robustness(clf, data, corruptions="jpeg", severities=[2.7], verbose=0)
    rob = evaluate_robustness(clf, data.subset(range(4)), corruptions="jpeg", severities=3,
                              corrupt_size=np.int64(32), verbose=0)
    assert rob.severities == (3,)


def test_a_split_file_matches_a_copy_whose_class_folders_are_named_otherwise(cli_files, tmp_path, capsys):
    """A model's test_files.json names canonical class folders; a copy of the data with folders named
    Baso/, LY/ or platelets/ holds the same images and is measured on the same ones."""
    from bloodcell._classes import class_path

    assert class_path("Eos/a/x.jpg") == "eosinophil/a/x.jpg" and class_path("blasts/x.jpg") == "blasts/x.jpg"
    copy = tmp_path / "copy"
    for name, alias in (("basophil", "Baso"), ("lymphocyte", "LY"), ("platelet", "platelets")):
        shutil.copytree(cli_files / "data" / name, copy / alias)
    (tmp_path / "split.json").write_text(json.dumps(["basophil/0.png", "lymphocyte/1.png", "platelet/2.png"]))
    out = run_json(capsys, str(copy), "--model", str(cli_files / "model"), "--split-file", str(tmp_path / "split.json"))
    assert out["evaluation"]["n"] == 3
