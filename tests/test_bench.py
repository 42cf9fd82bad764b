"""`repro bench` end to end on a one-point slice of Figure 1(b) (REAL MNIST): the naive Keras
harness on one thread (keras-tuner + model.fit + evaluation callback) and repro reach identical
steps-to-result and best trial, and the report has every number it promises for the sides run
(targets printed, never asserted). The default-thread naive side and the floor train the same
slice again; CI leaves them out (`--sides naive1,repro`), and the other tests check the side
selection and the report's arithmetic for all four sides on made-up side outputs (no training)."""
import json
import subprocess
import sys
import pathlib
import types

import pytest

from repro import bench
from repro.bench import compare
from repro import data as data_mod

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.mark.skipif(not data_mod.cache_path("mnist").exists(), reason="MNIST not fetched (make data)")
def test_bench_naive_and_repro_agree_on_a_slice_of_figure_1b(tmp_path):
    out_json = tmp_path / "bench.json"
    r = subprocess.run([sys.executable, "-m", "repro", "bench", "--panel", "b", "--batch-sizes", "256",
                        "--sparsities", "0", "--trials", "2", "--workers", "2",
                        "--sides", "naive1,repro", "--json", str(out_json)],
                       cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = r.stdout
    print(out)
    assert "identical K* and best trial (naive1 vs repro): yes" in out
    row = next(line for line in out.splitlines() if line.startswith("  s=   0 B=  256"))
    assert "repro K*=" in row and "| naive1 K*=" in row and "| naive K*=" not in row, row
    assert " same" in row and "DIFFERENT" not in row, row
    for what in ("wall time: naive1 (one thread)", "naive1/repro", "trained steps: naive1",
                 "evaluated validation examples", "peak resident memory",
                 "racing's bound (of n = 2 trials", "targets (reported, not asserted)"):
        assert what in out, what
    for target in ("speed-up over naive1", "repro peak memory"):
        line = next(line for line in out.splitlines() if line.startswith(f"  {target}"))
        assert line.endswith(" met") or line.endswith(" missed"), line

    doc = json.loads(out_json.read_text())
    sides = doc["sides"]
    assert set(sides) == {"naive1", "repro"}
    assert doc["same"] is True and doc["agree"]["naive1"] == {"0/256": True}
    ref = sides["repro"]["points"]["0/256"]
    assert {k: ref[k] for k in ("k", "best")} == sides["naive1"]["points"]["0/256"] and ref["k"] is not None
    trials = sides["naive1"]["trials"]["0/256"]  # the best trial is the lowest index reaching K*
    assert ref["best"] == min(int(t) for t, k in trials.items() if k == ref["k"])
    # raced to 2 finishers (the grid's default): with both trials reaching the goal each runs
    # to its own K, so the bound is their sum; with one, the other runs to the budget
    own = sorted(k for k in trials.values() if k is not None)
    assert doc["racing"]["finishers"] == 2
    if len(own) >= 2:
        assert doc["racing"]["bound"] == own[0] + own[1]
    assert ref["k"] < doc["racing"]["bound"]
    assert sides["repro"]["steps_trained"] <= doc["racing"]["bound"]
    assert [t["name"] for t in doc["targets"]] == [t[0] for t in bench.TARGETS]
    measured = {"speed-up over naive1", "repro peak memory"}  # what naive1 and repro measure
    assert {t["name"]: t["met"] in (True, False) for t in doc["targets"]} == \
        {name: name in measured for name, *_ in bench.TARGETS}
    assert all(t["met"] is None for t in doc["targets"] if t["name"] not in measured)


@pytest.mark.parametrize("sides,message", [
    ("floor", "the floor times the steps repro trained"),
    ("naive1,floor", "the floor times the steps repro trained"),
    ("repro,bogus", "unknown side(s) ['bogus']"),
    (",", "names no side"),
])
def test_bench_rejects_sides_it_cannot_run_before_training(sides, message):
    r = subprocess.run([sys.executable, "-m", "repro", "bench", "--sides", sides],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--sides" in r.stderr and message in r.stderr, r.stderr


def test_sides_keep_the_bench_order():
    assert bench.parse_sides("floor, repro,naive1") == ("naive1", "repro", "floor")


def test_best_trial_is_the_lowest_index_among_those_reaching_k_star():
    assert compare.best_of({0: None, 3: 300, 1: 300, 2: 400}) == {"k": 300, "best": 1}
    assert compare.best_of({0: None, 1: None}) == {"k": None, "best": None}


def _made_up_sides():
    """Side outputs as run_sides returns them, with made-up numbers (no training)."""
    points = {"0/256": {"k": 500, "best": 1}, "0.9/256": {"k": None, "best": None}}
    return {
        "naive1": {"points": points, "steps_trained": 1200, "examples_evaluated": 100_000,
                   "seconds": 100.0, "peak_bytes": 2 ** 30},
        "naive": {"points": {**points, "0/256": {"k": 500, "best": 0}}, "steps_trained": 1200,
                  "examples_evaluated": 100_000, "seconds": 30.0, "peak_bytes": 2 ** 30},
        "repro": {"points": points, "steps_trained": 1100, "steps_in_results": 900,
                  "examples_evaluated": 5000, "seconds": 10.0, "peak_bytes": 5 * 2 ** 30},
        "floor": {"seconds": 9.0, "processes": 2},
    }


def test_report_compares_each_naive_side_with_repro_and_judges_the_targets():
    sides = _made_up_sides()
    measured = compare.ratios(sides)
    assert measured == {"speed-up over naive1": 10.0, "speed-up over naive": 3.0,
                        "overhead over floor": 10.0 / 9.0, "repro peak memory": 5.0}
    assert [t["met"] for t in compare.judge_targets(measured)] == [True, False, True, False]
    assert compare.compare_points(sides["repro"], sides["naive"]) == {"0/256": False, "0.9/256": True}
    racing = compare.racing_bound(sides["repro"], trials=2, eval_steps=(100, 400, 500, 600))
    assert racing == {"trials": 2, "finishers": 1, "points_with_k": 1, "points": 2, "bound": 1000}  # best is 1: both to 500
    # with 4 trials, 0 and 1 (the best) run to K* = 500, 2 and 3 stop at 400, the evaluation before
    assert compare.racing_bound(sides["repro"], trials=4, eval_steps=(100, 400, 500, 600))["bound"] == 1800
    # two finishers: trial 1 at 500 and trial 3 at 600 finish; 0 and 2 (lower indices than the
    # second finisher) run to its 600: 500 + 600 + 600 + 600
    two = {"points": {"0/256": {"k": 500, "best": 1, "finished": [[600, 3], [500, 1]]}}}
    assert compare.racing_bound(two, trials=4, eval_steps=(100, 400, 500, 600), finishers=2)["bound"] == 2300
    # only one finished: the other three run to the budget
    one = {"points": {"0/256": {"k": 500, "best": 1, "finished": [[500, 1]]}}}
    assert compare.racing_bound(one, trials=4, eval_steps=(100, 400, 500, 600), finishers=2,
                              budgets={"0/256": 900})["bound"] == 500 + 3 * 900
    lines = compare.point_lines(sides)
    assert "| naive1 K*=500 best=1 same" in lines[1] and "| naive K*=500 best=0 differs" in lines[1]
    text = "\n".join(compare.summary_lines(sides, measured, racing, workers=2))
    assert "repro trained 1,100" in text and ": 1,000 (over it)" in text and "read 900" in text


def test_report_says_what_a_skipped_side_leaves_unmeasured():
    sides = {k: v for k, v in _made_up_sides().items() if k in ("naive", "repro")}
    targets = compare.judge_targets(compare.ratios(sides))
    assert [t["met"] for t in targets] == [None, False, None, False]
    assert "not measured" in compare.target_lines(targets)[1]
    assert "not checked" in compare.verdict_line(None)


def test_the_lines_printed_after_the_sides_ran():
    sides = _made_up_sides()
    grid = types.SimpleNamespace(trials=2, finishers=1, max_steps_for=lambda b: 900)
    panel_plan = types.SimpleNamespace(grid=grid, points=((0.0, 256), (0.9, 256)),
                                       eval_steps=(100, 400, 500, 600))
    judged = compare.judge(sides, panel_plan)
    assert list(judged) == ["agree", "same", "measured", "racing", "targets"]
    assert judged["same"] is True and judged["agree"]["naive"] == {"0/256": False, "0.9/256": True}
    assert judged["racing"]["bound"] == 1000
    lines = compare.report_lines(sides, judged, workers=2)
    assert lines[:3] == compare.point_lines(sides)
    assert "default-thread naive matches repro's K* and best trial at 1 of 2 points" in lines
    assert lines[-1] == compare.verdict_line(judged["agree"]["naive1"]) and lines[-1].endswith("yes")
