"""Tests for repro.figures on a SYNTHETIC results dataset (no training involved).

The dataset follows docs/results-format.md but only holds what the data-parallelism renderer
reads: 3 panels x sparsities {0, 0.5, 0.9} x 5 batch sizes, K* = c1/B + c2 with a few NaN holes,
and panel "c" entirely NaN (never run).
"""

import os
import pathlib

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pytest
import xarray as xr

from repro import figures

BATCH = np.array([2, 8, 32, 128, 512], dtype=np.int64)
SPARSITY = np.array([0.0, 0.5, 0.9])
PANELS = ["a", "b", "c"]
C1 = {0.0: 4096.0, 0.5: 6000.0, 0.9: 10000.0}
C2 = {0.0: 40.0, 0.5: 60.0, 0.9: 120.0}


def synthetic_dataset():
    k = np.full((len(PANELS), len(SPARSITY), len(BATCH)), np.nan)
    for i, s in enumerate(SPARSITY):
        for p in (0, 1):
            k[p, i] = np.ceil(C1[s] * (1 + p) / BATCH + C2[s])
    k[0, 2, 1] = np.nan  # hole in the middle of a curve
    k[1, 0, 0] = np.nan  # dense curve starts at the second batch size
    # panel "c": all NaN (not run)
    return xr.Dataset(
        {
            "steps_to_result": (("panel", "sparsity", "batch_size"), k),
            "goal_error": ("panel", [0.02, 0.1, 0.3]),
            "dataset": ("panel", ["mnist", "fashion-mnist", "cifar10"]),
            "model": ("panel", ["simple-cnn", "simple-cnn", "resnet-8"]),
            "optimizer": ("panel", ["sgd", "momentum", "nesterov"]),
            "schedule": ("panel", ["constant", "constant", "linear"]),
        },
        coords={"panel": PANELS, "sparsity": SPARSITY, "batch_size": BATCH},
        attrs={"figure": "figure-1", "title": "Synthetic data parallelism"},
    )


def synthetic_fits():
    return {p: {s: {"c1": C1[s] * (1 + j), "c2": C2[s], "r2": 1.0} for s in SPARSITY}
            for j, p in enumerate(PANELS[:2])}


def _check_outputs(paths, stem):
    stem = pathlib.Path(stem)
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    for p in paths:
        assert p.exists() and p.stat().st_size > 1000
        assert p.parent == stem.parent
    assert paths[1].read_bytes().startswith(b"%PDF")
    img = mpimg.imread(paths[0])
    h, w = img.shape[:2]
    # 4 columns of ~4 in. at 150 dpi; rows of ~3.2 in.
    assert 1800 <= w <= 3000
    assert 300 * len(PANELS) <= h <= 700 * len(PANELS)
    assert img.std() > 0.01  # not blank
    leftovers = [f for f in os.listdir(stem.parent) if f.startswith(".") or f.endswith(".tmp")]
    assert leftovers == []


def test_render_data_parallelism_writes_png_and_pdf(tmp_path):
    stem = tmp_path / "nested" / "dir" / "figure-1"
    paths = figures.render_data_parallelism(synthetic_dataset(), stem, fits=synthetic_fits())
    _check_outputs(paths, stem)
    assert sorted(os.listdir(stem.parent)) == ["figure-1.pdf", "figure-1.png"]


def test_render_dispatch_and_overwrite(tmp_path):
    stem = tmp_path / "fig"
    first = figures.render(synthetic_dataset(), stem, title="Custom title")
    second = figures.render(synthetic_dataset(), stem, kind="data_parallelism")
    assert first == second
    _check_outputs(second, stem)


def test_unknown_kind_raises(tmp_path):
    with pytest.raises(ValueError, match="unknown figure kind"):
        figures.render(synthetic_dataset(), tmp_path / "x", kind="no_such_kind")
    assert list(tmp_path.iterdir()) == []


def test_only_dense_and_all_nan(tmp_path):
    ds = synthetic_dataset().sel(sparsity=[0.0])
    ds["steps_to_result"][:] = np.nan
    paths = figures.render_data_parallelism(ds, tmp_path / "empty")
    assert all(p.stat().st_size > 0 for p in paths)


def test_labels():
    ds = synthetic_dataset()
    assert figures.panel_label(ds, "a") == "(a) MNIST, Simple-CNN, SGD"
    assert figures.panel_label(ds, "b") == "(b) Fashion-MNIST, Simple-CNN, Momentum"
    assert figures.panel_label(ds, "c") == "(c) CIFAR-10, ResNet-8, Nesterov + linear decay"
    assert figures.sparsity_label(0.9) == "90%"
    assert figures.sparsity_label(0.0) == "0%"
    assert figures.sparsity_label(0.995) == "99.5%"


def test_netcdf_roundtrip(tmp_path):
    """Strings and coords as they come back from a netCDF file still render."""
    nc = tmp_path / "figure-1.nc"
    synthetic_dataset().to_netcdf(nc)
    with xr.open_dataset(nc) as ds:
        assert figures.panel_label(ds, "c").startswith("(c) CIFAR-10")
        paths = figures.render(ds, tmp_path / "out" / "figure-1")
    assert all(p.exists() for p in paths)


# ---------------------------------------------------------------- other kinds (SYNTHETIC)

def trial_dataset(momentum=True):
    """2 panels x 2 sparsities x 3 batch sizes x 5 trials, statuses of every kind; panel "b"
    at 90 % not run."""
    rng = np.random.default_rng(0)
    shape = (2, 2, 3, 5)
    status = np.tile(np.array([1, 2, 3, 4, 1], np.int8), shape[:3] + (1,))
    status[1, 1] = 0
    steps = rng.integers(10, 1000, shape)
    done = np.where(status == 1, steps, np.iinfo(np.int64).max)
    best = np.where((status == 1).any(axis=-1), done.argmin(axis=-1), -1)
    k = np.where(best >= 0, done.min(axis=-1), np.nan)
    dims4 = ("panel", "sparsity", "batch_size", "trial")
    data = {
        "steps_to_result": (dims4[:3], k), "best_trial": (dims4[:3], best),
        "status": (dims4, status), "steps": (dims4, steps),
        "learning_rate": (dims4, 10 ** rng.uniform(-4, 0, shape)),
        "momentum": (dims4, 1 - 10 ** rng.uniform(-4, -1, shape) if momentum else np.full(shape, np.nan)),
        "dataset": ("panel", ["mnist", "mnist"]), "model": ("panel", ["simple_cnn"] * 2),
        "optimizer": ("panel", ["momentum", "nesterov"]), "schedule": ("panel", ["constant"] * 2),
    }
    return xr.Dataset(data, coords={"panel": ["a", "b"], "sparsity": [0.0, 0.9],
                                    "batch_size": [16, 128, 1024], "trial": np.arange(5)},
                      attrs={"title": "Synthetic search"})


@pytest.mark.parametrize("momentum", [True, False])
def test_render_landscape_one_plot_per_searched_point(tmp_path, momentum):
    paths = figures.render(trial_dataset(momentum), tmp_path / "land", kind="landscape")
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    h, w = mpimg.imread(paths[0]).shape[:2]
    assert 3 * 3.0 * 150 * 0.9 <= w <= 3 * 3.0 * 150 * 1.1  # 3 batch-size columns
    assert h >= 3 * 2.6 * 150 * 0.9  # rows: (a, 0), (a, 0.9), (b, 0) -- (b, 0.9) was not run


def test_landscape_y_axis_is_each_other_searched_metaparameter_or_steps():
    ds = trial_dataset(momentum=True)
    assert figures._landscape_axes(ds, "a") == ["momentum"]
    assert figures._landscape_axes(trial_dataset(momentum=False), "a") == ["steps"]
    ds["decay_steps"] = ds["learning_rate"] * 0 + 5000.0
    assert figures._landscape_axes(ds, "a") == ["momentum", "decay_steps"]


@pytest.mark.parametrize("kind", ["optimizer_comparison", "sparse_ratio"])
def test_render_other_kinds_write_png_and_pdf(tmp_path, kind):
    paths = figures.render(synthetic_dataset(), tmp_path / kind, kind=kind)
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    assert mpimg.imread(paths[0]).std() > 0.01
    assert paths[1].read_bytes().startswith(b"%PDF")


def test_landscape_with_one_batch_size_lays_its_plots_side_by_side(tmp_path):
    ds = trial_dataset(momentum=False).isel(batch_size=[1])
    paths = figures.render(ds, tmp_path / "one", kind="landscape")
    h, w = mpimg.imread(paths[0]).shape[:2]
    assert w > h  # 3 plots in a row (panels a and b at 0 %, a at 90 %), not a column


def test_long_title_is_wrapped_to_the_figure_width():
    """A landscape of one batch size is narrow: its title must wrap, not run off both edges."""
    fig = plt.figure(figsize=(5, 4))
    long = "Metaparameter search, MNIST, Simple-CNN, Nesterov (Lee et al. 2021, Fig. 15)"
    figures._suptitle(fig, xr.Dataset(attrs={"title": long}), None)
    lines = fig._suptitle.get_text().split("\n")
    assert len(lines) >= 2 and " ".join(lines) == long
    plt.close(fig)
