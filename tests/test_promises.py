"""What bloodcell promises: writes whole or absent, and no answer from input that cannot be an image."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

import bloodcell
from bloodcell.cli import main

ROOT = Path(__file__).resolve().parents[1]
SIZE = 32


#: Prefix of the scripts of killed subprocesses: kill_at(module, name, n) ends the process at the n-th call.
KILL_AT = textwrap.dedent("""
    import os
    def kill_at(module, name, at):
        real, count = getattr(module, name), [0]
        def killed(*args, **kwargs):
            count[0] += 1
            if count[0] == at:
                os._exit(9)
            return real(*args, **kwargs)
        setattr(module, name, killed)
""")


@pytest.fixture(scope="module")
def tiny():
    return bloodcell.Classifier(bloodcell.build_model("microcell", input_size=SIZE), name="a")


@pytest.mark.parametrize("kill_at", [1, 2])
def test_save_over_a_model_killed_at_each_rename_leaves_one_whole_model(tmp_path, kill_at):
    """A process replacing model A by model B is killed at the first rename (the old folder moved
    aside) or the second (the new one moved in): the folder then loads as A or as B, config and
    weights together, and the next write cleans up. Every file inside is written atomically first."""
    script = KILL_AT + textwrap.dedent("""
        import sys
        import numpy as np
        import bloodcell
        folder, at, which = sys.argv[1], int(sys.argv[2]), sys.argv[3]
        model = bloodcell.build_model("microcell", input_size=32)
        model.set_weights([np.full(w.shape, 0.5 if which == "b" else 0.1, w.dtype) for w in model.get_weights()])
        clf = bloodcell.Classifier(model, name=which)
        if at:
            kill_at(os, "rename", at)
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


def test_reading_a_folder_while_it_is_saved_leaves_the_save_whole(tiny, tmp_path):
    """A reader (predict while train saves) changes nothing: the save completes, the reader sees the
    old model, and a second writer meanwhile is refused at once."""
    from bloodcell.folder import make_config, read_config, write_folder
    folder = tmp_path / "model"
    tiny.save_pretrained(folder)
    seen = {}
    writer = "import sys, bloodcell; bloodcell.load_classifier(sys.argv[1]).save_pretrained(sys.argv[1])"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}

    def meanwhile(stage):
        seen["name"] = bloodcell.load_classifier(folder).name
        second = subprocess.run([sys.executable, "-c", writer, str(folder)], env=env, capture_output=True, text=True,
                                timeout=240)
        assert second.returncode != 0 and "in use by another bloodcell run" in second.stderr
        seen["stage"] = stage.is_dir()

    write_folder(folder, tiny.model, make_config(tiny.model, name="new"), before_swap=meanwhile)
    assert seen == {"name": "a", "stage": True}
    assert read_config(folder)["name"] == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_folder_with_an_upper_case_checksum_or_no_top_level_input_size_loads_and_updates(tiny, tmp_path):
    from bloodcell.classifier import load_folder
    from bloodcell.folder import sha256_file, update_config
    tiny.save_pretrained(tmp_path / "m")
    assert load_folder(tmp_path / "m", sha256=sha256_file(tmp_path / "m" / "model.weights.h5").upper()).name == "a"
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    del cfg["input_size"]  # optional: build.input_size says it
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    update_config(tmp_path / "m", lambda c: {**c, "metrics": {"accuracy": 0.5}})
    assert f"input {SIZE}x{SIZE}" in (tmp_path / "m" / "README.md").read_text()


def test_a_zoo_name_loads_the_zoo_entry_whatever_folder_the_working_directory_holds(tiny, tmp_path, monkeypatch,
                                                                                   capsys):
    monkeypatch.chdir(tmp_path)
    tiny.save_pretrained(bloodcell.DEFAULT_MODEL)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert bloodcell.load_classifier().class_names == bloodcell.CLASS_NAMES
    with pytest.warns(UserWarning, match=f"write ./{bloodcell.DEFAULT_MODEL}"):
        assert bloodcell.load_classifier(bloodcell.DEFAULT_MODEL).class_names == bloodcell.CLASS_NAMES
    assert bloodcell.load_classifier(f"./{bloodcell.DEFAULT_MODEL}").name == "a"
    # On the command line the warning is one line of its own.
    from bloodcell.cli import main

    image = next(Path(__file__).resolve().parents[1].joinpath("examples", "images").glob("*.jpg"))
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert main(["predict", str(image), "--model", bloodcell.DEFAULT_MODEL]) == 0
    err = capsys.readouterr().err
    assert err.splitlines() == [f"bloodcell predict: warning: {bloodcell.DEFAULT_MODEL}: loading the zoo entry; for "
                                f"the folder {bloodcell.DEFAULT_MODEL} here, write ./{bloodcell.DEFAULT_MODEL}"]


def test_saving_through_a_link_updates_the_folder_it_points_to(tiny, tmp_path):
    tiny.save_pretrained(tmp_path / "real")
    (tmp_path / "link").symlink_to("real")
    for name in ("b", "c"):
        bloodcell.Classifier(tiny.model, name=name).save_pretrained(tmp_path / "link")
        assert (tmp_path / "link").is_symlink() and bloodcell.load_classifier(tmp_path / "real").name == name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]


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
        ("calibration", {"temperature": -2.0}, r"'calibration.temperature' must be a number above 0.*calibrate"),
        ("calibration", {"temperature": "abc"}, "'calibration.temperature' must be a number above 0"),
        ("calibration", {"temperature": 1.0, "review_below": 2.0}, r"'calibration.review_below' must be a probability"),
        ("calibration", {"temperature": 1.0, "tta": {"temperature": 0}}, "'calibration.tta.temperature' must be"),
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


def test_resume_overwrite_and_interrupts_keep_what_was_written(tmp_path, capsys, monkeypatch):
    from PIL import Image

    import bloodcell.evaluation
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
    assert main([*args[:-1], str(data / "runs" / "m")]) == 2  # refused: and no folder is left among the classes
    assert "is inside DATA" in capsys.readouterr().err and sorted(p.name for p in data.iterdir()) == [
        "basophil", "neutrophil"]
    assert main(args) == 0
    before = (out / "model.weights.h5").read_bytes()
    assert main([*args, "--workdir", str(tmp_path / "empty.work"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert main(args) == 2  # a second run into a trained model's folder is refused ...
    assert (out / "model.weights.h5").read_bytes() == before

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:  # Ctrl-C before the first epoch ended: nothing to resume
        patch.setattr("bloodcell.training.trainer.Trainer.fit", interrupt)
        assert main([*args, "--overwrite", "--workdir", str(tmp_path / "new.work")]) == 130
        assert "nothing is checkpointed; run the command again" in capsys.readouterr().err
        small = [a for a in args if a not in ("--val-fraction", "--test-fraction", "0.25")]  # 16 images: small data
        assert main([*small[:-1], str(tmp_path / "small")]) == 130
        assert "a small-data run cannot be resumed: start it again with bloodcell train " in capsys.readouterr().err
    with monkeypatch.context() as patch:  # ... unless asked to; Ctrl-C while the model is measured: resume finishes it
        patch.setattr(bloodcell.evaluation, "evaluate", interrupt)
        assert main([*args, "--overwrite", "--workdir", str(tmp_path / "new.work")]) == 130
    said = capsys.readouterr().err
    again = said.split("continue with bloodcell ")[1].split()
    assert again[-1] == "--resume" and "--overwrite" not in again, said
    assert main(again) == 0 and (out / "model.weights.h5").read_bytes() != before
    (tmp_path / "new.work" / "checkpoint" / "weights.npz").write_bytes(b"")  # as a power cut can leave it
    assert main(again) == 2
    assert "checkpoint is damaged (EOFError" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["predict", "{missing}"],
    ["evaluate", "{missing}"],
    ["train", "{missing}", "--model", "microcell"],
    ["clean", "{missing}", "--out", "{tmp}/out"],
    ["augment-preview", "{missing}", "--out", "{tmp}/grid.png"],
    ["export", "{missing}/", "--format", "onnx", "--out", "{tmp}/m.onnx"],
    ["train", "{data}", "--model", "mobilenet"],
    ["train", "{data}", "--model", "microcell", "--unfreeze", "2.5", "--out", "{tmp}/m"],
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


def test_a_hub_redirect_loop_is_one_hub_error(hub_server, monkeypatch, capsys):
    from hub_server import _Response

    def loop(method, raw_path, headers, body):
        return _Response(302, b"", {"Location": raw_path})

    monkeypatch.setattr(hub_server, "handle", loop)
    with pytest.raises(bloodcell.HubError, match="redirected the request .* in a loop") as err:
        bloodcell.load_classifier("hf://lab/loop")
    assert "\n" not in str(err.value)
    image = ROOT / "examples" / "images" / "basophil_BA_608637.jpg"
    assert main(["predict", str(image), "--model", "hf://lab/loop"]) != 0
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 1 and "in a loop" in err_lines[0]


HOLD = textwrap.dedent("""
    import sys, time
    from bloodcell._lock import locked
    with locked(sys.argv[1], flag="--out"):
        print("held", flush=True)
        time.sleep(120)
""")


def _holder(folder):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.filterwarnings("ignore:train. no training images")
def test_a_second_run_into_a_locked_folder_refuses_at_once_and_a_dead_holder_frees_it(tmp_path, capsys):
    from bloodcell._lock import locked

    data = ROOT / "tests" / "data" / "pbc96_sample"
    out = tmp_path / "run"
    holder = _holder(out)
    try:
        code = main(["train", str(data), "--model", "microcell", "--input-size", "32", "--out", str(out)])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 1 and len(err) == 1
        assert f"--out {out}: in use by another bloodcell run (process {holder.pid} on " in err[0]
        assert f": python -c {out})" in err[0]  # a Python process is named as one, not as a bloodcell command
        assert not out.exists() and not (tmp_path / "run.work").exists()
        trainer = bloodcell.Trainer("microcell", input_size=SIZE, head_epochs=1, finetune_epochs=0, verbose=0,
                                    workdir=out)
        images = np.zeros((4, SIZE, SIZE, 3), np.uint8)
        with pytest.raises(bloodcell.BusyError, match="in use by another bloodcell run"):
            trainer.fit(bloodcell.Dataset(images, [0, 1, 0, 1]), bloodcell.Dataset(images, [0, 1, 0, 1]))
    finally:
        holder.kill()  # SIGKILL: no clean-up ran, the lock file stays behind
        holder.wait()
    with locked(out, flag="--out"):  # ... and is recognised as stale
        pass
    assert [p.name for p in tmp_path.iterdir()] == []


CLEAN_KILLED = KILL_AT + textwrap.dedent("""
    import shutil, sys
    from bloodcell.cli import main
    data, out, step, at = sys.argv[1:5]
    kill_at(os, "rename", int(at)) if step == "rename" else kill_at(shutil, "copyfile", int(at))
    sys.exit(main(["clean", data, "--out", out]))
""")


@pytest.mark.parametrize("step, at", [("copyfile", 1), ("copyfile", 7), ("rename", 1)])
def test_a_killed_clean_leaves_its_output_whole_or_absent(tmp_path, step, at):
    data = ROOT / "tests" / "data" / "pbc96_sample"
    out = tmp_path / "clean"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", CLEAN_KILLED, str(data), str(out), step, str(at)], env=env,
                          timeout=240)
    assert proc.returncode == 9
    assert not out.exists()
    assert main(["clean", str(data), "--out", str(out)]) == 0  # the next run starts clean ...
    assert [p.name for p in tmp_path.iterdir()] == ["clean"]  # ... and removes what the killed one staged
    assert sum(1 for p in out.rglob("*") if p.is_file()) > 7


def test_classes_without_training_images_are_warned_of_in_the_output_and_the_card(tmp_path):
    from synth_cells import make_cells

    images = make_cells(8, SIZE, seed=0)
    data = bloodcell.Dataset(images, [0, 1] * 4)  # the 8 PBC classes, images of two
    trainer = bloodcell.Trainer("microcell", input_size=SIZE, head_epochs=1, finetune_epochs=0, verbose=0,
                                patience=None, batch_size=4)
    with pytest.warns(UserWarning, match="no training images of erythroblast, immature_granulocyte, lymphocyte"):
        trainer.fit(data)
    folder = trainer.classifier.save_pretrained(tmp_path / "m")
    assert "**Warning:** no training images of erythroblast" in (folder / "README.md").read_text()


def test_hub_push_uploads_the_model_files_only(hub_server, tiny, tmp_path):
    folder = tiny.save_pretrained(tmp_path / "m")
    (folder / "notes.txt").write_text("private notes")
    (folder / ".bloodcell-staging-m-0123abcd").mkdir()
    (folder / ".bloodcell-staging-m-0123abcd" / "model.weights.h5").write_bytes(b"partial")
    assert main(["hub", "push", str(folder), "lab/only", "--token", hub_server.token]) == 0
    uploaded = set(hub_server.files("lab/only")) - {".gitattributes"}  # the repo's own, from create_repo
    assert sorted(uploaded) == ["README.md", "config.json", "model.weights.h5"]


EXPORT_KILLED = KILL_AT + textwrap.dedent("""
    import sys
    import bloodcell
    out, fmt, at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    clf = bloodcell.Classifier(bloodcell.build_model("microcell", input_size=32), name="m")
    kill_at(os, "rename", at)
    clf.export(out, format=fmt)
""")


@pytest.mark.parametrize("fmt, name, at", [("saved_model", "m_saved_model", 1), ("litert", "m.tflite", 1),
                                           ("litert", "m.tflite", 2)])
def test_a_killed_export_leaves_no_model_without_its_metadata(tmp_path, fmt, name, at):
    from bloodcell.export import metadata_path

    out = tmp_path / name
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", EXPORT_KILLED, str(out), fmt, str(at)], env=env, timeout=300,
                          capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr[-2000:]
    assert not out.exists()  # the model is the last thing renamed into place
    clf = bloodcell.Classifier(bloodcell.build_model("microcell", input_size=32), name="m")
    meta = metadata_path(out, fmt)
    if at == 2:  # the metadata was in place: refused, with a line saying why
        with pytest.raises(bloodcell.OutputExistsError, match="left by an export that did not finish"):
            clf.export(out, format=fmt)
        meta.unlink()
    clf.export(out, format=fmt)  # the next export cleans up what the killed one staged
    expected = {out.name} if fmt == "saved_model" else {out.name, meta.name}
    assert {p.name for p in tmp_path.iterdir()} == expected


def test_saved_files_get_the_mode_a_plain_write_would(tiny, tmp_path):
    old = os.umask(0o022)
    try:
        tiny.save_pretrained(tmp_path / "m")
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "m").iterdir()}
    assert set(modes.values()) == {0o644}, modes  # colleagues can load a shared model folder
