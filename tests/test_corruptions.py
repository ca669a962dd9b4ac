import numpy as np
import pytest
import tensorflow as tf
from synth_cells import make_cells

from bloodcell.corruptions import CORRUPTIONS, SEVERITIES, SEVERITY_PARAMS, corrupt, corrupt_tf
from bloodcell.errors import DataError

NAMES = (
    "defocus_blur", "motion_blur", "jpeg", "pixelate", "gaussian_noise", "brightness_up",
    "brightness_down", "contrast_up", "contrast_down", "saturation", "stain_blots", "bubbles",
)
RANDOM = {"motion_blur", "gaussian_noise", "stain_blots", "bubbles"}  # the others ignore the seed


@pytest.fixture(scope="module")
def images():
    return make_cells(3, 64, seed=7)


def test_names_and_severity_table():
    assert tuple(CORRUPTIONS) == NAMES
    assert set(SEVERITY_PARAMS) == set(NAMES)
    for name, entry in SEVERITY_PARAMS.items():
        assert entry["description"]
        for values in entry["parameters"].values():
            assert len(values) == len(SEVERITIES) == 5


@pytest.mark.parametrize("name", NAMES)
def test_corruption_grows_with_severity_and_is_deterministic(images, name):
    outs = [corrupt(images, name, s, seed=3) for s in SEVERITIES]
    for out in outs:
        assert out.shape == images.shape and out.dtype == np.uint8
    change = [np.abs(o.astype(np.float64) - images).mean() for o in outs]
    assert change[0] > 0.3, f"{name} severity 1 barely changes the images: {change}"
    assert all(a < b for a, b in zip(change, change[1:])), f"{name}: {change}"
    again = CORRUPTIONS[name](images, 3, seed=3)
    np.testing.assert_array_equal(again, outs[2])
    other = corrupt(images, name, 3, seed=4)
    assert (not np.array_equal(other, outs[2])) == (name in RANDOM)


def test_single_image_and_seed_beyond_int32(images):
    out = corrupt(images[0], "gaussian_noise", 2, seed=2**40 + 5)
    assert out.shape == images[0].shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, corrupt(images[0], "gaussian_noise", 2, seed=2**40 + 5))
    top = corrupt(images[0], "gaussian_noise", 2, seed=2**31 - 1)  # the command line's largest seed is its own
    assert not np.array_equal(top, corrupt(images[0], "gaussian_noise", 2, seed=0))


def test_a_float_batch_gets_the_cast_that_fixes_it(images):
    with pytest.raises(DataError, match=r"np.rint\(images\).astype\(np.uint8\)"):
        corrupt(images.astype(np.float32), "jpeg", 1)


def test_lengths_scale_with_image_size():
    # A blur of the same severity hides the same share of the cell: upscaling then blurring is
    # close to blurring then upscaling.
    small = make_cells(1, 48, seed=1)
    big = np.repeat(np.repeat(small, 2, axis=1), 2, axis=2)
    blur_small = corrupt(small, "defocus_blur", 4)
    blur_big = corrupt(big, "defocus_blur", 4)
    down = blur_big.reshape(1, 48, 2, 48, 2, 3).mean(axis=(2, 4))
    assert np.abs(down - blur_small).mean() < 3.0


def test_severity_zero_is_identity_in_the_tf_functions(images):
    x = tf.constant(images, tf.float32)
    for name in NAMES:
        out = corrupt_tf(x, name, tf.zeros([len(images)]), tf.constant([1, 2]))
        np.testing.assert_allclose(out.numpy(), images, atol=0.51, err_msg=name)


def test_empty_batch(images):
    out = corrupt_tf(tf.zeros([0, 32, 32, 3]), "bubbles", tf.zeros([0]), tf.constant([1, 2]))
    assert out.shape == (0, 32, 32, 3)


@pytest.mark.parametrize("severity", [0, 6, 2.5, True, "3"])
def test_bad_severity(images, severity):
    with pytest.raises(ValueError, match="1..5"):
        corrupt(images, "jpeg", severity)


def test_bad_name_lists_the_valid_ones(images):
    with pytest.raises(ValueError, match="unknown corruption 'fog'.*defocus_blur.*bubbles"):
        corrupt(images, "fog", 1)


def test_bad_images():
    with pytest.raises(ValueError, match="uint8"):
        corrupt(np.zeros((2, 8, 8, 3), np.float32), "jpeg", 1)
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        corrupt(np.zeros((2, 8, 8), np.uint8), "jpeg", 1)
