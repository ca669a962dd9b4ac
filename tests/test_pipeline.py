import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from synth_cells import make_cells

from bloodcell.errors import ImageReadError
from bloodcell.imageio import load_image
from bloodcell.pipeline import augment_dataset, dataset_from_files, make_dataset


@pytest.fixture(scope="module")
def data():
    images = make_cells(20, 32, seed=5)
    labels = np.arange(20) % 8
    return images, labels


def collect(ds):
    batches = list(ds)
    return np.concatenate([x.numpy() for x, _ in batches]), np.concatenate([y.numpy() for _, y in batches])


def test_plain_batches_keep_images_and_order(data):
    images, labels = data
    ds = make_dataset(images, labels, batch_size=8, shuffle=False)
    x, y = collect(ds)
    assert x.dtype == np.float32 and y.dtype == np.float32
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y.argmax(1), labels)
    assert [b[0].shape[0] for b in ds] == [8, 8, 4]
    assert [b[0].shape[0] for b in make_dataset(images, labels, batch_size=8, drop_remainder=True)] == [8, 8]


def test_shuffle_covers_every_image_once(data):
    images, labels = data
    x, y = collect(make_dataset(images, labels[:, None], batch_size=6, seed=1))
    assert sorted(map(bytes, x.astype(np.uint8))) == sorted(map(bytes, images))
    assert sorted(y.argmax(1)) == sorted(labels)


@pytest.mark.parametrize("preset", ["seed", "robust"])
def test_augmented_batches(data, preset):
    images, labels = data
    ds = make_dataset(images, labels, batch_size=8, augment=preset, seed=3)
    assert ds.element_spec[0].shape.as_list() == [None, 32, 32, 3]
    x, y = collect(ds)
    assert x.shape == images.shape and 0 <= x.min() and x.max() <= 255
    np.testing.assert_allclose(y.sum(1), 1.0, atol=1e-5)
    assert not np.allclose(np.sort(x, axis=None), np.sort(images, axis=None).astype(np.float32))


def test_seeded_pipeline_is_deterministic(data):
    images, labels = data
    first = make_dataset(images, labels, batch_size=8, augment="robust", seed=9)
    second = make_dataset(images, labels, batch_size=8, augment="robust", seed=9)
    a, b = collect(first), collect(second)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    epoch2 = collect(first)
    np.testing.assert_array_equal(epoch2[0], collect(second)[0])  # the second epochs agree too
    assert not np.array_equal(epoch2[0], a[0])  # and differ from the first
    other = collect(make_dataset(images, labels, batch_size=8, augment="robust", seed=10))
    assert not np.array_equal(other[0], a[0])


def test_each_epoch_of_make_epochs_is_a_function_of_its_seed(data):
    """However often the dataset is iterated (Keras' JAX trainer reads a first batch, then starts
    over), and whichever epochs come before: epoch seed 7 gives the same batches."""
    from bloodcell.pipeline import make_epochs

    images, labels = data
    three = make_epochs(images, labels, [5, 6, 7], batch_size=8, augment="robust")
    first, again = collect(three), collect(three)
    alone = collect(make_epochs(images, labels, [7], batch_size=8, augment="robust"))
    n = len(alone[0])
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[0][-n:], alone[0])
    np.testing.assert_array_equal(first[1][-n:], alone[1])
    assert not np.array_equal(first[0][:n], alone[0])


def test_shards_of_make_epochs_make_up_the_global_batches(data):
    """Process i of 2 keeps block i of every global batch; together, in order, they are the
    batches of one process (whole global batches only)."""
    from bloodcell.pipeline import make_epochs

    images, labels = data
    whole = [y for _, y in make_epochs(images, labels, [3], batch_size=8, shuffle=True)]
    parts = [[y for _, y in make_epochs(images, labels, [3], batch_size=4, shard=(2, i))] for i in (0, 1)]
    assert len(parts[0]) == len(parts[1]) == len(images) // 8
    for k, (a, b) in enumerate(zip(*parts)):
        np.testing.assert_array_equal(np.concatenate([a, b]), whole[k])


def test_augmentation_chunks_split_back_into_batches():
    # 16 px images, batch 2: chunks of 32 batches (64 images), so 80 images make two chunks.
    images = make_cells(80, 16, seed=7)
    labels = np.arange(80) % 8
    ds = make_dataset(images, labels, batch_size=2, augment="seed", seed=1)
    assert int(ds.cardinality()) == 40
    x, y = collect(ds)
    assert [int(b[0].shape[0]) for b in ds] == [2] * 40
    assert x.shape == images.shape
    np.testing.assert_allclose(y.sum(1), 1.0, atol=1e-5)
    odd = make_dataset(images[:77], labels[:77], batch_size=2, augment="seed", drop_remainder=True)
    assert int(odd.cardinality()) == 38 and [int(b[0].shape[0]) for b in odd] == [2] * 38
    tail = make_dataset(images[:77], labels[:77], batch_size=2, augment="seed")
    assert int(tail.cardinality()) == 39 and [int(b[0].shape[0]) for b in tail][-2:] == [2, 1]
    forever = make_dataset(images, labels, batch_size=2, augment="seed", repeat=True)
    assert int(forever.cardinality()) == int(tf.data.INFINITE_CARDINALITY)
    assert make_dataset(images[:1], labels[:1], batch_size=2, augment="seed", drop_remainder=True).cardinality() == 0


def test_repeat(data):
    images, labels = data
    ds = make_dataset(images, labels, batch_size=8, augment="seed", repeat=True)
    assert len(list(ds.take(7))) == 7


def test_trains_a_model(data):
    import keras

    images, labels = data
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Rescaling(1 / 255),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(8, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    history = model.fit(make_dataset(images, labels, batch_size=8, augment="robust"), epochs=2, shuffle=False, verbose=0)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()


def test_bad_inputs(data):
    images, labels = data
    with pytest.raises(ValueError, match="uint8"):
        make_dataset(images.astype(np.float32), labels)
    with pytest.raises(ValueError, match="0..7"):
        make_dataset(images, labels + 1)
    with pytest.raises(ValueError, match=r"shape \(20,\)"):
        make_dataset(images, labels[:5])
    with pytest.raises(ValueError, match="batch_size"):
        make_dataset(images, labels, batch_size=0)
    with pytest.raises(ValueError, match="preset"):
        make_dataset(images, labels, augment="heavy")


def test_files_match_the_inference_path(tmp_path):
    cells = make_cells(5, 48, seed=2)
    paths = []
    for i, cell in enumerate(cells):
        img = Image.fromarray(cell).resize((48 + 8 * i, 48 + 4 * i))  # sizes differ: all are resized
        paths.append(tmp_path / f"{i}.{'png' if i % 2 else 'jpg'}")
        img.save(paths[-1])
    labels = np.array([0, 1, 2, 3, 4])
    x, y = collect(dataset_from_files(paths, labels, image_size=32, batch_size=2, shuffle=False))
    expected = np.stack([load_image(p, 32) for p in paths])
    np.testing.assert_array_equal(x, expected)
    np.testing.assert_array_equal(y.argmax(1), labels)
    augmented = dataset_from_files(paths, labels, image_size=32, batch_size=2, augment="robust", seed=1)
    assert int(augmented.cardinality()) == 3 and [int(b[0].shape[0]) for b in augmented] == [2, 2, 1]
    x, y = collect(augmented)
    assert x.shape == (5, 32, 32, 3)
    np.testing.assert_allclose(y.sum(1), 1.0, atol=1e-5)


def test_files_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.png"):
        dataset_from_files([tmp_path / "nope.png"], [0])
    with pytest.raises(ValueError, match="at least one"):
        dataset_from_files([], [])
    with pytest.raises(ValueError, match="expected a list of image files, got the single path"):
        dataset_from_files(str(tmp_path), [0])
    with pytest.raises(ValueError, match="is a folder, expected an image file; list its images"):
        dataset_from_files([tmp_path], [0])
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    with pytest.raises(ImageReadError, match=r"broken\.png: not a readable image") as info:
        dataset_from_files([broken], [0], image_size=32)  # before any iteration: one line, not a TF error
    assert "\n" not in str(info.value)
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageReadError, match=r"empty\.jpg: the file is empty"):
        dataset_from_files([tmp_path / "empty.jpg"], [0], image_size=32)
    # damaged after the header: the iteration stops with an error naming the file
    from PIL import Image

    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "cut.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "cut.png").read_bytes()[:60])
    with pytest.raises(Exception, match="cut.png"):
        list(dataset_from_files([tmp_path / "cut.png"], [0], image_size=32))


def test_augment_dataset(data):
    images, labels = data
    ds = tf.data.Dataset.from_tensor_slices((images.astype(np.float32), labels)).batch(8)
    x, y = collect(augment_dataset(ds, "seed", seed=1))
    assert x.shape == images.shape and y.shape == (20, 8)
    np.testing.assert_allclose(y.sum(1), 1.0, atol=1e-5)
    x, y = collect(augment_dataset(ds, None))
    np.testing.assert_array_equal(x, images)
    with pytest.raises(ValueError, match="batch the dataset"):
        augment_dataset(tf.data.Dataset.from_tensor_slices((images, labels)), "seed")


def test_process_exits_with_a_live_iterator(tmp_path):
    # An iterator still running at exit used to leave the process waiting forever for the
    # Python calls of its background threads.
    import subprocess
    import sys

    for i in range(16):
        Image.fromarray(np.full((40, 40, 3), 10 * i, np.uint8)).save(tmp_path / f"{i}.png")
    script = f"""
import numpy as np
from bloodcell.pipeline import dataset_from_files, make_dataset
x = np.zeros((512, 32, 32, 3), np.uint8); y = np.arange(512) % 8
live = iter(make_dataset(x, y, batch_size=8, augment="seed", repeat=True))
next(live)
files = iter(dataset_from_files([r"{tmp_path}/" + f"{{i}}.png" for i in range(16)], np.arange(16) % 8,
                                image_size=32, batch_size=4, augment="seed", repeat=True))
next(files)
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("ok")


def test_calls_into_python_stop_at_exit():
    # After exit begins, the pipelines' calls fail inside TensorFlow, before asking for the
    # interpreter lock: a thread that asks for it while Python shuts down never returns.
    from bloodcell.pipeline import _PythonCalls

    calls = _PythonCalls()
    seen = []

    def double(x):
        seen.append(int(x))
        return x * 2

    ds = tf.data.Dataset.range(3).map(lambda x: calls.call(double, [x], tf.int64))
    assert [int(v) for v in ds] == [0, 2, 4] and seen == [0, 1, 2]
    calls.close(timeout=1.0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="interpreter is shutting down"):
        list(ds)
    assert seen == [0, 1, 2]


def test_augment_dataset_names_what_is_wrong_before_iterating():
    from bloodcell.augment import build_augmentation
    from bloodcell.errors import DataError

    x = make_cells(8, 32)
    ids = np.arange(8) % 4
    cases = [((x, ids, np.ones(8)), {}, "3 components"), ((x[..., :1], ids), {}, "3 channels"),
             ((x, tf.one_hot(ids, 3)), {}, "pass num_classes=3"),
             ((x, ids), {"augment": build_augmentation("seed", num_classes=8), "num_classes": 4}, "built for 8 classes")]
    for elements, kw, message in cases:
        ds = tf.data.Dataset.from_tensor_slices(elements).batch(4)
        kw = {"augment": None, "num_classes": 4, **kw}
        with pytest.raises(DataError, match=message):
            augment_dataset(ds, kw.pop("augment"), **kw)
    ds = tf.data.Dataset.from_tensor_slices((x, np.arange(8) % 6)).batch(4)
    with pytest.raises(tf.errors.InvalidArgumentError, match="below num_classes = 4"):
        list(augment_dataset(ds, None, num_classes=4))


def test_trainer_refuses_class_ids_beyond_its_classes():
    import bloodcell
    from bloodcell.errors import DataError

    ds = tf.data.Dataset.from_tensor_slices((make_cells(16, 32), np.arange(16) % 6)).batch(8)
    trainer = bloodcell.Trainer("microcell", num_classes=4, head_epochs=1, finetune_epochs=0, patience=None,
                                input_size=32, batch_size=8, augment=None, verbose=0)
    with pytest.raises(DataError, match=r"4 class ids are outside 0..3"):
        trainer.fit(ds)
