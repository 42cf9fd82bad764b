"""The CIFAR-10 path end to end, without the network, on SYNTHETIC data (issue 30).

Half the paper runs on CIFAR-10, which this machine cannot download. `data fetch cifar10 --from
DIR` reads the python-pickle layout of cifar-10-python.tar.gz (`cifar-10-batches-py`), so this
test writes a SYNTHETIC copy in exactly that layout -- the real file names, pickled dicts with the
real keys, b'data' uint8 rows of 3072 bytes (1024 red, 1024 green, 1024 blue), the real sizes
(5 x 10,000 training, 10,000 test) -- and drives the whole CIFAR-10 path through the command line
as `make figure-10` does: data fetch, run (ResNet-8, SNIP, race), plot, verify, then collect.

The images are NOT CIFAR-10: each is noise around a colour that its label fixes, so ResNet-8
learns them in a few dozen steps. Nothing here says anything about the paper's claims; the data
and results live in temporary folders (REPRO_DATA and --results), never in data/ or results/.
"""
import json
import os
import pathlib
import pickle
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

ROOT = pathlib.Path(__file__).resolve().parent.parent
SYNTHETIC_LABEL = b"SYNTHETIC (repro tests): not CIFAR-10"

# A tiny grid modelled on specs/figure-10.toml panel (b) (= Figure 1(d): ResNet-8, Momentum,
# linear decay), with the goal raised to what the synthetic images allow in a few steps.
SPEC = """\
[figure]
id = "cifar10-synthetic"
title = "SYNTHETIC CIFAR-10 layout, ResNet-8, Momentum, linear decay (tests/test_cifar10_path.py)"
kind = "data_parallelism"
seed = 0
sobol = "unscrambled"

[[panel]]
id = "b"
title = "SYNTHETIC CIFAR-10, ResNet-8, Momentum, linear decay"
dataset = "cifar10"
model = "resnet8"
optimizer = "momentum"
schedule = "linear_decay"
goal_error = 0.5
claims = ["linear_scaling", "diminishing_returns", "plateau", "sparse_slower", "sparse_c1_larger", "sparse_critical_batch_no_smaller"]

[panel.search]
learning_rate = { min = 1e-4, max = 1.0, scale = "log" }
momentum = { min = 0.9, max = 0.9999, scale = "reverse_log" }
decay_steps = { min = 30000, max = 60000, scale = "linear" }
end_factor = { min = 1e-4, max = 0.1, scale = "log" }

[panel.grid.full]
batch_sizes = [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]
sparsities = [0.0, 0.5, 0.7, 0.9]
trials = 100
max_steps = 100000
eval_every = 32

[panel.grid.tiny]
batch_sizes = [16, 64]
sparsities = [0.0]
trials = 2
max_steps = 64
eval_every = 8
search = { learning_rate = { min = 0.003, max = 0.03, scale = "log" }, momentum = { min = 0.9, max = 0.95, scale = "reverse_log" }, decay_steps = { min = 200, max = 400, scale = "linear" } }
why = "SYNTHETIC smoke grid of the CIFAR-10 path: two batch sizes, dense, two trials"

[panel.grid.sparse]
batch_sizes = [16, 64]
sparsities = [0.0, 0.9]
trials = 2
max_steps = 64
eval_every = 8
search = { learning_rate = { min = 0.003, max = 0.03, scale = "log" }, momentum = { min = 0.9, max = 0.95, scale = "reverse_log" }, decay_steps = { min = 200, max = 400, scale = "linear" } }
why = "SYNTHETIC smoke grid with SNIP: one score pass over the 45,000 training images per trial"
"""


def write_synthetic_cifar10(folder, seed=0):
    """SYNTHETIC images in the exact cifar-10-batches-py layout; returns the folder.

    Label k: every pixel is colour k of a fixed palette plus uniform noise (+-48 levels)."""
    rng = np.random.default_rng(seed)
    palette = rng.integers(40, 216, size=(10, 3))
    out = pathlib.Path(folder) / "cifar-10-batches-py"
    out.mkdir(parents=True)

    def batch(name, n):
        labels = rng.integers(0, 10, size=n)
        noise = rng.integers(-48, 49, size=(n, 3, 1024), dtype=np.int16)
        data = (palette[labels][:, :, None] + noise).clip(0, 255).astype(np.uint8).reshape(n, 3072)
        d = {b"batch_label": SYNTHETIC_LABEL + b" " + name.encode(), b"labels": labels.tolist(),
             b"data": data, b"filenames": [b"synthetic_%05d.png" % i for i in range(n)]}
        with open(out / name, "wb") as f:
            pickle.dump(d, f, protocol=2)  # the real files are Python 2 pickles
        return labels

    for i in range(1, 6):
        batch(f"data_batch_{i}", 10_000)
    batch("test_batch", 10_000)
    with open(out / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [b"synthetic_%d" % k for k in range(10)],
                     b"num_cases_per_batch": 10_000, b"num_vis": 3072}, f, protocol=2)
    return out


def repro(*args, cwd, env):
    return subprocess.run([sys.executable, "-m", "repro", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def fetched(tmp_path_factory):
    """(env, spec): the SYNTHETIC batches fetched through the CLI into a temporary REPRO_DATA."""
    tmp = tmp_path_factory.mktemp("cifar10")
    source = write_synthetic_cifar10(tmp / "download")
    env = {**os.environ, "REPRO_DATA": str(tmp / "data"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    spec = tmp / "specs" / "cifar10-synthetic.toml"
    spec.parent.mkdir()
    spec.write_text(SPEC)
    r = repro("data", "fetch", "cifar10", "--from", str(source.parent), cwd=tmp, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "cifar10: wrote" in r.stdout and "(CIFAR-10 python batches)" in r.stdout, r.stdout
    assert (tmp / "data" / "cifar10.npz").is_file()
    return env, spec


def test_fetch_reads_the_batches_layout(fetched, tmp_path):
    env, spec = fetched
    r = repro("data", "status", cwd=tmp_path, env=env)
    assert "cifar10        present  45000 train / 5000 val" in r.stdout, r.stdout
    r = repro("data", "ready", str(spec), cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    import numpy as np
    with np.load(pathlib.Path(env["REPRO_DATA"]) / "cifar10.npz") as z:
        assert z["x_train"].shape == (50000, 32, 32, 3) and z["x_test"].shape == (10000, 32, 32, 3)
        # row layout: 1024 red, then green, then blue bytes -> NHWC
        raw = pickle.loads((pathlib.Path(str(spec.parent.parent)) / "download" / "cifar-10-batches-py"
                            / "data_batch_1").read_bytes(), encoding="bytes")
        np.testing.assert_array_equal(z["x_train"][0, :, :, 2].ravel(), raw[b"data"][0, 2048:])
        assert list(z["y_train"][:5]) == raw[b"labels"][:5]


def run_grid(grid, spec, env, cwd):
    """`make figure-N` on the synthetic spec's `grid`: run, plot, verify; then collect again."""
    r = repro("run", str(spec), "--grid", grid, "--workers", "1", cwd=cwd, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    nc = cwd / "results" / f"cifar10-synthetic.{grid}.nc"
    ds = xr.load_dataset(nc)
    assert (ds["status"] > 0).all()  # every trial ran and was recorded
    assert ds["steps_to_result"].notnull().any()  # the synthetic colours are learnt

    r2 = repro("plot", str(spec), "--grid", grid, cwd=cwd, env=env)
    assert r2.returncode == 0, r2.stderr[-2000:]
    assert (cwd / "figures" / f"cifar10-synthetic.{grid}.png").stat().st_size > 1000

    r2 = repro("verify", str(spec), "--grid", grid, "--golden", str(ROOT / "golden" / "figure-10.toml"),
               "--json", cwd=cwd, env=env)
    assert r2.returncode in (0, 1), r2.stderr[-2000:]  # PASS or FAIL: measured either way
    rows = json.loads(r2.stdout)
    assert {row["claim"] for row in rows} == {"linear_scaling", "diminishing_returns", "plateau",
                                              "sparse_slower", "sparse_c1_larger",
                                              "sparse_critical_batch_no_smaller"}

    # what `make figure-N` ends with
    r2 = repro("summary", str(spec), "--grid", grid, "--golden", str(ROOT / "golden" / "figure-10.toml"),
               "--seconds", "61", "--status", "0", cwd=cwd, env=env)
    assert r2.returncode == 0, r2.stderr[-2000:]
    assert f"figure:   figures/cifar10-synthetic.{grid}.png, figures/cifar10-synthetic.{grid}.pdf" in r2.stdout
    counts = r2.stdout.split("verdicts: ")[1].split(" of ")[0]
    assert counts == (f"{sum(row['status'] == 'PASS' for row in rows)} PASS, "
                      f"{sum(row['status'] == 'FAIL' for row in rows)} FAIL, "
                      f"{sum(row['status'] == 'INCONCLUSIVE' for row in rows)} INCONCLUSIVE, "
                      f"{sum(row['status'] == 'NOT-RUN' for row in rows)} NOT-RUN"), r2.stdout

    # collect rebuilds the same results from the stored trials, without training
    before = ds["steps_to_result"].values.copy()
    nc.unlink()
    r2 = repro("collect", str(spec), "--grid", grid, cwd=cwd, env=env)
    assert r2.returncode == 0, r2.stderr[-2000:]
    np.testing.assert_array_equal(xr.load_dataset(nc)["steps_to_result"].values, before)
    return r.stdout, ds, rows


def test_cifar10_dense_path_run_plot_verify_collect(fetched, tmp_path):
    env, spec = fetched
    out, ds, rows = run_grid("tiny", spec, env, tmp_path)
    assert "trained 4 trials" in out, out[-3000:]
    # progress from the first second: the data load and each race say when they start
    assert "(b) B=64 s=0: loading cifar10 and building resnet8" in out, out[-3000:]
    assert "(b) B=16 s=0: racing trials 0-1 of 2, up to 64 steps each" in out, out[-3000:]
    assert list(ds["batch_size"].values) == [16, 64] and list(ds["sparsity"].values) == [0.0]
    assert ds["steps_to_result"].notnull().all()
    # one sparsity: the sparse claims cannot be decided, and say so
    by = {row["claim"]: row for row in rows}
    assert by["sparse_slower"]["status"] in ("INCONCLUSIVE", "NOT-RUN"), by["sparse_slower"]


@pytest.mark.slow
def test_cifar10_sparse_path_with_snip(fetched, tmp_path):
    """SNIP on CIFAR-10: a score pass over the 45,000 training images per trial seed (about a
    minute each on one core), then the 90 % sparse ResNet-8 trains."""
    env, spec = fetched
    out, ds, rows = run_grid("sparse", spec, env, tmp_path)
    assert "trained 8 trials" in out, out[-3000:]
    for seed in (0, 1):  # each pass says when it starts and how long it took
        assert f"(b) B=64 s=0.9: SNIP scores of trial seed {seed} (one pass over 45,000 training images)" in out
        assert f"(b) B=64 s=0.9: SNIP scores of trial seed {seed} done in " in out
    assert list(ds["sparsity"].values) == [0.0, 0.9]
    assert sorted(p.name for p in (tmp_path / "results" / "cache" / "snip").iterdir()) == [
        "cifar10-resnet8-v1-seed0.npz", "cifar10-resnet8-v1-seed1.npz"]
    assert all(row["status"] != "NOT-RUN" for row in rows), rows
