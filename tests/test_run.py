"""Tests for repro.run: capping, run order, reuse of stored trials, divergence, resume logic.

Trials train for real through the engine, but on the SYNTHETIC dataset of conftest.py
(`repro.data.load` is patched to return it), so each run takes seconds.
"""
import json

import numpy as np
import pytest

from repro import data as data_mod
from repro import plan as plan_mod
from repro import run
from repro import spec as spec_mod
from conftest import make_data

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # keras-tuner internals

SPEC = """\
[figure]
id = "figure-run-test"
title = "synthetic run test"
seed = {seed}

[[panel]]
id = "a"
dataset = "mnist"
model = "simple_cnn"
optimizer = "sgd"
schedule = "constant"
goal_error = 0.01

[panel.search]
learning_rate = {{ min = {lr_min}, max = {lr_max}, scale = "log" }}

[panel.grid.full]
batch_sizes = {batch_sizes}
sparsities = [0.0]
trials = 6
max_steps = 64
eval_every = 4
"""


@pytest.fixture(autouse=True)
def synthetic(monkeypatch):
    data = make_data(n_train=64, n_val=3000)  # 3 evaluation chunks of 1000: early exit can act
    monkeypatch.setattr(data_mod, "load", lambda name: data)
    monkeypatch.setattr(data_mod, "require", lambda name: None)
    monkeypatch.setattr(run, "_WORKLOADS", {})


def plan_for(tmp_path, seed=0, lr_min=1e-3, lr_max=0.3, batch_sizes=(8, 16, 32), name="spec"):
    path = tmp_path / f"{name}.toml"
    path.write_text(SPEC.format(seed=seed, lr_min=lr_min, lr_max=lr_max,
                                batch_sizes=json.dumps(list(batch_sizes))))
    return plan_mod.compile_plan(spec_mod.load_spec(path), "full")


def do_run(plan, results, **kw):
    lines = []
    ds, _ = run.run_plan(plan, results, log=lines.append, **kw)
    return ds, lines


def summary(lines):
    """(trained, reused) from the run's last line."""
    last = [ln for ln in lines if ln.startswith("trained ")][-1].split()
    return int(last[1]), int(last[last.index("reused") + 1])


def test_cap_for():
    assert run.cap_for(None, 3, True, 100) is None
    assert run.cap_for((40, 2), 3, False, 100) is None
    assert run.cap_for((40, 2), 3, True, 100) == 39  # a higher index must beat K
    assert run.cap_for((40, 2), 1, True, 100) == 40  # a lower index wins a tie
    assert run.cap_for((200, 2), 3, True, 100) is None  # the cap is past the budget


def test_capping_and_run_order_leave_every_k_star_unchanged(tmp_path):
    plan = plan_for(tmp_path)
    """Every speed-up on (capping, run order, early-exit evaluation) against all off: same K*,
    best trials and metaparameters; every trial not capped has the same status and steps."""
    plain, _ = do_run(plan, tmp_path / "plain", capping=False, reorder=False, early_exit=False)
    capped, _ = do_run(plan, tmp_path / "capped", capping=True, reorder=False)
    ordered, _ = do_run(plan, tmp_path / "ordered", capping=True, reorder=True, early_exit=True)
    k = plain["steps_to_result"].values
    assert np.isfinite(k).all()  # every point has a complete trial: the comparison means something
    for ds in (capped, ordered):
        np.testing.assert_array_equal(ds["steps_to_result"].values, k)
        np.testing.assert_array_equal(ds["best_trial"].values, plain["best_trial"].values)
        np.testing.assert_array_equal(ds["learning_rate"].values, plain["learning_rate"].values)
        uncapped = ds["status"].values != 4
        np.testing.assert_array_equal(ds["status"].values[uncapped], plain["status"].values[uncapped])
        np.testing.assert_array_equal(ds["steps"].values[uncapped], plain["steps"].values[uncapped])
    assert (plain["val_error_exact"].values != 0).all()  # all off: every evaluation counted in full
    assert (ordered["val_error_exact"].values == 0).any()  # early exit did cut some evaluations
    trained = {name: int(ds["steps"].where(ds["steps"] > 0).sum())
               for name, ds in (("plain", plain), ("capped", capped), ("ordered", ordered))}
    assert max(trained["ordered"], trained["capped"]) < trained["plain"], trained  # order is a heuristic
    assert (capped["status"] == 4).any()  # some trials were capped, and recorded as such


def test_run_order_starts_from_the_neighbours_first_complete_trial_and_is_kept(tmp_path):
    plan = plan_for(tmp_path)
    ds, _ = do_run(plan, tmp_path / "r", capping=True, reorder=True, workers=1)
    orders = {}
    for f in (tmp_path / "r" / "orders").glob("*.json"):
        d = json.loads(f.read_text())
        orders[None if d["anchor"] is None else d["anchor"]["batch_size"]] = d
    assert len(orders) == 3 and sorted(sum((d["order"] for d in orders.values()), [])) == \
        sorted(list(range(6)) * 3)  # each a permutation: the set of trials never changes
    assert orders[None]["order"] == list(range(6))  # the first point had no neighbour
    # orders are keyed by their anchor's batch size: the point at 16 anchors on 8, 32 on 16
    own = {8: orders[None], 16: orders[8], 32: orders[16]}
    status = ds["status"].sel(panel="a", sparsity=0.0)
    for b in (8, 16):  # the next point starts with this one's first complete trial, in run order
        first = next(i for i in own[b]["order"] if int(status.sel(batch_size=b, trial=i)) == 1)
        assert orders[b]["anchor"]["trial"] == first and orders[b]["order"][0] == first
    again = {f.name: f.read_text() for f in (tmp_path / "r" / "orders").glob("*.json")}
    do_run(plan, tmp_path / "r", capping=True, reorder=True, workers=1)
    assert again == {f.name: f.read_text() for f in (tmp_path / "r" / "orders").glob("*.json")}


def test_each_point_starts_once_its_anchor_exists_whatever_the_timing():
    """Pure scheduling, no training: (B, s) anchors on (previous B, s), then on the first
    sparsity at B; it may start as soon as that neighbour has a complete trial (pipelined),
    skips a neighbour that finished with none, and waits while one still runs without one.
    Points not in the task list are not waited for (a resumed or partial plan)."""
    from types import SimpleNamespace as NS
    pp = NS(panel=NS(id="a"), grid=NS(batch_sizes=[16, 64, 256], sparsities=[0.0, 0.9]))
    tasks = [(None, pp, s, b) for b in (16, 64, 256) for s in (0.0, 0.9)]
    cands = run.anchor_candidates(tasks)
    # 0: (0, 16)  1: (0.9, 16)  2: (0, 64)  3: (0.9, 64)  4: (0, 256)  5: (0.9, 256)
    assert cands == [[], [0], [0], [1, 2], [2], [3, 4]]
    assert run.anchor_candidates(tasks[2:]) == [[], [0], [0], [1, 2]]  # B = 16 not in this plan
    firsts = {}
    first = firsts.get
    assert run.next_ready([1, 2, 3, 4, 5], tasks, cands, set(), first) is None  # 0 runs, none complete
    firsts[0] = 4  # task 0's trial 4 reached the goal: 1 and 2 may start while 0 goes on
    assert run.next_ready([1, 2, 3, 4, 5], tasks, cands, set(), first) == \
        (1, {"sparsity": 0.0, "batch_size": 16, "trial": 4})
    assert run.anchor_for(2, tasks, cands, set(), first)[0]
    assert not run.anchor_for(3, tasks, cands, set(), first)[0]  # 1 runs without a complete trial
    # 1 ends with none complete: 3 falls back to its second candidate, (0, 64), once it has one
    assert not run.anchor_for(3, tasks, cands, {1}, first)[0]
    firsts[2] = 0
    assert run.anchor_for(3, tasks, cands, {1}, first) == \
        (True, {"sparsity": 0.0, "batch_size": 64, "trial": 0})
    # a candidate's first complete trial wins over its being done: same anchor either way
    firsts[1] = 2
    assert run.anchor_for(3, tasks, cands, set(), first) == \
        run.anchor_for(3, tasks, cands, {0, 1, 2}, first)
    assert run.anchor_for(0, tasks, cands, set(), first) == (True, None)  # nothing to wait for
    # serial: every finished task without a complete trial still unblocks -> never stuck
    order, done, todo = [], set(), list(range(6))
    while todo:
        i, _ = run.next_ready(todo, tasks, cands, done, lambda j: None)
        todo.remove(i), done.add(i), order.append(i)
    assert order == list(range(6))


def test_a_point_whose_first_trial_missed_re_sorts_the_rest_once_around_the_neighbours_best(tmp_path):
    """run.reanchor on a stored run order (no training): the first trial stays first, the rest
    are sorted by distance to the given best trial, and a second call changes nothing."""
    plan = plan_for(tmp_path)
    pp, spec = plan.panels[0], plan.spec
    point = (spec, pp, 0.0, 16, str(tmp_path / "r"), True)
    first = run.run_order(*point, anchor={"sparsity": 0.0, "batch_size": 8, "trial": 3})
    assert first[0] == 3
    assert not run.needs_reanchor(*point)  # its first trial has not run yet
    points, _ = run._sobol(spec, pp)
    best = {"sparsity": 0.0, "batch_size": 8, "trial": 5}
    order = run.reanchor(*point, best)
    dist = np.linalg.norm(points - points[5], axis=1)
    assert order[0] == 3 and sorted(order) == list(range(6))
    assert [dist[t] for t in order[1:]] == sorted(dist[t] for t in order[1:])
    assert run.reanchor(*point, {"sparsity": 0.0, "batch_size": 8, "trial": 0}) == order
    assert run.run_order(*point) == order  # what a resumed run reads
    assert not run.needs_reanchor(*point)  # done once


def test_changed_spec_reuses_unchanged_trials_and_trains_only_what_is_new(tmp_path):
    results = tmp_path / "r"
    first, lines = do_run(plan_for(tmp_path, batch_sizes=(8, 16)), results)
    assert summary(lines)[1] == 0
    again, lines = do_run(plan_for(tmp_path, batch_sizes=(8, 16)), results)
    assert summary(lines) == (0, 12)  # nothing new: every trial re-read
    grown, lines = do_run(plan_for(tmp_path, batch_sizes=(8, 16, 32)), results)
    trained, reused = summary(lines)
    assert reused == 12 and trained == 6  # only the new batch size trains
    np.testing.assert_array_equal(grown["steps_to_result"].sel(batch_size=[8, 16]).values,
                                  first["steps_to_result"].values)


@pytest.mark.parametrize("change", [{"seed": 1}, {"lr_min": 2e-3}])
def test_changed_seed_or_search_space_is_never_mixed_with_old_trials(tmp_path, change):
    results = tmp_path / "r"
    do_run(plan_for(tmp_path, batch_sizes=(16,)), results)
    _, lines = do_run(plan_for(tmp_path, batch_sizes=(16,), **change), results)
    assert summary(lines) == (6, 0)


def test_diverging_trials_in_a_row_never_stop_the_search(tmp_path):
    ds, lines = do_run(plan_for(tmp_path, lr_min=1e4, lr_max=1e8, batch_sizes=(16,)),
                       tmp_path / "r", capping=True)
    assert summary(lines) == (6, 0)
    assert (ds["status"].values == 3).all()  # all six infeasible, all recorded
    assert np.isnan(ds["steps_to_result"].values).all()
    assert sum("infeasible" in ln for ln in lines) == 6


def test_collect_plan_rebuilds_the_run_dataset_without_training(tmp_path):
    plan = plan_for(tmp_path, batch_sizes=(8, 16))
    ds, _ = do_run(plan, tmp_path / "r")
    again = run.collect_plan(plan, tmp_path / "r")
    for name in ("steps_to_result", "best_trial", "status", "steps", "val_error", "run_id"):
        np.testing.assert_array_equal(again[name].values, ds[name].values)
    assert again.attrs["trials_sha256"] == ds.attrs["trials_sha256"]


# ---------------------------------------------------------------- one run, many figures and goals

SHARED = """\
[figure]
id = "{fig}"

[[panel]]
id = "{pid}"
dataset = "mnist"
model = "simple_cnn"
optimizer = "sgd"
schedule = "constant"
goal_error = {goal}
{read}

[panel.search]
learning_rate = {{ min = 3e-4, max = 3e-3, scale = "log" }}

[panel.grid.full]
batch_sizes = [8, 16]
sparsities = [0.0]
trials = 6
max_steps = 64
eval_every = 4
{extra}"""

MOMENTUM_PANEL = """
[[panel]]
id = "m"
dataset = "mnist"
model = "simple_cnn"
optimizer = "momentum"
schedule = "constant"
goal_error = 0.05

[panel.search]
learning_rate = { min = 1e-3, max = 0.1, scale = "log" }
momentum = { min = 0.9, max = 0.99, scale = "reverse_log" }

[panel.grid.full]
batch_sizes = [8]
sparsities = [0.0]
trials = 3
max_steps = 64
eval_every = 4
"""


def shared_plan(tmp_path, fig, goal, read="", pid="a", extra=""):
    path = tmp_path / f"{fig}.toml"
    path.write_text(SHARED.format(fig=fig, pid=pid, goal=goal, read=read, extra=extra))
    return plan_mod.compile_plan(spec_mod.load_spec(path), "full")


OUTCOME = ("steps_to_result", "best_trial", "status", "steps", "val_error", "val_error_exact")


def test_a_figure_at_a_looser_goal_re_reads_the_stored_runs_and_trains_nothing(tmp_path):
    """Figures 8 and 9 of the paper: the same runs at goal errors 0.12 and 0.14 (here 0.05 and
    0.6 on synthetic data). The re-read equals a run made at the looser goal from scratch."""
    # Sobol run order throughout, so that the two ways meet the trials in the same order and
    # every trial's cap, hence status, can be compared (the order changes no K*, only caps).
    do_run(shared_plan(tmp_path, "fig-8", 0.01, read="read_goals = [0.6]"), tmp_path / "r", reorder=False)
    ds9, lines = do_run(shared_plan(tmp_path, "fig-9", 0.6), tmp_path / "r", reorder=False)
    assert summary(lines) == (0, 12)  # every trial re-read, none trained
    direct, lines = do_run(shared_plan(tmp_path, "fig-9", 0.6), tmp_path / "alone", reorder=False)
    assert summary(lines) == (12, 0)
    for name in OUTCOME:
        np.testing.assert_array_equal(ds9[name].values, direct[name].values, err_msg=name)
    k8 = run.collect_plan(shared_plan(tmp_path, "fig-8", 0.01, read="read_goals = [0.6]"),
                          tmp_path / "r")["steps_to_result"]
    assert (ds9["steps_to_result"] <= k8).all() and (ds9["steps_to_result"] < k8).any(), \
        (ds9["steps_to_result"].values, k8.values)  # a looser goal is met sooner


def test_a_goal_the_curves_cannot_answer_trains_only_what_is_missing(tmp_path):
    do_run(shared_plan(tmp_path, "fig-8", 0.05), tmp_path / "r", reorder=False)
    tighter = run.collect_plan(shared_plan(tmp_path, "fig-x", 0.01), tmp_path / "r")
    assert np.isnan(tighter["steps_to_result"].values).all()  # tighter: not answerable, no K* made up
    ds, lines = do_run(shared_plan(tmp_path, "fig-x", 0.01), tmp_path / "r", reorder=False)
    trained, reused = summary(lines)
    assert trained > 0 and trained + reused == 12
    direct, _ = do_run(shared_plan(tmp_path, "fig-x", 0.01), tmp_path / "alone", reorder=False)
    for name in ("steps_to_result", "best_trial", "status", "steps"):
        np.testing.assert_array_equal(ds[name].values, direct[name].values, err_msg=name)


def test_a_figure_sharing_a_panel_with_another_trains_only_its_new_panel(tmp_path):
    """Figure 7(a) and Figure 1(a) of the paper: same workload, grid and search space under
    another figure and panel id -> the same runs."""
    fig1, _ = do_run(shared_plan(tmp_path, "fig-1", 0.05), tmp_path / "r")
    fig7, lines = do_run(shared_plan(tmp_path, "fig-7", 0.05, pid="sgd", extra=MOMENTUM_PANEL),
                         tmp_path / "r")
    assert summary(lines) == (3, 12)  # only the momentum panel's 3 trials are new
    np.testing.assert_array_equal(fig7["steps_to_result"].sel(panel="sgd").values,
                                  fig1["steps_to_result"].sel(panel="a").values)


def test_a_record_retrained_for_another_goal_still_answers_the_first(tmp_path):
    """No ping-pong: reading at a goal the records cannot answer retrains them once, into
    records that answer both goals; going back trains nothing."""
    first, _ = do_run(shared_plan(tmp_path, "fig-8", 0.01), tmp_path / "r", reorder=False)
    _, lines = do_run(shared_plan(tmp_path, "fig-9", 0.6), tmp_path / "r", reorder=False)
    assert summary(lines)[0] > 0  # counting stopped past 0.01: 0.6 was not answerable
    for fig, goal in (("fig-8", 0.01), ("fig-9", 0.6)):
        again, lines = do_run(shared_plan(tmp_path, fig, goal), tmp_path / "r", reorder=False)
        assert summary(lines) == (0, 12), (fig, lines[-1])
    np.testing.assert_array_equal(again["steps_to_result"].values,
                                  do_run(shared_plan(tmp_path, "fig-9", 0.6), tmp_path / "alone",
                                         reorder=False)[0]["steps_to_result"].values)
