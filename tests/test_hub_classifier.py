"""Classifiers through the local Hub: hf:// sources, zoo entries, push_to_hub and model cards."""

import dataclasses

import numpy as np
import pytest
from huggingface_hub import ModelCard

import bloodcell
from bloodcell import registry
from bloodcell._util import sha256_file

from conftest import synthetic_cell

REPO = "lab/tiny-classifier"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    clf = bloodcell.Classifier(bloodcell.build_model("microcell", input_size=32), name="tiny")
    clf.metrics = {"accuracy": 0.91, "macro_f1": 0.9, "robustness_mean": 0.8}
    # Cards state the data and licence a model records (nothing is assumed since bloodcell 0.2).
    clf.extra = {"dataset_id": "pbc96", "dataset_name": "PBC-96", "license": "cc-by-4.0"}
    folder = clf.save_pretrained(tmp_path_factory.mktemp("tiny"))
    return clf, folder


@pytest.fixture
def images():
    return np.stack([synthetic_cell(48, i) for i in range(3)])


def test_push_to_hub_then_load(hub_server, tiny, images):
    clf, _ = tiny
    sha = clf.push_to_hub(REPO, token=hub_server.token)
    assert len(sha) == 40
    loaded = bloodcell.load_classifier(f"hf://{REPO}")
    np.testing.assert_array_equal(loaded.predict_proba(images), clf.predict_proba(images))
    assert set(hub_server.files(REPO)) >= {"config.json", "model.weights.h5", "README.md"}
    assert "hub_source" not in clf.extra  # pushing does not change the classifier


def test_card_names_the_repo_it_was_pushed_to(hub_server, tiny, tmp_path):
    import json

    clf, _ = tiny
    clf.push_to_hub(REPO, token=hub_server.token)
    first = bloodcell.load_classifier(f"hf://{REPO}")
    other = "lab/fine-tuned"
    first.push_to_hub(other, token=hub_server.token)
    card = (bloodcell.hub.download_snapshot(other, allow_patterns=None) / "README.md").read_text()
    assert f'load_classifier("hf://{other}")' in card and f"hf://{REPO}\"" not in card
    unnamed = bloodcell.Classifier(clf.model, metrics=clf.metrics, extra=dict(clf.extra))
    unnamed.push_to_hub("lab/no-name", token=hub_server.token)  # titled by the repo, not a temporary folder
    assert "\n# no-name\n" in hub_server.files("lab/no-name")["README.md"].decode()
    first.save_pretrained(tmp_path / "copy")  # a local copy is not published anywhere
    assert "hub_source" not in json.loads((tmp_path / "copy" / "config.json").read_text())


def test_card_yaml_parses_and_holds_metrics(hub_server, tiny):
    clf, _ = tiny
    clf.push_to_hub(REPO, token=hub_server.token)
    card = ModelCard(hub_server.files(REPO)["README.md"].decode())
    data = card.data.to_dict()
    assert data["library_name"] == "bloodcell"
    assert "bloodcell" in data["tags"] and data["license"] == "cc-by-4.0"
    results = {(r.metric_name, r.metric_value) for r in card.data.eval_results}
    assert ("Accuracy", 0.91) in results and ("Macro F1", 0.9) in results
    assert ("Mean accuracy under corruptions", 0.8) in results
    datasets = {r.metric_name: (r.dataset_type, r.dataset_split) for r in card.data.eval_results}
    assert datasets["Accuracy"] == ("pbc96", "test")
    assert datasets["Mean accuracy under corruptions"] == ("pbc96-corrupted", "test")
    assert 'load_classifier("hf://lab/tiny-classifier")' in card.text


def test_revision_is_honoured(hub_server, tiny, images, tmp_path):
    clf, _ = tiny
    first = clf.push_to_hub(REPO, token=hub_server.token)
    other = bloodcell.Classifier(bloodcell.build_model("microcell", input_size=32), name="other")
    with pytest.warns(UserWarning) as caught:  # an untrained model without a licence: both said
        other.push_to_hub(REPO, token=hub_server.token)
    messages = [str(w.message) for w in caught]
    assert any("never trained" in m for m in messages) and any("licence is not recorded" in m for m in messages)
    p_first = bloodcell.load_classifier(f"hf://{REPO}@{first}").predict_proba(images)
    p_main = bloodcell.load_classifier(f"hf://{REPO}").predict_proba(images)
    np.testing.assert_array_equal(p_first, clf.predict_proba(images))
    np.testing.assert_array_equal(p_main, other.predict_proba(images))
    assert not np.array_equal(p_first, p_main)


def test_offline_load_from_warm_cache(hub_server, tiny, images):
    clf, _ = tiny
    sha = clf.push_to_hub(REPO, token=hub_server.token)
    bloodcell.load_classifier(f"hf://{REPO}@{sha}")
    hub_server.clear_requests()
    hub_server.set_offline(True)
    again = bloodcell.load_classifier(f"hf://{REPO}@{sha}")
    assert hub_server.requests == []
    np.testing.assert_array_equal(again.predict_proba(images), clf.predict_proba(images))


def test_missing_repo_gives_clear_error(hub_server):
    with pytest.raises(bloodcell.HubError, match="lab/nope") as err:
        bloodcell.load_classifier("hf://lab/nope")
    assert "\n" not in str(err.value)


@pytest.fixture
def zoo_entry(hub_server, tiny, monkeypatch):
    clf, folder = tiny
    sha = hub_server.create_repo("bloodcell/tiny-zoo", {p.name: p for p in folder.iterdir()})
    entry = registry.PretrainedCfg(
        name="microcell.hubtest",
        architecture="microcell",
        input_size=32,
        repo_id="bloodcell/tiny-zoo",
        revision=sha,
        sha256=sha256_file(folder / "model.weights.h5"),
    )
    monkeypatch.setitem(registry._PRETRAINED, entry.name, entry)
    return entry


def test_zoo_entry_downloads_and_loads(zoo_entry, tiny, images):
    clf, _ = tiny
    loaded = bloodcell.load_classifier("microcell.hubtest")
    np.testing.assert_array_equal(loaded.predict_proba(images), clf.predict_proba(images))


def test_zoo_entry_with_wrong_sha256_is_refused(zoo_entry, monkeypatch):
    monkeypatch.setitem(registry._PRETRAINED, zoo_entry.name, dataclasses.replace(zoo_entry, sha256="0" * 64))
    with pytest.raises(bloodcell.ChecksumError, match="sha256"):
        bloodcell.load_classifier("microcell.hubtest")


def test_code_bearing_files_are_never_loaded(hub_server, tiny, tmp_path):
    """A repo with only a pickle or a .keras file (which may hold lambdas) is refused."""
    import pickle

    hub_server.create_repo("lab/pickled", {"model.pkl": pickle.dumps({"a": 1}), "model.keras": b"PK..."})
    with pytest.raises(bloodcell.HubError, match="config.json"):
        bloodcell.load_classifier("hf://lab/pickled")


def test_cli_push_publishes_a_card_naming_the_repo_and_warns_of_what_is_missing(hub_server, tiny, tmp_path, capsys):
    from bloodcell.cli import main

    _, folder = tiny
    assert main(["hub", "push", str(folder), "lab/from-cli", "--token", hub_server.token, "--revision", "v1"]) == 0
    card = hub_server.files("lab/from-cli", "v1")["README.md"].decode()
    assert 'load_classifier("hf://lab/from-cli@v1")' in card and "path/to/this/folder" not in card
    assert "path/to/this/folder" in (folder / "README.md").read_text()  # the local folder is left as it was
    assert "warning" not in capsys.readouterr().err  # licence recorded, weights trained
    untrained = bloodcell.Classifier(bloodcell.build_model("microcell", input_size=32)).save_pretrained(tmp_path / "u")
    assert main(["hub", "push", str(untrained), "lab/untrained", "--token", hub_server.token]) == 0
    err = capsys.readouterr().err.splitlines()
    assert [line.split(": ", 2)[1] for line in err if "warning" in line] == ["warning", "warning"]
    assert any("hf://lab/untrained: the model's licence is not recorded" in line for line in err) and any("never trained" in line for line in err)


def test_download_checks_the_weights_against_the_config(hub_server, tiny, capsys):
    from bloodcell.cli import main

    _, folder = tiny
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    weights = bytearray(files["model.weights.h5"])
    weights[-1] ^= 1  # one flipped bit in the Hub's copy
    hub_server.create_repo("lab/damaged", {**files, "model.weights.h5": bytes(weights)})
    assert main(["hub", "download", "hf://lab/damaged"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and "model.weights.h5: sha256 is" in errors[0] and "corrupt" in errors[0]
