"""Shared fixtures for the workload tests.

Everything here is SYNTHETIC and tiny: no real dataset is read. `synthetic_data` builds
28x28x1 float32 images of Gaussian noise (std 0.3) with one bright 7x7 patch whose position is
fixed by the label (label k in 0..3 -> the k-th quadrant), so a small CNN learns the rule in
a few dozen SGD steps. `synthetic_mnist` writes SYNTHETIC MNIST-shaped images (the same rule,
a fainter patch) as `mnist.npz` in a temporary REPRO_DATA folder, for command-line tests.
"""
import dataclasses
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@dataclasses.dataclass
class SyntheticData:
    """The attributes repro.engine.Engine reads from a dataset object."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


def make_images(n, seed, classes=4):
    """n SYNTHETIC 28x28x1 images: noise plus a bright patch in the quadrant given by the label."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % classes).astype(np.int32)
    rng.shuffle(y)
    x = rng.normal(0.0, 0.3, size=(n, 28, 28, 1)).astype(np.float32)
    for i, label in enumerate(y):
        r, c = divmod(int(label), 2)
        x[i, 3 + 14 * r:10 + 14 * r, 3 + 14 * c:10 + 14 * c, 0] += 2.0
    return x, y


def make_data(n_train=64, n_val=64, seed=0):
    x_train, y_train = make_images(n_train, seed)
    x_val, y_val = make_images(n_val, seed + 1000)
    return SyntheticData(x_train, y_train, x_val, y_val)


@pytest.fixture(scope="session")
def synthetic_data():
    """64 train + 64 validation SYNTHETIC images (see module docstring)."""
    return make_data()


def synthetic_mnist_images(n, seed):
    """n SYNTHETIC uint8 28x28 images of uniform noise with a faint 7x7 patch in the label's
    quadrant (labels 0..3): a small CNN needs some dozens of steps to find it, some trials never do."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 4).astype(np.uint8)
    rng.shuffle(y)
    x = rng.integers(0, 200, size=(n, 28, 28), dtype=np.uint8)
    for label in range(4):
        r, c = divmod(label, 2)
        x[y == label, 3 + 14 * r:10 + 14 * r, 3 + 14 * c:10 + 14 * c] += 20
    return x, y


@pytest.fixture(scope="session")
def synthetic_mnist(tmp_path_factory):
    """A REPRO_DATA folder whose mnist.npz is SYNTHETIC (MNIST's shapes, `synthetic_mnist_images`),
    for tests that train through the command line (`REPRO_DATA=<folder> python -m repro run ...`)."""
    folder = tmp_path_factory.mktemp("data")
    x_train, y_train = synthetic_mnist_images(60000, seed=0)
    x_test, y_test = synthetic_mnist_images(10000, seed=1)
    np.savez(folder / "mnist.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return folder
