"""Tests for repro.cost: the Appendix B upper bound and the naive / repro predictions.

Measurements are given by hand (SYNTHETIC numbers), so every expected value is worked out
below from the model's stated rules.
"""
import math
import pathlib

import pytest

from repro import cost
from repro import plan as plan_mod
from repro import spec as spec_mod

SPEC = """\
[figure]
id = "figure-cost-test"

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
batch_sizes = [8, 16]
sparsities = [0.0]
trials = 4
max_steps = 160
eval_every = 16
"""


@pytest.fixture
def panel_plan(tmp_path):
    """The spec above, raced with one finisher (finishers = 1)."""
    path = tmp_path / "figure-cost-test.toml"
    path.write_text(SPEC + "finishers = 1\n")
    return plan_mod.compile_plan(spec_mod.load_spec(path), "full").panels[0]


def test_racing_until_two_finish_costs_n_times_the_second_finishers_steps(tmp_path):
    # Default finishers = 2. Every trial completes (p = 1); the second finisher is measured at
    # 1.25 K*: at B = 8, K* = 32 and K_2 = 40, so all 4 trials stop by step 40 (evaluated at
    # 16 and 32: 2 evaluations); at B = 16 the fit gives 256/16 + 16 = 32 as well.
    path = tmp_path / "figure-cost-test.toml"
    path.write_text(SPEC)
    pp = plan_mod.compile_plan(spec_mod.load_spec(path), "full").panels[0]
    assert pp.grid.finishers == 2
    m = {"fits": {0.0: {"c1": 256.0, "c2": 16.0}}, "p": 1.0, "kbar_over_kstar": 1.5, "q": 1.0,
         "measured_k": {(0.0, 8): 32.0}, "kth_over_kstar": {2: 1.25}}
    est = cost.estimate_panel(pp, n_val=100, measured=m)
    assert est["repro"]["steps"] == 2 * 4 * 40
    assert est["repro"]["evaluations"] == 2 * 4 * 2
    # not measured: K_2 / K* is assumed (1.5): 48 steps, 3 evaluations per trial
    del m["kth_over_kstar"]
    est = cost.estimate_panel(pp, n_val=100, measured=m)
    assert est["repro"]["steps"] == 2 * 4 * 48 and cost.KTH_OVER_KSTAR == 1.5
    # half the trials reach the goal (p = 1/2): with j of 4 finishing (binomial 1/16, 4/16,
    # 6/16, 4/16, 1/16), j >= 2 stop by K_2 = 48; j = 0 or 1 run the rest to the budget 160
    m["p"] = 0.5
    est = cost.estimate_panel(pp, n_val=100, measured=m)
    per_point = (1 / 16) * 4 * 160 + (4 / 16) * (1 * 48 + 3 * 160) + (11 / 16) * 4 * 48
    assert est["repro"]["steps"] == round(2 * per_point)


def test_paper_full_grid_upper_bound_is_appendix_b():
    sp = spec_mod.load_spec(pathlib.Path(__file__).resolve().parents[1] / "specs" / "figure-1.toml")
    pp = plan_mod.compile_plan(sp, "full", ["a"]).panels[0]
    est = cost.estimate_panel(pp, n_val=6000)
    assert est["at_most"]["evaluations"] == 14_000_000  # 14 B x 4 s x 100 trials x 40000/16
    assert est["at_most"]["steps"] == 14 * 4 * 100 * 40000
    assert set(est) == {"at_most"}  # nothing measured: no prediction is made up


def test_prediction_follows_the_stated_rules(panel_plan):
    # B = 8 measured K* = 32; B = 16 from the fit 256/B + 16 = 32. Every trial completes
    # (p = 1) in 1.5 K* = 48 steps; early exit reads half of a failing evaluation.
    m = {"fits": {0.0: {"c1": 256.0, "c2": 16.0}}, "p": 1.0, "kbar_over_kstar": 1.5, "q": 0.5,
         "measured_k": {(0.0, 8): 32.0}}
    est = cost.estimate_panel(panel_plan, n_val=100, measured=m)
    assert est["at_most"] == {"steps": 2 * 4 * 160, "evaluations": 2 * 4 * 10,
                              "examples_evaluated": 2 * 4 * 10 * 100}
    # naive: 4 trials x 48 steps, 3 evaluations each (16, 32, 48), per point
    assert est["naive"]["steps"] == 2 * 4 * 48
    assert est["naive"]["evaluations"] == 2 * 4 * 3
    # repro races: some trial meets the goal at K* = 32, so all 4 stop there (2 evaluations)
    assert est["repro"]["steps"] == 2 * 4 * 32
    assert est["repro"]["evaluations"] == 2 * 4 * 2
    # one evaluation per point meets the goal (read in full), the rest are read by half
    assert est["repro"]["examples_evaluated"] == 2 * (1 * 100 + (8 - 1) * 50)


def test_a_point_no_trial_can_finish_costs_its_whole_budget(panel_plan):
    m = {"fits": {0.0: {"c1": math.nan, "c2": math.nan}}, "p": 0.5, "kbar_over_kstar": 2.0,
         "q": 1.0, "measured_k": {}}
    est = cost.estimate_panel(panel_plan, n_val=100, measured=m)
    assert est["naive"]["steps"] == est["repro"]["steps"] == est["at_most"]["steps"]


def test_without_a_fit_the_measured_curve_is_extended_by_linear_scaling_and_a_plateau():
    m = {"fits": {0.0: {"c1": math.nan, "c2": math.nan}},
         "measured_k": {(0.0, 64): 400.0, (0.0, 256): 100.0}}
    assert cost.predicted_k(m, 0.0, 16) == pytest.approx(1600.0)  # linear scaling below
    assert cost.predicted_k(m, 0.0, 1024) == 100.0                # plateau above
    assert cost.predicted_k(m, 0.9, 128) == pytest.approx(200.0)  # nearest sparsity, log-interpolated


def test_coverage_is_the_searched_share_of_the_target_space_on_each_dimensions_scale():
    import numpy as np
    import xarray as xr
    hp = ["learning_rate", "momentum"]
    ds = xr.Dataset({"search_min": (("panel", "hp"), np.array([[1e-2, 0.9]])),
                     "search_max": (("panel", "hp"), np.array([[1.0, 0.99]]))},
                    coords={"panel": ["a"], "hp": hp})
    lr = spec_mod.Dim("learning_rate", 1e-4, 1.0, "log", False)
    mom = spec_mod.Dim("momentum", 0.9, 0.9999, "reverse_log", False)
    assert cost.coverage(ds, "a", (lr,)) == pytest.approx(0.5)  # 2 of 4 decades
    assert cost.coverage(ds, "a", (lr, mom)) == pytest.approx(0.5 * 1 / 3)  # 1 - m: 1 of 3 decades
    assert cost.coverage(ds, "a", (spec_mod.Dim("learning_rate", 1e-2, 1.0, "log", False),)) == 1.0
    assert cost.coverage(ds, "a", (spec_mod.Dim("learning_rate", 2.0, 3.0, "log", False),)) == 0.0
    assert cost.coverage(None, "a", (lr,)) == 1.0


def test_a_narrower_measured_space_scales_p_down(panel_plan):
    m = {"fits": {0.0: {"c1": 256.0, "c2": 16.0}}, "p": 1.0, "kbar_over_kstar": 1.5, "q": 0.5,
         "measured_k": {(0.0, 8): 32.0}}
    half = cost.estimate_panel(panel_plan, n_val=100, measured=m, space_share=0.5)
    # p = 0.5: a trial runs 0.5 x 48 + 0.5 x 160 = 104 steps naively. The race of 4 trials
    # has a winner with probability 1 - 0.5^4 = 15/16 (all stop at 32), else all run 160.
    assert half["naive"]["steps"] == 2 * 4 * 104
    assert half["repro"]["steps"] == 2 * 4 * (15 / 16 * 32 + 1 / 16 * 160)
