"""What bloodcell promises: writes whole or absent, and no answer from input that cannot be an image."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import bloodcell
from bloodcell.cli import main

ROOT = Path(__file__).resolve().parents[1]
SIZE = 32


@pytest.fixture(scope="module")
def tiny():
    return bloodcell.Classifier(bloodcell.build_model("microcell", input_size=SIZE), name="a")


@pytest.mark.parametrize("kill_at", [1, 2])
def test_save_over_a_model_killed_at_each_rename_leaves_one_whole_model(tmp_path, kill_at):
    """A process replacing model A by model B is killed at the first rename (the old folder moved
    aside) or the second (the new one moved in): the folder then loads as A or as B, config and
    weights together, and the next write cleans up. Every file inside is written atomically first."""
    script = textwrap.dedent("""
        import os, sys
        import numpy as np
        import bloodcell
        folder, kill_at, which = sys.argv[1], int(sys.argv[2]), sys.argv[3]
        model = bloodcell.build_model("microcell", input_size=32)
        model.set_weights([np.full(w.shape, 0.5 if which == "b" else 0.1, w.dtype) for w in model.get_weights()])
        clf = bloodcell.Classifier(model, name=which)
        if kill_at:
            real, count = os.rename, [0]
            def rename(src, dst):
                count[0] += 1
                if count[0] == kill_at:
                    os._exit(9)
                real(src, dst)
            os.rename = rename
        clf.save_pretrained(folder)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    folder = tmp_path / "model"
    model = bloodcell.build_model("microcell", input_size=32)
    model.set_weights([np.full(w.shape, 0.1, w.dtype) for w in model.get_weights()])
    bloodcell.Classifier(model, name="a").save_pretrained(folder)
    proc = subprocess.run([sys.executable, "-c", script, str(folder), str(kill_at), "b"], env=env, timeout=240)
    loaded = bloodcell.load_classifier(folder)  # never a mix: config.json pins the weights' sha256
    assert loaded.name in ("a", "b")
    value = 0.5 if loaded.name == "b" else 0.1
    assert all(np.all(w == np.float32(value)) for w in loaded.model.get_weights() if w.size)
    assert proc.returncode in (0, 9)
    loaded.save_pretrained(folder)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "model"]
    assert leftovers == []


@pytest.mark.parametrize("batch_size", [-1, 0, 2.5, True])
def test_bad_batch_sizes_are_refused(tiny, batch_size):
    images = np.zeros((2, SIZE, SIZE, 3), np.uint8)
    with pytest.raises(bloodcell.ConfigError, match="batch_size must be a positive integer"):
        tiny.predict_proba(images, batch_size=batch_size)


def test_inputs_that_cannot_be_images_are_refused(tiny):
    near_01 = np.full((1, SIZE, SIZE, 3), 0.5, np.float32)
    near_01[0, 0, 0, 0] = 1.02
    with pytest.raises(bloodcell.ImageReadError, match="looks like the 0..1 convention"):
        tiny.predict(near_01)
    for side in (0, 1):
        with pytest.raises(bloodcell.ImageReadError, match="too small to show a cell"):
            tiny.predict(np.zeros((1, side, side, 3), np.uint8))
    with pytest.raises(bloodcell.ImageReadError, match="got a dict"):
        tiny.predict({"a": "b.png"})
    nested = np.full((SIZE, SIZE, 3), 128, np.uint8).tolist()
    assert tiny.predict_proba(nested).shape == (1, 8)  # an image written as nested lists
    with pytest.raises(bloodcell.ImageReadError, match="uneven"):
        tiny.predict([[1, 2], [3]])


def test_one_class_and_negative_labels_are_refused():
    images = np.zeros((4, SIZE, SIZE, 3), np.uint8)
    data = bloodcell.Dataset(images, [0, 0, 0, 0])
    trainer = bloodcell.Trainer("microcell", input_size=SIZE, head_epochs=1, finetune_epochs=0, verbose=0)
    with pytest.raises(bloodcell.DataError, match="one class"):
        trainer.fit(data, data)
    with pytest.raises(bloodcell.DataError, match="class ids 0..7"):
        bloodcell.Dataset(images, [0, 1, -1, 2])
    assert bloodcell.find_outliers(np.zeros((0, 96, 96, 3), np.uint8)).shape == (0,)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("format_version", None, "'format_version' must be an integer"),
        ("format_version", "abc", "'format_version' must be an integer"),
        ("class_names", None, "'class_names' must be a list"),
        ("class_names", "abcdefgh", "'class_names' must be a list"),
        ("class_names", list(range(8)), "two or more distinct non-empty strings"),
        ("weights_file", 123, "'weights_file' must be a string"),
        ("metrics", [1, 2], "'metrics' must be an object"),
        ("architecture", 123, "'architecture' must be a string"),
    ],
)
def test_config_json_with_wrong_types_is_a_one_line_error(tiny, tmp_path, key, value, message, capsys):
    folder = tiny.save_pretrained(tmp_path / "m")
    cfg = json.loads((folder / "config.json").read_text())
    cfg[key] = value
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(bloodcell.ConfigError, match=message) as err:
        bloodcell.load_classifier(folder)
    assert str(folder / "config.json") in str(err.value) and "\n" not in str(err.value)
    image = ROOT / "examples" / "images" / "basophil_BA_608637.jpg"
    assert main(["predict", str(image), "--model", str(folder)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_resume_without_a_checkpoint_keeps_the_trained_model(tmp_path, capsys):
    from PIL import Image

    from synth_cells import make_cells

    data = tmp_path / "data"
    for c, cls in enumerate(("basophil", "neutrophil")):
        (data / cls).mkdir(parents=True)
        for i, img in enumerate(make_cells(8, 32, seed=c)):
            Image.fromarray(img).save(data / cls / f"{i}.png")
    out = tmp_path / "trained"
    args = ["train", str(data), "--model", "microcell", "--input-size", "32", "--head-epochs", "1",
            "--finetune-epochs", "0", "--augment", "none", "--val-fraction", "0.25", "--test-fraction", "0.25",
            "--batch-size", "8", "--out", str(out)]
    assert main(args) == 0
    before = (out / "model.weights.h5").read_bytes()
    assert main([*args, "--workdir", str(tmp_path / "empty.work"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert main(args) == 2  # a second run into a trained model's folder is refused ...
    assert (out / "model.weights.h5").read_bytes() == before
    assert main([*args, "--overwrite", "--workdir", str(tmp_path / "new.work")]) == 0  # ... unless asked to


@pytest.mark.parametrize("argv", [
    ["predict", "{missing}"],
    ["evaluate", "{missing}"],
    ["train", "{missing}", "--model", "microcell"],
    ["clean", "{missing}", "--out", "{tmp}/out"],
    ["augment-preview", "{missing}", "--out", "{tmp}/grid.png"],
    ["export", "{missing}/", "--format", "onnx", "--out", "{tmp}/m.onnx"],
    ["train", "{data}", "--model", "mobilenet"],
])
def test_one_exit_rule_for_what_cannot_be_done_as_written(argv, tmp_path, capsys):
    """Exit 2, one line with the error: prefix, and nothing written, for every subcommand."""
    data = ROOT / "tests" / "data" / "pbc96_sample"
    argv = [a.format(missing=tmp_path / "nope", tmp=tmp_path, data=data) for a in argv]
    before = sorted(tmp_path.iterdir())
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"bloodcell {argv[0]}: error: ")
    assert sorted(tmp_path.iterdir()) == before
