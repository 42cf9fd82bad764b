"""Replicate seeds (grid key `seeds`): the whole search again under seed + r * 2**20.

Trials train for real through the engine on the SYNTHETIC dataset of conftest.py, through the
helpers of tests/test_run.py (its `synthetic` fixture patches `repro.data.load`).
"""
import json
import pathlib
import re

import numpy as np
import pytest

from repro import cluster, cost
from repro import plan as plan_mod
from repro import records as records_mod
from repro import spec as spec_mod
from repro import store
from repro.__main__ import main
from repro.errors import UsageError
from test_run import SPEC, do_run, summary, synthetic  # noqa: F401 (synthetic: autouse fixture)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # keras-tuner internals

STRIDE = plan_mod.REPLICATE_SEED_STRIDE
MAIN = ("steps_to_result", "best_trial", "status", "steps")
BY_SEED = {n: f"{n}_by_seed" for n in MAIN}


def seeded_plan(tmp_path, seeds=None, seed=5, batch_sizes=(8, 16), name="spec", sobol_seed=None):
    """test_run's SYNTHETIC spec, with `seeds = N` in its full grid (None: no key at all);
    `sobol_seed`: the scrambled Sobol sequence with that seed instead of the unscrambled one."""
    path = tmp_path / f"{name}.toml"
    text = SPEC.format(seed=seed, lr_min=1e-3, lr_max=0.3, batch_sizes=json.dumps(list(batch_sizes)))
    if sobol_seed is not None:
        text = text.replace(f"seed = {seed}\n", f'seed = {seed}\nsobol = "scrambled"\nsobol_seed = {sobol_seed}\n', 1)
    path.write_text(text + ("" if seeds is None else f"seeds = {seeds}\n"))
    return plan_mod.compile_plan(spec_mod.load_spec(path), "full")


def records(results):
    return [json.loads(f.read_text()) for f in (results / "runs").glob("*/*.json")]


def test_replicate_0_is_todays_run_and_replicate_1_the_search_under_seed_plus_stride(tmp_path):
    results = tmp_path / "r"
    one, lines = do_run(seeded_plan(tmp_path, name="one"), results)
    assert summary(lines) == (12, 0)
    plan2 = seeded_plan(tmp_path, seeds=2, name="two")
    two, lines = do_run(plan2, results)
    assert summary(lines) == (12, 12)  # replicate 0's runs are reused: only replicate 1 trains
    assert any(ln.startswith("[") and "replicate 1 (a)" in ln for ln in lines)
    assert not any("replicate 0" in ln for ln in lines)
    # every existing variable is replicate 0's, exactly today's
    for name in MAIN + ("run_id", "learning_rate", "val_error", "val_error_exact"):
        np.testing.assert_array_equal(two[name].values, one[name].values, err_msg=name)
    assert two["seed"].values.tolist() == [5, 5 + STRIDE] and two["seed"].dtype == np.int64
    assert one["seed"].values.tolist() == [5]  # always there: length 1 without `seeds`
    for name, by in BY_SEED.items():
        assert two[by].dims[:2] == ("panel", "seed"), by
        np.testing.assert_array_equal(two[by].sel(seed=5).values, two[name].values, err_msg=by)
        np.testing.assert_array_equal(one[by].sel(seed=5).values, one[name].values, err_msg=by)
    assert (two["status_by_seed"].sel(seed=5 + STRIDE) > 0).all()  # replicate 1 searched fully
    assert np.isfinite(two["steps_to_result_by_seed"].values).all()

    # replicate 1's records: seed + 2**20 in their identity and its own (scrambled Sobol)
    # metaparameters, otherwise the same trials
    recs = records(results)
    by_seed = {}
    for rec in recs:
        by_seed.setdefault(rec["identity"]["seed"], []).append(rec)
    assert sorted(by_seed) == [5, 5 + STRIDE] and len(by_seed[5 + STRIDE]) == 12
    key = lambda rec: (rec["identity"]["batch_size"], rec["identity"]["trial"])  # noqa: E731
    first = {key(rec): rec for rec in by_seed[5]}
    for rec in by_seed[5 + STRIDE]:
        twin = first[key(rec)]
        assert rec["run_id"] != twin["run_id"]
        assert rec["identity"]["values"] != twin["identity"]["values"]  # the replicate samples the search
        assert {**rec["identity"], "seed": 5, "values": twin["identity"]["values"]} == twin["identity"]

    # replicate 1 is exactly the search the spec would run with seed 5 + 2**20 and the Sobol
    # sequence scrambled with seed 1: re-read, no training
    alone, lines = do_run(seeded_plan(tmp_path, seed=5 + STRIDE, name="alone", sobol_seed=1), results)
    assert summary(lines) == (0, 12)
    for name, by in BY_SEED.items():
        np.testing.assert_array_equal(two[by].sel(seed=5 + STRIDE).values, alone[name].values,
                                      err_msg=by)
    assert two.attrs["trials_sha256"] == store.trials_checksum(two)
    again = records_mod.collect_plan(plan2, results)  # collect re-reads every replicate, trains nothing
    for name in list(BY_SEED.values()) + list(MAIN):
        np.testing.assert_array_equal(again[name].values, two[name].values, err_msg=name)
    # At another goal the by-seed variables are read at that goal as the main ones are.
    loose = records_mod.collect_plan(plan_mod.compile_plan(plan2.spec, "full", goal=0.6), results)
    for name, by in BY_SEED.items():
        np.testing.assert_array_equal(loose[by].sel(seed=5).values, loose[name].values, err_msg=by)
    # Where the stored curves answer the looser goal its K* is no larger; where they cannot (a
    # trial stopped counting errors at the tight goal: early exit, and the goal is not among
    # the panel's read_goals), the point is unknown at that goal, never a made-up number.
    answered = np.isfinite(loose["steps_to_result_by_seed"].values)
    assert answered.any()
    assert (loose["steps_to_result_by_seed"].values[answered]
            <= two["steps_to_result_by_seed"].values[answered]).all()


class Interrupt(BaseException):
    """A stop in the middle of a plan (as Ctrl-C), after some trials are stored."""


def test_an_interrupted_run_with_seeds_resumes_training_only_what_is_missing(tmp_path, monkeypatch):
    plan = seeded_plan(tmp_path, seeds=2, batch_sizes=(8,))
    trained, real = [], store.RunStore.put_trial

    def counting(self, record):
        real(self, record)  # stored, then stopped: as a kill right after a record is written
        trained.append((record.identity["seed"], record.identity["batch_size"],
                        record.identity["trial"]))
        if len(trained) == 8:  # one replicate's 6 trials and 2 of the other's
            raise Interrupt

    monkeypatch.setattr(store.RunStore, "put_trial", counting)
    with pytest.raises(Interrupt):
        do_run(plan, tmp_path / "r")
    assert {s for s, *_ in trained} == {5, 5 + STRIDE}
    ds, lines = do_run(plan, tmp_path / "r")
    assert any(re.search(r"resuming: 8 of 12 trials already stored", ln) for ln in lines)
    assert summary(lines) == (4, 8)
    assert len(trained) == len(set(trained)) == 12  # none lost, none trained twice
    monkeypatch.setattr(store.RunStore, "put_trial", real)
    fresh, lines = do_run(plan, tmp_path / "fresh")
    assert summary(lines) == (12, 0)
    for name in list(MAIN) + list(BY_SEED.values()) + ["run_id"]:
        np.testing.assert_array_equal(ds[name].values, fresh[name].values, err_msg=name)


@pytest.mark.parametrize("value", ["0", "17", '"2"', "true", "2.0"])
def test_seeds_must_be_an_integer_from_1_to_16(tmp_path, value):
    path = tmp_path / "spec.toml"
    path.write_text(SPEC.format(seed=0, lr_min=1e-3, lr_max=0.3, batch_sizes="[8]")
                    + f"seeds = {value}\n")
    with pytest.raises(UsageError, match=r"panel\[a\]\.grid\.full\.seeds") as e:
        spec_mod.load_spec(path)
    assert str(path) in str(e.value)


def test_seeds_default_to_one_and_a_valid_value_is_kept(tmp_path):
    assert seeded_plan(tmp_path).panels[0].grid.seeds == 1
    assert seeded_plan(tmp_path, seeds=16).panels[0].grid.seeds == 16


def test_smoothness_specs_refuse_seeds_and_the_distributed_chief_serves_every_replicate(tmp_path):
    text = (pathlib.Path(__file__).parent.parent / "specs" / "figure-4.toml").read_text()
    text = text.replace("[panel.grid.full]\n", "[panel.grid.full]\nseeds = 2\n", 1)
    path = tmp_path / "figure-4.toml"
    path.write_text(text)
    with pytest.raises(UsageError, match=r"grid\.full\.seeds.*not supported by smoothness"):
        spec_mod.load_spec(path)
    path.write_text(text.replace("seeds = 2", "seeds = 1"))
    spec_mod.load_spec(path)  # 1 is what it is anyway
    plan = seeded_plan(tmp_path, seeds=3)
    served = cluster.PlanOracle(plan).points
    assert served == plan_mod.study_points(plan) and len({p.spec.seed for p in served}) == 3


def test_plan_shows_seeds_and_every_cost_bound_counts_each_replicate(tmp_path, capsys):
    one, two = seeded_plan(tmp_path, name="one"), seeded_plan(tmp_path, seeds=2, name="two")
    d1, d2 = (plan_mod.describe(p, with_parameters=False) for p in (one, two))
    assert d1["panels"][0]["seeds"] == 1 and d2["panels"][0]["seeds"] == 2
    for key in ("evaluations_at_most", "steps_at_most"):
        assert d2["panels"][0][key] == 2 * d1["panels"][0][key] > 0, key
        assert d2["totals"][key] == 2 * d1["totals"][key], key
    assert d2["totals"]["trials"] == 2 * d1["totals"]["trials"] == 24
    assert d2["totals"]["study_points"] == d1["totals"]["study_points"] == 2
    ids1, ids2 = plan_mod.run_ids(one), plan_mod.run_ids(two)
    assert len(ids2) == 2 * len(ids1) and set(ids1) < set(ids2)
    assert {v[4] for v in ids2.values()} == {5, 5 + STRIDE}
    assert plan_mod.shared_runs([two])["unique_runs"] == 24
    e1, e2 = (cost.estimate_panel(p.panels[0], 3000) for p in (one, two))
    assert e2["at_most"] == {k: 2 * v for k, v in e1["at_most"].items()}
    assert main(["plan", str(two.spec.path), "--grid", "full"]) == 0
    out = capsys.readouterr().out
    assert "x 2 seeds" in out and f"{d2['totals']['steps_at_most']:,} steps" in out


def test_collect_fills_the_replicates_a_panel_does_not_run(tmp_path):
    """Two panels, one with seeds = 2: the other's second replicate reads as not run."""
    text = SPEC.format(seed=0, lr_min=1e-3, lr_max=0.3, batch_sizes="[8]")
    second = text[text.index("[[panel]]"):].replace('id = "a"', 'id = "b"')
    path = tmp_path / "spec.toml"
    path.write_text(text + "seeds = 2\n\n" + second)
    plan = plan_mod.compile_plan(spec_mod.load_spec(path), "full")
    assert [p.seeds for p in plan.panels] == [2, 1]
    rec = {"status": "complete", "steps_to_result": 8, "steps": 8, "eval_steps": [4, 8],
           "val_errors": [0.5, 0.0], "wall_time": 1.0, "values": {"learning_rate": 0.1}}
    full = {(p, 0.0, 8, t): dict(rec, steps_to_result=8 + t, steps=8 + t)
            for p in ("a", "b") for t in range(6)}
    rep1 = {k: dict(v, status="capped", steps_to_result=None, steps=3)
            for k, v in full.items() if k[0] == "a" and k[3] > 0}
    rep1[("a", 0.0, 8, 0)] = dict(rec, steps_to_result=4, steps=4)
    typed = lambda recs: {k: store.TrialRecord.from_json(v) for k, v in recs.items()}  # noqa: E731
    ds = store.collect(plan.spec, plan, typed(full), by_seed={0: typed(full), STRIDE: typed(rep1)})
    assert ds["seed"].values.tolist() == [0, STRIDE]
    a, b = ds.sel(panel="a", seed=STRIDE), ds.sel(panel="b", seed=STRIDE)
    assert float(a["steps_to_result_by_seed"].sel(sparsity=0.0, batch_size=8)) == 4
    assert int(a["best_trial_by_seed"].sel(sparsity=0.0, batch_size=8)) == 0
    assert a["status_by_seed"].values.ravel().tolist() == [1] + [4] * 5
    assert a["steps_by_seed"].values.ravel().tolist() == [4] + [3] * 5
    assert np.isnan(b["steps_to_result_by_seed"].values).all()
    assert (b["best_trial_by_seed"] == -1).all() and (b["status_by_seed"] == 0).all()
    assert (b["steps_by_seed"] == -1).all()
    assert float(ds["steps_to_result"].sel(panel="a", sparsity=0.0, batch_size=8)) == 8
    # a partial replicate has no K*: only an upper bound
    del rep1[("a", 0.0, 8, 5)]
    part = store.collect(plan.spec, plan, typed(full), by_seed={0: typed(full), STRIDE: typed(rep1)})
    assert np.isnan(float(part["steps_to_result_by_seed"].sel(panel="a", seed=STRIDE, sparsity=0.0,
                                                               batch_size=8)))
    assert part.attrs["trials_sha256"] != ds.attrs["trials_sha256"]  # by-seed data are checksummed
    # a file written before replicate seeds (no seed variables) still verifies: its checksum
    # is the one the old list of variables gives
    new = ("seed", "steps_to_result_by_seed", "best_trial_by_seed", "status_by_seed", "steps_by_seed")
    old = ds.drop_vars(list(new))
    assert store.TRIAL_VARIABLES[-len(new):] == new
    with pytest.MonkeyPatch.context() as m:
        m.setattr(store, "TRIAL_VARIABLES", store.TRIAL_VARIABLES[:-len(new)])
        before = store.trials_checksum(old)
    assert store.trials_checksum(old) == before


@pytest.mark.parametrize("value", ["0", "7", '"2"', "true"])
def test_finishers_must_be_an_integer_from_1_to_the_trials(tmp_path, value):
    path = tmp_path / "spec.toml"  # test_run's spec: 6 trials
    path.write_text(SPEC.format(seed=0, lr_min=1e-3, lr_max=0.3, batch_sizes="[8]")
                    + f"finishers = {value}\n")
    with pytest.raises(UsageError, match=r"panel\[a\]\.grid\.full\.finishers") as e:
        spec_mod.load_spec(path)
    assert str(path) in str(e.value)


def test_finishers_default_to_two_or_the_trials(tmp_path):
    path = tmp_path / "spec.toml"
    text = SPEC.format(seed=0, lr_min=1e-3, lr_max=0.3, batch_sizes="[8]")
    path.write_text(text)
    assert spec_mod.load_spec(path).panels[0].grids["full"].finishers == 2
    path.write_text(text.replace("trials = 6", "trials = 1"))
    assert spec_mod.load_spec(path).panels[0].grids["full"].finishers == 1
    path.write_text(text + "finishers = 6\n")
    assert spec_mod.load_spec(path).panels[0].grids["full"].finishers == 6
