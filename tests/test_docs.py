"""The documentation site builds with ``mkdocs build --strict`` and its pictures stay small."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS_PACKAGES = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")


def _missing_docs_packages() -> list[str]:
    missing = []
    for name in DOCS_PACKAGES:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:  # the parent package of a dotted name is absent
            found = False
        if not found:
            missing.append(name)
    return missing


def test_pictures_are_small_and_used():
    pages = " ".join(p.read_text() for p in (ROOT / "docs").rglob("*.md"))
    for png in (ROOT / "docs" / "img").glob("*.png"):
        assert png.stat().st_size < 300_000, f"{png.name} is {png.stat().st_size} bytes; keep pictures under 300 kB"
        assert f"img/{png.name}" in pages, f"docs/img/{png.name} is not shown on any page; remove it"


def test_every_table_marker_is_known():
    sys.path.insert(0, str(ROOT / "docs" / "scripts"))
    import tables

    markers = set(re.findall(r"^<!-- table: ([\w-]+) -->$", " \n".join(p.read_text() for p in (ROOT / "docs").rglob("*.md")),
                             re.MULTILINE))
    assert markers and markers <= set(tables.TABLES), sorted(markers - set(tables.TABLES))


def test_mkdocs_build_strict(tmp_path):
    missing = _missing_docs_packages()
    if missing:
        pytest.skip(f"docs packages not installed ({', '.join(missing)}): pip install '.[docs]'")
    site = tmp_path / "site"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(site)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-5000:]
    home = (site / "index.html").read_text()
    assert "mnv3s.pbc96" in home and "<!-- table:" not in home
    assert "images/s" in (site / "benchmarks" / "index.html").read_text()
    assert "load_classifier" in (site / "reference" / "classifier" / "index.html").read_text()
    assert (site / "img" / "confusion.png").is_file()


def test_readme_figures_are_rendered_from_measured_files():
    sys.path.insert(0, str(ROOT / "docs" / "scripts"))
    import readme

    text = (ROOT / "README.md").read_text()
    assert "<!-- generated: status -->" in text
    assert readme.render(text) == text, "README.md is stale: run python docs/scripts/readme.py"


def _measured_records(name: str, result: dict) -> list[tuple[str, dict, str]]:
    """(model, record, key) for each result of a model-dependent benchmark file that must name its weights."""
    if name == "accuracy.json":
        return [(model, row, "weights_sha256") for model, row in result["models"].items()]
    if name == "outside.json":
        from bloodcell import DEFAULT_MODEL

        return ([(row["model"], row, "weights_sha256") for row in result["zero_shot"]]
                + [(DEFAULT_MODEL, result["few_shot_acceptance"], "init_weights_sha256")])
    return [(result["model"], result, "weights_sha256")]


@pytest.mark.parametrize("name", ["accuracy.json", "calibration.json", "explain.json", "export.json", "outside.json",
                                  "predict.json"])
def test_results_were_measured_on_the_zoo_weights_of_today(name):
    import json

    from bloodcell import list_pretrained, pretrained_entry

    result = json.loads((ROOT / "benchmarks" / "results" / name).read_text())
    for model, record, key in _measured_records(name, result):
        if model not in list_pretrained():
            continue  # measured on a model outside the zoo (e.g. --extra): nothing to compare with
        assert record.get(key) == pretrained_entry(model).sha256, (
            f"benchmarks/results/{name}: measured on {model} weights {record.get(key)}, but the zoo's {model} is "
            f"{pretrained_entry(model).sha256}; rerun the benchmark that writes it")
