"""Every example script runs in its tiny mode (BLOODCELL_EXAMPLES_TINY=1) and prints what it should."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

#: script -> lines (or parts of lines) its tiny run must print
EXPECTED = {
    "classify.py": ["Classifier(name='mnv3s.pbc96'", "probabilities: shape (16, 8)",
                    "outlier flags for 3 cells and a grey ramp: [False, False, False, True]",
                    "or an outlier): [False, False, False, True]"],
    "finetune.py": ["128 images:", "full epoch 1:", "finetune epoch 1:", "held-out test: accuracy",
                    "reloaded: Classifier(name='finetuned', architecture='mnv3s', input_size=128"],
    "clean_dataset.py": ["24 images from tests/data/pbc96_sample (with injected problems)", "outliers:   4",
                         "duplicates: 3 groups, 3 copies removed", "conflicts:  1 groups, 2 rows removed"],
    "augmentation.py": ["wrote augment_seed.png", "wrote augment_robust.png",
                        "images float32 (8, 96, 96, 3) in [0, 255], labels (8, 8) summing to 1.00"],
    "evaluate.py": ["accuracy under corruption", "robustness mean:"],
    "hub.py": ["pushed mnv3s.pbc96 to demo-user/bloodcell-mnv3s", "card: library bloodcell",
               "max probability difference 0.0e+00", "exit 0:"],
    "distributed.py": ["MirroredStrategy: 2 replicas in sync", "1 epoch(s)", "saved the model"],
    "export.py": ["onnx ", "litert ", "saved_model "],
}
NEEDS = {"export.py": ("tf2onnx", "onnxruntime", "ai_edge_litert")}


def test_every_example_is_tested_and_documented():
    scripts = {p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")}
    assert scripts == set(EXPECTED), f"add the new example to EXPECTED: {sorted(scripts ^ set(EXPECTED))}"
    docs = " ".join(p.read_text() for p in (ROOT / "docs").rglob("*.md"))
    undocumented = [s for s in scripts if f"examples/{s}" not in docs]
    assert not undocumented, f"no page of docs/ shows {undocumented}"


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_example_runs_tiny(script, tmp_path):
    missing = [m for m in NEEDS.get(script, ()) if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"{script} needs {', '.join(missing)}: pip install '.[export]'")
    env = {**os.environ, "BLOODCELL_EXAMPLES_TINY": "1", "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": str(ROOT), "HF_HOME": str(tmp_path / "hf_home")}
    proc = subprocess.run([sys.executable, str(EXAMPLES / script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    for expected in EXPECTED[script]:
        assert expected in proc.stdout, f"{script}: {expected!r} not in its output:\n{proc.stdout}"
    if script == "export.py":
        assert "XNNPACK" not in proc.stderr, proc.stderr
        assert proc.stdout.count("same class for 16/16 images") == 3, proc.stdout
        diffs = [float(line.split("= ")[1].split(",")[0]) for line in proc.stdout.splitlines() if "max |p - p_keras|" in line]
        assert len(diffs) == 3 and max(diffs) <= 1e-4, proc.stdout


DATA_EXAMPLES = ("augmentation.py", "clean_dataset.py", "distributed.py", "evaluate.py", "finetune.py")


@pytest.mark.parametrize("script", DATA_EXAMPLES)
def test_example_without_its_data_says_where_to_get_pbc(script, tmp_path):
    """An example given no DATA, or a DATA that does not exist, exits 2 with one error line that
    names the path and where to get PBC; never a traceback."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("BLOODCELL_EXAMPLES_TINY", None)
    for argv, named in (([], "give DATA"), ([str(tmp_path / "pbc96")], str(tmp_path / "pbc96"))):
        proc = subprocess.run([sys.executable, str(EXAMPLES / script), *argv], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
        errors = [line for line in proc.stderr.splitlines() if "error:" in line]
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert len(errors) == 1 and named in errors[0] and "doi.org/10.17632/snkd93bnjr.1" in errors[0], proc.stderr
