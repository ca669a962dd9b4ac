"""scripts/release.py: a trained folder becomes a zoo folder, a Hub repo and a pasteable entry."""

import ast
import json

import numpy as np

import bloodcell
from conftest import load_script
from bloodcell import registry

def test_release_pushes_and_prints_a_loadable_entry(hub_server, tmp_path, capsys, monkeypatch):
    clf = bloodcell.Classifier(bloodcell.build_model("microcell", input_size=32), name="trained")
    clf.metrics = {"accuracy": 0.5, "macro_f1": 0.4}
    clf.training = {"init": "random", "command": "bloodcell train data --model microcell"}
    clf.extra = {"license": "mit", "dataset_id": "tiny", "dataset_name": "tiny"}  # publishing without them warns
    folder = clf.save_pretrained(tmp_path / "trained")
    code = load_script("release").main([str(folder), "--name", "microcell.reltest", "--repo-id", "bloodcell/microcell-reltest",
                                "--push", "--token", hub_server.token, "--zoo-dir", str(tmp_path / "zoo")])
    assert code == 0
    text = capsys.readouterr().out
    call = ast.parse(text).body[0].value
    kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
    assert kwargs["revision"] == hub_server.resolve("bloodcell/microcell-reltest")
    release = tmp_path / "zoo" / "microcell.reltest"
    assert {p.name for p in release.iterdir()} == {"config.json", "model.weights.h5", "README.md"}
    assert json.loads((release / "config.json").read_text())["name"] == "microcell.reltest"
    assert set(hub_server.files("bloodcell/microcell-reltest")) >= {"config.json", "model.weights.h5", "README.md"}

    monkeypatch.setitem(registry._PRETRAINED, kwargs["name"], registry.PretrainedCfg(**kwargs))
    loaded = bloodcell.load_classifier("microcell.reltest")
    x = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_array_equal(loaded.predict_proba(x), clf.predict_proba(x))
    assert kwargs["num_params"] == loaded.model.count_params()
