"""The `bloodcell` command line: predict, list and train."""

import json
import shlex
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

import bloodcell
from bloodcell.cli import main


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    bloodcell.Classifier(bloodcell.build_model("microcell", input_size=32), name="tiny").save_pretrained(folder)
    return folder


def test_predict_text(model_dir, image_dir, capsys):
    assert main(["predict", str(image_dir), "--model", str(model_dir), "--no-outlier-check"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(list(image_dir.iterdir()))
    for line in lines:
        path, label, p, *flag = line.split("\t")
        assert label in bloodcell.CLASS_NAMES and 0 <= float(p) <= 1
        # the greyscale files are always flagged, the outlier check off or on
        assert flag == (["REVIEW"] if "grey" in path else [])


def test_predict_lines_go_above_the_progress_bar_on_a_shared_terminal(model_dir, image_dir, monkeypatch):
    """With stdout and stderr on one terminal, each result line is written whole above the bar (not
    after the bar's last drawing, on its line)."""
    import io
    import types

    from bloodcell.cli import cmd_predict

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    screen = Terminal()
    monkeypatch.setattr(cmd_predict, "sys", types.SimpleNamespace(stdout=screen, stderr=screen))
    monkeypatch.setattr(cmd_predict, "PROGRESS_MIN", 1)
    assert main(["predict", str(image_dir), "--model", str(model_dir), "--no-outlier-check"]) == 0
    shown = [line.split("\r")[-1] for line in screen.getvalue().split("\n")]  # what stays on each screen line
    results = [line for line in shown if "\t" in line]
    assert len(results) == len(list(image_dir.iterdir())) and all("img/s" not in line for line in results)
    assert all(line.startswith(str(image_dir)) for line in results)


def test_predict_json_matches_python_api(model_dir, image_dir, capsys):
    files = sorted(image_dir.iterdir())
    assert main(["predict", *map(str, files), "--model", str(model_dir), "--json", "--top-k", "3"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["path"] for r in records] == [str(f) for f in files]
    expected = bloodcell.load_classifier(model_dir).predict_proba(files)
    for r, p in zip(records, expected):
        assert set(r) == {"path", "label", "probability", "probabilities", "top_k", "outlier", "review"}
        assert r["label"] == bloodcell.CLASS_NAMES[p.argmax()]
        assert r["probability"] == pytest.approx(p.max(), abs=1e-5)
        assert sum(r["probabilities"].values()) == pytest.approx(1, abs=1e-4)
        assert len(r["top_k"]) == 3 and r["top_k"][0][0] == r["label"]


def test_predict_reports_bad_files_and_goes_on(model_dir, image_dir, tmp_path, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    missing = tmp_path / "missing.png"
    code = main(["predict", str(bad), str(image_dir / "rgb.png"), str(missing), "--model", str(model_dir)])
    out, err = capsys.readouterr()
    assert code == 1
    assert len(out.strip().splitlines()) == 1 and "rgb.png" in out
    err_lines = err.strip().splitlines()
    assert len(err_lines) == 2
    assert any("bad.jpg" in line for line in err_lines) and any("missing.png" in line for line in err_lines)
    assert all(line.startswith("bloodcell predict: error: ") for line in err_lines)


def test_predict_empty_folder(model_dir, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["predict", str(tmp_path / "empty"), "--model", str(model_dir)]) == 2  # nothing to classify
    assert "holds no images" in capsys.readouterr().err
    for command in (["explain", "--out", str(tmp_path / "o")], ["augment-preview", "--out", str(tmp_path / "g.png")]):
        assert main([command[0], str(tmp_path / "empty"), *command[1:]]) == 2, command  # as evaluate, clean, train
        assert "holds no images" in capsys.readouterr().err


def test_an_empty_path_is_refused_not_read_as_the_working_directory(model_dir, image_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(image_dir)  # what Path("") would read
    for argv, label in ((["predict", str(image_dir), ""], "a PATH"), (["explain", "", "--out", str(tmp_path / "x")], "a PATH"),
                        (["evaluate", " "], "DATA"), (["train", "", "--model", "microcell", "--out", str(tmp_path / "o")], "DATA"),
                        (["clean", "", "--out", str(tmp_path / "c")], "DATA")):
        assert main(argv) == 2, argv
        assert capsys.readouterr().err.strip().splitlines() == [
            f"bloodcell {argv[0]}: error: {label} is empty ('', an unset variable?); give a file or folder"]
    for call in (lambda: bloodcell.load_dataset(""), lambda: bloodcell.imageio.find_image_files([str(image_dir), ""])):
        with pytest.raises(bloodcell.DataError, match="^'': an empty path"):
            call()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]  # nothing written


def test_usage_errors_exit_2(model_dir, image_dir, capsys):
    assert main(["predict", str(image_dir), "--model", "nope"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "zoo entries:" in err and "Traceback" not in err
    assert main(["predict", str(image_dir), "--model", str(model_dir), "--top-k", "0"]) == 2
    assert main(["predict"]) == 2
    assert main([]) == 2


def test_a_damaged_config_is_a_damaged_model_exit_1(model_dir, image_dir, tmp_path, capsys):
    import shutil

    damaged = tmp_path / "damaged"
    shutil.copytree(model_dir, damaged)
    (damaged / "config.json").write_text("{")
    capsys.readouterr()
    assert main(["predict", str(image_dir), "--model", str(damaged)]) == 1  # not asked for wrongly: damaged
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "config.json: not valid JSON" in err and "restore the model folder" in err


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in bloodcell.list_models():
        assert name in out
    assert "builder only" in out
    for name in bloodcell.list_pretrained():
        assert name in out


def test_console_script_runs_as_module(image_dir):
    proc = subprocess.run(
        [sys.executable, "-m", "bloodcell", "predict", str(image_dir / "rgb.png"), "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["label"] in bloodcell.CLASS_NAMES
    closed = subprocess.run(f"{shlex.quote(sys.executable)} -m bloodcell predict {shlex.quote(str(image_dir))} >&-",
                            shell=True, capture_output=True, text=True, timeout=300)
    assert closed.returncode == 2 and closed.stderr == (
        "bloodcell predict: error: standard output is closed (>&-); redirect it to a file or to /dev/null\n")


def test_predict_sample_images_with_the_bundled_default(capsys):
    from pathlib import Path

    examples = Path(__file__).resolve().parents[1] / "examples" / "images"
    assert main(["predict", str(examples), "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(records) == 16
    wrong = [(Path(r["path"]).name, r["label"]) for r in records if not Path(r["path"]).name.startswith(r["label"] + "_")]
    assert wrong == []
    assert not any(r["outlier"] for r in records)


def test_predict_marks_non_cells(tmp_path, capsys):
    from pathlib import Path
    from PIL import Image, ImageDraw

    examples = Path(__file__).resolve().parents[1] / "examples" / "images"
    drawing = Image.new("RGB", (96, 96), "white")
    ImageDraw.Draw(drawing).text((10, 40), "not a cell", fill="black")
    drawing.save(tmp_path / "text.png")
    checker = (np.indices((96, 96)).sum(0) // 12 % 2 * 255).astype(np.uint8)
    Image.fromarray(checker).save(tmp_path / "checker.png")
    assert main(["predict", str(tmp_path), str(examples / "basophil_BA_608637.jpg"), "--json"]) == 0
    records = {Path(r["path"]).name: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert records["text.png"]["outlier"] is True and records["checker.png"]["outlier"] is True
    assert records["basophil_BA_608637.jpg"]["outlier"] is False
    assert main(["predict", str(tmp_path / "text.png")]) == 0
    assert capsys.readouterr().out.rstrip().endswith("OUTLIER: unlike the images the model learned from")
    # a model without a feature check has the colour test, and says so
    bare = bloodcell.Classifier(bloodcell.build_model("microcell", input_size=32)).save_pretrained(tmp_path / "m")
    assert main(["predict", str(tmp_path / "text.png"), "--model", str(bare)]) == 0
    assert capsys.readouterr().out.rstrip().endswith("OUTLIER: unlike blood-cell images in colour (PBC's colour statistics)")


def test_train_writes_a_model_with_its_card_and_split(tmp_path, capsys):
    from pathlib import Path
    from PIL import Image

    from conftest import synthetic_cell

    data, originals = tmp_path / "data", tmp_path / "originals"
    originals.mkdir()
    for c, name in enumerate(bloodcell.CLASS_NAMES):
        (data / name).mkdir(parents=True)
        for i in range(5):
            img = synthetic_cell(40, seed=100 * c + i)
            img[..., c % 3] = np.clip(img[..., c % 3].astype(int) + 20 * c, 0, 255)
            Image.fromarray(img).save(originals / f"{name}_{i}.png")
            (data / name / f"{name}_{i}.png").symlink_to(originals / f"{name}_{i}.png")  # images linked in
    out = tmp_path / "model"
    code = main(["train", str(data), "--model", "microcell", "--input-size", "32", "--head-epochs", "1",
                 "--finetune-epochs", "1", "--augment", "none", "--val-fraction", "0.2", "--test-fraction", "0.2",
                 "--batch-size", "8", "--out", str(out)])
    assert code == 0
    clf = bloodcell.load_classifier(out)
    assert clf.input_size == 32 and 0 <= clf.metrics["accuracy"] <= 1 and clf.metrics["test_images"] == 8
    assert clf.training["command"].startswith("bloodcell train ")
    assert clf.training["init"] == "random"
    assert "bloodcell train" in (out / "README.md").read_text()
    work = Path(str(out) + ".work")
    held_out = json.loads((out / "test_files.json").read_text())  # beside the model, as in the zoo's folders
    assert len(held_out) == 8 and all((data / p).is_file() for p in held_out)
    capsys.readouterr()
    assert main(["evaluate", str(data), "--model", str(out), "--write-metrics"]) == 2  # would count training images
    assert f"--split-file {out / 'test_files.json'}" in capsys.readouterr().err
    # The images it trained or validated on are listed by their pixels too (an .npz has no file names): a plain
    # evaluate on DATA says its figures overstate, and on the held-out images alone it does not.
    assert len(json.loads((out / "trained_on.json").read_text())) == 32
    assert main(["evaluate", str(data), "--model", str(out)]) == 0
    assert ("warning: 32 of the 40 images are images" in capsys.readouterr().err)
    assert main(["evaluate", str(data), "--model", str(out), "--split-file", str(out / "test_files.json")]) == 0
    assert "warning" not in capsys.readouterr().err
    for argv in (["evaluate", str(data), "--model", str(out), "--limit", "4", "--seed", "-1"],
                 ["train", str(data), "--model", "microcell", "--split-seed", "-1", "--out", str(tmp_path / "neg")]):
        assert main(argv) == 2  # one line, before any work
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"bloodcell {argv[0]}: error: argument {'--seed' if argv[0] == 'evaluate' else '--split-seed'}: "
                       f"expected an integer from 0 to 2**31 - 1, got -1 (see bloodcell {argv[0]} --help)"]
    assert (work / "history.csv").is_file() and (work / "confusion.png").is_file()
    assert main(["train", str(data), "--model", "microcell", "--out", str(out)]) == 2  # refuses to overwrite
    assert json.loads((work / "split.json").read_text())["test"] == sorted(held_out)
    # Resuming with another split would train on images now held out: refused before any work.
    capsys.readouterr()
    code = main(["train", str(data), "--model", "microcell", "--input-size", "32", "--head-epochs", "1",
                 "--finetune-epochs", "1", "--augment", "none", "--val-fraction", "0.2", "--test-fraction", "0.4",
                 "--batch-size", "8", "--out", str(out), "--resume"])
    err = capsys.readouterr().err
    assert code == 2 and "held out other validation/test images" in err and "epoch" not in err
    # Resuming with other options names them as the command line does.
    code = main(["train", str(data), "--model", "microcell", "--input-size", "32", "--head-epochs", "2",
                 "--finetune-epochs", "1", "--augment", "none", "--val-fraction", "0.2", "--test-fraction", "0.2",
                 "--batch-size", "8", "--out", str(out), "--resume"])
    err = capsys.readouterr().err.strip()
    errors = [line for line in err.splitlines() if "error:" in line]
    assert code == 2 and len(errors) == 1 and "(--head-epochs/--finetune-epochs: 1 1 then, 2 1 now)" in errors[0]
    assert "add --overwrite to start again" in err
    # Resuming the finished run re-measures it and records the original command, marked resumed.
    first = clf.training
    code = main(["train", str(data), "--model", "microcell", "--input-size", "32", "--head-epochs", "1",
                 "--finetune-epochs", "1", "--augment", "none", "--val-fraction", "0.2", "--test-fraction", "0.2",
                 "--batch-size", "8", "--out", str(out), "--resume"])
    assert code == 0
    resumed = bloodcell.load_classifier(out).training
    assert resumed["command"] == first["command"] and "--resume" not in resumed["command"]
    assert resumed["resumed"] is True and "total_wall_time_s" not in resumed
    assert resumed["wall_time_s"] == first["wall_time_s"] and "total_wall_time_s" in first
    # --resume with nothing to resume is refused before any work, and writes nothing.
    fresh = tmp_path / "fresh"
    capsys.readouterr()
    code = main(["train", str(data), "--model", "microcell", "--input-size", "32", "--head-epochs", "1",
                 "--finetune-epochs", "0", "--augment", "none", "--val-fraction", "0.2", "--test-fraction", "0.2",
                 "--batch-size", "8", "--out", str(fresh), "--resume"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "nothing to resume" in err and len(err.splitlines()) == 1
    assert not fresh.exists() and not Path(str(fresh) + ".work").exists()
    code = main(["train", str(data), "--model", "microcell", "--input-size", "32", "--head-epochs", "1",
                 "--finetune-epochs", "0", "--augment", "none", "--val-fraction", "0.2", "--test-fraction", "0.2",
                 "--batch-size", "8", "--out", str(fresh)])
    assert code == 0
    training = bloodcell.load_classifier(fresh).training
    assert "resumed" not in training and "total_wall_time_s" in training and "--resume" not in training["command"]
    assert training["hardware"].endswith("CPU") or "GPU" in training["hardware"]
    # A new run into a workdir with a checkpoint is refused before it rewrites the run's records.
    records = {name: (work / name).read_text() for name in ("split.json", "command.txt")}
    capsys.readouterr()
    code = main(["train", str(data), "--model", "microcell", "--seed", "7", "--out", str(tmp_path / "other"),
                 "--workdir", str(work)])
    assert code == 2 and "holds a checkpoint of an earlier run" in capsys.readouterr().err
    assert records == {name: (work / name).read_text() for name in records}
    # --overwrite with a bad option fails before it deletes the run it would replace
    from bloodcell.training.callbacks import checkpoint_exists

    fresh_work = Path(str(fresh) + ".work")
    assert checkpoint_exists(fresh_work)
    records = {name: (fresh_work / name).read_text() for name in ("split.json", "command.txt")}
    code = main(["train", str(data), "--model", "microcell", "--input-size", "32", "--head-epochs", "1",
                 "--finetune-epochs", "1", "--unfreeze", "500", "--augment", "none", "--val-fraction", "0.3",
                 "--test-fraction", "0.2", "--batch-size", "8", "--out", str(fresh), "--overwrite"])
    err = capsys.readouterr().err
    assert code == 2 and "error: --unfreeze 500: the microcell backbone has" in err and checkpoint_exists(fresh_work), err
    # and leaves that run's split and command as they were, so that it can still be resumed
    assert records == {name: (fresh_work / name).read_text() for name in records}
    # --overwrite starts afresh, over the model and the finished run's checkpoint.
    code = main(["train", str(data), "--model", "microcell", "--input-size", "32", "--head-epochs", "1",
                 "--finetune-epochs", "0", "--augment", "none", "--val-fraction", "0.2", "--test-fraction", "0.2",
                 "--batch-size", "8", "--seed", "3", "--out", str(fresh), "--overwrite"])
    assert code == 0 and "--seed 3" in bloodcell.load_classifier(fresh).training["command"]
    assert main(["train", str(data), "--model", "microcell", "--input-size", "0", "--out", str(tmp_path / "zero")]) == 2
    assert "--input-size must be an integer >= 32, got 0" in capsys.readouterr().err


def test_train_refuses_outputs_that_would_fail_or_destroy(tmp_path, capsys, monkeypatch):
    from PIL import Image

    from conftest import synthetic_cell

    data = tmp_path / "data"
    (data / "basophil").mkdir(parents=True)
    Image.fromarray(synthetic_cell(32, 0)).save(data / "basophil" / "a.png")
    (tmp_path / "afile").write_text("x")
    readme_dir = tmp_path / "notes"
    readme_dir.mkdir()
    (readme_dir / "README.md").write_text("# my notes\n")
    cleaned = tmp_path / "cleaned"  # a data set, say: a model written among its class folders
    (cleaned / "basophil").mkdir(parents=True)
    cases = {
        str(data / "basophil" / "model"): "inside DATA",
        str(tmp_path / "afile"): "is a file",
        str(readme_dir): "README.md: is not a bloodcell model card and would be replaced",
        str(cleaned): "exists and holds other files (basophil/) but no model; choose a new or empty folder",
    }
    for out, message in cases.items():
        capsys.readouterr()
        assert main(["train", str(data), "--model", "microcell", "--out", out]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
    for workdir in (tmp_path / "w", tmp_path / "w" / "work"):  # the save would replace it, after the whole run
        assert main(["train", str(data), "--model", "microcell", "--out", str(tmp_path / "w"), "--workdir",
                     str(workdir)]) == 2
        assert f"--workdir {workdir}: is --out {tmp_path / 'w'} or inside it" in capsys.readouterr().err
    assert main(["train", str(data), "--model", "microcell", "--init", str(tmp_path / "x.h5"), "--out",
                 str(tmp_path / "o")]) == 2
    assert f"--init {tmp_path / 'x.h5'}: microcell has no Keras backbone" in capsys.readouterr().err
    two = tmp_path / "two"
    for c, name in enumerate(("basophil", "neutrophil")):
        (two / name).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(synthetic_cell(32, 10 * c + i)).save(two / name / f"{i}.png")
    assert main(["train", str(two), "--model", "microcell", "--val-fraction", "0.49", "--test-fraction", "0.49",
                 "--out", str(tmp_path / "o")]) == 2
    assert "--val-fraction 0.49 --test-fraction 0.49: leave no image of two for training; give smaller" in \
        capsys.readouterr().err
    assert not (tmp_path / "o").exists() and not (tmp_path / "w").exists()
    assert main(["train", str(data), "--model", "microcell", "--out", str(tmp_path / "o"), "--resume", "--overwrite"]) == 2
    assert "--resume continues the checkpointed run and --overwrite starts afresh over it; give one" in \
        capsys.readouterr().err
    from bloodcell.hub import push_folder

    with pytest.raises(bloodcell.ConfigError, match="drop the hf:// in front"):
        push_folder(data, "hf://owner/name")
    assert sorted(p.name for p in data.rglob("*")) == ["a.png", "basophil"]
    assert (readme_dir / "README.md").read_text() == "# my notes\n"
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    for out in (".", ".."):
        assert main(["train", str(data), "--model", "microcell", "--out", out]) == 2
        assert "not the working directory or one above it" in capsys.readouterr().err
    # DATA given as "." is named by the folder it stands for (in the card, the figures' description...).
    from argparse import Namespace

    from bloodcell.cli.cmd_train import _data_record

    monkeypatch.chdir(data)
    record = _data_record(Namespace(data=".", dataset_name=None, license=None), bloodcell.Dataset(np.zeros((2, 8, 8, 3), np.uint8), np.array([0, 1]), ("a", "b")))
    assert record["dataset_id"] == record["dataset_name"] == "data"


def test_train_refuses_imagenet_for_an_architecture_without_it_before_reading_data(tmp_path, capsys):
    assert main(["train", str(tmp_path), "--model", "microcell", "--init", "imagenet", "--out", str(tmp_path / "m")]) == 2
    assert "--init imagenet: microcell has no ImageNet weights; use --init random" in capsys.readouterr().err


def test_predict_prints_a_file_name_that_is_not_utf8(model_dir, image_dir, tmp_path, capsys):
    import os
    import shutil

    folder = tmp_path / "latin1"
    folder.mkdir()
    name = os.fsdecode(b"caf\xe9.png")  # a name from a zip made on Windows
    shutil.copy(sorted(image_dir.iterdir())[0], folder / name)
    shutil.copy(sorted(image_dir.iterdir())[0], folder / "z.png")
    assert main(["predict", str(folder), "--model", str(model_dir), "--no-outlier-check"]) == 0
    out = capsys.readouterr().out
    assert "caf\\udce9.png" in out and "z.png" in out
    # a tab or a newline in a name would split the line or the fields: written as Python escapes
    lines = folder / "lines"
    lines.mkdir()
    shutil.copy(sorted(image_dir.iterdir())[0], lines / "a\tb\nc.png")
    (lines / "bad\nname.png").write_bytes(b"not an image")
    assert main(["predict", str(lines), "--model", str(model_dir), "--no-outlier-check"]) == 1
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 1 and out.split("\t")[0] == str(lines / "a\\tb\\nc.png")
    assert len(err.splitlines()) == 1 and str(lines / "bad\\nname.png") in err


def test_augment_preview_does_not_replace_a_file_unless_asked(image_dir, tmp_path, capsys):
    (tmp_path / "notes.png").write_text("my notes")
    assert main(["augment-preview", str(image_dir), "--out", str(tmp_path / "notes.png"), "-n", "2"]) == 2
    assert "already exists; choose a new file, or pass --overwrite" in capsys.readouterr().err
    assert (tmp_path / "notes.png").read_text() == "my notes"
    assert main(["augment-preview", str(image_dir), "--out", str(tmp_path / "notes.png"), "-n", "2", "--overwrite",
                 "--preset", "none"]) == 0
    assert Image.open(tmp_path / "notes.png").format == "PNG"
    # An unreadable file among those drawn is skipped, said in a warning; one image alone is a DATA too.
    (image_dir / "broken.png").write_bytes(b"not a png")
    capsys.readouterr()
    assert main(["augment-preview", str(image_dir), "--out", str(tmp_path / "all.png"), "-n", "99", "--preset",
                 "none"]) == 0
    captured = capsys.readouterr()
    assert f"warning: {image_dir / 'broken.png'}: not a readable image" in captured.err and "error" not in captured.err
    assert main(["augment-preview", str(image_dir / "rgb.png"), "--out", str(tmp_path / "one.png"), "--preset",
                 "none"]) == 0
    assert "(1 image, preset none" in capsys.readouterr().out


def test_augment_preview_refuses_a_negative_seed_and_pictures_too_large_to_hold(image_dir, tmp_path, capsys):
    assert main(["augment-preview", str(image_dir), "--out", str(tmp_path / "p.png"), "--seed", "-1"]) == 2
    assert "--seed: expected an integer from 0 to 2**31 - 1, got -1" in capsys.readouterr().err
    for options, message in ((["--scale", "100000"], "--scale must be 1 to 16, got 100000"),
                             (["-n", "100000"], "-n must be 1 to 1024, got 100000"),
                             (["--image-size", "60000"], "megapixels"), (["--views", "0"], "--views must be 1 to 16")):
        assert main(["augment-preview", str(image_dir), "--out", str(tmp_path / "p.png"), *options]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "p.png").exists()


def test_train_options_mean_what_they_say_on_small_data_too():
    from bloodcell.cli import build_parser
    from bloodcell.cli.cmd_train import _settings
    from bloodcell.training.small_data import SMALL_DATA_SETTINGS

    def settings(*extra, small=True):
        return _settings(build_parser().parse_args(["train", "DATA", "--model", "microcell", *extra]), 96, small)

    # naming the small-data optimizer keeps its learning rates; another optimizer gets its own defaults
    assert settings("--optimizer", SMALL_DATA_SETTINGS["optimizer"])["learning_rates"] == SMALL_DATA_SETTINGS["learning_rates"]
    assert "learning_rates" not in settings("--optimizer", "lion")
    # a fraction is written with a point, as Trainer(unfreeze=1.0) is all layers; a whole number counts layers
    assert settings("--unfreeze", "1.0", small=False)["unfreeze"] == 1.0
    assert settings("--unfreeze", "1", small=False)["unfreeze"] == 1
    assert isinstance(settings("--unfreeze", "12", small=False)["unfreeze"], int)
    from bloodcell.cli._common import UsageError

    with pytest.raises(UsageError, match="a fraction .written with a point. is in 0.0..1.0"):
        settings("--unfreeze", "1.5")

    with pytest.raises(UsageError, match="small data have no validation split"):
        settings("--lr-schedule", "plateau")


def test_train_says_on_screen_when_its_figures_mean_little(capsys):
    """What the card says of a run at chance or calibrated at the edge of the range is said on stderr too."""
    from bloodcell.cli.cmd_train import _warn_of_weak_figures

    record = {"fitted_on": "the 3-fold predictions; the fit stopped at the edge of its range (T = 20): these 16 images "
                           "say little about the model's confidence, so recalibrate on more"}
    _warn_of_weak_figures(record, 0.125, 8, False)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == ("bloodcell train: warning: calibration: the fit stopped at the edge of its range (T = 20): these "
                      "16 images say little about the model's confidence, so recalibrate on more")
    assert "the measured accuracy (12.5%) is near chance for 8 classes" in err[1] and err[1].endswith("with --init")
    _warn_of_weak_figures({"fitted_on": "the validation split"}, 0.125, 8, True)  # it started from one already
    assert capsys.readouterr().err.rstrip().endswith("give more images or epochs")
    _warn_of_weak_figures({"fitted_on": "the validation split"}, 0.9, 8, False)
    assert capsys.readouterr().err == ""


def test_train_setting_errors_name_the_options_not_the_python_fields():
    from bloodcell.cli import UsageError, build_parser
    from bloodcell.cli.cmd_train import _settings

    for extra, message in ((["--weight-decay", "-1"], "--weight-decay must be a number >= 0, got -1.0"),
                           (["--head-epochs", "0", "--finetune-epochs", "0"], "--head-epochs=0 and --finetune-epochs=0")):
        args = build_parser().parse_args(["train", "x", "--model", "microcell", *extra])
        with pytest.raises(UsageError) as err:
            _settings(args, 32, small=False)
        assert str(err.value).startswith(message) and "None" not in str(err.value)


def test_mistakes_on_the_command_line_are_named_by_their_command_with_a_suggestion(image_dir, capsys, monkeypatch):
    """An unknown option is the subcommand's usage error with its nearest options; a class name typo
    gets its match; a nested command names itself; a Keras backend that is not installed is one line."""
    assert main(["predict", str(image_dir), "--top-k3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bloodcell predict: error: unrecognized arguments: --top-k3 (--top-k3: did you mean --top-k?)")
    assert main(["train", str(image_dir), "--epochs", "3"]) == 2
    assert "did you mean --head-epochs or --finetune-epochs?" in capsys.readouterr().err
    assert main(["predcit", str(image_dir)]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'predcit'" in err and "did you mean 'predict'?" in err
    assert main(["export", "--format", "tflite"]) == 2
    assert "did you mean 'litert'?" in capsys.readouterr().err
    assert main(["predict", str(image_dir), "--classes", "lymphocyte,monocite"]) == 2
    assert "did you mean 'monocyte'?" in capsys.readouterr().err
    assert main(["hub", "push", str(image_dir / "nothing"), "me/x"]) == 2
    assert capsys.readouterr().err.startswith("bloodcell hub push: error: ")
    import importlib.util

    if importlib.util.find_spec("openvino") is None:
        monkeypatch.setenv("KERAS_BACKEND", "openvino")
        assert main(["predict", str(image_dir)]) == 2
        err = capsys.readouterr().err
        assert err == ("bloodcell predict: error: KERAS_BACKEND=openvino, but openvino is not installed; pip install "
                       "openvino, or unset KERAS_BACKEND (bloodcell runs on TensorFlow by default)\n")
    monkeypatch.setenv("KERAS_BACKEND", "tensorlfow")  # Keras itself would fail with a traceback
    assert main(["predict", str(image_dir)]) == 2
    assert capsys.readouterr().err == (
        "bloodcell predict: error: KERAS_BACKEND=tensorlfow is not a Keras backend; set one of tensorflow, jax, torch, "
        "numpy, openvino, or unset it (bloodcell runs on TensorFlow by default); did you mean 'tensorflow'?\n")
