"""Class-activation heatmaps: their shape, that they follow the cell, and the explain command."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import bloodcell
from bloodcell.cli import main
from bloodcell.errors import ConfigError
from bloodcell.imageio import load_image

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "images"


@pytest.fixture(scope="module")
def default():
    return bloodcell.load_classifier()


def _hot_centre_x(heatmap: np.ndarray) -> float:
    """Column of the centre of the heat above one half."""
    w = np.where(heatmap > 0.5, heatmap, 0.0).sum(axis=0)
    return float((w * np.arange(len(w))).sum() / w.sum())


def test_heatmaps_have_the_input_size_and_follow_the_cell(default):
    """Each sample cell shifted 30 pixels left and 30 right (wrapping round): the heat moves with it
    (the median over the 16 cells; a model may also look beside a cell, and some of its classes do)."""
    cells = np.stack([load_image(f, default.input_size) for f in sorted(EXAMPLES.glob("*.jpg"))])
    left, right = np.roll(cells, -30, axis=2), np.roll(cells, 30, axis=2)
    maps, classes = default.explain(np.concatenate([left, right]))
    assert maps.shape == (32, default.input_size, default.input_size) and maps.dtype == np.float32
    assert maps.min() == 0.0 and maps.max(axis=(1, 2)) == pytest.approx([1.0] * 32)
    assert list(classes) == list(default.predict_proba(np.concatenate([left, right]), verbose=0).argmax(axis=1))
    shifts = [_hot_centre_x(r) - _hot_centre_x(l) for l, r in zip(maps[:16], maps[16:])]
    assert np.median(shifts) > 30, shifts


def test_target_class_and_bad_targets(default):
    images = np.stack([load_image(f, default.input_size) for f in sorted(EXAMPLES.glob("*.jpg"))[:3]])
    maps, classes = default.explain(images, target="platelet")
    assert list(classes) == [default.class_names.index("platelet")] * 3
    _, classes = default.explain(images, target=["basophil", "monocyte", "platelet"])
    assert [default.class_names[c] for c in classes] == ["basophil", "monocyte", "platelet"]
    with pytest.raises(ConfigError, match="unknown class"):
        default.explain(images, target="ghost")
    with pytest.raises(ConfigError, match="one class name per image"):
        default.explain(images, target=["basophil"])
    with pytest.raises(ConfigError, match="expected None, a class name or one class name per image, got 3"):
        default.explain(images, target=3)
    _, classes = default.explain(images, target="Platelet")  # case ignored, as classes= does
    assert list(classes) == [default.class_names.index("platelet")] * 3


def test_maps_do_not_depend_on_the_batch_and_the_explaining_model_is_built_once(default):
    images = np.stack([load_image(f, default.input_size) for f in sorted(EXAMPLES.glob("*.jpg"))[:5]])
    maps, classes = default.explain(images)
    built = default._cam_model[1]
    one_by_one = [default.explain(img[None], batch_size=3) for img in images]
    assert default._cam_model[1] is built  # not rebuilt (and retraced) on every call
    np.testing.assert_allclose(np.concatenate([m for m, _ in one_by_one]), maps, atol=1e-5)
    assert [int(c[0]) for _, c in one_by_one] == list(classes)


def test_overlay_takes_images_as_the_classifier_does_and_refuses_a_batch_of_maps(default):
    from bloodcell.errors import ImageReadError
    from bloodcell.explain import overlay

    image = load_image(sorted(EXAMPLES.glob("*.jpg"))[0], default.input_size)
    maps, _ = default.explain(np.stack([image, image]))
    assert overlay(image[..., 0], maps[0]).shape == image.shape  # greyscale: drawn as grey RGB
    with pytest.raises(ImageReadError, match="multiply the images by 255"):
        overlay(image / 255.0, maps[0])
    with pytest.raises(ConfigError, match=r"pass one map of the batch, e.g. maps\[i\]"):
        overlay(image, maps)
    with pytest.raises(ConfigError, match=r"alpha must be a number in \[0, 1\]"):
        overlay(image, maps[0], alpha=1.5)
    with pytest.raises(ConfigError, match=r"expected a heatmap of values in 0..1 .*got values 0..255"):
        overlay(image, maps[0] * 255)  # clipped, it was drawn almost all red


def test_explain_command_writes_one_picture_per_image(tmp_path, capsys, monkeypatch):
    files = sorted(EXAMPLES.glob("*.jpg"))[:2]
    assert main(["explain", *map(str, files), "--out", str(tmp_path / "out"), "--scale", "1"]) == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    lines = capsys.readouterr().out.splitlines()
    assert len(written) == 2 and len(lines) == 2
    assert all(name.startswith(f.stem + ".") and name.endswith(".png") for name, f in zip(written, files))
    from PIL import Image

    with Image.open(tmp_path / "out" / written[0]) as img:
        assert img.size == (2 * 128, 128)
    assert main(["explain", str(files[0]), "--out", str(tmp_path / "o2"), "--target", "ghost"]) == 2
    assert "--target ghost" in capsys.readouterr().err
    assert main(["explain", str(files[0]), "--out", str(tmp_path / "ig"), "--target", "IG"]) == 0  # as the API takes it
    assert [p.name.split(".")[-2] for p in (tmp_path / "ig").iterdir()] == ["immature_granulocyte"]
    for folder in ("a", "b"):  # two files of one name: two pictures
        (tmp_path / folder).mkdir()
        shutil.copy(files[0], tmp_path / folder / "cell.jpg")
    assert main(["explain", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "o3")]) == 0
    assert sorted(p.name.split(".")[0] for p in (tmp_path / "o3").iterdir()) == ["a_cell", "b_cell"]
    assert main(["explain", str(tmp_path / "a"), "--out", str(tmp_path / "a" / "heat")]) == 2
    assert "is inside" in capsys.readouterr().err and not (tmp_path / "a" / "heat").exists()
    assert main(["explain", str(files[0]), "--out", str(tmp_path / "o4"), "--scale", "1000"]) == 2
    assert "--scale must be 1 to 16" in capsys.readouterr().err and not (tmp_path / "o4").exists()
    (tmp_path / "a" / "broken.jpg").write_bytes(b"not an image")  # named; the others are still explained
    monkeypatch.setattr("bloodcell.cli.cmd_explain.CHUNK", 1)  # a chunk of the broken file alone, one of the cell
    for _ in range(2):  # the rerun replaces its picture (by a rename: no temporary file left)
        assert main(["explain", str(tmp_path / "a"), "--out", str(tmp_path / "o4")]) == 1
        assert "broken.jpg" in capsys.readouterr().err and len(list((tmp_path / "o4").iterdir())) == 1
    # another image of that name into the same folder: drawn beside, the first one's picture kept
    before = {p.name: p.read_bytes() for p in (tmp_path / "o4").iterdir()}
    shutil.copy(files[1], tmp_path / "b" / "cell.jpg")
    assert main(["explain", str(tmp_path / "b" / "cell.jpg"), "--out", str(tmp_path / "o4"),
                 "--target", next(iter(before)).split(".")[1]]) == 0
    after = {p.name: p.read_bytes() for p in (tmp_path / "o4").iterdir()}
    assert len(after) == 2 and all(after[name] == data for name, data in before.items())
    assert str(tmp_path / "o4" / "cell-2.") in capsys.readouterr().out
    # a file name that is not UTF-8 (Latin-1 bytes, as old zip archives hold): drawn, its source recorded escaped
    latin = tmp_path / "latin"
    latin.mkdir()
    shutil.copy(files[0], latin / os.fsdecode(b"caf\xe9.jpg"))
    assert main(["explain", str(latin), "--out", str(tmp_path / "o5")]) == 0
    assert len(list((tmp_path / "o5").iterdir())) == 1


def test_picture_names_are_unique_and_keep_link_names(tmp_path):
    from bloodcell.cli.cmd_explain import _unique_stems

    assert _unique_stems(["/d/b/x.jpg", "/d/b/x.png", "/d/b/x-2.jpg"]) == ["x", "x-2", "x-2-2"]
    (tmp_path / "blobs").mkdir()
    (tmp_path / "blobs" / "9f2c1e.jpg").write_bytes(b"")
    (tmp_path / "cell.jpg").symlink_to(tmp_path / "blobs" / "9f2c1e.jpg")  # as the Hugging Face cache stores files
    assert _unique_stems([tmp_path / "cell.jpg"]) == ["cell"]


def test_overlay_of_another_size_says_how_to_get_the_models_view():
    from bloodcell.explain import overlay

    with pytest.raises(bloodcell.ConfigError, match=r"the image is 96x96 but the heatmap 128x128.*preprocess\(image\)\[0\]"):
        overlay(np.zeros((96, 96, 3), np.uint8), np.zeros((128, 128)))
