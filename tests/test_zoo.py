"""The zoo's metadata checked against the real models it describes."""

import pytest

import bloodcell
from bloodcell.classifier import bundled_path, load_folder
from bloodcell._util import sha256_file


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
