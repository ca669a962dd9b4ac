"""Loading, saving and splitting data sets (bloodcell.data) on small synthetic data."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import bloodcell
from bloodcell._classes import CLASS_NAMES
from bloodcell.data import Dataset, load_dataset, save_dataset, split, split_indices
from bloodcell.errors import DataError
from bloodcell.imageio import resize_image
from synth_cells import make_cells

SAMPLE = Path(__file__).parent / "data" / "pbc96_sample"


def _write_tree(root: Path, per_class: dict[str, int], size: int = 32, seed: int = 0) -> dict[str, list[np.ndarray]]:
    written: dict[str, list[np.ndarray]] = {}
    cells = iter(make_cells(sum(per_class.values()), size, seed))
    for folder, n in per_class.items():
        (root / folder).mkdir(parents=True)
        written[folder] = []
        for i in range(n):
            img = next(cells)
            Image.fromarray(img).save(root / folder / f"img{i}.png")
            written[folder].append(img)
    return written


def test_load_folder_reads_classes_alias_and_paths(tmp_path):
    written = _write_tree(tmp_path, {"basophil": 3, "ig": 2, "platelet": 4})
    (tmp_path / "manifest.csv").write_text("not an image folder\n")
    ds = load_dataset(tmp_path, image_size=32)
    assert ds.images.shape == (9, 32, 32, 3) and ds.images.dtype == np.uint8
    assert ds.labels.dtype == np.int64
    assert ds.class_names == CLASS_NAMES
    counts = ds.class_counts()
    assert counts["basophil"] == 3 and counts["immature_granulocyte"] == 2 and counts["platelet"] == 4
    assert counts["neutrophil"] == 0 and len(ds) == 9
    i = ds.paths.index(str(tmp_path / "ig" / "img1.png"))
    assert ds.labels[i] == CLASS_NAMES.index("immature_granulocyte")
    np.testing.assert_array_equal(ds.images[i], written["ig"][1])
    Image.fromarray(written["ig"][0]).save(tmp_path / "stray.png")  # no class folder: said, not read
    with pytest.warns(UserWarning, match=r"1 image beside the class folders \(stray.png\) is not read, having no class"):
        assert len(load_dataset(tmp_path, image_size=32)) == 9


def test_load_folder_resizes_other_sizes_with_the_one_resize_function(tmp_path):
    (tmp_path / "monocyte").mkdir()
    big = make_cells(1, 50, seed=3)[0]
    wide = np.concatenate([big, big[:, :20]], axis=1)  # 50 x 70: centre-cropped, then resized
    Image.fromarray(big).save(tmp_path / "monocyte" / "a.png")
    Image.fromarray(wide).save(tmp_path / "monocyte" / "b.png")
    ds = load_dataset(tmp_path, image_size=32, workers=1)
    np.testing.assert_array_equal(ds.images[0], resize_image(big, 32))
    np.testing.assert_array_equal(ds.images[1], resize_image(wide, 32))


def test_parallel_and_serial_loading_agree(tmp_path):
    _write_tree(tmp_path, {"lymphocyte": 40, "neutrophil": 40}, size=24)
    a = load_dataset(tmp_path, image_size=24, workers=1)
    b = load_dataset(tmp_path, image_size=24, workers=4)
    np.testing.assert_array_equal(a.images, b.images)
    assert a.paths == b.paths


def test_load_real_sample_folder():
    ds = load_dataset(SAMPLE)
    assert ds.images.shape == (16, 96, 96, 3)
    assert set(ds.class_counts().values()) == {2}


def test_other_class_names_are_classes_of_their_own(tmp_path):
    # Until bloodcell 0.1 a folder outside the 8 PBC names was an error; now it is a new class.
    _write_tree(tmp_path, {"basophil": 1, "blasts": 2, "Lymphocyte": 1})
    ds = load_dataset(tmp_path, image_size=32)
    assert ds.class_names == ("basophil", "lymphocyte", "blasts")  # canonical order first, then by name
    assert ds.class_counts() == {"basophil": 1, "lymphocyte": 1, "blasts": 2}
    fixed = load_dataset(tmp_path, image_size=32, class_names=["blasts", "lymphocyte", "basophil", "monocyte"])
    assert fixed.class_names == ("blasts", "lymphocyte", "basophil", "monocyte")
    assert fixed.class_counts() == {"blasts": 2, "lymphocyte": 1, "basophil": 1, "monocyte": 0}
    with pytest.raises(ValueError, match=r"'blasts'.*not in class_names"):
        load_dataset(tmp_path, class_names=["basophil", "lymphocyte"])


def test_class_folder_errors(tmp_path):
    _write_tree(tmp_path / "one", {"blasts": 2})
    with pytest.raises(ValueError, match="one class folder only"):
        load_dataset(tmp_path / "one")
    _write_tree(tmp_path / "empty", {"blasts": 2, "myeloblasts": 1})
    (tmp_path / "empty" / "promyelocytes").mkdir()
    with pytest.raises(ValueError, match="promyelocytes: class folder holds no images"):
        load_dataset(tmp_path / "empty")
    _write_tree(tmp_path / "case", {"Blasts": 1, "blasts": 1, "neutrophil": 1})
    with pytest.raises(ValueError, match="ignoring case"):
        load_dataset(tmp_path / "case")


def test_npz_with_its_own_class_names(tmp_path):
    images = make_cells(4, 16)
    path = _npz(tmp_path / "d.npz", images=images, labels=np.array([0, 1, 1, 0]), class_names=np.array(["blast", "band"]))
    ds = load_dataset(path, image_size=16)
    assert ds.class_names == ("blast", "band") and ds.labels.tolist() == [0, 1, 1, 0]
    save_dataset(ds, tmp_path / "copy.npz", layout="npz")
    assert load_dataset(tmp_path / "copy.npz", image_size=16).class_names == ("blast", "band")
    ordered = load_dataset(path, image_size=16, class_names=["Band", "BLAST"])  # names ignore case, as folders'
    assert ordered.class_names == ("Band", "BLAST") and ordered.labels.tolist() == [1, 0, 0, 1]
    with pytest.raises(ValueError, match="'class_names' must be a 1-D array of strings"):
        load_dataset(_npz(tmp_path / "bad.npz", images=images, labels=np.zeros(4, int), class_names=np.arange(2)))


def test_folder_without_class_folders(tmp_path):
    Image.fromarray(make_cells(1, 16)[0]).save(tmp_path / "x.png")
    with pytest.raises(ValueError, match="no class folders"):
        load_dataset(tmp_path)


def test_unreadable_file_is_named(tmp_path):
    _write_tree(tmp_path, {"eosinophil": 2})
    (tmp_path / "eosinophil" / "broken.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(ValueError, match=r"broken.jpg.*drop every unreadable one with `bloodcell clean .* --out CLEAN`"):
        load_dataset(tmp_path, workers=1)


def test_missing_path_and_wrong_file_type(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing_here"):
        load_dataset(tmp_path / "nothing_here")
    (tmp_path / "data.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match="npz"):
        load_dataset(tmp_path / "data.csv")


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("label_shape", [(5,), (5, 1)])
def test_load_npz(tmp_path, label_shape):
    images = make_cells(5, 32)
    labels = np.array([0, 7, 3, 3, 1], np.uint8).reshape(label_shape)
    ds = load_dataset(_npz(tmp_path / "d.npz", images=images, labels=labels), image_size=32)
    np.testing.assert_array_equal(ds.images, images)
    assert ds.labels.tolist() == [0, 7, 3, 3, 1] and ds.labels.dtype == np.int64
    assert ds.paths is None


def test_load_npz_resizes(tmp_path):
    images = make_cells(2, 40)
    ds = load_dataset(_npz(tmp_path / "d.npz", images=images, labels=np.array([1, 2])), image_size=32)
    np.testing.assert_array_equal(ds.images[1], resize_image(images[1], 32))


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"x": np.zeros((2, 8, 8, 3), np.uint8), "labels": np.zeros(2, int)}, r"missing key\(s\) images.*found x, labels"),
        ({"images": np.zeros((2, 8, 8), np.uint8), "labels": np.zeros(2, int)}, r"shape \(2, 8, 8\), expected \(N, H, W, 3\)"),
        ({"images": np.zeros((2, 8, 8, 3), np.float32), "labels": np.zeros(2, int)}, "dtype float32, expected uint8"),
        ({"images": np.zeros((2, 8, 8, 3), np.uint8), "labels": np.zeros((2, 2), int)}, r"'labels' has shape \(2, 2\)"),
        ({"images": np.zeros((2, 8, 8, 3), np.uint8), "labels": np.array([0.5, 1.0])}, "expected integer class ids"),
        ({"images": np.zeros((2, 8, 8, 3), np.uint8), "labels": np.eye(2)}, r"one-hot: save labels\.argmax\(axis=1\)"),
        ({"images": np.zeros((2, 8, 8, 3), np.uint8), "labels": np.array(["a", "b"])}, "are strings; store class ids"),
        ({"images": np.full((2, 8, 8, 3), 200.0), "labels": np.array([0, 1])}, "values are 0..255 already"),
        ({"images": np.zeros((2, 8, 8, 3), np.uint8), "labels": np.array([0, 8])}, r"range 0..8, expected class ids 0..7"),
        ({"images": np.zeros((2, 8, 8, 3), np.uint8), "labels": np.array([0, 1, 2])}, "2 images but 3 labels"),
    ],
)
def test_npz_errors_name_the_problem(tmp_path, arrays, message):
    with pytest.raises(ValueError, match=message):
        load_dataset(_npz(tmp_path / "bad.npz", **arrays))


def test_dataset_checks_and_subset():
    images = make_cells(4, 16)
    ds = Dataset(images, [0, 1, 1, 5])
    sub = ds.subset([3, 1])
    assert sub.labels.tolist() == [5, 1] and sub.paths is None
    assert ds.subset(np.array([True, False, True, False])).labels.tolist() == [0, 1]
    with pytest.raises(ValueError, match="4 images but 3 labels"):
        Dataset(images, [0, 1, 2])
    with pytest.raises(ValueError, match="class ids 0..7"):
        Dataset(images, [0, 1, 2, 9])


def test_save_and_reload_both_layouts(tmp_path):
    src = tmp_path / "src"
    _write_tree(src, {"basophil": 2, "platelet": 3})
    ds = load_dataset(src, image_size=32)
    save_dataset(ds.subset([0, 2, 4]), tmp_path / "copy")
    again = load_dataset(tmp_path / "copy", image_size=32)
    np.testing.assert_array_equal(again.images, ds.images[[0, 2, 4]])
    assert again.labels.tolist() == ds.labels[[0, 2, 4]].tolist()
    assert (tmp_path / "copy" / "basophil" / "img0.png").read_bytes() == (src / "basophil" / "img0.png").read_bytes()

    arrays = Dataset(ds.images, ds.labels)
    save_dataset(arrays, tmp_path / "as_png")  # no source files: written as PNGs
    np.testing.assert_array_equal(load_dataset(tmp_path / "as_png", image_size=32).images, ds.images)
    save_dataset(arrays, tmp_path / "d.npz", layout="npz")
    np.testing.assert_array_equal(load_dataset(tmp_path / "d.npz", image_size=32).images, ds.images)


def test_save_refuses_to_overwrite(tmp_path):
    src = tmp_path / "src"
    _write_tree(src, {"basophil": 2})
    ds = load_dataset(src, image_size=32)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        save_dataset(ds, tmp_path / "full")
    with pytest.raises(ValueError, match="input data"):
        save_dataset(ds, src / "cleaned")
    (tmp_path / "d.npz").write_bytes(b"x")
    with pytest.raises(FileExistsError):
        save_dataset(ds, tmp_path / "d.npz", layout="npz")
    with pytest.raises(ValueError, match="layout"):
        save_dataset(ds, tmp_path / "new", layout="csv")


def _imbalanced(n_per_class=(120, 300, 60, 200, 90, 150, 250, 130), size=16, seed=0) -> Dataset:
    labels = np.repeat(np.arange(8), n_per_class)
    return Dataset(make_cells(len(labels), size, seed), labels)


def test_split_stratified_within_one_point_and_deterministic():
    ds = _imbalanced()
    groups = [[0, 1], [5, 400, 401], [1000, 1001, 1002, 1003]]
    with pytest.warns(UserWarning, match="filed under different classes"):  # group [5, 400, 401] spans two
        parts = split(ds, (0.8, 0.1, 0.1), seed=3, groups=groups)
    assert sum(len(p) for p in parts) == len(ds)
    overall = np.bincount(ds.labels, minlength=8) / len(ds)
    for part, frac in zip(parts, (0.8, 0.1, 0.1)):
        assert abs(len(part) / len(ds) - frac) < 0.01
        share = np.bincount(part.labels, minlength=8) / len(part)
        assert np.abs(share - overall).max() < 0.01
    with pytest.warns(UserWarning, match="filed under different classes"):
        again = split(ds, (0.8, 0.1, 0.1), seed=3, groups=groups)
    assert all(np.array_equal(a.labels, b.labels) and np.array_equal(a.images, b.images) for a, b in zip(parts, again))
    other = split_indices(ds.labels, (0.8, 0.1, 0.1), seed=4, groups=groups)
    assert not np.array_equal(other[1], split_indices(ds.labels, (0.8, 0.1, 0.1), seed=3, groups=groups)[1])


def test_split_keeps_duplicate_groups_on_one_side():
    ds = _imbalanced()
    rng = np.random.default_rng(0)
    groups = [sorted(rng.choice(len(ds), rng.integers(2, 6), replace=False).tolist()) for _ in range(60)]
    parts = split_indices(ds.labels, (0.7, 0.15, 0.15), groups=groups, seed=0)
    side = np.empty(len(ds), int)
    for k, idx in enumerate(parts):
        side[idx] = k
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(ds)))
    for g in groups:  # overlapping groups merge, so check each group and its overlaps
        assert len(set(side[g])) == 1


def test_split_finds_duplicates_itself():
    ds = _imbalanced((40, 40, 40, 40, 40, 40, 40, 40), size=32, seed=1)
    ds.images[[10, 50, 90]] = ds.images[10]  # one image filed three times (two classes)
    ds.images[200] = ds.images[201]
    with pytest.warns(UserWarning, match=r"image 10 \(basophil\) and image 50 \(eosinophil\)"):
        train, test = split(ds, (0.5, 0.5), seed=1)
    rows = {img.tobytes() for img in train.images}
    assert not any(img.tobytes() in rows for img in test.images)
    assert len(train) + len(test) == len(ds)


def test_split_two_fractions_without_stratify():
    ds = _imbalanced((30, 30, 30, 30, 30, 30, 30, 30))
    a, b = split(ds, (0.75, 0.25), stratify=False, groups=[])
    assert (len(a), len(b)) == (180, 60)


@pytest.mark.parametrize("fractions", [(0.8, 0.1), (1.0,), (0.5, 0.2, 0.2, 0.1), (1.2, -0.2)])
def test_split_rejects_bad_fractions(fractions):
    with pytest.raises(ValueError, match="fractions"):
        split_indices(np.zeros(10, int), fractions)


def test_high_bit_depth_images_keep_their_contrast(tmp_path):
    from bloodcell.imageio import as_rgb_array, read_image

    ramp = np.linspace(0, 4095, 64 * 64).reshape(64, 64).astype(np.uint16)  # 12-bit camera data
    Image.fromarray(ramp).save(tmp_path / "twelve_bit.png")
    from_file = read_image(tmp_path / "twelve_bit.png")
    assert from_file.max() == 255 and from_file.min() == 0
    np.testing.assert_array_equal(as_rgb_array(ramp), from_file)
    sixteen = (ramp.astype(np.uint32) * 16).astype(np.uint16)  # the full 16-bit range
    assert as_rgb_array(sixteen).max() == 255
    unit = Image.fromarray(np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64), mode="F")
    unit.save(tmp_path / "unit_float.tif")
    assert read_image(tmp_path / "unit_float.tif").max() == 255


def test_pil_images_are_turned_upright_like_files(tmp_path):
    from bloodcell.imageio import read_image

    pixels = np.zeros((40, 80, 3), np.uint8)
    pixels[:, :20] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    Image.fromarray(pixels).save(tmp_path / "rotated.jpg", exif=exif)
    by_path = read_image(tmp_path / "rotated.jpg")
    with Image.open(tmp_path / "rotated.jpg") as img:
        by_image = read_image(img)
    assert by_path.shape == (80, 40, 3)
    np.testing.assert_array_equal(by_image, by_path)


def test_save_refuses_the_input_root_with_nested_class_folders(tmp_path):
    root = tmp_path / "data"
    for c in CLASS_NAMES[:2]:
        (root / c / "day1").mkdir(parents=True)
        Image.fromarray(make_cells(1, 32, seed=len(c))[0]).save(root / c / "day1" / "a.png")
    data = load_dataset(root, image_size=32)
    with pytest.raises(ValueError, match="inside or around the input"):
        save_dataset(data, root / "clean")
    assert not (root / "clean").exists()
    save_dataset(data, tmp_path / "clean")  # beside the input is fine


def test_float_labels_and_bad_image_size_are_refused(tmp_path):
    images = make_cells(2, 32, seed=0)
    with pytest.raises(ValueError, match="integer class ids"):
        Dataset(images, [0.5, 1.7])
    assert Dataset(images, np.array([0.0, 1.0])).labels.tolist() == [0, 1]
    with pytest.raises(ValueError, match="image_size: expected the side in pixels"):
        load_dataset(tmp_path, image_size=0)


def test_npz_object_and_float_arrays_get_a_fix(tmp_path):
    objects = np.empty(2, dtype=object)
    objects[:] = [np.zeros((4, 4, 3), np.uint8), np.zeros((5, 5, 3), np.uint8)]
    np.savez(tmp_path / "ragged.npz", images=objects, labels=np.array([0, 1]))
    with pytest.raises(ValueError, match=r"ragged\.npz: 'images' is an array of Python objects"):
        load_dataset(tmp_path / "ragged.npz")
    np.savez(tmp_path / "float.npz", images=np.zeros((2, 8, 8, 3), np.float32), labels=np.array([0, 1]))
    with pytest.raises(ValueError, match="multiply 0..1 floats by 255"):
        load_dataset(tmp_path / "float.npz", image_size=8)


@pytest.mark.parametrize("damage", ["truncate", "corrupt"])
def test_damaged_npz_is_a_one_line_error(tmp_path, damage):
    from bloodcell.cli import main

    path = tmp_path / "cells.npz"
    rng = np.random.default_rng(0)
    np.savez_compressed(path, images=rng.integers(0, 255, (40, 16, 16, 3), dtype=np.uint8), labels=np.zeros(40, int))
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        raw = raw[: len(raw) // 2]
    else:
        raw[2000:2100] = b"x" * 100
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"cells\.npz: (not a readable \.npz|is damaged or truncated)"):
        load_dataset(path, image_size=16)
    assert main(["clean", str(path), "--out", str(tmp_path / "out.npz")]) == 2
    assert not (tmp_path / "out.npz").exists()


def test_hidden_files_and_folders_are_not_images(tmp_path):
    _write_tree(tmp_path, {"blasts": 2, "neutrophil": 1})
    (tmp_path / "blasts" / "._cell0.png").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")  # AppleDouble
    (tmp_path / "neutrophil" / ".ipynb_checkpoints").mkdir()
    (tmp_path / "neutrophil" / ".ipynb_checkpoints" / "x.png").write_bytes(b"not read")
    assert load_dataset(tmp_path, image_size=16).class_counts() == {"neutrophil": 1, "blasts": 2}
    from bloodcell.imageio import find_image_files

    assert len(find_image_files([tmp_path], recursive=True)) == 3


def test_arrays_where_a_dataset_is_expected_get_the_fix():
    images, labels = make_cells(4, 16), np.array([0, 1, 0, 1])
    with pytest.raises(DataError, match=r"split: expected a bloodcell Dataset, got a tuple; .*Dataset\(images"):
        split((images, labels))
    with pytest.raises(DataError, match="path: expected a folder or .npz path, got a tuple"):
        load_dataset((images, labels))


def test_a_dataset_prints_as_a_summary_not_its_arrays():
    text = repr(Dataset(make_cells(3, 16), np.array([0, 1, 1]), ("a", "b")))
    assert text == "Dataset(3 images of 16x16, 2 classes (a: 1, b: 2))"


def test_a_file_that_is_not_an_npz_says_so(tmp_path):
    (tmp_path / "fake.npz").write_text("images,labels\n")
    with pytest.raises(DataError, match=r"fake.npz: not an .npz file \(an .npz is a zip archive"):
        load_dataset(tmp_path / "fake.npz")


def test_float_tiffs_outside_0_255_are_refused_and_camera_depths_are_kept(tmp_path):
    from bloodcell.errors import ImageReadError
    from bloodcell.imageio import as_rgb_array, read_image

    grey = make_cells(1, 32)[0, ..., 0].astype(np.float32)
    Image.fromarray(grey * 16).save(tmp_path / "fiji32.tif")  # 12-bit data as a 32-bit float TIFF
    with pytest.raises(ImageReadError, match=r"fiji32\.tif: 32-bit float pixel values .*save the image as 8-bit"):
        read_image(tmp_path / "fiji32.tif")
    Image.fromarray(grey / 127.5 - 1).save(tmp_path / "signed.tif")
    with pytest.raises(ImageReadError, match="expected 0..1 or 0..255"):
        read_image(tmp_path / "signed.tif")
    twelve = (make_cells(1, 32)[0].astype(np.uint16) * 8)  # 12-bit data using 11 bits
    hot = twelve.copy()
    hot[0, 0, 0] = 2048  # one pixel reaching the 12th bit does not halve the image
    np.testing.assert_array_equal(as_rgb_array(twelve)[1:, 1:], as_rgb_array(hot)[1:, 1:])


def test_folders_of_parts_and_wrappers_are_named(tmp_path):
    cells = make_cells(2, 16)
    for part in ("TRAIN", "TEST"):
        for cls in ("EOSINOPHIL", "LYMPHOCYTE"):
            (tmp_path / "images" / part / cls).mkdir(parents=True)
            for i, img in enumerate(cells):
                Image.fromarray(img).save(tmp_path / "images" / part / cls / f"{i}.png")
    with pytest.raises(DataError, match=r"its folders \(TEST, TRAIN\) each hold class folders \(EOSINOPHIL, LYMPHOCYTE\).*"
                                         r"pass one of them, e.g. .*TRAIN"):
        load_dataset(tmp_path / "images", image_size=16)
    assert load_dataset(tmp_path / "images" / "TRAIN", image_size=16).present_classes().class_names == ("eosinophil",
                                                                                                   "lymphocyte")
    with pytest.raises(DataError, match=r"its folders \(TRAIN\) each hold class folders"):  # one part alone, wrapped
        load_dataset(_only(tmp_path / "images", "TRAIN"), image_size=16)
    (tmp_path / "grouped" / "granulocyte").mkdir(parents=True)  # a grouping of the user's own is a class
    (tmp_path / "images" / "TRAIN").rename(tmp_path / "grouped" / "granulocyte" / "x")
    for cls in ("neutrophil", "eosinophil"):
        (tmp_path / "grouped" / "granulocyte" / "x" / "EOSINOPHIL").rename(tmp_path / "grouped" / "granulocyte" / cls) \
            if cls == "eosinophil" else (tmp_path / "grouped" / "granulocyte" / "x" / "LYMPHOCYTE").rename(
                tmp_path / "grouped" / "granulocyte" / cls)
    (tmp_path / "grouped" / "granulocyte" / "x").rmdir()
    (tmp_path / "grouped" / "lymphocyte").mkdir()
    Image.fromarray(cells[0]).save(tmp_path / "grouped" / "lymphocyte" / "0.png")
    assert load_dataset(tmp_path / "grouped", image_size=16).class_names == ("lymphocyte", "granulocyte")
    for cls in ("blast", "smudge"):  # a wrapper around classes of the user's own
        (tmp_path / "wrap" / "dataset" / cls).mkdir(parents=True)
        Image.fromarray(cells[0]).save(tmp_path / "wrap" / "dataset" / cls / "0.png")
    with pytest.raises(DataError, match=r"one class folder only \('dataset'\).*if the classes are the folders inside it, pass"):
        load_dataset(tmp_path / "wrap", image_size=16)
    for part in ("train", "val"):  # parts named as such, holding classes of the user's own
        for cls in ("blast", "smudge"):
            (tmp_path / "own" / part / cls).mkdir(parents=True)
            Image.fromarray(cells[0]).save(tmp_path / "own" / part / cls / "0.png")
    with pytest.raises(DataError, match=r"its folders \(train, val\) each hold class folders \(blast, smudge\)"):
        load_dataset(tmp_path / "own", image_size=16)


def test_linked_folders_are_read_by_load_dataset_and_predict_alike(tmp_path):
    from bloodcell.imageio import find_image_files

    cells = make_cells(4, 16)
    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    (data / "basophil").mkdir(parents=True)
    (elsewhere / "mono" / "day2").mkdir(parents=True)
    Image.fromarray(cells[0]).save(data / "basophil" / "a.png")
    Image.fromarray(cells[1]).save(elsewhere / "mono" / "b.png")
    Image.fromarray(cells[2]).save(elsewhere / "mono" / "day2" / "c.jfif", format="JPEG")
    (data / "monocyte").symlink_to(elsewhere / "mono", target_is_directory=True)
    (elsewhere / "mono" / "loop").symlink_to(elsewhere / "mono", target_is_directory=True)  # a link loop ends
    assert len(load_dataset(data, image_size=16)) == 3
    assert len(find_image_files([data])) == 3


def test_save_dataset_guards_aliased_roots_and_folder_names(tmp_path):
    from bloodcell.errors import ConfigError

    cells = make_cells(2, 16)
    for cls in ("Basophil", "IG"):
        (tmp_path / "smear" / cls / "patient1").mkdir(parents=True)
        for i, img in enumerate(cells):
            Image.fromarray(img).save(tmp_path / "smear" / cls / "patient1" / f"{i}.png")
    ds = load_dataset(tmp_path / "smear", image_size=16)
    with pytest.raises(ConfigError, match="inside or around the input data"):
        save_dataset(ds, tmp_path / "smear" / "copy")
    assert not (tmp_path / "smear" / "copy").exists()
    assert load_dataset(tmp_path / "smear", image_size=16, class_names=["ig", "basophil"]).class_names == ("ig", "basophil")
    for bad in ("..", "CD4+/CD8+", ".unsure"):
        with pytest.raises(ConfigError, match="cannot be a folder name"):
            save_dataset(Dataset(cells, [0, 1], (bad, "b")), tmp_path / "out")
        assert not (tmp_path / "out").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["smear"]


def test_dataset_checks_give_fixes():
    from bloodcell.data import kfold
    from bloodcell.errors import ConfigError

    cells = make_cells(3, 16)
    with pytest.raises(DataError, match="images of different sizes"):
        Dataset([cells[0], cells[1, :8]], [0, 1])
    with pytest.raises(DataError, match=r"np.rint\(images\).astype\(np.uint8\)"):
        Dataset(cells.astype(np.float64), [0, 1, 0])
    ds = Dataset(cells, [0, 1, 0])
    with pytest.raises(ConfigError, match="k = 5 folds of 3 images"):
        kfold(ds, 5)
    with pytest.raises(DataError, match="expected a bloodcell Dataset"):
        kfold((cells, [0, 1, 0]), 2)
    with pytest.raises(ConfigError, match=r"e.g. \(0.8, 0.1, 0.1\)"):
        split(ds, "0.8")
    with pytest.raises(DataError, match="index 5 is out of range for 3 images"):
        ds.subset([5])
    with pytest.raises(DataError, match="integer indices"):
        ds.subset([0.5])


def test_npz_object_class_names_and_parts_get_fixes(tmp_path):
    cells = make_cells(2, 16)
    np.savez(tmp_path / "obj.npz", images=cells, labels=[0, 1], class_names=np.array(["blast", "smudge"], dtype=object))
    with pytest.raises(DataError, match=r"'class_names' is an array of Python objects.*np.array\(names, dtype=str\)"):
        load_dataset(tmp_path / "obj.npz")
    np.savez(tmp_path / "medmnist.npz", train_images=cells, train_labels=[[0], [1]], test_images=cells, test_labels=[[0], [1]])
    with pytest.raises(DataError, match=r"parts \(test, train\) as MedMNIST files do"):
        load_dataset(tmp_path / "medmnist.npz")


def test_pil_warnings_name_the_file(tmp_path):
    from bloodcell.imageio import read_image

    frames = [Image.fromarray(c) for c in make_cells(3, 16)]
    frames[0].save(tmp_path / "stack.tif", save_all=True, append_images=frames[1:])
    with pytest.warns(UserWarning, match=r"stack\.tif: holds 3 images .*only the first is read"):
        read_image(tmp_path / "stack.tif")
    with warnings.catch_warnings():  # as errors (-W error), it is that warning, not a "damaged" file
        warnings.simplefilter("error")
        with pytest.raises(UserWarning, match="only the first is read"):
            read_image(tmp_path / "stack.tif")


def _only(root: Path, keep: str) -> Path:
    """``root`` with every folder but ``keep`` removed."""
    import shutil

    for d in root.iterdir():
        if d.name != keep:
            shutil.rmtree(d)
    return root


def test_loading_a_folder_in_threads_leaves_the_warning_filters_alone(tmp_path):
    import warnings

    cells = make_cells(70, 16)
    for i, img in enumerate(cells):  # over 64 files: read in threads
        (tmp_path / ("basophil" if i % 2 else "monocyte")).mkdir(exist_ok=True)
        Image.fromarray(img).save(tmp_path / ("basophil" if i % 2 else "monocyte") / f"{i}.png")
    before = list(warnings.filters)
    assert len(load_dataset(tmp_path, image_size=16, workers=4)) == 70
    assert warnings.filters == before


def _two_page_tiff_without_a_second_width(path: Path) -> None:
    import struct

    pages = [Image.fromarray(c) for c in make_cells(2, 16)]
    pages[0].save(path, save_all=True, append_images=pages[1:])
    b = bytearray(path.read_bytes())
    first = struct.unpack_from("<I", b, 4)[0]
    second = struct.unpack_from("<I", b, first + 2 + 12 * struct.unpack_from("<H", b, first)[0])[0]
    for i in range(struct.unpack_from("<H", b, second)[0]):
        if struct.unpack_from("<H", b, second + 2 + 12 * i)[0] == 256:  # ImageWidth: a private tag now
            struct.pack_into("<H", b, second + 2 + 12 * i, 65000)
    path.write_bytes(bytes(b))


def test_a_file_pil_fails_on_with_any_error_is_a_one_line_error_naming_it(tmp_path):
    from bloodcell.imageio import read_image

    (tmp_path / "basophil").mkdir()
    _two_page_tiff_without_a_second_width(tmp_path / "basophil" / "bad.tif")  # PIL: TypeError, Missing dimensions
    with pytest.raises(ValueError, match=r"bad\.tif: the image is damaged or truncated \(Missing dimensions\)"):
        read_image(tmp_path / "basophil" / "bad.tif")
    with pytest.raises(ValueError, match=r"bad\.tif: the image is damaged"):
        load_dataset(tmp_path, image_size=16)
    with pytest.raises(ValueError, match=r"cannot be read .*check the path"):
        read_image(tmp_path / ("a" * 300 + ".png"))


def _png16(path: Path, rgb: np.ndarray) -> None:
    """A 16-bit RGB PNG (PIL cannot write one)."""
    import struct
    import zlib

    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_16_bit_colour_of_12_bit_data_is_refused_and_full_range_is_read(tmp_path):
    from bloodcell.imageio import read_image

    cell = make_cells(1, 16)[0].astype(np.uint16)
    _png16(tmp_path / "full.png", cell * 257)
    assert np.abs(read_image(tmp_path / "full.png").astype(int) - cell).max() <= 1
    _png16(tmp_path / "camera.png", cell * 16)  # 12-bit data: PIL keeps the top byte, 0..15
    with pytest.raises(ValueError, match=r"camera\.png: 16-bit colour whose values use 13 bits or fewer.*8-bit RGB"):
        read_image(tmp_path / "camera.png")
    # 14-bit data: scaled by the camera's bit depth as the same array is (it read 4 times too dark)
    _png16(tmp_path / "fourteen.png", cell * 64 + 63)
    from bloodcell.imageio import load_images

    by_array = load_images(cell[None] * 64 + 63, 16)[0].astype(int)
    assert np.abs(read_image(tmp_path / "fourteen.png").astype(int) - by_array).max() <= 3
    assert np.abs(by_array - cell).max() <= 1


def test_pil_warnings_from_reader_threads_name_the_file(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from bloodcell.imageio import read_image

    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "CameraMakerName!", "ModelName12345"
    Image.fromarray(make_cells(1, 16)[0]).save(tmp_path / "exif.jpg", exif=exif.tobytes()[:-20])  # truncated
    with pytest.warns(UserWarning, match=r"exif\.jpg: Truncated File Read"):
        with ThreadPoolExecutor(2) as pool:
            assert pool.submit(read_image, tmp_path / "exif.jpg").result().shape == (16, 16, 3)


def test_copies_of_one_image_under_two_classes_are_warned_of_when_splitting():
    from bloodcell.data import kfold

    images, labels = make_cells(40, 16), np.arange(40) % 2
    images[1] = images[0][:, ::-1]  # a mirrored copy, filed under the other class
    data = Dataset(images, labels, ("a", "b"))
    with pytest.warns(UserWarning, match=r"1 group\(s\) of copies .* image 0 \(a\) and image 1 \(b\).*bloodcell clean"):
        split(data, (0.5, 0.5))
    with pytest.warns(UserWarning, match="filed under different classes"):
        kfold(data, 2)


def test_plurals_spellings_and_other_sets_short_names_name_the_canonical_classes(tmp_path):
    """Folders named as other data sets and people name them load as the 8 classes, so a model
    from the zoo keeps its trained units for them (a new class would start from scratch)."""
    folders = {"neutrophils": 1, "Lymphocytes": 1, "eos": 1, "ERB": 1, "platelets": 1,
               "Immature granulocytes": 1, "Baso": 1, "MONO": 1}
    _write_tree(tmp_path, folders)
    ds = load_dataset(tmp_path, image_size=32)
    assert ds.class_names == CLASS_NAMES and all(n == 1 for n in ds.class_counts().values())
    _write_tree(tmp_path / "twice", {"neutrophil": 1, "Neutrophils": 1})
    with pytest.raises(DataError, match="both hold class 'neutrophil'"):
        load_dataset(tmp_path / "twice")
    # the blood count's abbreviations, plural
    _write_tree(tmp_path / "count", {"Lymphs": 1, "Monos": 1, "Neuts": 1, "Basos": 1, "Plts": 1})
    assert load_dataset(tmp_path / "count", image_size=32).present_classes().class_names == (
        "basophil", "lymphocyte", "monocyte", "neutrophil", "platelet")
    # two names of one class in a list of class names: every matcher would fold them into one
    with pytest.raises(bloodcell.ConfigError, match="'eos' and 'eosinophil' both name the class 'eosinophil'"):
        Dataset(np.zeros((2, 8, 8, 3), np.uint8), np.array([0, 1]), ("eosinophil", "neutrophil")).relabel(
            ["eos", "eosinophil", "neutrophil"])


def test_datasets_compare_as_objects_and_take_slices():
    data = Dataset(np.arange(4 * 8 * 8 * 3, dtype=np.uint8).reshape(4, 8, 8, 3) % 255, np.array([0, 1, 0, 1]), ("a", "b"))
    assert data == data and data != Dataset(data.images, data.labels, data.class_names)  # no ambiguous array truth
    part = data.subset(slice(1, 3))
    assert len(part) == 2 and part.labels.tolist() == [1, 0] and np.array_equal(part.images, data.images[1:3])
    with pytest.raises(DataError, match=r"split: group \[0, 99\] has row indices outside 0..3"):
        split(data, (0.5, 0.5), groups=[[0, 99]])


def test_parts_of_a_data_set_are_never_taken_for_classes(tmp_path):
    # the usual course layout: train/<class>/..., and test/ of unlabelled images
    _write_tree(tmp_path / "kaggle" / "train", {"basophil": 2, "eosinophil": 2})
    _write_tree(tmp_path / "kaggle", {"test": 3})
    with pytest.raises(DataError, match=r"its folder train holds class folders \(basophil, eosinophil\).*"
                                        r"e\.g\. .*kaggle/train, as the data folder"):
        load_dataset(tmp_path / "kaggle")
    _write_tree(tmp_path / "beside", {"basophil": 2, "eosinophil": 2, "test": 2})
    with pytest.raises(DataError, match=r"'test' beside the class folders are named like parts of a data set"):
        load_dataset(tmp_path / "beside")
    # kept as a class when the user says so
    assert "test" in load_dataset(tmp_path / "beside", image_size=32,
                                  class_names=["basophil", "eosinophil", "test"]).class_names


def test_a_class_folder_link_to_nowhere_is_named(tmp_path):
    _write_tree(tmp_path, {"basophil": 2, "eosinophil": 2})
    (tmp_path / "monocyte").symlink_to(tmp_path / "unmounted" / "monocyte")
    with pytest.raises(DataError, match=r"monocyte: a link to a missing folder .*its class would be left out"):
        load_dataset(tmp_path)


def test_a_link_up_to_the_data_does_not_relabel_the_other_classes(tmp_path):
    _write_tree(tmp_path, {"basophil": 2, "eosinophil": 3})
    (tmp_path / "basophil" / "up").symlink_to(tmp_path)
    assert load_dataset(tmp_path, image_size=32).class_counts() == {**dict.fromkeys(CLASS_NAMES, 0),
                                                                   "basophil": 2, "eosinophil": 3}


def test_an_orientation_in_xmp_is_applied_when_reading_as_at_prediction(tmp_path):
    from bloodcell.imageio import read_image

    pixels = np.zeros((32, 32, 3), np.uint8)
    pixels[:, :16] = 255
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>')
    for name in ("basophil", "eosinophil"):
        (tmp_path / name).mkdir()
        Image.fromarray(pixels).save(tmp_path / name / "turned.jpg", quality=95, xmp=xmp)
    ds = load_dataset(tmp_path, image_size=32)
    np.testing.assert_array_equal(ds.images[0], read_image(tmp_path / "basophil" / "turned.jpg"))
    assert abs(float(ds.images[0][:, :16].mean()) - float(pixels[:, :16].mean())) > 50  # turned a quarter


@pytest.mark.skipif(not hasattr(__import__("os"), "geteuid") or __import__("os").geteuid() == 0,
                    reason="root reads files whatever their permissions")
def test_files_and_folders_without_read_permission_are_named_not_dropped(tmp_path):
    from bloodcell.data import load_readable

    _write_tree(tmp_path, {"basophil": 2, "eosinophil": 2})
    (tmp_path / "basophil" / "img0.png").chmod(0)
    with pytest.raises(DataError, match=r"img0\.png: cannot be read .*check its permissions"):
        load_readable(tmp_path)  # clean's loader stops: the image may be intact
    (tmp_path / "basophil" / "img0.png").chmod(0o644)
    (tmp_path / "eosinophil" / "more").mkdir()
    (tmp_path / "eosinophil" / "more").chmod(0)
    with pytest.raises(DataError, match=r"more: cannot be listed"):
        load_dataset(tmp_path)


def test_save_keeps_sub_folders_inside_a_class_folder(tmp_path):
    _write_tree(tmp_path / "data" / "basophil", {"patient1": 2, "patient2": 2})
    _write_tree(tmp_path / "data", {"eosinophil": 2})
    ds = load_dataset(tmp_path / "data", image_size=32)
    save_dataset(ds, tmp_path / "out")
    written = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.png"))
    assert written == ["basophil/patient1/img0.png", "basophil/patient1/img1.png", "basophil/patient2/img0.png",
                       "basophil/patient2/img1.png", "eosinophil/img0.png", "eosinophil/img1.png"]
    np.testing.assert_array_equal(load_dataset(tmp_path / "out", image_size=32).images, ds.images)


def test_subset_from_split_file_takes_the_listed_images_and_refuses_a_list_of_another_folder(tmp_path):
    import json

    from bloodcell.data import subset_from_split_file
    from bloodcell.errors import InputNotFoundError

    ds = load_dataset(SAMPLE, image_size=32)
    listed = tmp_path / "test_files.json"
    listed.write_text(json.dumps(["basophil/BA_114899.jpg", "Basophils/BA_208485.jpg"]))  # an aliased folder matches
    part = subset_from_split_file(ds, listed, SAMPLE)
    assert len(part) == 2 and set(part.class_counts().items()) >= {("basophil", 2)}
    listed.write_text(json.dumps(["basophil/BA_114899.jpg", "basophil/BA_999.jpg"]))
    with pytest.raises(DataError, match=r"1 of 2 listed files are not images of .*'basophil/BA_999.jpg'"):
        subset_from_split_file(ds, listed, SAMPLE)
    listed.write_text('{"not": "a list"}')
    with pytest.raises(DataError, match="expected a JSON list of paths relative to"):
        subset_from_split_file(ds, listed, SAMPLE)
    with pytest.raises(InputNotFoundError, match="no such file"):
        subset_from_split_file(ds, tmp_path / "missing.json", SAMPLE)
    listed.write_text("[]")
    with pytest.raises(DataError, match=r"test_files.json: lists no images; pass the test_files.json a training run"):
        subset_from_split_file(ds, listed, SAMPLE)
