"""Tests for repro.run: racing with capping, reuse of stored trials, divergence, resume logic.

Trials train for real through the engine, but on the SYNTHETIC dataset of conftest.py
(`repro.data.load` is patched to return it), so each run takes seconds.
"""
import re
import json

import numpy as np
import pytest

from repro import data as data_mod
from repro import plan as plan_mod
from repro import progress as progress_mod
from repro import race
from repro import records as records_mod
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


def do_run(plan, results, workers=1, **options):
    """run_plan into `results` with RunOptions `options`; (dataset, printed lines)."""
    lines = []
    ds, _ = run.run_plan(plan, run.RunOptions(results_dir=str(results), **options),
                         workers=workers, log=lines.append)
    return ds, lines


def summary(lines):
    """(trained, reused) from the run's last line."""
    last = [ln for ln in lines if ln.startswith("trained ")][-1].split()
    return int(last[1]), int(last[last.index("reused") + 1])


def test_cap_for():
    assert race.cap_for([], 3, True, 100) is None
    assert race.cap_for([(40, 2)], 3, False, 100) is None
    assert race.cap_for([(40, 2)], 3, True, 100) == 39  # a higher index must beat K
    assert race.cap_for([(40, 2)], 1, True, 100) == 40  # a lower index wins a tie
    assert race.cap_for([(40, 2)], 2, True, 100) == 40  # the best trial itself runs to K
    assert race.cap_for([(200, 2)], 3, True, 100) is None  # the cap is past the budget


def test_cap_for_with_two_finishers_caps_at_the_second():
    """With finishers = 2 nobody is capped until two trials finished; then the cap is the
    second's (K, trial), whatever order they finished in."""
    assert race.cap_for([(40, 2)], 3, True, 100, finishers=2) is None
    assert race.cap_for([(60, 0), (40, 2)], 3, True, 100, finishers=2) == 59  # after trial 0 at 60
    assert race.cap_for([(60, 0), (40, 2)], 0, True, 100, finishers=2) == 60
    assert race.cap_for([(40, 4), (40, 2)], 3, True, 100, finishers=2) == 40  # ties with 4, lower index


def test_capping_and_early_exit_leave_every_k_star_unchanged(tmp_path):
    """Racing with capping and early-exit evaluation against both off: same K*, best trials
    and metaparameters; every trial not capped has the same status and steps."""
    plan = plan_for(tmp_path)
    plain, _ = do_run(plan, tmp_path / "plain", capping=False, early_exit=False)
    capped, _ = do_run(plan, tmp_path / "capped", capping=True, early_exit=True)
    k = plain["steps_to_result"].values
    assert np.isfinite(k).all()  # every point has a complete trial: the comparison means something
    np.testing.assert_array_equal(capped["steps_to_result"].values, k)
    np.testing.assert_array_equal(capped["best_trial"].values, plain["best_trial"].values)
    np.testing.assert_array_equal(capped["learning_rate"].values, plain["learning_rate"].values)
    uncapped = capped["status"].values != 4
    np.testing.assert_array_equal(capped["status"].values[uncapped], plain["status"].values[uncapped])
    np.testing.assert_array_equal(capped["steps"].values[uncapped], plain["steps"].values[uncapped])
    assert (plain["val_error_exact"].values != 0).all()  # all off: every evaluation counted in full
    assert (capped["val_error_exact"].values == 0).any()  # early exit did cut some evaluations
    trained = {name: int(ds["steps"].where(ds["steps"] > 0).sum())
               for name, ds in (("plain", plain), ("capped", capped))}
    assert trained["capped"] < trained["plain"], trained
    assert (capped["status"] == 4).any()  # some trials were capped, and recorded as such
    # racing's bound: every trial of a point with a K* stops by K* (the best at K*, the rest before)
    steps = capped["steps"].values
    assert (steps <= capped["steps_to_result"].values[..., None]).all()


def test_a_single_point_with_several_workers_trains_here_on_one_thread(tmp_path, monkeypatch):
    """One study point never starts a pool (execute runs it in this process), so this process
    must compute as a worker does: one thread (engine.TRIAL_THREADS), or its bits, and K*,
    would depend on how many points the plan has."""
    from repro import engine
    pinned = []
    monkeypatch.setattr(engine, "pin_threads", lambda threads=engine.TRIAL_THREADS:
                        pinned.append(threads) or True)
    _, lines = do_run(plan_for(tmp_path, batch_sizes=(16,)), tmp_path / "r", workers=2)
    assert summary(lines) == (6, 0)  # it trained, here (the patch is not seen by a pool)
    assert pinned == [engine.TRIAL_THREADS]


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
    again = records_mod.collect_plan(plan, tmp_path / "r")
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
    do_run(shared_plan(tmp_path, "fig-8", 0.01, read="read_goals = [0.6]"), tmp_path / "r")
    ds9, lines = do_run(shared_plan(tmp_path, "fig-9", 0.6), tmp_path / "r")
    assert summary(lines) == (0, 12)  # every trial re-read, none trained
    direct, lines = do_run(shared_plan(tmp_path, "fig-9", 0.6), tmp_path / "alone")
    assert summary(lines) == (12, 0)
    for name in OUTCOME:
        np.testing.assert_array_equal(ds9[name].values, direct[name].values, err_msg=name)
    k8 = records_mod.collect_plan(shared_plan(tmp_path, "fig-8", 0.01, read="read_goals = [0.6]"),
                          tmp_path / "r")["steps_to_result"]
    assert (ds9["steps_to_result"] <= k8).all() and (ds9["steps_to_result"] < k8).any(), \
        (ds9["steps_to_result"].values, k8.values)  # a looser goal is met sooner


def test_a_goal_the_curves_cannot_answer_trains_only_what_is_missing(tmp_path):
    do_run(shared_plan(tmp_path, "fig-8", 0.05), tmp_path / "r")
    tighter = records_mod.collect_plan(shared_plan(tmp_path, "fig-x", 0.01), tmp_path / "r")
    read = tighter["steps_to_result"].values
    assert np.isnan(read).any()  # tighter: some points are not answerable, and get no K*
    ds, lines = do_run(shared_plan(tmp_path, "fig-x", 0.01), tmp_path / "r")
    trained, reused = summary(lines)
    assert trained > 0 and trained + reused == 12
    direct, _ = do_run(shared_plan(tmp_path, "fig-x", 0.01), tmp_path / "alone")
    for name in ("steps_to_result", "best_trial", "status", "steps"):
        np.testing.assert_array_equal(ds[name].values, direct[name].values, err_msg=name)
    answered = ~np.isnan(read)  # a K* read from the old curves is the one training finds
    np.testing.assert_array_equal(read[answered], direct["steps_to_result"].values[answered])


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
    first, _ = do_run(shared_plan(tmp_path, "fig-8", 0.01), tmp_path / "r")
    _, lines = do_run(shared_plan(tmp_path, "fig-9", 0.6), tmp_path / "r")
    assert summary(lines)[0] > 0  # counting stopped past 0.01: 0.6 was not answerable
    for fig, goal in (("fig-8", 0.01), ("fig-9", 0.6)):
        again, lines = do_run(shared_plan(tmp_path, fig, goal), tmp_path / "r")
        assert summary(lines) == (0, 12), (fig, lines[-1])
    np.testing.assert_array_equal(again["steps_to_result"].values,
                                  do_run(shared_plan(tmp_path, "fig-9", 0.6), tmp_path / "alone")[0]["steps_to_result"].values)


def test_eta_prices_each_remaining_trial_at_its_own_batch_size(tmp_path):
    """No training: made-up trial events (times chosen by hand) drive the Progress counter."""
    from types import SimpleNamespace
    points = {p.batch_size: p for p in plan_mod.study_points(plan_for(tmp_path, batch_sizes=(8, 16, 32)))}
    lines = []
    progress = progress_mod.Progress(list(points.values()), workers=2, log=lines.append)

    def finish(b, seconds, reused=False):
        for i in range(6):
            record = SimpleNamespace(wall_time=seconds, steps=10, examples_trained=10 * b,
                                     examples_evaluated=0, values={"learning_rate": 0.1},
                                     status="complete", k=10)
            progress(progress_mod.TrialEvent(points[b], i, record, reused=reused))

    assert progress.eta() == "?"  # nothing trained yet
    finish(32, 4.0)
    # B = 16 and 8 not trained yet: priced at B = 32's 4 s (a smaller B costs no more),
    # 12 trials x 4 s over 2 workers
    assert progress.eta() == "0m24s"
    finish(16, 2.0)
    # the 6 trials at B = 8 at the nearest trained B (16): 6 x 2 s / 2; the mean over all
    # trained trials (3 s) would say 0m09s
    assert progress.eta() == "0m06s"
    assert lines[-1].startswith("[12/18 trials") and "ETA 0m06s" in lines[-1]
    finish(8, 1.0, reused=True)  # stored trials: done, and not counted as trained time
    assert progress.eta() == "0m00s" and progress.trained == 12 and progress.done == 18


def test_eta_scales_a_larger_unmeasured_batch_size_up(tmp_path):
    from types import SimpleNamespace
    points = {p.batch_size: p for p in plan_mod.study_points(plan_for(tmp_path, batch_sizes=(8, 32)))}
    progress = progress_mod.Progress(list(points.values()), workers=1, log=lambda line: None)
    for i in range(6):
        progress(progress_mod.TrialEvent(points[8], i, SimpleNamespace(
            wall_time=1.0, steps=10, examples_trained=80, examples_evaluated=0, values={},
            status="complete", k=10), reused=False))
    # K* does not grow with B, so a trial at B = 32 costs at most 32 / 8 x 1 s
    assert progress.eta() == "0m24s"


def _record(seconds, b=8):
    from types import SimpleNamespace
    return SimpleNamespace(wall_time=seconds, steps=10, examples_trained=10 * b, examples_evaluated=0,
                           values={"learning_rate": 0.1}, status="complete", k=10)


def test_eta_from_the_start_with_a_prior_then_refined(tmp_path):
    """No training: a prior (as throughput.run_prior gives it) prices every trial before any
    ends; finished trials scale it; SNIP passes to come are counted until they are done."""
    points = {p.batch_size: p for p in plan_mod.study_points(plan_for(tmp_path, batch_sizes=(8, 32)))}
    lines = []
    prior = {"trial_s": {points[8].key: 10.0, points[32].key: 20.0}, "bound": True,
             "snip_s": {("mnist", "simple_cnn"): 30.0}, "snip_passes": 2, "text": "test"}
    progress = progress_mod.Progress(list(points.values()), workers=2, log=lines.append, prior=prior)
    # 6 x 10 s + 6 x 20 s over 2 workers = 90 s, plus 2 SNIP passes x 30 s / 2 = 30 s; a bound
    assert progress.eta() == "<=2m00s"
    assert progress_mod.Progress(list(points.values()), workers=2).eta() == "?"  # without a prior
    progress(progress_mod.Stage(points[32], "snip", "done", "SNIP scores of trial seed 0", 45, 45, 12.0))
    # one pass left, at its measured 12 s: 90 + 12 / 2
    assert progress.eta() == "<=1m36s" and "SNIP scores of trial seed 0 done in 0m12s" in lines[-1]
    progress(progress_mod.TrialEvent(points[32], 0, _record(5.0, 32), reused=False))
    # B = 32 measured (5 s a trial, 5 left); B = 8 at the nearest measured B of its panel and
    # sparsity (a smaller B costs no more): (25 + 30) / 2 + 6; no longer a bound
    assert progress.eta() == "0m33s", progress.eta()
    assert lines[-1].startswith("[1/12 trials") and "ETA 0m33s" in lines[-1]
    # a point of another panel or sparsity, not timed here: its prior, scaled by 5 s / 20 s
    from types import SimpleNamespace
    other = SimpleNamespace(key=(0, "z", 0.5, 8), trials=6)
    progress.prior["trial_s"][other.key] = 40.0
    assert progress.trial_seconds(other) == pytest.approx(10.0)


def test_stage_lines_at_start_and_end_and_a_throttled_snip_progress(tmp_path):
    (point, *_) = plan_mod.study_points(plan_for(tmp_path, batch_sizes=(8,)))
    lines = []
    progress = progress_mod.Progress([point], log=lines.append, every_stage=3600)
    progress(progress_mod.Stage(point, "snip", "start", "SNIP scores of trial seed 2 (one pass over 100 training images)"))
    for done in (20, 40, 60):
        progress(progress_mod.Stage(point, "snip", "progress", "SNIP scores of trial seed 2", done, 100, 1.0))
    assert len(lines) == 1 and "(a) B=8 s=0: SNIP scores of trial seed 2 (one pass over 100" in lines[0]
    progress.every_stage = 0
    progress(progress_mod.Stage(point, "snip", "progress", "SNIP scores of trial seed 2", 80, 100, 61.0))
    assert lines[-1].endswith("(a) B=8 s=0: SNIP scores of trial seed 2: 80 of 100 images (80%), 1m01s")
    assert lines[-1].startswith("[0/6 trials | 0m00s | ETA ?]")
    n = len(lines)
    progress(progress_mod.Stage(point, "snip", "progress", "SNIP scores of trial seed 2", 100, 100, 70.0))
    assert len(lines) == n  # the last chunk: the "done" line says it
    progress(progress_mod.Stage(point, "snip", "done", "SNIP scores of trial seed 2", 100, 100, 70.0))
    assert lines[-1].endswith("(a) B=8 s=0: SNIP scores of trial seed 2 done in 1m10s")


def test_a_run_says_when_it_loads_data_and_starts_each_race(tmp_path):
    _, lines = do_run(plan_for(tmp_path, batch_sizes=(8, 16)), tmp_path / "r")
    loading = [i for i, ln in enumerate(lines) if "loading mnist and building simple_cnn" in ln]
    races = [ln for ln in lines if "racing trials 0-5 of 6, up to 64 steps each" in ln]
    assert len(loading) == 2 and "done in" in lines[loading[1]]  # start and end, once per process
    assert len(races) == 2 and "(a) B=16" in races[0] and "(a) B=8" in races[1]  # costliest first
    first_trial = next(i for i, ln in enumerate(lines) if " trial 0: " in ln)
    assert loading[0] < first_trial and lines.index(races[0]) < first_trial


def test_a_prior_gives_the_eta_from_the_first_line_and_a_failing_one_never_stops_the_run(tmp_path):
    plan = plan_for(tmp_path, batch_sizes=(8, 16))
    seen = []

    def prior(points, stored, workers):
        seen.append((len(points), len(stored), workers))
        return {"trial_s": {p.key: 30.0 for p in points}, "bound": True, "snip_s": {},
                "snip_passes": 0, "text": "made up for this test"}

    lines = []
    run.run_plan(plan, run.RunOptions(results_dir=str(tmp_path / "r")), log=lines.append, prior=prior)
    assert seen == [(2, 0, 1)]
    # an earlier test in this process may have started TensorFlow on several threads: the run
    # warns about it first; the progress lines follow
    lines = [line for line in lines if not line.startswith("warning: TensorFlow already runs")]
    # 12 trials x 30 s on one worker, an upper bound, before anything has loaded (the seconds
    # since the start may tick on a loaded machine; the ETA counts down from 6m00s)
    def eta_seconds(line):
        m = re.match(r"\[0/12 trials \| (\d+)m(\d\d)s \| ETA <=(\d+)m(\d\d)s\] ", line)
        assert m, line
        elapsed, eta = int(m[1]) * 60 + int(m[2]), int(m[3]) * 60 + int(m[4])
        return elapsed, eta
    # the first line says before the prior is asked (a probe may take a minute) what comes
    assert re.match(r"\[0/12 trials \| \d+m\d\ds \| ETA \?\] 12 trials to train on 1 worker; "
                    r"estimating how long", lines[0]), lines[0]
    elapsed, eta = eta_seconds(lines[1])
    assert lines[1].endswith("12 trials to train on 1 worker; ETA from the start: made up for this test")
    assert elapsed <= 10 and 360 - 10 <= eta <= 360
    assert "s=0: loading mnist" in lines[2] and "(a) B=16" in lines[2]
    assert 360 - 60 <= eta_seconds(lines[2])[1] <= 360
    assert "ETA ?" not in "\n".join(lines[1:])  # an estimate from the second line on

    def broken(points, stored, workers):
        raise OSError("no cache folder")

    lines = []
    ds, _ = run.run_plan(plan, run.RunOptions(results_dir=str(tmp_path / "r2")), log=lines.append,
                         prior=broken)
    lines = [line for line in lines if not line.startswith("warning: TensorFlow already runs")]
    assert "estimating how long" in lines[0]
    assert lines[1] == "warning: no ETA before the first trial ends (OSError: no cache folder)"
    assert (ds["status"] > 0).all()
    # everything stored: nothing to estimate, the prior is not asked
    seen.clear()
    run.run_plan(plan, run.RunOptions(results_dir=str(tmp_path / "r")), log=lines.append, prior=prior)
    assert seen == []
