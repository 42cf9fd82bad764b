"""Tests for racing (repro.race, run.run_point): a point's trials advance together and stop at
the first evaluation where one meets the goal, with the K* and best trial of the sequential
capped search. The sequential search is written out here (`sequential`): trials one after
another in Sobol order, each run alone by the engine, capped by the best so far.

SYNTHETIC data (conftest.py), patched into repro.data.load as in test_run.py.
"""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from repro import data as data_mod
from repro import engine, models
from repro import plan as plan_mod
from repro import race, run
from repro import records as records_mod
from repro import spec as spec_mod
from conftest import make_data

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # keras-tuner internals

SPEC = """\
[figure]
id = "figure-race-test"
title = "synthetic race test"
seed = 0

[[panel]]
id = "a"
dataset = "mnist"
model = "simple_cnn"
optimizer = "{optimizer}"
schedule = "{schedule}"
goal_error = 0.01

[panel.search]
learning_rate = {{ min = {lr_min}, max = {lr_max}, scale = "log" }}
{extra}
[panel.grid.full]
batch_sizes = {batch_sizes}
sparsities = {sparsities}
trials = {trials}
max_steps = 64
eval_every = 4
"""

DATA = dict(n_train=64, n_val=3000)  # 3 evaluation chunks of 1000: early exit can act


@pytest.fixture(autouse=True)
def synthetic(monkeypatch):
    data = make_data(**DATA)
    monkeypatch.setattr(data_mod, "load", lambda name: data)
    monkeypatch.setattr(data_mod, "require", lambda name: None)
    monkeypatch.setattr(run, "_WORKLOADS", {})


def plan_for(tmp_path, lr_min=1e-3, lr_max=0.3, batch_sizes=(8, 16), sparsities=(0.0,), trials=6,
             optimizer="sgd", schedule="constant", extra=""):
    path = tmp_path / "spec.toml"
    path.write_text(SPEC.format(lr_min=lr_min, lr_max=lr_max, batch_sizes=json.dumps(list(batch_sizes)),
                                sparsities=json.dumps(list(sparsities)), trials=trials,
                                optimizer=optimizer, schedule=schedule, extra=extra))
    return plan_mod.compile_plan(spec_mod.load_spec(path), "full")


def do_run(plan, results, workers=1, **options):
    """run_plan (races) into `results` with RunOptions `options`; (dataset, report)."""
    return run.run_plan(plan, run.RunOptions(results_dir=str(results), **options),
                        workers=workers, log=lambda line: None)


def sequential(plan, capping=True, early_exit=True):
    """The search the race must equal, done the plain way: per point, trial after trial in
    Sobol order, each trained alone (engine.run_trial) up to the best-so-far cap.
    Returns {(sparsity, B): {"k", "best", "status": [...], "steps": [...], "results": [...]}}.
    Its SNIP score cache goes to a folder beside the plan's spec (a temporary folder), never
    the working directory."""
    out = {}
    cache_dir = str(pathlib.Path(plan.spec.path).parent / "sequential-results")
    for point in plan_mod.study_points(plan):
        w = run.workload(point.panel, cache_dir)
        finished, status, steps, results = [], [], [], []
        for i, values in enumerate(point.trial_values()):
            cap = race.cap_for(finished, i, capping, point.max_steps, point.finishers)
            init = models.initial_weights(w.engine.model, point.spec.seed + i)
            res = w.engine.run_trial(
                order=w.order_for(point.spec.seed), batch_size=point.batch_size, init=init,
                mask=w.mask(point.spec.seed + i, init, point.sparsity), hp=values,
                eval_steps=point.eval_steps, goal=point.goal, early_exit=early_exit,
                max_steps=point.max_steps if cap is None else cap)
            results.append(res)
            status.append("capped" if res.status == "incomplete" and cap is not None else res.status)
            steps.append(res.steps)
            if res.status == "complete":
                finished = sorted(finished + [(res.steps_to_result, i)])
        best = finished[0] if finished else None
        out[(point.sparsity, point.batch_size)] = {
            "k": None if best is None else best[0], "best": None if best is None else best[1],
            "status": status, "steps": steps, "results": results}
    return out


CODES = {"complete": 1, "incomplete": 2, "infeasible": 3, "capped": 4}


def assert_same_search(race_ds, seq):
    """The issue's criterion: same K* and best trial as the sequential search `seq`; every trial
    the race did not cap has its status and steps."""
    assert (race_ds["status"].values > 0).all()  # every trial has a record
    for (s, b), ref in seq.items():
        at = dict(panel="a", sparsity=s, batch_size=b)
        k = float(race_ds["steps_to_result"].sel(**at))
        assert (np.isnan(k) and ref["k"] is None) or k == ref["k"], (s, b, k, ref["k"])
        assert int(race_ds["best_trial"].sel(**at)) == (-1 if ref["best"] is None else ref["best"])
        status = race_ds["status"].sel(**at).values
        steps = race_ds["steps"].sel(**at).values
        for t, (st, n) in enumerate(zip(ref["status"], ref["steps"])):
            if status[t] != 4:
                assert (status[t], steps[t]) == (CODES[st], n), (s, b, t)


def records(plan, results, capping=True):
    """{(s, B, trial): record as the point's search reads it}."""
    out = {}
    for point in plan_mod.study_points(plan):
        for key, rec in records_mod.point_records(point, str(results), capping).items():
            out[key[1:]] = rec
    return out


def trial_steps(ds):
    return int(ds["steps"].where(ds["steps"] > 0).sum())


# ------------------------------------------------------------------ the engine's part

def test_trials_taking_turns_on_one_engine_are_bit_identical_to_each_run_alone():
    """Saved and loaded states (weights, velocity, step counter of linear decay, the hardest-
    first visiting order) make interleaved trials compute exactly as alone."""
    eng = engine.Engine(make_data(**DATA), "simple_cnn", "nesterov", "linear_decay")
    order, evals = engine.DataOrder(64, 0), list(range(4, 65, 4))
    hps = [{"learning_rate": lr, "momentum": 0.9, "decay_steps": 40.0, "end_factor": 0.01}
           for lr in (1e-4, 3e-4, 1e-3)]
    inits = [models.initial_weights(eng.model, i) for i in range(3)]
    kw = dict(order=order, batch_size=8, goal=0.0, exit_goal=0.3)
    alone = [eng.run_trial(init=inits[i], mask=None, hp=hps[i], eval_steps=evals, **kw)
             for i in range(3)]
    runs = {i: eng.start_trial(init=inits[i], mask=None, hp=hps[i], keep_state=True, **kw)
            for i in range(3)}
    out, _ = race.race(runs, evals, 64, capping=False)
    assert max(len(a.eval_steps) for a in alone) > 4  # some trial ran a while
    for i in range(3):
        a, r = alone[i], out[i][0]
        assert (a.status, a.steps, a.eval_steps, a.val_errors, a.val_exact, a.examples_evaluated) == \
            (r.status, r.steps, r.eval_steps, r.val_errors, r.val_exact, r.examples_evaluated)
    assert any(not all(a.val_exact) for a in alone)  # early exit (order-dependent bounds) acted


# ------------------------------------------------------------------ points as races

def test_a_race_equals_the_sequential_capped_search_with_fewer_trial_steps(tmp_path):
    plan = plan_for(tmp_path)
    seq, plain = sequential(plan, capping=True), sequential(plan, capping=False)
    raced, _ = do_run(plan, tmp_path / "race", capping=True)
    assert all(ref["k"] is not None for ref in plain.values())  # the comparison means something
    assert_same_search(raced, seq)
    assert_same_search(raced, plain)
    assert (raced["status"] == 4).any()
    seq_steps = sum(sum(ref["steps"]) for ref in seq.values())
    plain_steps = sum(sum(ref["steps"]) for ref in plain.values())
    assert trial_steps(raced) <= seq_steps < plain_steps
    # every trial stopped by the k-th finisher's step (k = the grid's finishers, 2); those
    # after the k-th, which could only tie it, stopped where the sequential search stops them
    # (its cap K_k - 1): they never train to K_k
    after_best = 0
    for point in plan_mod.study_points(plan):
        recs = records_mod.point_records(point, str(tmp_path / "race"))
        done = sorted((rec.k, t) for (_, _, _, t), rec in recs.items() if rec.k is not None)
        assert point.finishers == 2 and len(done) >= point.finishers  # the check means something
        k_k, kth = done[point.finishers - 1]
        s, b = point.sparsity, point.batch_size
        assert int(raced["steps_to_result"].sel(panel="a", sparsity=s, batch_size=b)) == done[0][0]
        for (_, _, _, t), rec in recs.items():
            assert rec.status == "infeasible" or rec.steps <= k_k
            if t > kth and rec.status != "complete":
                after_best += 1
                assert (rec.status, rec.steps) == (seq[(s, b)]["status"][t], seq[(s, b)]["steps"][t])
                assert rec.steps < k_k
    assert after_best > 0  # the check above means something
    # collect re-reads it, and a rerun trains nothing
    again, report = do_run(plan, tmp_path / "race", capping=True)
    assert report["trials_trained"] == 0
    assert again.attrs["trials_sha256"] == raced.attrs["trials_sha256"]
    assert records_mod.collect_plan(plan, tmp_path / "race").attrs["trials_sha256"] == raced.attrs["trials_sha256"]


def test_capping_off_every_raced_trial_is_the_trial_run_alone_bit_for_bit(tmp_path):
    plan = plan_for(tmp_path, optimizer="momentum", schedule="linear_decay",
                    extra='momentum = { min = 0.5, max = 0.99, scale = "reverse_log" }\n'
                          'decay_steps = { min = 8, max = 64, scale = "linear" }\n'
                          'end_factor = { min = 0.01, max = 0.5, scale = "log" }\n',
                    sparsities=(0.0, 0.5), batch_sizes=(8,), trials=4)
    alone = sequential(plan, capping=False)
    do_run(plan, tmp_path / "race", capping=False)
    raced = records(plan, tmp_path / "race", False)
    assert len(raced) == 8
    for (s, b, t), r in raced.items():
        a = alone[(s, b)]["results"][t]
        assert (a.status, a.steps_to_result, a.steps, tuple(a.eval_steps), tuple(a.val_errors),
                tuple(a.val_exact), a.examples_evaluated) == \
            (r.status, r.steps_to_result, r.steps, r.eval_steps, r.val_errors, r.val_exact,
             r.examples_evaluated), (s, b, t)


def test_a_point_raced_in_groups_gives_the_same_search(tmp_path):
    plan = plan_for(tmp_path, batch_sizes=(8,))
    whole, _ = do_run(plan, tmp_path / "whole", capping=True)
    grouped, _ = do_run(plan, tmp_path / "grouped", capping=True, race_group=2)
    assert_same_search(grouped, sequential(plan))
    np.testing.assert_array_equal(grouped["status"].values, whole["status"].values)
    np.testing.assert_array_equal(grouped["steps"].values, whole["steps"].values)


def test_diverging_trials_leave_the_race_as_infeasible_and_the_race_goes_on(tmp_path):
    plan = plan_for(tmp_path, lr_min=1e-2, lr_max=1e3, batch_sizes=(8,))
    raced, _ = do_run(plan, tmp_path / "race", capping=True)
    assert (raced["status"] == 3).any() and np.isfinite(raced["steps_to_result"].values).all()
    assert_same_search(raced, sequential(plan, capping=False))


def test_a_point_where_nobody_meets_the_goal_runs_everyone_to_the_budget(tmp_path):
    plan = plan_for(tmp_path, lr_min=1e-7, lr_max=1e-6, batch_sizes=(8,), trials=3)
    raced, _ = do_run(plan, tmp_path / "race", capping=True)
    assert (raced["status"].values == 2).all() and (raced["steps"].values == 64).all()
    assert np.isnan(raced["steps_to_result"].values).all()


def test_stored_records_are_reused_and_a_partial_race_resumes_to_the_same_search(tmp_path):
    plan = plan_for(tmp_path, lr_min=1e-2, lr_max=1e3, batch_sizes=(8,))
    full, _ = do_run(plan, tmp_path / "full", capping=True)
    recs = records(plan, tmp_path / "full")
    for keep in ([t for (_, _, t), r in recs.items() if r.status == "infeasible"],  # a killed race
                 [int(full["best_trial"].values.item())],  # the best stored: it caps the rest
                 [0, 1]):
        part = tmp_path / f"part-{'-'.join(map(str, keep))}"
        for rid in (recs[(0.0, 8, t)].run_id for t in keep):
            src = tmp_path / "full" / "runs" / rid[:2] / f"{rid}.json"
            (part / "runs" / rid[:2]).mkdir(parents=True, exist_ok=True)
            shutil.copy(src, part / "runs" / rid[:2])
        resumed, report = do_run(plan, part, capping=True)
        assert report["trials_trained"] == 6 - len(keep)
        assert resumed.attrs["trials_sha256"] == full.attrs["trials_sha256"], keep


KILL_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from conftest import make_data
from repro import data as data_mod, plan as plan_mod, run, spec as spec_mod
data = make_data(**{data!r})
data_mod.load = lambda name: data
data_mod.require = lambda name: None
plan = plan_mod.compile_plan(spec_mod.load_spec({spec!r}), "full")
run.run_plan(plan, run.RunOptions(results_dir={results!r}), log=print)
"""


def test_kill_9_mid_race_then_resume_equals_an_uninterrupted_run(tmp_path):
    """Killed once its first record (a diverged trial) is stored, the race resumes with the
    trials that have none and stores the same search."""
    plan = plan_for(tmp_path, lr_min=1e-2, lr_max=1e3, batch_sizes=(8,), trials=8)
    full, _ = do_run(plan, tmp_path / "full", capping=True)
    results = tmp_path / "killed"
    script = KILL_SCRIPT.format(tests=str(pathlib.Path(__file__).parent), data=DATA,
                                spec=str(plan.spec.path), results=str(results))
    env = dict(os.environ, PYTHONPATH=str(pathlib.Path(run.__file__).parents[1]))
    proc = subprocess.Popen([sys.executable, "-c", script], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not list(results.glob("runs/*/*.json")) and proc.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        stored = len(list(results.glob("runs/*/*.json")))
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert 0 < stored < 8  # killed mid-race
    resumed, report = do_run(plan, results, capping=True)
    assert report["trials_trained"] < 8
    assert resumed.attrs["trials_sha256"] == full.attrs["trials_sha256"]


@pytest.mark.slow
def test_a_race_on_real_mnist_equals_the_sequential_capped_search(tmp_path, monkeypatch):
    """One real-MNIST point, 3 trials, a small budget: capping on and off."""
    monkeypatch.undo()
    data_mod.require("mnist")
    path = tmp_path / "spec.toml"
    path.write_text(SPEC.format(lr_min=1e-2, lr_max=1.0, batch_sizes="[64]", sparsities="[0.0]",
                                trials=3, optimizer="sgd", schedule="constant", extra="")
                    .replace("goal_error = 0.01", "goal_error = 0.2")
                    .replace("max_steps = 64", "max_steps = 200").replace("eval_every = 4", "eval_every = 20"))
    plan = plan_mod.compile_plan(spec_mod.load_spec(path), "full")
    seq = sequential(plan, capping=True)
    raced, _ = do_run(plan, tmp_path / "race", capping=True)
    assert all(ref["k"] is not None for ref in seq.values())
    assert_same_search(raced, seq)
    alone = sequential(plan, capping=False)
    do_run(plan, tmp_path / "race-off", capping=False)
    for (s, b, t), r in records(plan, tmp_path / "race-off", False).items():
        a = alone[(s, b)]["results"][t]
        assert (a.status, a.steps, tuple(a.val_errors), tuple(a.val_exact)) == \
            (r.status, r.steps, r.val_errors, r.val_exact), (s, b, t)
