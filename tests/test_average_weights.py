"""scripts/average_weights.py (the weight average, a model soup, of models of one build) and gpu_import.py."""

import keras
import numpy as np
import pytest

import bloodcell
from conftest import load_script



def saved(tmp_path, name, seed, class_names=None):
    keras.utils.set_random_seed(seed)
    kwargs = {"class_names": class_names} if class_names else {}
    clf = bloodcell.Classifier(bloodcell.build_model("microcell", input_size=32, **kwargs), name=name)
    clf.training = {"init": "random", "command": f"bloodcell train data --seed {seed}"}
    return clf, clf.save_pretrained(tmp_path / name)


def test_average_is_the_mean_of_the_weights_and_says_so(tmp_path):
    a, fa = saved(tmp_path, "a", 1)
    b, fb = saved(tmp_path, "b", 2)
    assert load_script("average_weights").main([str(tmp_path / "soup"), str(fa), str(fb), "--name", "soup"]) == 0
    soup = bloodcell.load_classifier(tmp_path / "soup")
    for w, wa, wb in zip(soup.model.get_weights(), a.model.get_weights(), b.model.get_weights()):
        np.testing.assert_allclose(w, (wa + wb) / 2, rtol=1e-6, atol=1e-7)
    assert [p["source"] for p in soup.training["averaged_from"]] == [str(fa), str(fb)]
    card = (tmp_path / "soup" / "README.md").read_text()
    assert "weight average (a model soup) of 2 bloodcell models" in card and "--seed 2" in card
    training = card[card.index("## Training"):card.index("## Usage")]
    assert "averaged_from" not in training and "{'" not in training and "epochs_run: averaged=0" in training
    x = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    assert soup.predict_proba(x, verbose=0).shape == (2, len(soup.class_names))


def test_gpu_runs_name_their_devices_as_the_card_says_them():
    describe = load_script("gpu_import").describe_devices
    assert describe(["NVIDIA H200 (cuda:0)"]) == "an NVIDIA H200 GPU"
    assert describe(["NVIDIA H200 (cuda:0)", "NVIDIA H200 (cuda:1)"]) == "2 NVIDIA H200 GPUs"
    assert describe([]) == "a GPU"


def test_models_of_other_classes_are_refused(tmp_path):
    _, fa = saved(tmp_path, "a", 1)
    _, fb = saved(tmp_path, "b", 2, class_names=["x", "y"])
    with pytest.raises(SystemExit, match="differs in architecture, build or classes.*average only models fine-tuned from one parent"):
        load_script("average_weights").main([str(tmp_path / "soup"), str(fa), str(fb)])
    assert not (tmp_path / "soup").exists()


def test_average_models_refuses_another_architecture_by_name():
    from bloodcell.models import average_models

    small = bloodcell.build_model("microcell", input_size=32)
    other = bloodcell.build_model("mnv3s", input_size=32)
    with pytest.raises(bloodcell.ConfigError, match="b.pt \\(mnv3s, .*differs in architecture.* from a.pt \\(microcell"):
        average_models([small, other], names=["a.pt", "b.pt"])
    with pytest.raises(bloodcell.ConfigError, match="got 2 models and 1 names"):
        average_models([small, small], names=["a.pt"])
