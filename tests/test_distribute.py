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
