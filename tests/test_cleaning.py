"""Duplicate and outlier detection, clean(), and `bloodcell clean` on small synthetic data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from bloodcell.cleaning import CleanResult, clean, find_duplicates, find_outliers
from bloodcell.data import load_dataset
from bloodcell.outliers import N_FEATURES, OutlierReference, fit_outlier_reference, outlier_features, outlier_scores
from synth_cells import brighten, jpeg, make_cells, make_non_cells, resized_copy

SAMPLE = Path(__file__).parent / "data" / "pbc96_sample"


@pytest.fixture(scope="module")
def cells() -> np.ndarray:
    return make_cells(240, 64, seed=0)


@pytest.fixture(scope="module")
def synthetic_reference(cells) -> OutlierReference:
    return fit_outlier_reference(cells[:160], seed=0)


@pytest.fixture(scope="module")
def real_cells() -> np.ndarray:
    return load_dataset(SAMPLE).images


# --- duplicates -----------------------------------------------------------------------------------


def test_exact_and_near_copies_are_grouped(cells):
    base = cells[:40].copy()
    variants = {
        "exact": base[0],
        "jpeg75": jpeg(base[1], 75),
        "brighter5": brighten(base[2], 1.05),
        "darker5": brighten(base[3], 0.95),
        "resized": resized_copy(base[4], 48),
        "jpeg75_resized": jpeg(resized_copy(base[5], 80), 75),
    }
    images = np.concatenate([base, np.stack(list(variants.values()))])
    groups = find_duplicates(images)
    assert groups == [[i, 40 + i] for i in range(len(variants))]
    # pixel-identical copies only without near
    assert find_duplicates(images, near=False) == [[0, 40]]


def test_real_cells_and_their_copies(real_cells):
    copies = np.stack([jpeg(real_cells[0], 75), brighten(real_cells[1], 1.05), resized_copy(real_cells[2], 72)])
    groups = find_duplicates(np.concatenate([real_cells, copies]))
    assert groups == [[0, 16], [1, 17], [2, 18]]


def test_different_cells_are_never_grouped():
    assert find_duplicates(make_cells(400, 48, seed=5)) == []


def test_groups_are_transitive_and_flat_images_are_safe():
    img = make_cells(1, 64, seed=9)[0]
    flat = np.full((64, 64, 3), 200, np.uint8)
    images = np.stack([img, jpeg(img, 90), jpeg(jpeg(img, 90), 80), flat, flat + 1, flat])
    assert find_duplicates(images) == [[0, 1, 2], [3, 5]]


def test_find_duplicates_checks_input():
    with pytest.raises(ValueError, match="uint8"):
        find_duplicates(np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        find_duplicates(np.zeros((8, 8, 3), np.uint8))
    assert find_duplicates(np.zeros((0, 8, 8, 3), np.uint8)) == []


# --- outliers -------------------------------------------------------------------------------------


def test_synthetic_reference_separates_cells_from_non_cells(cells, synthetic_reference):
    held_out = cells[160:]
    assert not find_outliers(held_out, reference=synthetic_reference).any()
    for kind, images in make_non_cells(12, 64).items():
        assert find_outliers(images, reference=synthetic_reference).all(), kind


def test_many_copies_of_one_outlier_are_all_flagged(cells, synthetic_reference):
    meme = make_non_cells(1, 64, seed=4)["cartoon"][0]
    batch = np.concatenate([cells[160:200], np.repeat(meme[None], 300, axis=0)])
    flags = find_outliers(batch, reference=synthetic_reference)
    assert flags[40:].all() and not flags[:40].any()


def test_scores_are_per_image(cells, synthetic_reference):
    batch = np.concatenate([cells[160:170], make_non_cells(2, 64)["text"]])
    together = outlier_scores(batch, reference=synthetic_reference)
    alone = np.concatenate([outlier_scores(x[None], reference=synthetic_reference) for x in batch])
    np.testing.assert_allclose(together, alone, rtol=1e-5)


def test_reference_can_be_passed_as_images(cells):
    flags = find_outliers(np.concatenate([cells[200:210], make_non_cells(2, 64)["gradient"]]), reference=cells[:120])
    assert flags.tolist() == [False] * 10 + [True] * 2


def test_shipped_reference_accepts_real_and_corrupted_cells(real_cells):
    assert not find_outliers(real_cells).any()
    rng = np.random.default_rng(0)
    corrupted = []
    for img in real_cells:
        corrupted += [
            np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(2))),
            jpeg(img, 30),
            np.clip(img + rng.normal(0, 10, img.shape), 0, 255).astype(np.uint8),
            brighten(img, 0.7),
            brighten(img, 1.3),
        ]
    assert not find_outliers(np.stack(corrupted)).any()
    bigger = np.stack([np.asarray(Image.fromarray(img).resize((160, 160), Image.Resampling.BICUBIC)) for img in real_cells])
    assert not find_outliers(bigger).any()  # resized to the reference's 96x96 first


def test_shipped_reference_flags_non_cells():
    for kind, images in make_non_cells(10, 96, seed=2).items():
        assert find_outliers(images).all(), kind


def test_reference_save_load_roundtrip(tmp_path, cells, synthetic_reference):
    path = tmp_path / "ref.npz"
    assert synthetic_reference.save(path) == path
    with pytest.raises(FileExistsError, match="already exists"):  # never replaced unasked
        synthetic_reference.save(path)
    synthetic_reference.save(path, overwrite=True)
    with pytest.raises(ValueError, match="ending in .npz"):  # NumPy would write myref.npz, which load("myref") misses
        synthetic_reference.save(tmp_path / "myref")
    loaded = OutlierReference.load(path)
    assert loaded.threshold == pytest.approx(synthetic_reference.threshold)
    np.testing.assert_allclose(loaded.scores(cells[:5]), synthetic_reference.scores(cells[:5]), rtol=1e-5)
    np.testing.assert_array_equal(find_outliers(cells[:5], reference=str(path)), np.zeros(5, bool))
    data = dict(np.load(path))
    data["feature_version"] = np.int64(0)
    np.savez(tmp_path / "old.npz", **data)
    with pytest.raises(ValueError, match="feature version 0"):
        OutlierReference.load(tmp_path / "old.npz")


def test_outlier_input_checks():
    with pytest.raises(ValueError, match="uint8"):
        outlier_features(np.zeros((1, 32, 32, 3), np.float64))
    with pytest.raises(ValueError, match="at least 20"):
        fit_outlier_reference(make_cells(3, 32))
    for bad in ({"quantile": 1.5}, {"augment": -1}, {"components": 0}, {"spread": 0}):
        with pytest.raises(ValueError, match=f"{next(iter(bad))} must be"):
            fit_outlier_reference(make_cells(20, 32), **bad)
    assert outlier_features(np.zeros((0, 32, 32, 3), np.uint8)).shape == (0, N_FEATURES)


# --- clean ----------------------------------------------------------------------------------------


def test_clean_report(cells, synthetic_reference):
    base = cells[160:200]
    labels = np.repeat(np.arange(8), 5)
    junk = make_non_cells(2, 64)["checkerboard"]
    images = np.concatenate([base, [jpeg(base[3], 80), base[3], base[7], junk[0], junk[1]]])
    labels = np.concatenate([labels, [labels[3], labels[3], 6, 2, 2]])  # row 42 copies row 7 with another label
    result = clean(images, labels, reference=synthetic_reference)
    assert isinstance(result, CleanResult)
    r = result.report
    assert r["outliers"] == {"count": 2, "rows": [43, 44], "checked": True}
    unchecked = clean(images, labels, outliers=False).report  # duplicates only
    assert unchecked["outliers"] == {"count": 0, "rows": [], "checked": False} and unchecked["n_kept"] == 41
    assert r["duplicates"]["groups"] == 1 and r["duplicates"]["rows"] == [40, 41]
    assert r["duplicates"]["group_rows"] == [[3, 40, 41]]
    assert r["conflicts"]["groups"] == 1 and r["conflicts"]["details"] == [{"rows": [7, 42], "labels": [1, 6]}]
    assert (r["n_input"], r["n_kept"], r["n_removed"]) == (45, 39, 6)
    expected_keep = np.ones(45, bool)
    expected_keep[[7, 40, 41, 42, 43, 44]] = False
    np.testing.assert_array_equal(result.keep, expected_keep)
    np.testing.assert_array_equal(result.images, images[expected_keep])
    np.testing.assert_array_equal(result.labels, labels[expected_keep])
    assert json.loads(result.to_json()) == r
    exact_only = clean(images, labels, near=False, reference=synthetic_reference).report
    assert exact_only["duplicates"]["rows"] == [41]
    # Labels as class names give the same answer; fractional ids are refused.
    names = np.array(["basophil", "eosinophil", "erythroblast", "ig", "lymphocyte", "monocyte", "neutrophil",
                      "platelet"])[labels]
    named = clean(images, names, reference=synthetic_reference)
    np.testing.assert_array_equal(named.keep, expected_keep)
    assert named.report["conflicts"]["details"] == [{"rows": [7, 42], "labels": ["eosinophil", "neutrophil"]}]
    with pytest.raises(ValueError, match=r"labels must be class ids \(whole numbers\) or class names, got 3.5"):
        clean(images, np.where(np.arange(45) == 0, 3.5, labels), reference=synthetic_reference)


def test_clean_checks_lengths(cells):
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        clean(cells[:3], [0, 1])


# --- command line ---------------------------------------------------------------------------------


def _cli(argv):
    from bloodcell.cli import main

    return main([str(a) for a in argv])


@pytest.fixture
def dirty_folder(tmp_path, real_cells):
    """The 16 real sample cells, one JPEG re-save of a cell, one conflicting copy and two non-cells."""
    root = tmp_path / "dirty"
    for f in SAMPLE.rglob("*.jpg"):
        (root / f.parent.name).mkdir(parents=True, exist_ok=True)
        (root / f.parent.name / f.name).write_bytes(f.read_bytes())
    first = sorted((root / "basophil").iterdir())[0]
    Image.open(first).save(root / "basophil" / "resaved.jpg", quality=80)
    Image.open(first).save(root / "monocyte" / "misfiled.png")
    for i, img in enumerate(make_non_cells(1, 96)["text"].tolist() + make_non_cells(1, 96)["cartoon"].tolist()):
        Image.fromarray(np.asarray(img, np.uint8)).save(root / "platelet" / f"meme{i}.png")
    return root


def test_cli_clean_folder(tmp_path, dirty_folder, capsys):
    before = sorted(p.relative_to(dirty_folder) for p in dirty_folder.rglob("*"))
    out, report = tmp_path / "clean", tmp_path / "report.json"
    assert _cli(["clean", dirty_folder, "--out", out, "--report", report]) == 0
    assert sorted(p.relative_to(dirty_folder) for p in dirty_folder.rglob("*")) == before  # input untouched
    kept = sorted(str(p.relative_to(out)) for p in out.rglob("*.*"))
    assert len(kept) == 15 and not any("meme" in k or "misfiled" in k or "resaved" in k for k in kept)
    rep = json.loads(report.read_text())
    assert rep["outliers"]["count"] == 2 and all("meme" in p for p in rep["outliers"]["paths"])
    assert rep["conflicts"]["groups"] == 1 and rep["conflicts"]["rows_removed"] == 3
    summary = capsys.readouterr().out
    assert "Removed 2 outlier(s)" in summary and "Kept 15 images" in summary

    # the output now exists and is not empty: refused, as is writing inside the input
    assert _cli(["clean", dirty_folder, "--out", out]) == 2
    assert _cli(["clean", dirty_folder, "--out", dirty_folder / "cleaned"]) == 2
    assert "inside it" in capsys.readouterr().err
    # the report never overwrites a file nor lands inside the input
    report_before = report.read_text()
    assert _cli(["clean", dirty_folder, "--out", tmp_path / "clean2", "--report", report]) == 2
    assert "already exists" in capsys.readouterr().err and report.read_text() == report_before
    assert _cli(["clean", dirty_folder, "--out", tmp_path / "clean3", "--report", dirty_folder / "r.json"]) == 2
    assert not (dirty_folder / "r.json").exists() and not (tmp_path / "clean3").exists()
    # a report that cannot be written is refused before the cleaned data is (/proc/self: no files, even for root)
    if Path("/proc/self").is_dir():
        assert _cli(["clean", dirty_folder, "--out", tmp_path / "clean4", "--report", "/proc/self/r.json"]) == 1
        err = capsys.readouterr().err
        assert "error: /proc/self/r.json: " in err and "permissions" in err and not (tmp_path / "clean4").exists()


def test_duplicates_of_images_smaller_than_32_pixels(real_cells):
    from PIL import Image as PILImage

    small = np.stack([np.asarray(PILImage.fromarray(c).resize((28, 28))) for c in real_cells])
    images = np.concatenate([small, small[:1], jpeg(small[3], 90)[None]])
    assert find_duplicates(images) == [[0, 16], [3, 17]]


def test_cli_clean_npz(tmp_path, real_cells, capsys):
    images = np.concatenate([real_cells, real_cells[:2], make_non_cells(2, 96)["photo_noise"]])
    labels = np.concatenate([np.arange(16) // 2, np.arange(2) // 2, [0, 0]]).reshape(-1, 1).astype(np.uint8)
    src = tmp_path / "in.npz"
    np.savez(src, images=images, labels=labels)
    out = tmp_path / "out.npz"
    assert _cli(["clean", src, "--out", out, "--no-near"]) == 0
    with np.load(out) as z:
        assert z["images"].shape == (16, 96, 96, 3) and z["labels"].shape == (16, 1) and z["labels"].dtype == np.uint8
        np.testing.assert_array_equal(z["images"], real_cells)
    assert "identical pixels, also mirrored or rotated" in capsys.readouterr().out
    # A set's own class names (in its own order) are kept.
    from bloodcell import CLASS_NAMES

    names = np.array(CLASS_NAMES[::-1])
    np.savez(tmp_path / "named.npz", images=images, labels=labels, class_names=names)
    assert _cli(["clean", tmp_path / "named.npz", "--out", tmp_path / "named_out.npz", "--no-near"]) == 0
    with np.load(tmp_path / "named_out.npz") as z:
        np.testing.assert_array_equal(z["class_names"], names)
        assert len(z["labels"]) == 16
    assert _cli(["clean", src, "--out", tmp_path / "folder_out"]) == 2
    assert _cli(["clean", tmp_path / "missing.npz", "--out", tmp_path / "x.npz"]) == 2


def test_bad_reference_files_name_the_file(tmp_path):
    from bloodcell.outliers import FEATURE_VERSION

    partial = tmp_path / "partial.npz"
    np.savez(partial, feature_version=np.int64(FEATURE_VERSION), mean=np.zeros(3))
    with pytest.raises(ValueError, match=r"partial\.npz: incomplete outlier reference"):
        OutlierReference.load(partial)
    (tmp_path / "text.npz").write_text("not an archive")
    with pytest.raises(ValueError, match=r"text\.npz: not an outlier reference \(an \.npz that OutlierReference.save wrote\)"):
        OutlierReference.load(tmp_path / "text.npz")
    with pytest.raises(FileNotFoundError, match="no such outlier reference"):
        OutlierReference.load(tmp_path / "absent.npz")
    np.save(tmp_path / "array.npy", np.zeros(3))  # np.load gives an array, not an archive
    with pytest.raises(ValueError, match=r"array\.npy: is a single array, not an outlier reference archive"):
        OutlierReference.load(tmp_path / "array.npy")


def test_cli_clean_drops_unreadable_files(tmp_path, dirty_folder, capsys):
    (dirty_folder / "platelet" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out, report = tmp_path / "clean", tmp_path / "report.json"
    assert _cli(["clean", dirty_folder, "--out", out, "--report", report]) == 1  # an input failed: exit 1, as predict
    captured = capsys.readouterr()
    assert "dropped" in captured.err and "broken.png" in captured.err and "dropped 1 unreadable" in captured.out
    assert not any(p.name == "broken.png" for p in out.rglob("*")) and len(list(out.rglob("*.*"))) == 15
    assert json.loads(report.read_text())["unreadable"]["count"] == 1



def test_a_dataset_or_file_paths_where_images_are_expected_get_the_fix(tmp_path):
    from bloodcell.cleaning import find_duplicates, find_outliers
    from bloodcell.data import Dataset
    from bloodcell.errors import DataError
    from synth_cells import make_cells

    data = Dataset(make_cells(2, 16), np.array([0, 1]))
    with pytest.raises(DataError, match=r"got a Dataset; pass its .images"):
        find_outliers(data)
    with pytest.raises(DataError, match=r"got file paths; read them with bloodcell.imageio.load_images"):
        find_duplicates(["a.png", tmp_path / "b.png"])


def test_mirrored_and_turned_copies_are_duplicates(cells):
    base = cells[:6]
    copies = [base[0][:, ::-1], np.rot90(base[1]), np.rot90(base[2][::-1], 3), jpeg(np.rot90(base[3], 2).copy(), 85)]
    images = np.concatenate([base, np.stack([np.ascontiguousarray(c) for c in copies])])
    assert find_duplicates(images) == [[0, 6], [1, 7], [2, 8], [3, 9]]
    assert find_duplicates(images, near=False) == [[0, 6], [1, 7], [2, 8]]  # the JPEG copy is near, not exact
    wide = np.concatenate([cells[:3], cells[:3]], axis=2)  # not square: flips and half turns only
    assert find_duplicates(np.concatenate([wide, wide[:1, ::-1, ::-1]])) == [[0, 3]]


def test_mirrored_copies_are_found_at_sizes_the_thumbnails_do_not_divide(real_cells):
    """At 80 px the 32 thumbnail blocks are of 2 and 3 pixels: laid out symmetrically, the thumbnail of
    a mirrored copy is the mirrored thumbnail (laid out left to right, 10 of 20 such copies leaked)."""
    from bloodcell.imageio import resize_images

    base = resize_images(real_cells[:12], 80)
    copies = np.stack([jpeg(np.ascontiguousarray(image[:, ::-1]), 95) for image in base])
    assert find_duplicates(np.concatenate([base, copies])) == [[i, i + 12] for i in range(12)]


def test_a_reference_fitted_to_a_few_cells_keeps_the_cells(real_cells, cells):
    # 20 cells: every one scored by a model fitted without it sets the threshold (a hold-out of 4 did not)
    for seed in range(3):
        ref = fit_outlier_reference(cells[20 * seed:20 * seed + 20], seed=seed)
        assert find_outliers(cells[100:], reference=ref).mean() < 0.03
        assert find_outliers(np.concatenate([v for k, v in make_non_cells(10, 64).items() if k != "text"]),
                             reference=ref).all()


def test_cli_clean_reference_folder_no_outliers_and_what_it_does_not_copy(tmp_path, dirty_folder, capsys):
    (dirty_folder / "manifest.csv").write_text("path,label\n")
    out, report = tmp_path / "clean", tmp_path / "report.json"
    assert _cli(["clean", dirty_folder, "--out", out, "--no-outliers", "--report", report]) == 0
    captured = capsys.readouterr()
    assert "Looked for no outliers (--no-outliers)" in captured.out and "Kept 17 images" in captured.out
    assert "1 file(s) that are not images were not copied" in captured.err and "manifest.csv" in captured.err
    assert json.loads(report.read_text())["not_copied"] == ["manifest.csv"]
    assert _cli(["clean", dirty_folder, "--out", tmp_path / "c2", "--no-outliers", "--reference", SAMPLE]) == 2
    # cells of one's own as the reference: a folder of them
    cells = tmp_path / "mycells"
    cells.mkdir()
    for i, f in enumerate(sorted(SAMPLE.rglob("*.jpg")) * 2):
        Image.open(f).rotate(90 * (i // 16)).save(cells / f"{i}.png")
    assert _cli(["clean", dirty_folder, "--out", tmp_path / "c3", "--reference", cells]) == 0
    assert "Removed 2 outlier(s)" in capsys.readouterr().out
    assert _cli(["clean", dirty_folder, "--out", tmp_path / "c4", "--reference", SAMPLE / "basophil"]) == 2
    assert f"--reference {SAMPLE / 'basophil'}: the outlier reference needs at least" in capsys.readouterr().err


def test_cli_clean_that_would_remove_everything_writes_nothing(tmp_path, capsys):
    grey = tmp_path / "grey"
    for f in SAMPLE.rglob("*.jpg"):  # real cells, but nothing like the reference's colours
        (grey / f.parent.name).mkdir(parents=True, exist_ok=True)
        Image.open(f).convert("L").convert("RGB").save(grey / f.parent.name / f.name)
    assert _cli(["clean", grey, "--out", tmp_path / "out"]) == 2
    err = capsys.readouterr().err
    assert "every one of its 16 images would be removed (16 as non-cells)" in err and "--no-outliers" in err
    assert not (tmp_path / "out").exists()


def test_cli_clean_refuses_class_folders_it_could_not_write_before_any_work(tmp_path, capsys, monkeypatch):
    data = tmp_path / "data"
    for name in ("basophil", "mono cyte "):
        (data / name).mkdir(parents=True)
        for f in sorted((SAMPLE / "basophil").glob("*.jpg"))[:2]:
            (data / name / f.name).write_bytes(f.read_bytes())
    for size in ("4", "100000"):  # 100000: a 43 TiB array
        assert _cli(["clean", data, "--out", tmp_path / "out", "--image-size", size]) == 2
        assert "--image-size must be between 8 and 1024" in capsys.readouterr().err
    assert _cli(["clean", data, "--out", tmp_path / "out"]) == 2
    err = capsys.readouterr().err
    assert "mono cyte : a class folder name the cleaned copy cannot use" in err and "rename the folder" in err
    assert "Read" not in err and not (tmp_path / "out").exists()
    np.savez(tmp_path / "empty.npz", images=np.zeros((0, 8, 8, 3), np.uint8), labels=np.zeros(0, int))
    assert _cli(["clean", tmp_path / "empty.npz", "--out", tmp_path / "e.npz"]) == 2  # as an empty folder
    assert "empty.npz: holds no images; nothing to clean" in capsys.readouterr().err
    # outputs refused before any work: a folder for an .npz, the working directory, a file; and an image as input
    (tmp_path / "dir.npz").mkdir()
    np.savez(tmp_path / "two.npz", images=np.zeros((2, 8, 8, 3), np.uint8), labels=np.zeros(2, int))
    assert _cli(["clean", tmp_path / "two.npz", "--out", tmp_path / "dir.npz"]) == 2
    assert "--out " + str(tmp_path / "dir.npz") + ": is a folder" in capsys.readouterr().err
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    assert _cli(["clean", data, "--out", "."]) == 2
    assert "not the working directory" in capsys.readouterr().err
    (tmp_path / "afile").write_text("")
    assert _cli(["clean", data, "--out", tmp_path / "afile"]) == 2
    assert "afile: already exists; choose" in capsys.readouterr().err
    image = next((data / "basophil").iterdir())
    assert _cli(["clean", image, "--out", tmp_path / "x"]) == 2
    assert "expected a class-folder tree or an .npz file, got a .jpg file" in capsys.readouterr().err


def test_cli_clean_into_a_folder_beside_the_targets_of_linked_class_folders(tmp_path, capsys):
    """Class folders that link to folders named otherwise (raw/BA_imgs): an output beside those targets
    is neither inside nor around the input; one inside a target is refused, before any work."""
    raw, data = tmp_path / "raw", tmp_path / "data"
    data.mkdir()
    for name, target in (("basophil", "BA_imgs"), ("eosinophil", "EO_imgs")):
        (raw / target).mkdir(parents=True)
        for f in sorted((SAMPLE / name).glob("*.jpg")):
            (raw / target / f.name).write_bytes(f.read_bytes())
        (data / name).symlink_to(raw / target, target_is_directory=True)
    assert _cli(["clean", data, "--out", raw / "cleaned", "--no-outliers"]) == 0, capsys.readouterr().err
    assert sorted(p.name for p in (raw / "cleaned").iterdir()) == ["basophil", "eosinophil"]
    assert _cli(["clean", data, "--out", raw / "BA_imgs" / "cleaned"]) == 2
    assert "is the input or inside it" in capsys.readouterr().err and not (raw / "BA_imgs" / "cleaned").exists()


def test_cli_clean_refuses_an_npz_of_python_objects_before_any_work(tmp_path, real_cells, capsys):
    np.savez(tmp_path / "b.npz", images=real_cells, labels=np.arange(16) % 8,
             ids=np.array([{"x": 1}] * 16, dtype=object))
    assert _cli(["clean", tmp_path / "b.npz", "--out", tmp_path / "o.npz"]) == 2
    assert "b.npz: ids holds Python objects" in capsys.readouterr().err and not (tmp_path / "o.npz").exists()


def test_clean_names_a_wrong_switch_or_reference():
    images = np.zeros((3, 32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="clean: near must be True or False, got 'no'"):
        clean(images, [0, 1, 2], near="no")
    with pytest.raises(ValueError, match="reference: expected None, an OutlierReference, .* got a int"):
        clean(images, [0, 1, 2], reference=5)
    with pytest.raises(ValueError, match="reference: expected uint8"):
        clean(images, [0, 1, 2], reference=np.zeros((3, 2)))


def test_cli_clean_never_loads_tensorflow(tmp_path):
    """`bloodcell clean` is numpy and Pillow: the command line skips TensorFlow's import for it (5 s)."""
    import os
    import subprocess
    import sys

    script = ("import sys; from bloodcell.cli import main; code = main(sys.argv[1:]); "
              "print('tensorflow' in sys.modules, 'keras' in sys.modules); sys.exit(code)")
    proc = subprocess.run([sys.executable, "-c", script, "clean", str(SAMPLE), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False False"
