"""Tests for repro.plan on specs/figure-1.toml (only its "full" grid is assumed: the paper's
14 batch sizes, 4 sparsities, 100 trials, 40,000 max steps, eval_every 16 for panel a).
No training and no data."""
import pathlib

import pytest

from repro import plan as plan_mod
from repro import spec as spec_mod
from repro.errors import UsageError

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIG1 = ROOT / "specs" / "figure-1.toml"
PAPER_B = [2 ** k for k in range(1, 15)]


@pytest.fixture(scope="module")
def spec():
    return spec_mod.load_spec(FIG1)


def test_full_grid_panel_a_appendix_b_arithmetic(spec):
    plan = plan_mod.compile_plan(spec, "full", ["a"])
    (pa,) = plan.panels
    g = pa.grid
    assert list(g.batch_sizes) == PAPER_B
    assert list(g.sparsities) == [0.0, 0.5, 0.7, 0.9]
    assert (g.trials, g.max_steps, g.eval_every) == (100, 40000, 16)
    assert len(pa.points) == 56
    assert len(pa.eval_steps) == 2500  # 40000 / 16
    assert pa.eval_steps[0] == 16 and pa.eval_steps[-1] == 40000
    # Appendix B: 14 x 4 x 100 x 40000 / 16 = 14,000,000 evaluations
    assert pa.evaluations_at_most == 14_000_000
    assert pa.steps_at_most == 56 * 100 * 40000
    d = plan_mod.describe(plan, with_parameters=False)
    assert d["totals"]["evaluations_at_most"] == 14_000_000
    assert d["totals"]["study_points"] == 56 and d["totals"]["trials"] == 5600
    assert d["panels"][0]["evaluations_per_trial_at_most"] == 2500
    assert d["models"] == {}


def test_points_cover_the_grid_in_run_order(spec):
    (pa,) = plan_mod.compile_plan(spec, "full", ["a"]).panels
    assert pa.points[0] == (0.0, 2) and pa.points[13] == (0.0, 16384)
    assert pa.points[14] == (0.5, 2) and pa.points[-1] == (0.9, 16384)
    assert len(set(pa.points)) == len(pa.points)


def test_unknown_grid_is_usage_error(spec):
    with pytest.raises(UsageError) as e:
        plan_mod.compile_plan(spec, "no-such-grid")
    assert "no-such-grid" in str(e.value)
    assert str(FIG1) in str(e.value)
    assert "full" in str(e.value)  # lists the known grids


def test_panel_filter(spec):
    all_ids = [p.id for p in spec.panels]
    full = plan_mod.compile_plan(spec, "full")
    assert [p.panel.id for p in full.panels] == all_ids
    only = plan_mod.compile_plan(spec, "full", ["a"])
    assert [p.panel.id for p in only.panels] == ["a"]
    assert only.grid_name == "full" and only.spec is spec
    total = plan_mod.describe(full, with_parameters=False)["totals"]["evaluations_at_most"]
    assert total >= 14_000_000
    with pytest.raises(UsageError) as e:
        plan_mod.compile_plan(spec, "full", ["a", "zz"])
    assert "zz" in str(e.value)


def test_describe_with_parameters_counts_the_model(spec):
    d = plan_mod.describe(plan_mod.compile_plan(spec, "full", ["a"]))
    assert d["models"]["simple_cnn"]["parameters"] == 62_346
    assert d["panels"][0]["search"]["learning_rate"] == {"min": 1e-4, "max": 1.0, "scale": "log"}
