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


# ---------------------------------------------------------------- runs shared across the real specs

def _plan(n):
    from repro import spec as spec_mod
    return plan_mod.compile_plan(spec_mod.load_spec(f"specs/figure-{n}.toml"), "reduced")


def test_real_specs_share_the_papers_runs():
    """Fig. 7(a), (b) are Fig. 1(a), (b); Fig. 9 is Fig. 8 at another goal; Fig. 2 is Fig. 7;
    Fig. 12 only re-reads runs of 7, 8, 10 and 11. (tests/test_run.py shows re-reading them
    trains nothing and gives the results of a fresh run.)"""
    ids = {n: plan_mod.run_ids(_plan(n)) for n in (1, 2, 7, 8, 9, 10, 11, 12)}
    fig1_ab = {r for r, (panel, *_rest) in ids[1].items() if panel in ("a", "b")}
    fig7_ab = {r for r, (panel, *_rest) in ids[7].items() if panel in ("a", "b")}
    assert fig7_ab == fig1_ab and len(fig7_ab) == 96
    assert set(ids[9]) == set(ids[8]) and set(ids[2]) == set(ids[7])
    assert set(ids[12]) == set(ids[7]) | set(ids[8]) | set(ids[10]) | set(ids[11])
    fig1_c = {r for r, (panel, *_rest) in ids[1].items() if panel == "c"}
    assert fig1_c <= set(ids[8])  # Fig. 8(b) is Fig. 1(c)
    # Fig. 8's curves must answer Fig. 9's goal without training: counting goes up to it.
    for n in (1, 8, 12):
        for pp in _plan(n).panels:
            if pp.panel.dataset == "fashion_mnist":
                assert 0.14 in pp.panel.read_goals, (n, pp.panel.id)


def test_plan_of_the_specs_folder_counts_each_shared_run_once():
    import json
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "repro", "plan", "specs", "--json"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    d = json.loads(out.stdout)
    figs = {f["figure"]: f for f in d["figures"]}
    assert {f"figure-{n}" for n in range(1, 19)} <= set(figs)
    assert d["trials_asked"] == sum(f["totals"]["trials"] for f in figs.values())
    assert d["unique_runs"] == sum(f["runs"]["new_runs"] for f in figs.values()) < d["trials_asked"]
    assert figs["figure-9"]["runs"]["new_runs"] == 0  # listed after figure-8: all shared
    assert figs["figure-9"]["runs"]["shared_with"]["figure-8"] == figs["figure-9"]["totals"]["trials"]
    assert all(f["study_points"] for f in figs["figure-7"]["panels"])
    # Figure 6 plots the training loss of Figure 4's smoothness runs: all shared
    assert figs["figure-6"]["runs"]["new_runs"] == 0
    assert figs["figure-6"]["runs"]["shared_with"]["figure-4"] == figs["figure-4"]["totals"]["runs"]


def test_results_array_over_the_limit_across_panels_is_refused(tmp_path):
    """Each panel's grid is within the limits, but the collected results span the union of the
    panels' batch sizes and sparsities: refused by compile_plan, not allocated by collect."""
    from repro.spec import MAX_STORED_ERRORS
    panels = ""
    for pid, first, s in (("a", 1, 0.0), ("b", 33, 0.5)):
        panels += f"""
[[panel]]
id = "{pid}"
dataset = "mnist"
model = "simple_cnn"
optimizer = "sgd"
schedule = "constant"
goal_error = 0.02
search = {{ learning_rate = {{ min = 1e-3, max = 1.0 }} }}

[panel.grid.full]
batch_sizes = {list(range(first, first + 32))}
sparsities = [{s}]
trials = 1000
max_steps = 30000
eval_every = 1
"""
    path = tmp_path / "figure-wide.toml"
    path.write_text('[figure]\nid = "figure-wide"\n' + panels)
    sp = spec_mod.load_spec(path)  # each grid: 32 x 1000 x 30,000 < 2**30
    with pytest.raises(UsageError) as info:
        plan_mod.compile_plan(sp, "full")
    assert info.value.key == "panel[*].grid.full" and f"{MAX_STORED_ERRORS:,}" in str(info.value)
    (pa,) = plan_mod.compile_plan(sp, "full", ["a"]).panels  # one panel at a time fits
    assert pa.evaluations_at_most == 32 * 1000 * 30000
