"""Real data offline (spec section 10): the IDX reader on files these tests write, the MNIST
loader's refusals, and the task builder's shapes, balance, norms, split and seeding.

Expected values come from the test's own construction: the IDX bytes are packed here with
``struct`` from the arrays they must read back as; the signal tokens are recomputed from the
pool rows each sample names (``TokenDataset.image``) and the definition (centre by the
training mean image, scale to mu_norm)."""

import gzip
import math
import struct
import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import signsim
from signsim.data import TokenDataset, make_data
from signsim.datasets import (ImagePool, MissingDataError, build_task, load_digits, load_mnist,
                              read_idx, task_classes)
from signsim.datasets import digits as digits_module

CODES = {np.dtype("uint8"): 0x08, np.dtype("int8"): 0x09, np.dtype("int16"): 0x0B,
         np.dtype("int32"): 0x0C, np.dtype("float32"): 0x0D, np.dtype("float64"): 0x0E}
DIGITS = {"data": "digits", "kernel": "dense", "d": 64, "n": 20, "n_test": 30, "steps": 2}


def idx_bytes(array: np.ndarray, code: int | None = None) -> bytes:
    """The IDX encoding of ``array``, packed by hand: 0, 0, type, ndim, big-endian sizes,
    big-endian elements."""
    code = CODES[array.dtype] if code is None else code
    head = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return head + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write(path, data: bytes, gz: bool = False):
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


# ------------------------------------------------------------------ the IDX reader


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype,shape", [("uint8", (5, 4, 3)), ("float64", (3, 2)),
                                         ("int16", (7,)), ("float32", (2, 2, 2, 2))])
def test_read_idx_gives_back_the_array_written(tmp_path, gz, dtype, shape):
    """Every element type and rank, plain or gzipped, reads back value for value."""
    rng = np.random.default_rng(1)
    array = (rng.standard_normal(shape) * 100).astype(dtype)
    got = read_idx(write(tmp_path / "a-idx", idx_bytes(array), gz))
    assert got.dtype == array.dtype and got.dtype.isnative
    assert_array_equal(got, array)


def test_the_reader_is_public_as_signsim_datasets_read_idx():
    """``import signsim`` is enough to reach it (without importing scikit-learn)."""
    assert signsim.datasets.read_idx is read_idx


def test_gzip_is_recognised_by_its_bytes_not_the_name(tmp_path):
    """A gzipped file without .gz, and a plain one named .gz, both read."""
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert_array_equal(read_idx(write(tmp_path / "plain.gz", idx_bytes(array))), array)
    assert_array_equal(read_idx(write(tmp_path / "packed", idx_bytes(array), gz=True)), array)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("case,text", [
    ("truncated", "truncated"), ("trailing", "longer than its header"),
    ("magic", "magic number"), ("type", "magic number"), ("no dims", "0 dimensions"),
    ("short header", "truncated"), ("empty", "magic number"),
])
def test_malformed_idx_files_are_refused_naming_the_file(tmp_path, gz, case, text):
    """Each kind of damage is a ValueError that names the file and the problem."""
    good = idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
    data = {"truncated": good[:-5], "trailing": good + b"\x00\x01",
            "magic": b"\x01" + good[1:], "type": good[:2] + b"\x07" + good[3:],
            "no dims": good[:3] + b"\x00", "short header": good[:9], "empty": b""}[case]
    path = write(tmp_path / f"bad-{case.replace(' ', '-')}", data, gz)
    with pytest.raises(ValueError, match=text) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_a_damaged_gzip_stream_is_refused_naming_the_file(tmp_path):
    """gzip's magic bytes followed by garbage: not silently read as IDX."""
    path = write(tmp_path / "broken.gz", b"\x1f\x8b" + b"\x00" * 30)
    with pytest.raises(ValueError, match="gzip") as info:
        read_idx(path)
    assert str(path) in str(info.value)


# ------------------------------------------------------------------ MNIST from a folder


def mnist_folder(path, n_train=40, n_test=30, side=6, gz=True, **damage):
    """Four small IDX files in MNIST's names: every image of a digit k has pixel value
    10 k + 1 + (its row % 7) in its first pixel and random others, so its class and its
    file are readable from it; t10k images have pixel 1 = 255, train ones 0."""
    rng = np.random.default_rng(7)
    for split, count in (("train", n_train), ("t10k", n_test)):
        labels = (np.arange(count) % 10).astype(np.uint8)
        images = rng.integers(0, 200, size=(count, side, side), dtype=np.uint8)
        images[:, 0, 0] = 10 * labels + 1 + np.arange(count) % 7
        images[:, 0, 1] = 255 if split == "t10k" else 0
        images = damage.get(f"{split}_images", images)
        labels = damage.get(f"{split}_labels", labels)
        write(path / f"{split}-images-idx3-ubyte{'.gz' * gz}", idx_bytes(images), gz)
        write(path / f"{split}-labels-idx1-ubyte{'.gz' * gz}", idx_bytes(labels), gz)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_loads_both_splits_from_a_folder(tmp_path, gz):
    folder = mnist_folder(tmp_path, gz=gz)
    train, test = load_mnist(folder, "train"), load_mnist(folder, "test")
    assert train.images.shape == (40, 36) and test.images.shape == (30, 36)
    assert train.shape == (6, 6) and train.images.dtype == np.float64
    assert_array_equal(train.labels, np.arange(40) % 10)
    assert (train.images[:, 1] == 0).all() and (test.images[:, 1] == 255).all()


def test_missing_mnist_files_name_the_files_expected(tmp_path):
    """An empty folder: a ValueError (and FileNotFoundError) listing every file name."""
    with pytest.raises(MissingDataError) as info:
        load_mnist(tmp_path, "train")
    message = str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, FileNotFoundError)
    for name in ("train-images-idx3-ubyte[.gz]", "train-labels-idx1-ubyte[.gz]",
                 "t10k-images-idx3-ubyte[.gz]", "t10k-labels-idx1-ubyte[.gz]"):
        assert name in message
    assert repr(str(tmp_path)) in message


@pytest.mark.parametrize("damage,named,text", [
    ({"train_labels": np.zeros(39, np.uint8)}, "train-labels", "do not match"),
    ({"train_images": np.zeros((40, 36), np.uint8)}, "train-images", "(count, height, width)"),
    ({"train_labels": np.full(40, 11, np.uint8)}, "train-labels", "digits 0-9"),
    ({"train_labels": np.zeros(40, np.int16)}, "train-labels", "uint8"),
    ({"train_images": np.zeros((40, 6, 6), np.float32)}, "train-images", "uint8"),
])
def test_mnist_files_that_do_not_fit_are_refused_naming_the_file(tmp_path, damage, named,
                                                                   text):
    """Wrong dimensions, wrong type, labels that are not digits, mismatched counts."""
    mnist_folder(tmp_path, **damage)
    with pytest.raises(ValueError, match=text.replace("(", r"\(").replace(")", r"\)")) as info:
        load_mnist(tmp_path, "train")
    assert named in str(info.value)


def test_an_mnist_task_trains_on_train_files_and_tests_on_t10k(tmp_path):
    """data='mnist': every training image comes from the train files, every test image from
    t10k, each of the class its label says (read from the first pixel)."""
    folder = mnist_folder(tmp_path)
    config = signsim.Config(**{**DIGITS, "data": "mnist", "data_path": str(folder), "d": 40,
                               "n": 8, "n_test": 6, "task": "3,7"})
    train, test = make_data(config)
    pools = load_mnist(folder, "train"), load_mnist(folder, "test")
    for data, pool in zip((train, test), pools):
        digit = (pool.images[data.image, 0] - 1) // 10
        assert_array_equal(np.where(data.y > 0, 3, 7), digit)
    assert (pools[1].images[test.image, 1] == 255).all()
    result = signsim.run(config)  # and it trains, end to end
    assert np.isfinite(result.history["train_loss"]).all()


def test_mnist_without_a_folder_names_the_parameter():
    with pytest.raises(ValueError, match="'data_path'"):
        make_data(signsim.Config(**{**DIGITS, "data": "mnist", "d": 784}))


# ------------------------------------------------------------------ the task builder


def expected_signal(pool: ImagePool, train: TokenDataset, data: TokenDataset, d: int,
                    mu_norm: float) -> np.ndarray:
    """The signal tokens by definition: the images of ``data.image`` centred by the mean
    image of the training rows, scaled to mu_norm, zero-padded to d."""
    mean = pool.images[train.image].mean(axis=0)
    centred = pool.images[data.image] - mean
    out = np.zeros((data.n, d))
    out[:, :centred.shape[1]] = mu_norm * centred / np.linalg.norm(centred, axis=1)[:, None]
    return out


@pytest.mark.parametrize("noise", ["sparse", "dense"])
def test_task_shapes_tokens_and_norms(noise):
    """X is (n, d, 2) with the signal token at its position and the noise token at the
    other; each signal token is the centred image at norm mu_norm, 0 beyond the pixels."""
    config = signsim.Config(**{**DIGITS, "d": 100, "s": 7, "mu_norm": 2.5, "noise": noise,
                               "sigma_p": 0.3})
    train, test = make_data(config)
    pool = load_digits()
    for data, n in ((train, 20), (test, 30)):
        assert data.X.shape == (n, 100, 2) and data.signal.shape == data.noise.shape == (n, 100)
        assert_allclose(np.linalg.norm(data.signal, axis=1), 2.5, rtol=1e-14, atol=0)
        assert (data.signal[:, 64:] == 0).all()
        assert_allclose(data.signal, expected_signal(pool, train, data, 100, 2.5),
                        rtol=0, atol=1e-14)
        rows = np.arange(n)
        assert_array_equal(data.X[rows, :, data.signal_position], data.signal)
        assert_array_equal(data.X[rows, :, 1 - data.signal_position], data.noise)
    nonzero = (train.noise != 0).sum(axis=1)
    assert_array_equal(nonzero, 7 if noise == "sparse" else 100)


def test_the_training_signal_tokens_are_centred():
    """Centred by the training mean image: the unscaled tokens sum to 0 over the training
    set (the test set is centred by the same, training, mean)."""
    train, _ = make_data(signsim.Config(**DIGITS))
    pool = load_digits()
    unscaled = pool.images[train.image] - pool.images[train.image].mean(axis=0)
    scale = np.linalg.norm(unscaled, axis=1)[:, None]
    assert_allclose((train.signal[:, :64] * scale).sum(axis=0), 0, atol=1e-9)


@pytest.mark.parametrize("noise,s", [("dense", 1), ("sparse", 40)])
def test_noise_tokens_are_gaussian_of_strength_sigma_p(noise, s):
    """The nonzero noise entries have mean 0 and standard deviation sigma_p (200 x 200 =
    4e4 (dense) or 200 x 40 = 8e3 (sparse) draws: the std is within 4% at 5 sigma); a
    sparse support is spread over all d coordinates."""
    config = signsim.Config(**{**DIGITS, "n": 200, "d": 200, "noise": noise, "s": s,
                               "sigma_p": 0.7})
    train, _ = make_data(config)
    values = train.noise[train.noise != 0]
    assert abs(values.mean()) < 5 * 0.7 / math.sqrt(values.size)
    assert values.std() == pytest.approx(0.7, rel=0.04)
    if noise == "sparse":
        used = np.flatnonzero((train.noise != 0).any(axis=0))
        assert used.min() < 10 and used.max() > 190


@pytest.mark.parametrize("task", ["3,8", "8,3", "0,1", "even-odd"])
@pytest.mark.parametrize("n,n_test", [(20, 30), (21, 7)])
def test_classes_are_balanced_and_labelled_by_the_task(task, n, n_test):
    """ceil(n/2) samples of the +1 class and floor(n/2) of the -1 class, each image of a
    digit of its label's class."""
    train, test = make_data(signsim.Config(**{**DIGITS, "task": task, "n": n,
                                              "n_test": n_test}))
    pool = load_digits()
    positive, negative = task_classes(task)
    for data, count in ((train, n), (test, n_test)):
        assert (data.y == 1).sum() == (count + 1) // 2 and (data.y == -1).sum() == count // 2
        digit = pool.labels[data.image]
        assert np.isin(digit[data.y == 1], positive).all()
        assert np.isin(digit[data.y == -1], negative).all()


def test_even_odd_is_even_against_odd():
    assert task_classes("even-odd") == ((0, 2, 4, 6, 8), (1, 3, 5, 7, 9))
    assert task_classes("8,3") == ((8,), (3,))


def test_the_split_is_disjoint_and_seeded():
    """Same seed, same split (bit for bit); another seed, another split; no image in both
    sets; the training set does not depend on n_test."""
    config = signsim.Config(**{**DIGITS, "n": 60, "n_test": 200})
    a_train, a_test = make_data(config)
    b_train, b_test = make_data(config)
    for field in ("y", "signal_position", "signal", "noise", "image"):
        assert_array_equal(getattr(a_train, field), getattr(b_train, field))
        assert_array_equal(getattr(a_test, field), getattr(b_test, field))
    assert not set(a_train.image) & set(a_test.image)
    c_train, c_test = make_data(config.replace(seed=1))
    assert set(c_train.image) != set(a_train.image) and set(c_test.image) != set(a_test.image)
    d_train, _ = make_data(config.replace(n_test=10))
    assert_array_equal(d_train.image, a_train.image)
    assert_array_equal(d_train.noise, a_train.noise)


def test_signal_position_first_puts_every_image_first():
    train, _ = make_data(signsim.Config(**{**DIGITS, "signal_position": "first"}))
    assert (train.signal_position == 0).all()
    assert 0 < make_data(signsim.Config(**DIGITS))[0].signal_position.sum() < 20


def test_asking_for_more_images_than_a_class_has_names_n_and_n_test():
    """The 8x8 digits have 183 images of 3 and 174 of 8: 100 + 80 fit the 3s, not the 8s."""
    with pytest.raises(ValueError, match="'n' and 'n_test'.*digit\\(s\\) \\[8\\]"):
        make_data(signsim.Config(**{**DIGITS, "n": 200, "n_test": 160}))


def test_d_below_the_pixel_count_names_d():
    with pytest.raises(ValueError, match="The 'd' parameter must be at least 64.*Got 63"):
        make_data(signsim.Config(**{**DIGITS, "d": 63}))


def test_images_of_two_sizes_are_refused():
    small = ImagePool(np.zeros((4, 4)), np.array([0, 1, 0, 1]), (2, 2), "small")
    big = ImagePool(np.zeros((4, 9)), np.array([0, 1, 0, 1]), (3, 3), "big")
    with pytest.raises(ValueError, match="one size"):
        build_task(signsim.Config(**{**DIGITS, "task": "0,1", "n": 2, "n_test": 2}), small,
                   big, same_pool=False)


def test_dense_noise_is_for_real_data_only():
    with pytest.raises(ValueError, match="'noise' parameter must be 'sparse' for "
                                         "data='synthetic'"):
        signsim.run(n=4, d=50, s=3, steps=1, n_test=2, noise="dense")


def test_without_scikit_learn_the_error_names_the_extra(monkeypatch):
    """The ImportError of a missing optional dependency says how to install it."""
    digits_module._digits.cache_clear()
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    try:
        with pytest.raises(ImportError, match=r"signsim\[digits\]"):
            load_digits()
    finally:
        digits_module._digits.cache_clear()


def test_the_pools_are_read_only():
    """A cached pool cannot be changed by a caller (it is shared by every later run)."""
    pool = load_digits()
    assert pool.images.shape == (1797, 64) and pool.shape == (8, 8)
    with pytest.raises(ValueError):
        pool.images[0, 0] = 1.0
