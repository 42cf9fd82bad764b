"""Tests for repro.store: atomic writes, trial records, capped views and the netCDF dataset.

The plan is a tiny SYNTHETIC spec written to a temporary folder; trial records are written by
hand (no training).
"""
import dataclasses
import json
import math
import shutil
import subprocess

import numpy as np
import pytest
import xarray as xr

from repro import plan as plan_mod
from repro import spec as spec_mod
from repro import evidence, store
from repro.errors import UsageError

SPEC = """\
[figure]
id = "figure-store-test"
title = "synthetic store test"
seed = 0

[[panel]]
id = "a"
dataset = "mnist"
model = "simple_cnn"
optimizer = "sgd"
schedule = "constant"
goal_error = 0.02

[panel.search]
learning_rate = { min = 1e-4, max = 1.0, scale = "log" }

[panel.grid.full]
batch_sizes = [4, 8]
sparsities = [0.0, 0.5]
trials = 3
max_steps = 64
eval_every = 16

[[panel]]
id = "b"
dataset = "mnist"
model = "simple_cnn"
optimizer = "momentum"
schedule = "constant"
goal_error = 0.05

[panel.search]
learning_rate = { min = 1e-4, max = 1.0, scale = "log" }
momentum = { min = 0.9, max = 0.9999, scale = "reverse_log" }

[panel.grid.full]
batch_sizes = [8, 16]
sparsities = [0.0]
trials = 2
max_steps = 32
eval_every = 16
"""


# ---------------------------------------------------------------- RunStore

def record_json(status, k=None, steps=64, evals=(16, 32, 48, 64), errors=None, cap=None, **values):
    """A trial record as stored (JSON), written by hand."""
    errors = errors if errors is not None else [0.5, 0.2, 0.1, 0.05][:len(evals)]
    return {"status": status, "steps_to_result": k, "steps": steps, "eval_steps": list(evals),
            "val_errors": list(errors), "wall_time": 1.5, "message": "", "cap": cap,
            "identity": {"values": values or {"learning_rate": 0.1}}}


def record(*args, **kw):
    return store.TrialRecord.from_json(record_json(*args, **kw))


def test_runstore_round_trip(tmp_path):
    rs = store.RunStore(tmp_path)
    rid = store.run_id({"a": 1, "b": [1, 2]})
    assert rid == store.run_id({"b": [1, 2], "a": 1})  # key order does not matter
    assert rid != store.run_id({"a": 2, "b": [1, 2]})
    assert rs.get(rid) is None
    rec = record_json("complete", 48, 48, (16, 32, 48), [0.5, 0.1, 0.01])
    rs.put(rid, rec)
    assert rs.get(rid) == rec
    typed = store.TrialRecord.from_json(dict(rec, run_id=rid))
    rs.put_trial(typed)
    assert rs.trial(rid) == typed  # a typed record round-trips through its JSON
    assert rs.path(rid) == tmp_path / "runs" / rid[:2] / f"{rid}.json"
    assert rs.path(rid).exists()


def test_corrupt_record_is_a_usage_error_naming_the_file(tmp_path):
    rs = store.RunStore(tmp_path)
    rid = "abcdef0123456789abcd"
    rs.put(rid, {"ok": True})
    rs.path(rid).write_text('{"status": "compl')  # truncated JSON
    with pytest.raises(UsageError) as e:
        rs.get(rid)
    assert str(rs.path(rid)) in str(e.value)
    assert "corrupt" in str(e.value)


# ---------------------------------------------------------------- capped_view

def test_capped_view_complete_below_cap_unchanged():
    r = record("complete", 32, 32, (16, 32), [0.5, 0.01])
    assert r.capped(40) == r
    assert r.capped(32) == r  # reached exactly at the cap: still its own result
    assert r.capped(None) == r


def test_capped_view_complete_above_cap_is_capped_and_truncated():
    r = record("complete", 64, 64, (16, 32, 48, 64), [0.5, 0.2, 0.1, 0.01])
    v = r.capped(40)
    assert v.status == "capped" and v.steps_to_result is None and v.cap == 40
    assert v.eval_steps == (16, 32,) and v.val_errors == (0.5, 0.2,) and v.steps == 32
    assert r.status == "complete" and r.eval_steps == (16, 32, 48, 64,)  # input untouched
    v = r.capped(10)  # before the first evaluation
    assert v.status == "capped" and v.steps == 0 and v.eval_steps == ()


def test_capped_view_incomplete_above_cap_is_capped():
    r = record("incomplete", None, 64)
    v = r.capped(50)
    assert v.status == "capped" and v.eval_steps == (16, 32, 48,) and v.steps == 48


def test_capped_record_cannot_answer_a_larger_or_no_cap():
    r = record("capped", None, 96, (16, 32, 48, 64, 80, 96), [0.5] * 6, cap=100)
    assert r.capped(200) is None
    assert r.capped(None) is None
    v = r.capped(50)  # but it answers a smaller cap
    assert v.status == "capped" and v.cap == 50 and v.eval_steps == (16, 32, 48,)
    assert r.capped(100).eval_steps == r.eval_steps


def test_capped_view_infeasible_early_unchanged():
    r = record("infeasible", None, 5, (), [])
    assert r.capped(40) == r
    late = record("infeasible", None, 64, (16, 32, 48, 64), [0.5, 0.4, 0.3, math.nan])
    v = late.capped(40)  # would have been stopped before diverging
    assert v.status == "capped" and v.eval_steps == (16, 32,)


# ---------------------------------------------------------------- goal_view (one run, many goals)

def at_goal(r, goal, exact=None):
    import dataclasses
    return dataclasses.replace(r, goal=goal, **({} if exact is None else {"val_exact": tuple(exact)}))


def test_goal_view_at_the_runs_own_goal_is_the_capped_view():
    r = at_goal(record("complete", 48, 48, (16, 32, 48), [0.5, 0.2, 0.1]), 0.12)
    assert r.view(0.12) == r
    assert r.view(0.12, 40) == r.capped(40)


def test_goal_view_looser_goal_is_read_off_the_exact_curve():
    r = at_goal(record("complete", 64, 64, (16, 32, 48, 64), [0.5, 0.13, 0.125, 0.11]), 0.12)
    v = r.view(0.14)
    assert v.status == "complete" and v.steps_to_result == 32 and v.steps == 32
    assert v.eval_steps == (16, 32,) and v.val_errors == (0.5, 0.13,) and v.goal == 0.14
    assert r.view(0.5).steps_to_result == 16  # at the first evaluation
    assert r.view(0.14, 20).status == "capped"  # the cap still applies


def test_goal_view_lower_bound_at_or_below_a_looser_goal_cannot_answer():
    # Counting stopped once errors passed 0.12: 0.13 is a lower bound, the truth may be 0.2.
    r = at_goal(record("complete", 48, 48, (16, 32, 48), [0.5, 0.13, 0.11]), 0.12,
                exact=[False, False, True])
    assert r.view(0.14) is None
    assert r.view(0.125).steps_to_result == 48  # 0.13 > 0.125: a known miss


def test_goal_view_tighter_goal_needs_a_curve_that_reached_it():
    r = at_goal(record("complete", 48, 48, (16, 32, 48), [0.5, 0.2, 0.1]), 0.12)
    assert r.view(0.05) is None  # stopped at 0.1: what came after is unknown
    assert r.view(0.1).steps_to_result == 48  # the last point meets it exactly


@pytest.mark.parametrize("status", ["incomplete", "infeasible"])
def test_goal_view_runs_that_never_met_their_goal_never_met_a_tighter_one(status):
    r = at_goal(record(status, None, 48, (16, 32, 48), [0.5, 0.3, 0.2]), 0.12)
    v = r.view(0.05)
    assert v.status == status and v.steps == 48
    assert r.view(0.25).steps_to_result == 48  # but a looser one they did


def test_goal_view_capped_run_answers_other_goals_only_within_its_cap():
    r = at_goal(record("capped", None, 48, (16, 32, 48), [0.5, 0.3, 0.2], cap=50), 0.12)
    assert r.view(0.3).steps_to_result == 32
    assert r.view(0.1, 50).status == "capped"
    assert r.view(0.1, 80) is None and r.view(0.1) is None


def test_goal_view_divergence_ends_the_curve():
    r = at_goal(record("infeasible", None, 48, (16, 32, 48), [0.5, 0.3, math.nan]), 0.12)
    assert r.view(0.4).steps_to_result == 32
    assert r.view(0.2).status == "infeasible"


# ---------------------------------------------------------------- collect / write_dataset

@pytest.fixture()
def spec_and_plan(tmp_path):
    path = tmp_path / "specs" / "figure-store-test.toml"
    path.parent.mkdir()
    path.write_text(SPEC)
    sp = spec_mod.load_spec(path)
    return sp, plan_mod.compile_plan(sp, "full")


def synthetic_records():
    """Panel a, s=0, B=4: K = 48, 32, 32 -> K* = 32 by trial 1 (tie with 2).
    Panel a, s=0, B=8: all incomplete -> NaN. Panel a, s=0.5, B=4: infeasible, complete 16,
    capped -> 16 by trial 1. Panel a, s=0.5, B=8: not run. Panel b, s=0, B=16: one of two
    trials run (complete)."""
    ev = (16, 32, 48, 64)
    return {
        ("a", 0.0, 4, 0): record("complete", 48, 48, ev[:3], [0.5, 0.1, 0.01], learning_rate=0.01),
        ("a", 0.0, 4, 1): record("complete", 32, 32, ev[:2], [0.5, 0.01], learning_rate=0.1),
        ("a", 0.0, 4, 2): record("complete", 32, 32, ev[:2], [0.4, 0.02], learning_rate=0.001),
        ("a", 0.0, 8, 0): record("incomplete", None, 64, ev, learning_rate=0.01),
        ("a", 0.0, 8, 1): record("incomplete", None, 64, ev, learning_rate=0.1),
        ("a", 0.0, 8, 2): record("incomplete", None, 64, ev, learning_rate=0.001),
        ("a", 0.5, 4, 0): record("infeasible", None, 3, (), [], learning_rate=0.01),
        ("a", 0.5, 4, 1): record("complete", 16, 16, ev[:1], [0.0], learning_rate=0.1),
        ("a", 0.5, 4, 2): record("capped", None, 0, (), [], cap=15, learning_rate=0.001),
        ("b", 0.0, 16, 0): record("complete", 32, 32, (16, 32), [0.3, 0.04],
                                  learning_rate=0.01, momentum=0.99),
    }


def test_collect_and_write_dataset(spec_and_plan, tmp_path):
    sp, plan = spec_and_plan
    ds = store.collect(sp, plan, synthetic_records())
    out = tmp_path / "results" / "figure-store-test.full.nc"
    store.write_dataset(ds, out)
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temp files left

    with xr.open_dataset(out) as f:  # plain xarray, no repro code
        f = f.load()
    for name in ("steps_to_result", "best_trial", "status", "steps", "wall_time",
                 "learning_rate", "momentum", "eval_step", "val_error", "goal_error",
                 "dataset", "model", "optimizer", "schedule"):
        assert name in f.variables, name
    assert "decay_steps" not in f and "end_factor" not in f  # no panel decays
    assert list(f["panel"].values) == ["a", "b"]
    assert list(f["sparsity"].values) == [0.0, 0.5]
    assert list(f["batch_size"].values) == [4, 8, 16]
    assert f["batch_size"].dtype == np.int64
    assert list(f["trial"].values) == [0, 1, 2]
    assert f.sizes["eval"] == 4
    assert f["steps_to_result"].dims == ("panel", "sparsity", "batch_size")
    assert f["status"].dims == ("panel", "sparsity", "batch_size", "trial")
    assert f["val_error"].dims == ("panel", "sparsity", "batch_size", "trial", "eval")
    assert f["eval_step"].dims == ("panel", "batch_size", "eval")
    assert f["status"].dtype == np.int8 and f["val_error"].dtype == np.float32

    k = f["steps_to_result"]
    best = f["best_trial"]
    assert float(k.sel(panel="a", sparsity=0.0, batch_size=4)) == 32
    assert int(best.sel(panel="a", sparsity=0.0, batch_size=4)) == 1  # tie -> lowest id
    assert math.isnan(float(k.sel(panel="a", sparsity=0.0, batch_size=8)))
    assert int(best.sel(panel="a", sparsity=0.0, batch_size=8)) == -1
    assert float(k.sel(panel="a", sparsity=0.5, batch_size=4)) == 16
    assert int(best.sel(panel="a", sparsity=0.5, batch_size=4)) == 1
    assert math.isnan(float(k.sel(panel="a", sparsity=0.5, batch_size=8)))  # not run
    # b at B=16: 1 of its 2 trials run -> not fully searched, so no K* (32 is only an upper bound)
    assert math.isnan(float(k.sel(panel="b", sparsity=0.0, batch_size=16)))
    full = store.collect(sp, plan, {**synthetic_records(), ("b", 0.0, 16, 1): record(
        "incomplete", None, 32, (16, 32), [0.3, 0.2], learning_rate=0.1, momentum=0.9)})
    assert float(full["steps_to_result"].sel(panel="b", sparsity=0.0, batch_size=16)) == 32
    assert math.isnan(float(k.sel(panel="b", sparsity=0.0, batch_size=4)))  # not in b's grid

    st = f["status"]
    codes = dict(zip(st.attrs["flag_meanings"].split(), np.asarray(st.attrs["flag_values"]).tolist()))
    assert codes == store.STATUS
    assert codes["not_run"] == 0 and codes["complete"] == 1
    assert codes["incomplete"] == 2 and codes["infeasible"] == 3
    assert st.sel(panel="a", sparsity=0.5, batch_size=4).values.tolist() == [3, 1, 4]
    assert st.sel(panel="a", sparsity=0.5, batch_size=8).values.tolist() == [0, 0, 0]
    assert st.sel(panel="b", sparsity=0.0, batch_size=16).values.tolist() == [1, 0, 0]

    assert int(f["steps"].sel(panel="a", sparsity=0.5, batch_size=8, trial=0)) == -1
    assert f["learning_rate"].sel(panel="a", sparsity=0.0, batch_size=4).values.tolist() == \
        [0.01, 0.1, 0.001]
    assert math.isnan(float(f["momentum"].sel(panel="a", sparsity=0.0, batch_size=4, trial=0)))
    assert float(f["momentum"].sel(panel="b", sparsity=0.0, batch_size=16, trial=0)) == 0.99
    curve = f["val_error"].sel(panel="a", sparsity=0.0, batch_size=4, trial=0).values
    np.testing.assert_allclose(curve[:3], [0.5, 0.1, 0.01], rtol=1e-6)
    assert np.isnan(curve[3])
    assert f["eval_step"].sel(panel="a", batch_size=4).values.tolist() == [16, 32, 48, 64]
    assert f["eval_step"].sel(panel="b", batch_size=16).values.tolist() == [16, 32, -1, -1]
    assert f["eval_step"].sel(panel="a", batch_size=16).values.tolist() == [-1, -1, -1, -1]
    assert f["goal_error"].values.tolist() == [0.02, 0.05]
    assert list(f["optimizer"].values) == ["sgd", "momentum"]

    for attr in ("figure", "title", "grid", "spec_path", "spec_sha256", "repro_version",
                 "git_commit", "package_versions", "created"):
        assert attr in f.attrs, attr
    assert any(a.lower() == "conventions" for a in f.attrs)
    assert f.attrs["figure"] == "figure-store-test" and f.attrs["grid"] == "full"
    assert f.attrs["spec_sha256"] == sp.sha256
    assert isinstance(json.loads(f.attrs["package_versions"]), dict)

    if shutil.which("ncdump"):
        r = subprocess.run(["ncdump", "-h", str(out)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert "steps_to_result" in r.stdout and "flag_meanings" in r.stdout


def test_a_panel_with_fewer_trials_than_the_files_trial_axis_is_read_as_complete(spec_and_plan):
    """Panel b searches 2 trials, panel a 3, so the file's trial axis has 3: b's searches are
    whole when its 2 trials have run (the bug `repro decide` exposed: growing one panel's trials
    left the others with no K*), and still partial when only 1 has."""
    sp, plan = spec_and_plan
    both = {**synthetic_records(), ("b", 0.0, 16, 1): record(
        "incomplete", None, 32, (16, 32), [0.3, 0.2], learning_rate=0.1, momentum=0.9)}
    ds = store.collect(sp, plan, both)
    assert ds.sizes["trial"] == 3 and ds["grid_trials"].values.tolist() == [3, 2]
    ev = evidence.from_dataset(ds, "b")
    assert ev.n_trials == 2
    assert evidence.point_estimate(ev)[0, ev.batch_sizes.tolist().index(16)] == 32
    one = evidence.from_dataset(store.collect(sp, plan, synthetic_records()), "b")
    assert np.isnan(evidence.point_estimate(one)[0, one.batch_sizes.tolist().index(16)])
    # a file written before grid_trials existed reads b's third (absent) trial as not run
    old = evidence.from_dataset(ds.drop_vars("grid_trials"), "b")
    assert old.n_trials == 3 and np.isnan(evidence.point_estimate(old)).all()


def test_ncdump_header(spec_and_plan, tmp_path):
    if not shutil.which("ncdump"):
        pytest.skip("ncdump not installed (apt-get install netcdf-bin)")
    sp, plan = spec_and_plan
    out = tmp_path / "r.nc"
    store.write_dataset(store.collect(sp, plan, {}), out)
    r = subprocess.run(["ncdump", "-h", str(out)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "val_error" in r.stdout and "batch_size = 3" in r.stdout


def test_collect_tie_break_does_not_depend_on_record_order(spec_and_plan):
    sp, plan = spec_and_plan
    recs = synthetic_records()
    reordered = {key: recs[key] for key in sorted(recs, key=lambda k: -k[3])}  # trial 2 first
    ds = store.collect(sp, plan, reordered)
    assert int(ds["best_trial"].sel(panel="a", sparsity=0.0, batch_size=4)) == 1


def test_open_results_errors(tmp_path):
    with pytest.raises(UsageError, match="no results file"):
        store.open_results(tmp_path / "missing.nc")
    bad = tmp_path / "bad.nc"
    bad.write_bytes(b"not a netcdf file")
    with pytest.raises(UsageError, match="cannot read results"):
        store.open_results(bad)


def test_results_file_carries_a_checksum_of_its_trials(spec_and_plan, tmp_path):
    sp, plan = spec_and_plan
    recs = {k: dataclasses.replace(r, run_id=f"id{i}") for i, (k, r) in enumerate(synthetic_records().items())}
    out = tmp_path / "r.nc"
    store.write_dataset(store.collect(sp, plan, recs), out)
    ds = store.open_results(out, sp)  # round trip keeps the checksum valid
    assert ds["run_id"].sel(panel="a", sparsity=0.0, batch_size=4).values.tolist() == ["id0", "id1", "id2"]
    assert ds["run_id"].sel(panel="a", sparsity=0.5, batch_size=8).values.tolist() == ["", "", ""]
    assert ds.attrs["trials_sha256"] == store.trials_checksum(ds)

    ds["steps"][0, 0, 0, 0] = 47  # someone edits a trial in the file
    store.write_dataset(ds, out)
    with pytest.raises(UsageError, match="trials_sha256.*altered or damaged.*repro collect"):
        store.open_results(out, sp)


def test_truncated_results_file_offers_rebuild(spec_and_plan, tmp_path):
    sp, plan = spec_and_plan
    out = tmp_path / "r.nc"
    store.write_dataset(store.collect(sp, plan, synthetic_records()), out)
    out.write_bytes(out.read_bytes()[:2000])
    with pytest.raises(UsageError, match="cannot read results.*python -m repro collect"):
        store.open_results(out, sp)


def test_results_of_another_spec_version_are_refused(spec_and_plan, tmp_path):
    sp, plan = spec_and_plan
    out = tmp_path / "r.nc"
    store.write_dataset(store.collect(sp, plan, synthetic_records()), out)
    sp.path.write_text(sp.path.read_text() + "\n# an edit\n")
    edited = spec_mod.load_spec(sp.path)
    with pytest.raises(UsageError, match="spec_sha256.*another version.*repro collect"):
        store.open_results(out, edited)


def test_a_curve_cut_at_the_cap_answers_a_tighter_goal_within_it():
    """A run that met its own goal 0.12 at step 48 cannot say when it would have met 0.05, but
    a search that caps it at 40 needs only its evaluations up to 40: none met 0.05 there."""
    r = at_goal(record("complete", 48, 48, (16, 32, 48), [0.5, 0.2, 0.1]), 0.12)
    assert r.view(0.05) is None
    v = r.view(0.05, 40)
    assert v.status == "capped" and v.eval_steps == (16, 32) and v.cap == 40 and v.goal == 0.05
    assert r.view(0.05, 48) is None  # at 48 the curve shows 0.1 only: 0.05 came later or never
    hit = at_goal(record("complete", 48, 48, (16, 32, 48), [0.5, 0.04, 0.03]), 0.035)
    assert hit.view(0.05, 40).steps_to_result == 32  # met within the cap: complete, not capped


def test_each_batch_sizes_evaluations_stop_at_its_own_budget():
    """Figure 1(b) reduced: max_steps 6,000 and max_examples 500,000, so a trial at B = 1024 may
    run 488 steps, and a stored trial there that missed the goal ran to its last evaluation,
    step 465 (the record of that run says so). The file's evaluation steps at B = 1024 end
    there, and a reader takes 465 as the budget a miss ran to, not the panel's 5,794."""
    import pathlib
    sp = spec_mod.load_spec(pathlib.Path(__file__).resolve().parent.parent / "specs" / "figure-1.toml")
    plan = plan_mod.compile_plan(sp, "reduced", ["b"])
    ds = store.collect(sp, plan, {})
    row = ds["eval_step"].sel(panel="b", batch_size=1024).values
    assert row[row >= 0][-1] == 465
    row16 = ds["eval_step"].sel(panel="b", batch_size=16).values
    assert row16[row16 >= 0][-1] == 5794
