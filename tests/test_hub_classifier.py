"""Classifiers through the local Hub: hf:// sources, zoo entries, push_to_hub and model cards."""

import dataclasses
from pathlib import Path

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
    hub_server.create_repo("lab/whole", {**files, "backup.weights.h5": b"not the model's"})
    assert main(["hub", "download", "hf://lab/whole"]) == 0
    local = Path(capsys.readouterr().out.strip())  # the weights the config names, not every *.weights.h5
    assert sorted(p.name for p in local.iterdir()) == ["README.md", "config.json", "model.weights.h5"]
    weights = bytearray(files["model.weights.h5"])
    weights[-1] ^= 1  # one flipped bit in the Hub's copy: the repo's fault, not the cache's
    hub_server.create_repo("lab/damaged", {**files, "model.weights.h5": bytes(weights)})
    hub_server.create_repo("lab/corrupt", {**files, "config.json": files["config.json"][:500]})
    for repo, message in (("lab/damaged", "its config.json records another sha256 for model.weights.h5 than the file "
                                          "the repo holds, so the repo is inconsistent"),
                          ("lab/corrupt", "does not hold a model bloodcell can load (not valid JSON")):
        assert main(["hub", "download", f"hf://{repo}"]) == 1
        errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
        assert errors == [line for line in errors if line.startswith(f"bloodcell hub download: error: hf://{repo}: {message}")]
        assert len(errors) == 1, errors
        with pytest.raises(bloodcell.HubError, match=f"hf://{repo}: .*another revision"):
            bloodcell.load_classifier(f"hf://{repo}")


def _copy(folder, to, **config):
    """A copy of a model folder with ``config`` fields changed in its config.json."""
    import json
    import shutil

    shutil.copytree(folder, to)
    if config:
        cfg = json.loads((to / "config.json").read_text())
        (to / "config.json").write_text(json.dumps({**cfg, **config}, indent=2) + "\n")
    return to


def test_a_zoo_release_pushed_as_documented_loads_and_outlives_a_moved_branch(hub_server, tiny, images, tmp_path,
                                                                              monkeypatch, capsys):
    """`bloodcell hub push zoo/<name> <its repo>` publishes the release byte for byte, so an entry
    pinned by checksums on a branch loads; once the branch moves on, the cached copy that matches
    the pins is used (with a warning), and with none cached the error says what to do."""
    import json

    from bloodcell.cli import main

    clf, folder = tiny
    release = _copy(folder, tmp_path / "microcell.hubtest", hub_source="microcell.hubtest")
    entry = registry.PretrainedCfg(name="microcell.hubtest", architecture="microcell", input_size=32,
                                   repo_id="bloodcell/tiny-release", revision="main",
                                   sha256=sha256_file(release / "model.weights.h5"),
                                   config_sha256=sha256_file(release / "config.json"))
    monkeypatch.setitem(registry._PRETRAINED, entry.name, entry)
    assert main(["hub", "push", str(release), entry.repo_id, "--token", hub_server.token]) == 0, capsys.readouterr().err
    assert hub_server.files(entry.repo_id)["config.json"] == (release / "config.json").read_bytes()
    np.testing.assert_array_equal(bloodcell.load_classifier(entry.name).predict_proba(images), clf.predict_proba(images))

    moved = json.loads((release / "config.json").read_text())
    hub_server.commit(entry.repo_id, {"config.json": json.dumps({**moved, "name": "renamed"}, indent=2)})
    with pytest.warns(UserWarning, match="differ from the ones this bloodcell release pinned; using the cached copy"):
        again = bloodcell.load_classifier(entry.name)
    np.testing.assert_array_equal(again.predict_proba(images), clf.predict_proba(images))

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(bloodcell.hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(bloodcell.ChecksumError, match="upgrade bloodcell, or load a revision you trust with "
                                                     "hf://bloodcell/tiny-release@<commit sha>"):
        bloodcell.load_classifier(entry.name)


def test_push_sends_the_model_files_only_and_refuses_a_corrupt_config(hub_server, tiny, tmp_path, capsys):
    from bloodcell.cli import main

    _, folder = tiny
    stray = _copy(folder, tmp_path / "stray")
    (stray / "backup-before-finetune.weights.h5").write_bytes(b"old weights")
    assert main(["hub", "push", str(stray), "lab/stray", "--token", hub_server.token]) == 0
    assert sorted(set(hub_server.files("lab/stray")) - {".gitattributes"}) == ["README.md", "config.json", "model.weights.h5"]
    corrupt = _copy(folder, tmp_path / "corrupt")
    (corrupt / "config.json").write_text((folder / "config.json").read_text()[:500])
    capsys.readouterr()
    assert main(["hub", "push", str(corrupt), "lab/corrupt-push", "--token", hub_server.token]) == 1  # damaged
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"cannot push '{corrupt}' to the Hub: " in err[0] and "not valid JSON" in err[0]
    assert not hub_server.has_repo("lab/corrupt-push")  # nothing was created


def test_push_refuses_a_folder_its_config_does_not_describe(hub_server, tiny, tmp_path, capsys):
    from bloodcell.cli import main

    _, folder = tiny
    damaged = _copy(folder, tmp_path / "damaged")
    weights = bytearray((damaged / "model.weights.h5").read_bytes())
    weights[-100] ^= 0xFF
    (damaged / "model.weights.h5").write_bytes(bytes(weights))
    hub_server.clear_requests()
    assert main(["hub", "push", str(damaged), "lab/damaged-push", "--token", hub_server.token]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and f"cannot push '{damaged}' to the Hub" in errors[0] and "sha256" in errors[0]
    assert hub_server.requests == []  # nothing sent
    with pytest.raises(bloodcell.ConfigError, match="it is a file, not a model folder"):
        bloodcell.hub.push_folder(damaged / "config.json", "lab/x", token=hub_server.token)


def test_private_push_into_an_existing_public_repo_is_refused(hub_server, tiny):
    clf, folder = tiny
    hub_server.create_repo("lab/public", {"notes.txt": b"public"})
    before = hub_server.resolve("lab/public")
    with pytest.raises(bloodcell.ConfigError, match="'lab/public' exists and is public"):
        bloodcell.hub.push_folder(folder, "lab/public", private=True, token=hub_server.token)
    assert hub_server.resolve("lab/public") == before
    clf.push_to_hub("lab/new-private", private=True, token=hub_server.token)  # a new repo is created private
    assert bloodcell.hub.push_folder(folder, "lab/new-private", private=True, token=hub_server.token)


def test_a_generated_card_is_rendered_from_the_config_that_is_pushed(hub_server, tiny, tmp_path):
    _, folder = tiny
    published = _copy(folder, tmp_path / "published", hub_source="hf://lab/relicensed", license="mit")
    bloodcell.hub.push_folder(published, "lab/relicensed", token=hub_server.token)
    card = hub_server.files("lab/relicensed")["README.md"].decode()
    assert "license: mit" in card and "cc-by-4.0" not in card


def test_push_to_hub_checks_the_repo_id_before_saving(tiny, tmp_path, monkeypatch):
    clf, _ = tiny
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    for bad in ("lab/..", None, "lab/x y"):
        with pytest.raises(bloodcell.ConfigError, match="repo id") as info:
            clf.push_to_hub(bad, token="hf_unused")
        assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []  # nothing was saved


def test_a_download_cut_before_the_weights_says_to_download_again(hub_server, tiny):
    from huggingface_hub import hf_hub_download

    _, folder = tiny
    hub_server.create_repo("lab/cut", {p.name: p for p in folder.iterdir()})
    hf_hub_download("lab/cut", "config.json")  # what a download stopped after its first file leaves
    hub_server.set_offline()
    with pytest.raises(bloodcell.HubError, match=r"lacks model\.weights\.h5 \(an interrupted download\?\).*"
                                                 r"bloodcell hub download hf://lab/cut"):
        bloodcell.load_classifier("hf://lab/cut")


def test_a_corrupt_cached_file_is_named_by_its_blob(hub_server, tiny):
    _, folder = tiny
    hub_server.create_repo("lab/rotten", {p.name: p for p in folder.iterdir()})
    snapshot = bloodcell.hub.download_snapshot("lab/rotten")
    blob = (snapshot / "model.weights.h5").resolve()
    data = bytearray(blob.read_bytes())
    data[-100] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(bloodcell.ChecksumError) as info:
        bloodcell.load_classifier("hf://lab/rotten")
    assert "model.weights.h5: sha256 is" in str(info.value) and f"delete {blob} and download it again" in str(info.value)


def test_a_zoo_entry_not_yet_on_the_hub_loads_from_the_release_copy_of_a_checkout(hub_server, monkeypatch, tmp_path):
    from pathlib import Path

    from bloodcell import zoo

    checkout = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(checkout)
    entry = registry.pretrained_entry("effnetb0.pbc96")
    assert not entry.published and zoo.entry_folder(entry) == Path("zoo/effnetb0.pbc96")  # no request to the Hub
    assert hub_server.requests == []
    monkeypatch.setitem(registry._PRETRAINED, entry.name, dataclasses.replace(entry, config_sha256="0" * 64))
    with pytest.raises(bloodcell.ChecksumError, match=r"zoo/effnetb0.pbc96/config.json: sha256 is .*git checkout"):
        bloodcell.load_classifier("effnetb0.pbc96")
    lonely = dataclasses.replace(entry, name="effnetb0.elsewhere")  # no release copy: said, not a login hint
    with pytest.raises(bloodcell.HubError, match=r"^zoo entry 'effnetb0.elsewhere': its Hub repo 'bloodcell/effnetb0-pbc96' "
                                                 r"is not published yet, so it loads only from a checkout"):
        zoo.entry_folder(lonely)
    # once published, the Hub serves it; out of reach, a checkout's release copy is named
    monkeypatch.setitem(registry._PRETRAINED, entry.name, dataclasses.replace(entry, published=True))
    hub_server.set_offline()
    with pytest.raises(bloodcell.HubError, match=r"run `bloodcell hub download effnetb0\.pbc96` while online.*"
                                                 r"or load the release copy in this checkout of bloodcell: "
                                                 r"zoo/effnetb0\.pbc96$"):
        bloodcell.load_classifier("effnetb0.pbc96")
