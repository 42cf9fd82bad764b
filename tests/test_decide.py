"""`repro decide`: undecided claims become priced grid changes, the cheapest run first, and what
was added is written into the spec as a grid that `repro run --grid` reproduces.

The unit tests read the real specs. The end-to-end test trains for real on SYNTHETIC
MNIST-shaped data (conftest's `synthetic_mnist`); its throughput table is fixed (no probe), so
prices are the cost model's steps times stated step times.
"""
import dataclasses
import pathlib
import shutil
import types

import numpy as np
import pytest

from repro import claims, decide, spec as spec_mod, study as study_mod, throughput, verify
from repro import data as data_mod

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_a_grid_written_as_toml_loads_back_as_the_same_grid(tmp_path):
    path = tmp_path / "figure-1.toml"
    shutil.copy(ROOT / "specs" / "figure-1.toml", path)
    sp = spec_mod.load_spec(path)
    keys = {p.id: decide.grid_keys(p.grids["reduced"]) for p in sp.panels}
    again = decide.write_grid(sp, "decided", keys)
    for p in again.panels:
        assert decide.grid_keys(p.grids["decided"]) == keys[p.id]
        assert p.grids["reduced"] == sp.panels[[q.id for q in sp.panels].index(p.id)].grids["reduced"]
    # writing it again replaces the table instead of adding a second one
    keys["b"] = {**keys["b"], "trials": 12}
    text_before = path.read_text()
    third = decide.write_grid(again, "decided", keys)
    assert path.read_text().count("[panel.grid.decided]") == len(sp.panels)
    assert next(p for p in third.panels if p.id == "b").grids["decided"].trials == 12
    assert text_before.count("trials = 12") + 1 == path.read_text().count("trials = 12")


def test_each_request_changes_the_grid_it_names_within_limits():
    sp = spec_mod.load_spec(ROOT / "specs" / "figure-1.toml")
    start = decide.grid_keys(sp.panels[1].grids["reduced"])  # panel b: 6 trials, B 16..1024
    assert decide.apply(start, "trials", {}, start)["trials"] == 12
    assert decide.apply(start, "seeds", {}, start)["seeds"] == 2
    wider = decide.apply(start, "batch_sizes", {"batch_sizes": [4096]}, start)
    assert wider["batch_sizes"] == [16, 64, 256, 1024, 4096]
    assert decide.apply(start, "batch_sizes", {"batch_sizes": [64]}, start) is None  # already there
    longer = decide.apply(start, "budget", {}, start)  # no batch size named: all of them
    assert (longer["max_steps"], longer["max_examples"]) == (12000, 1000000)
    # B = 1024 is limited by max_examples (500,000 / 1024 = 488 steps < 6,000), B = 16 by max_steps
    large = decide.apply(start, "budget", {"batch_sizes": [1024]}, start)
    assert (large["max_steps"], large["max_examples"]) == (6000, 1000000)
    small = decide.apply(start, "budget", {"batch_sizes": [16]}, start)
    assert (small["max_steps"], small["max_examples"]) == (12000, 500000)
    assert decide.apply(start, "finishers", {}, start) is None  # already two finishers
    many = dict(start, trials=start["trials"] * decide.MAX_TRIALS_FACTOR)
    assert decide.apply(many, "trials", {}, start) is None  # the limit on how far it grows
    assert decide.apply(start, "unknown", {}, start) is None


SPEC = """\
[figure]
id = "figure-decide-test"
title = "decide on SYNTHETIC MNIST-shaped data"
seed = 3

[[panel]]
id = "a"
dataset = "mnist"
model = "simple_cnn"
optimizer = "momentum"
schedule = "constant"
goal_error = 0.5
claims = ["linear_scaling", "diminishing_returns"]

[panel.search]
learning_rate = { min = 0.005, max = 0.05, scale = "log" }
momentum = { min = 0.8, max = 0.95, scale = "reverse_log" }

[panel.grid.full]
batch_sizes = [16, 32, 64]
sparsities = [0.0]
trials = 3
max_steps = 128
eval_every = 8
"""


def test_decide_prices_runs_and_writes_what_it_added(tmp_path, synthetic_mnist, monkeypatch):
    monkeypatch.setenv("REPRO_DATA", str(synthetic_mnist))
    data_mod._load_cached.cache_clear()
    (tmp_path / "specs").mkdir()
    (tmp_path / "golden").mkdir()
    path = tmp_path / "specs" / "figure-decide-test.toml"
    path.write_text(SPEC)
    shutil.copy(ROOT / "golden" / "figure-1.toml", tmp_path / "golden" / "figure-decide-test.toml")
    results = tmp_path / "results"
    table = {("simple_cnn", throughput.shape_key("mnist")):
             {"step_s": {16: 0.004, 64: 0.015}, "val_example_s": 2e-5}}
    monkeypatch.setattr(throughput, "tables", lambda plan, results_dir, run_probe=True: (table, {}))
    sp = spec_mod.load_spec(path)
    study_mod.load_study(sp, grid_name="full").run(results_dir=str(results), workers=1)
    study_mod.write_results(sp, grid_name="full", results_dir=str(results))
    before = verify.verify_spec(sp, grid="full", results_dir=str(results))
    assert any(r.status == claims.INCONCLUSIVE and r.values.get("needs") for r in before)

    # no budget: nothing is affordable, nothing is written
    text = path.read_text()
    out = decide.decide(sp, grid="full", results_dir=str(results), budget_hours=1e-9, log=lambda _: None,
                        max_rounds=1)
    assert out.rounds == [] and path.read_text() == text

    lines = []
    out = decide.decide(sp, grid="full", results_dir=str(results), budget_hours=1.0, log=lines.append,
                        max_rounds=1)
    assert out.rounds, lines  # it added something and ran it
    assert any(line.startswith("[decide round 0 |") for line in lines)
    assert all(ch.hours > 0 for changes, _ in out.rounds for ch in changes)
    assert out.hours_predicted <= 1.0
    grown = spec_mod.load_spec(path)
    decided = grown.panels[0].grids["decided"]
    assert "repro decide from the 'full' grid" in decided.why
    base = grown.panels[0].grids["full"]
    assert (decided.trials, decided.seeds, decided.batch_sizes, decided.max_steps) != \
        (base.trials, base.seeds, base.batch_sizes, base.max_steps)
    # the grid reproduces it without decide: a run of it trains nothing more
    ran = study_mod.load_study(grown, grid_name="decided").run(results_dir=str(results), workers=1)
    assert int(ran.attrs["trials_trained"]) == 0
    assert np.isfinite(ran["steps_to_result"].values).any()
    # the starting grid's results file still opens with the edited spec
    assert verify.verify_spec(grown, grid="full", results_dir=str(results))


@pytest.mark.parametrize("args,key", [(["--name", "reduced"], "--name"), (["--grid", "nosuch"], "grid.nosuch"),
                                      (["--panel", "zz"], "--panel"), (["--budget", "0"], "--budget")])
def test_bad_decide_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, args, key):
    from repro.__main__ import main
    results = tmp_path / "results"
    assert main(["decide", str(ROOT / "specs" / "figure-1.toml"), "--results", str(results), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and key in err[0]
    assert not results.exists()


def test_decide_adds_nothing_where_the_data_is_missing_and_with_none_it_is_a_usage_error(tmp_path, capsys, monkeypatch):
    """An empty data folder: decide on Figure 1 cannot train any panel, so it stops before
    writing anything (exit 2, one line saying how to fetch the data), instead of adding grids
    it cannot run and reading them back as undecided."""
    from repro.__main__ import main
    monkeypatch.setenv("REPRO_DATA", str(tmp_path / "no-data"))
    data_mod._load_cached.cache_clear()
    spec = tmp_path / "figure-1.toml"
    shutil.copy(ROOT / "specs" / "figure-1.toml", spec)
    (tmp_path / "golden").mkdir(exist_ok=True)
    text = spec.read_text()
    results = tmp_path / "results"
    assert main(["decide", str(spec), "--results", str(results), "--panel", "b"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mnist" in err[0] and "data fetch" in err[0], err
    assert spec.read_text() == text and not results.exists()


def _evidence(reached):
    """SYNTHETIC evidence of panel points (s 0 and 0.9, B 16 and 64, 6 trials): `reached[(s, b)]`
    trials reach the goal at step 100, the others run the budget and miss."""
    from repro import evidence
    trials = np.full((1, 2, 2, 6), np.inf)
    for (s, b), n in reached.items():
        trials[0, [0.0, 0.9].index(s), [16, 64].index(b), :n] = 100.0
    return evidence.Evidence(batch_sizes=np.array([16.0, 64.0]), sparsities=(0.0, 0.9), trials=trials,
                             capped=np.zeros(trials.shape, bool))


def test_a_budget_that_brought_no_trial_to_the_goal_is_not_asked_for_again_and_trials_come_next():
    sp = spec_mod.load_spec(ROOT / "specs" / "figure-1.toml")
    keys = {"b": decide.grid_keys(sp.panels[1].grids["reduced"])}
    before = _evidence({(0.0, 16): 1, (0.9, 16): 1, (0.0, 64): 2, (0.9, 64): 0})  # the rest missed
    # the doubled budget: B = 16 still one finisher each; B = 64 at 90 % gains one
    after = _evidence({(0.0, 16): 1, (0.9, 16): 1, (0.0, 64): 2, (0.9, 64): 1})
    raised = decide.Change(panel="b", kind="budget", grid=keys["b"], hours=0.1, why="x", batch_sizes=(16, 64))
    ledger = decide.BudgetLedger()
    ledger.record(raised, before, keys["b"]["batch_sizes"])
    lines = ledger.review(lambda panel: after)
    assert ledger.spent == {"b": {16}}
    assert len(lines) == 1 and "B = 16" in lines[0] and "adds trials instead" in lines[0], lines
    assert ledger.review(lambda panel: after) == []  # reviewed once

    def needs(*requests):
        return types.SimpleNamespace(claim="sparse_slower", values={"needs": list(requests)})
    budget_16 = {"panel": "b", "kind": "budget", "batch_sizes": [16], "why": "misses at B = 16"}
    budget_both = {"panel": "b", "kind": "budget", "batch_sizes": [16, 64], "why": "misses"}
    trials = {"panel": "b", "kind": "trials", "batch_sizes": [16], "why": "coarse at B = 16"}
    found = decide._candidates(keys=keys, start=keys, inconclusive=[needs(budget_16, trials)], panels=None,
                               price_of=lambda panel, new, kind: 0.1, ledger=ledger)
    assert [c.kind for c in found.values()] == ["trials"]
    # without what it learned, the budget would come back (and it is the cheaper request here)
    naive = decide._candidates(keys=keys, start=keys, inconclusive=[needs(budget_16, trials)], panels=None,
                               price_of=lambda panel, new, kind: 0.05 if kind == "budget" else 0.1)
    assert decide._choose(naive, hours_left=1.0)[0][0].kind == "budget"
    # a request naming a batch size the budget did help keeps that one only
    kept = decide._candidates(keys=keys, start=keys, inconclusive=[needs(budget_both)], panels=None,
                              price_of=lambda panel, new, kind: 0.1, ledger=ledger)
    assert [(c.kind, c.batch_sizes) for c in kept.values()] == [("budget", (64,))]
    # where the raised budget brought a trial to the goal, nothing is marked
    helped = decide.BudgetLedger()
    helped.record(dataclasses.replace(raised, batch_sizes=(64,)), before, keys["b"]["batch_sizes"])
    assert helped.review(lambda panel: after) == [] and helped.spent == {}


def test_goal_counts_leave_out_capped_and_missed_trials():
    from repro import evidence
    trials = np.array([[[[120.0, 200.0, np.inf, np.nan]]]])
    capped = np.array([[[[False, True, False, False]]]])
    ev = evidence.Evidence(batch_sizes=np.array([32.0]), sparsities=(0.0,), trials=trials, capped=capped)
    assert decide.goal_reached(ev) == {(0.0, 32): (1, 1)}
    assert decide.budget_did_not_help({(0.0, 32): (1, 1)}, {(0.0, 32): (2, 0)}, [32]) == []
    assert decide.budget_did_not_help({(0.0, 32): (1, 1)}, {(0.0, 32): (1, 1)}, [32, 64]) == [32]  # 64: no data
    # a point where nothing missed (the race stopped the losers) says nothing about the budget
    assert decide.budget_did_not_help({(0.0, 32): (2, 0)}, {(0.0, 32): (2, 0)}, [32]) == []
