"""Tests for repro.ahead: trials trained ahead of their search read exactly as trained in order.

The claim tests and the cap test train nothing or train on the SYNTHETIC dataset of
conftest.py. The last test runs REAL MNIST (a tiny grid) in worker processes.
"""
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from repro import ahead
from repro import data as data_mod
from repro import run
from repro import store as store_mod
from conftest import make_data
from test_resume import KEYS  # the variables a run's results are compared on
from test_run import plan_for

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_a_claim_is_held_once_released_and_a_dead_claimers_claim_is_taken_over(tmp_path):
    assert ahead.claim(tmp_path, "abc")
    assert ahead.held(tmp_path, "abc")
    assert not ahead.claim(tmp_path, "abc")  # this process holds it: a second claim fails
    ahead.release(tmp_path, "abc")
    assert not ahead.held(tmp_path, "abc") and ahead.claim(tmp_path, "abc")
    ahead.release(tmp_path, "abc")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid now belongs to no process
    assert ahead.claim(tmp_path, "xyz", pid=dead.pid)
    assert not ahead.held(tmp_path, "xyz")  # left by a killed run: ignored ...
    assert ahead.claim(tmp_path, "xyz")  # ... and taken over
    assert (tmp_path / "claims" / "xyz").read_text().split()[0] == str(os.getpid())
    # A later process that got a dead claimer's pid does not make the claim live: the claim
    # also holds the claimer's start time.
    (tmp_path / "claims" / "old").write_text(f"{os.getpid()} 1\n")
    assert not ahead.held(tmp_path, "old") and ahead.claim(tmp_path, "old")


FIELDS = ("status", "steps_to_result", "steps", "eval_steps", "val_errors")


def test_a_trial_trained_ahead_with_any_stored_subset_before_it_reads_as_in_order(tmp_path, monkeypatch):
    """For each set of stored trials a spare worker may see, `next_trial` offers a cap no tighter
    than the one the search will use. The trials before it then finish while it trains, and its
    cap tightens (`cap_watch`). The record trained so, cut to the search's cap, equals the
    record of the search run in order (on the synthetic set)."""
    data = make_data(n_train=64, n_val=3000)
    monkeypatch.setattr(data_mod, "load", lambda name: data)
    monkeypatch.setattr(data_mod, "require", lambda name: None)
    monkeypatch.setattr(run, "_WORKLOADS", {})
    # test_run's synthetic study: SGD, one point at B = 8, 6 trials up to 64 steps, goal 0.01
    plan = plan_for(tmp_path, seed=1, lr_min=1e-4, lr_max=0.1, batch_sizes=(8,))
    pp, ref = plan.panels[0], tmp_path / "in-order"
    run.run_plan(plan, ref, workers=1, log=lambda line: None)
    point = (plan.spec, pp, 0.0, 8)
    records = run.replay_point(*point, str(ref), True)  # as the search saw them, in run order
    order = [key[3] for key in records]
    assert len(order) == 6
    status = [records[("a", 0.0, 8, t)]["status"] for t in order]
    assert "complete" in status[:-2] and "capped" in status  # capping acts: the test means something
    _, values = run._sobol(plan.spec, pp)
    rid = {t: store_mod.run_id(run.identity(pp.panel, pp.grid, plan.spec, 0.0, 8, t, values[t]))
           for t in order}
    first_eval = pp.eval_steps[0]
    offered, cut, late = 0, 0, 0
    for keep in ([], [0], [0, 1], [0, 2], [0, 1, 3], [1, 2], [2], [0, 1, 2, 3]):  # run-order positions
        folder = tmp_path / f"keep-{'-'.join(map(str, keep))}"
        shutil.copytree(ref, folder)
        store = store_mod.RunStore(folder)
        for n, t in enumerate(order):
            if n not in keep:
                store.path(rid[t]).unlink()
        trial, cap = ahead.next_trial(*point, str(folder), True)
        unstored = [n for n in range(6) if n not in keep]
        assert trial == order[unstored[1]]  # the search holds the first unstored trial
        serial = records[("a", 0.0, 8, trial)]
        if not [n for n in keep if n < unstored[1] and status[n] == "complete"]:
            assert cap is None  # nothing complete before it yet: it starts uncapped
        else:
            assert serial.get("cap") is not None and cap >= serial["cap"]
        watch, polls = ahead.cap_watch(*point, str(folder), True, trial, cap), [0]

        def cap_now():  # after its first interval, the trials before it finish (the search)
            polls[0] += 1
            if polls[0] == 2:
                for t in order[:unstored[1]]:
                    shutil.copy(store_mod.RunStore(ref).path(rid[t]), store.path(rid[t]))
            return watch()
        rec, reused = run.train_or_reuse(plan.spec, pp, 0.0, 8, trial, values[trial], str(folder),
                                         cap, cap_now=cap_now)
        assert not reused
        stored = store.get(rid[trial])
        view = store_mod.goal_view(stored, pp.panel.goal_error, serial.get("cap"))
        assert {f: view[f] for f in FIELDS} == {f: serial[f] for f in FIELDS}
        if serial.get("cap") is not None:  # capped as soon as the trials before it were stored
            assert stored["cap"] >= serial["cap"]
            assert stored["steps"] <= max(serial["cap"], first_eval)
        offered += 1
        cut += cap is not None and cap > serial["cap"]
        late += cap is None and stored["status"] == "capped"
    assert offered == 8 and cut >= 1 and late >= 1  # looser caps cut back; caps that came mid-run


def _record(status, k=None, steps=40):
    """A stored trial record made up for the test (no training): evaluations every 4 steps."""
    evals = list(range(4, (k or steps) + 1, 4))
    return {"status": status, "goal": 0.01, "steps_to_result": k, "steps": k or steps,
            "eval_steps": evals, "val_errors": [0.5] * (len(evals) - 1) + [0.0 if k else 0.5],
            "val_exact": [True] * len(evals), "cap": None}


def test_while_an_anchored_first_trial_runs_the_trial_after_it_in_every_order_runs_ahead(tmp_path):
    """An anchored order may be re-sorted when its first trial misses (run.reanchor). Meanwhile
    next_trial offers the trial that comes second in the re-sorted order, uncapped, and its cap
    (cap_watch) follows whichever order the point ends with (records made up, no training)."""
    plan = plan_for(tmp_path, batch_sizes=(8,))
    pp, spec = plan.panels[0], plan.spec
    _, values = run._sobol(spec, pp)
    tid = {t: run._trial_id(spec, pp, 0.0, 8, t, values[t]) for t in range(6)}
    store = store_mod.RunStore(tmp_path / "r")
    point = (spec, pp, 0.0, 8, str(tmp_path / "r"), True)
    order = run.run_order(*point, anchor={"sparsity": 0.0, "batch_size": 4, "trial": 3})
    best = {"sparsity": 0.0, "batch_size": 4, "trial": 5}
    resorted = run.reanchored(spec, pp, order, best)
    assert order[0] == resorted[0] == 3 and order[1] != resorted[1]  # the case that matters
    assert ahead.next_trial(*point) == (order[1], None)  # the anchor point still runs
    assert ahead.next_trial(*point, best=best) == (resorted[1], None)
    assert ahead.next_trial(*point, skip={resorted[1]}, best=best) == (resorted[2], None)
    second, third = resorted[1], resorted[2]
    watch2, watch3 = (ahead.cap_watch(*point, t, None) for t in (second, third))
    store.put(tid[second], _record("complete", k=20))  # not before `third` in every order yet
    assert watch3() is None
    # the first trial misses: nothing to cap with until the order is re-sorted ...
    store.put(tid[3], _record("incomplete", steps=64))
    assert ahead.next_trial(*point, best=best) is None  # the search waits to re-sort
    assert watch2() is None and watch3() is None
    assert run.reanchor(*point, best) == resorted
    assert watch2() is None  # only the missed first trial is before it
    assert watch3() == run.cap_for((20, second), third, True, 64)  # ... then `second` caps it


def test_an_anchored_first_trial_that_reaches_the_goal_caps_the_trials_run_ahead(tmp_path):
    plan = plan_for(tmp_path, batch_sizes=(8,))
    pp, spec = plan.panels[0], plan.spec
    _, values = run._sobol(spec, pp)
    store = store_mod.RunStore(tmp_path / "r")
    point = (spec, pp, 0.0, 8, str(tmp_path / "r"), True)
    order = run.run_order(*point, anchor={"sparsity": 0.0, "batch_size": 4, "trial": 3})
    trial, cap = ahead.next_trial(*point)
    watch = ahead.cap_watch(*point, trial, cap)
    assert cap is None and watch() is None
    store.put(run._trial_id(spec, pp, 0.0, 8, 3, values[3]), _record("complete", k=24))
    assert watch() == run.cap_for((24, 3), trial, True, 64)  # the order stays: final
    assert json.loads(run._order_path(*point).read_text())["order"] == order


MNIST_SPEC = """\
[figure]
id = "ahead-mnist"
title = "trials run ahead of their search (tiny real MNIST grid)"
seed = 3
capping = {capping}

[[panel]]
id = "a"
dataset = "mnist"
model = "simple_cnn"
optimizer = "momentum"
schedule = "constant"
goal_error = 0.05

[panel.search]
learning_rate = {{ min = 0.003, max = 0.1, scale = "log" }}
momentum = {{ min = 0.8, max = 0.95, scale = "reverse_log" }}

[panel.grid.full]
batch_sizes = [128]
sparsities = [0.0]
trials = 6
max_steps = 400
eval_every = 8
"""


@pytest.mark.slow
@pytest.mark.skipif(not data_mod.cache_path("mnist").exists(), reason="MNIST not fetched (make data)")
@pytest.mark.parametrize("capping", ["true", "false"])
def test_one_point_on_two_workers_runs_trials_ahead_and_equals_one_worker(tmp_path, capping):
    """One study point and two workers: the spare worker trains trials ahead of the search, and
    the results equal those of one worker running the trials in order."""
    out = {}
    for workers in (2, 1):
        folder = tmp_path / str(workers)
        folder.mkdir()
        (folder / "spec.toml").write_text(MNIST_SPEC.format(capping=capping))
        res = subprocess.run([sys.executable, "-m", "repro", "run", str(folder / "spec.toml"),
                              "--grid", "full", "--results", str(folder / "results"),
                              "--workers", str(workers)],
                             cwd=ROOT, capture_output=True, text=True, timeout=900)
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        out[workers] = res.stdout
    assert "ahead of its search" in out[2] and "ahead of its search" not in out[1]
    for text in out.values():  # six trials, each trained once, none re-read as "stored"
        assert "trained 6 trials" in text and "reused 0 stored" in text, text[-2000:]
    assert not list((tmp_path / "2" / "results" / "claims").glob("*"))  # every claim released
    with xr.open_dataset(tmp_path / "2" / "results" / "ahead-mnist.full.nc") as a, \
            xr.open_dataset(tmp_path / "1" / "results" / "ahead-mnist.full.nc") as b:
        assert np.isfinite(b["steps_to_result"].values).all()
        for key in KEYS:
            np.testing.assert_array_equal(a[key].values, b[key].values, err_msg=key)
    orders = [sorted(p.read_text() for p in (tmp_path / w / "results" / "orders").glob("*.json"))
              for w in ("2", "1")]
    assert orders[0] == orders[1]
