"""Shared fixtures for the workload tests.

Everything here is SYNTHETIC and tiny: no real dataset is read. `synthetic_data` builds
28x28x1 float32 images of Gaussian noise (std 0.3) with one bright 7x7 patch whose position is
fixed by the label (label k in 0..3 -> the k-th quadrant), so a small CNN learns the rule in
a few dozen SGD steps.
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
