"""The zoo's metadata checked against the real models it describes."""

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

import bloodcell
from bloodcell import registry
from bloodcell.classifier import bundled_path, load_folder
from bloodcell._util import sha256_file
from bloodcell.zoo import check_entry

ZOO = Path(__file__).resolve().parents[1] / "zoo"


def release_folder(entry) -> Path:
    """What the entry's Hub repo holds: the package's copy (bundled) or zoo/<name>/."""
    return bundled_path(entry.name) if entry.bundled else ZOO / entry.name


def test_names_unique_and_architectures_known():
    names = bloodcell.list_pretrained()
    assert len(names) == len(set(names))
    for name in names:
        entry = bloodcell.pretrained_entry(name)
        assert entry.name == name
        assert entry.architecture in bloodcell.list_models()
        assert name.split(".")[0] == entry.architecture


@pytest.mark.parametrize("name", bloodcell.list_pretrained())
def test_entry_matches_its_architecture(name):
    entry = bloodcell.pretrained_entry(name)
    model = bloodcell.build_model(entry.architecture, input_size=entry.input_size, num_classes=len(entry.class_names))
    assert model.count_params() == entry.num_params
    assert model.input_shape == (None, entry.input_size, entry.input_size, 3)
    assert entry.class_names == bloodcell.CLASS_NAMES
    assert entry.sha256 and len(entry.sha256) == 64
    assert entry.bundled or (entry.repo_id and entry.revision)
    if not entry.bundled and not re.fullmatch(r"[0-9a-f]{40}", entry.revision):  # a branch may move
        assert entry.config_sha256 and len(entry.config_sha256) == 64


@pytest.mark.parametrize("name", bloodcell.list_pretrained())
def test_entry_describes_its_folder_and_cannot_be_changed_in_place(name):
    """Preprocessing, licence and weights hash as the release folder's config.json records them;
    an entry is shared by the whole process, so its metrics and preprocessing are read-only."""
    import json

    entry = bloodcell.pretrained_entry(name)
    cfg = json.loads((release_folder(entry) / "config.json").read_text())
    assert dict(entry.preprocessing) == cfg["preprocessing"] and entry.license == cfg["license"]
    assert entry.sha256 == cfg["weights_sha256"]
    check_entry(entry, cfg)
    with pytest.raises(TypeError):
        entry.metrics["accuracy"] = 0.0
    with pytest.raises(TypeError):
        entry.preprocessing["normalisation"] = "none"
    assert isinstance(dataclasses.replace(entry, class_names=list(entry.class_names)).class_names, tuple)
    with pytest.raises(bloodcell.ConfigError, match=r"preprocessing="):
        check_entry(dataclasses.replace(entry, preprocessing={**cfg["preprocessing"], "normalisation": "none"}), cfg)


def test_default_model_is_a_bundled_entry():
    entry = bloodcell.pretrained_entry(bloodcell.DEFAULT_MODEL)
    assert entry.bundled


@pytest.mark.parametrize("name", [n for n in bloodcell.list_pretrained() if bloodcell.pretrained_entry(n).bundled])
def test_bundled_entry_matches_its_files(name):
    entry = bloodcell.pretrained_entry(name)
    folder = bundled_path(name)
    weights = folder / entry.filename
    assert sha256_file(weights) == entry.sha256
    assert weights.stat().st_size == entry.size_bytes
    assert weights.stat().st_size < 20_000_000
    clf = load_folder(folder, sha256=entry.sha256)
    assert clf.architecture == entry.architecture
    assert clf.input_size == entry.input_size
    assert clf.class_names == entry.class_names
    rebuilt = bloodcell.build_model(entry.architecture, input_size=entry.input_size, num_classes=len(entry.class_names))
    assert clf.model.count_params() == rebuilt.count_params()
    for key, value in entry.metrics.items():
        assert clf.metrics[key] == pytest.approx(value)
    assert (folder / "README.md").is_file()


@pytest.mark.parametrize("name", bloodcell.list_pretrained())
def test_release_folder_loads_through_a_hub_and_passes_the_checksum(name, hub_server, monkeypatch, capsys):
    entry = bloodcell.pretrained_entry(name)
    folder = release_folder(entry)
    files = {p.name: p for p in folder.iterdir() if p.is_file()}
    assert {"config.json", entry.filename, "README.md"} <= set(files)
    if entry.config_sha256:
        assert sha256_file(folder / "config.json") == entry.config_sha256, "update the entry's config_sha256"
    assert (folder / entry.filename).stat().st_size < 20_000_000
    repo_id = entry.repo_id or f"bloodcell/{name.replace('.', '-')}"
    commit = hub_server.create_repo(repo_id, files)
    # Loading by zoo name downloads from the entry's repo at its pinned revision; here the local
    # server's commit stands in for the Hub's.
    served = dataclasses.replace(entry, bundled=False, published=True, repo_id=repo_id, revision=commit)
    monkeypatch.setitem(registry._PRETRAINED, name, served)
    clf = bloodcell.load_classifier(name)
    assert clf.architecture == entry.architecture and clf.class_names == entry.class_names
    for key, value in entry.metrics.items():
        assert clf.metrics[key] == pytest.approx(value)
    card = (folder / "README.md").read_text()
    assert "command: `bloodcell train" in card or "command: `python" in card
    monkeypatch.setitem(registry._PRETRAINED, name, dataclasses.replace(served, sha256="0" * 64))
    with pytest.raises(bloodcell.ChecksumError, match="sha256"):
        bloodcell.load_classifier(name)
    if entry.config_sha256:  # a config.json changed on a branch is refused too
        monkeypatch.setitem(registry._PRETRAINED, name, dataclasses.replace(served, config_sha256="0" * 64))
        with pytest.raises(bloodcell.ChecksumError, match="config.json"):
            bloodcell.load_classifier(name)
        monkeypatch.setitem(registry._PRETRAINED, name, dataclasses.replace(served, sha256="0" * 64))
    # On the command line: one line, exit 1 (an input that could not be used).
    from bloodcell.cli import main

    sample = next((Path(__file__).resolve().parents[1] / "examples" / "images").glob("*.jpg"))
    assert main(["predict", str(sample), "--model", name]) == 1
    err = capsys.readouterr().err.strip()
    assert "sha256" in err and len(err.splitlines()) == 1


def test_registry_filters_defaults_and_entry_checks():
    from bloodcell import _registry
    from bloodcell.errors import ConfigError, ModelNotFoundError
    from bloodcell.registry import PretrainedCfg, pretrained_entry, register_pretrained

    assert bloodcell.list_models("EFF*") == ["effnetb0", "effv2b0"]
    assert set(bloodcell.list_models(pretrained=True)) == {c.architecture for c in _registry._PRETRAINED.values()}
    assert bloodcell.list_pretrained("*.pbc96") and bloodcell.list_pretrained("mnv3s") == ["mnv3s.pbc96"]
    assert bloodcell.list_pretrained("MNV3S") == ["mnv3s.pbc96"]  # ignoring case, as list_models and patterns do
    with pytest.raises(ModelNotFoundError, match="unknown architecture or zoo entry 'nonexistent'"):
        bloodcell.list_pretrained("nonexistent")
    default = pretrained_entry("mnv3s").name
    mine = PretrainedCfg(name="mnv3s.a_mylab", architecture="mnv3s", repo_id="me/mnv3s-mylab", revision="main",
                         sha256="0" * 64, config_sha256="1" * 64)
    bad = [dict(name="microcell"), dict(name="microcell.x/y"), dict(name="mnv3s.x"), dict(name="microcell.x", input_size=8),
           dict(name="microcell.x", sha256="nothex"), dict(name="microcell.x", bundled=False),  # nowhere to load from
           dict(name="microcell.x", bundled=False, repo_id="me/x", revision="main", sha256="0" * 64)]  # unchecked config
    try:
        register_pretrained(mine)
        assert pretrained_entry("mnv3s").name == default  # a later entry never replaces the default
        assert bloodcell.list_pretrained("*", architecture="microcell") == []  # both filters apply
        assert bloodcell.list_pretrained("*.a_*", architecture="mnv3s") == ["mnv3s.a_mylab"]
        for fields in bad:
            cfg = PretrainedCfg(**{"architecture": "microcell", "bundled": True, **fields})
            with pytest.raises(ConfigError, match="pretrained entry"):
                register_pretrained(PretrainedCfg(name="microcell.ok", architecture="microcell", bundled=True), cfg)
            assert "microcell.ok" not in _registry._PRETRAINED  # all or nothing
    finally:
        _registry._PRETRAINED.pop("mnv3s.a_mylab", None)


def test_a_builder_of_ones_own_is_held_to_the_backbone_contract():
    import keras

    from bloodcell import _registry
    from bloodcell.errors import ConfigError
    from bloodcell.models import Backbone
    from bloodcell.registry import register_model

    def tiny(pooled):
        def build(*, input_size, weights=None):
            i = keras.Input((input_size, input_size, 3))
            x = keras.layers.Conv2D(4, 3, strides=2)(keras.layers.Rescaling(1 / 255)(i))
            if pooled:
                x = keras.layers.GlobalAveragePooling2D()(x)
            return Backbone(keras.Model(i, x, name="tiny"))
        return build

    try:
        register_model("tiny_test_cnn", family="mine", imagenet=False)(tiny(False))
        register_model("tiny_pooled_cnn", family="mine", imagenet=False)(tiny(True))
        model = bloodcell.build_model("tiny_test_cnn", class_names=["a", "b"], input_size=32)
        assert model.backbone.name == "backbone" and model.predict(np.zeros((1, 32, 32, 3)), verbose=0).shape == (1, 2)
        with pytest.raises(ConfigError, match=r"must output a feature map \(N, H, W, C\)"):
            bloodcell.build_model("tiny_pooled_cnn", class_names=["a", "b"], input_size=32)
        with pytest.raises(ConfigError, match=r"bn_momentum must be a number in \[0, 1\)"):
            bloodcell.build_model("tiny_test_cnn", class_names=["a", "b"], input_size=32, bn_momentum=1.5)
    finally:
        for name in ("tiny_test_cnn", "tiny_pooled_cnn"):
            _registry._ARCHITECTURES.pop(name, None)


def test_a_model_folders_weights_file_is_not_taken_for_a_backbones(tmp_path):
    from bloodcell.errors import ConfigError

    bloodcell.Classifier(bloodcell.build_model("microcell", input_size=32), name="tiny").save_pretrained(tmp_path / "f")
    with pytest.raises(ConfigError, match=r"weights file of a bloodcell model folder.*Trainer\(weights=folder\)"):
        bloodcell.build_model("mnv3s", input_size=32, weights=str(tmp_path / "f" / "model.weights.h5"))


def test_a_keras_weights_file_beside_another_config_is_not_refused(tmp_path, monkeypatch):
    from bloodcell.models._backbone import _is_model_folder_weights

    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.json").write_text('{"project": "my lab"}')
    assert not _is_model_folder_weights("efficientnetb0_notop.h5")
    assert not _is_model_folder_weights(str(tmp_path / "model.weights.h5"))
    assert bloodcell.list_pretrained(architecture="mnv3s") == ["mnv3s.pbc96"]
