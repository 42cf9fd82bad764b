"""Tests for repro.claims.

All datasets here are SYNTHETIC: small xarray Datasets in the documented results layout
(docs/results-format.md) whose K*(B) curves are generated from K* = c1/B + c2, so each claim's
outcome is known in advance. No training is involved.
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from repro import claims
from repro.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "golden" / "figure-1.toml"
B = 2 ** np.arange(1, 15)  # 2 .. 16384
ALL = ["linear_scaling", "plateau", "sparse_slower", "sparse_c1_larger"]


def k_curve(c1, c2, b=B):
    """K* = c1/B + c2."""
    return c1 / b.astype(float) + c2


def make_ds(curves, panel="b", batch_sizes=B, with_status=True):
    """SYNTHETIC results dataset: ``curves`` maps sparsity -> K* array over ``batch_sizes``."""
    sparsities = sorted(curves)
    k = np.stack([np.asarray(curves[s], dtype=float) for s in sparsities])[None]
    data = {
        "steps_to_result": (("panel", "sparsity", "batch_size"), k),
        "goal_error": (("panel",), [0.02]),
        "dataset": (("panel",), ["mnist"]),
    }
    if with_status:
        status = np.where(np.isfinite(k), 1, 0)[..., None].astype(np.int8)
        data["status"] = (("panel", "sparsity", "batch_size", "trial"), status)
    coords = {"panel": [panel], "sparsity": sparsities, "batch_size": np.asarray(batch_sizes, np.int64)}
    if with_status:
        coords["trial"] = [0]
    return xr.Dataset(data, coords=coords)


def good_ds():
    """Dense c1=20000, c2=50; 90 % sparse c1 1.67x, c2 1.5x: every claim passes."""
    return make_ds({0.0: k_curve(20000, 50), 0.9: k_curve(33400, 75)})


@pytest.fixture(scope="module")
def golden():
    return claims.load_golden(GOLDEN)


def by_claim(results):
    return {r.claim: r for r in results}


def test_golden_file_loads_and_has_provenance(golden):
    for name in ALL:
        assert isinstance(golden[name]["source"], str) and golden[name]["source"]
        assert isinstance(golden[name]["why"], str) and golden[name]["why"]
    assert golden["linear_scaling"]["points"] == 3
    assert golden["sparse_slower"]["paper_band"] == [1.5, 4.5]


def test_all_claims_pass(golden):
    results = claims.check_panel(good_ds(), "figure-1", "b", ALL, golden)
    assert [r.status for r in results] == ["PASS"] * 4
    r = by_claim(results)
    assert r["linear_scaling"].values["slopes"]["0.9"]["batch_sizes"] == [2, 4, 8]
    assert r["plateau"].values["slopes"]["0"]["batch_sizes"] == [8192, 16384]
    assert r["sparse_c1_larger"].values["ratio"] == pytest.approx(1.67, rel=1e-3)
    assert r["sparse_slower"].values["s_max"] == 0.9
    assert "(s=0.9)" in r["linear_scaling"].measured
    assert claims.exit_code(results) == 0


def test_linear_scaling_fails_when_slope_too_shallow(golden):
    # K* ~ B^-0.5 at small B: slope -0.5 is outside [-1.35, -0.65].
    shallow = 1000 * B.astype(float) ** -0.5
    ds = make_ds({0.0: shallow, 0.9: 2 * shallow})
    r = by_claim(claims.check_panel(ds, "figure-1", "b", ["linear_scaling"], golden))
    assert r["linear_scaling"].status == "FAIL"
    assert r["linear_scaling"].values["slopes"]["0"]["slope"] == pytest.approx(-0.5)


def test_plateau_fails_without_plateau(golden):
    ds = make_ds({0.0: k_curve(20000, 0.0), 0.9: k_curve(40000, 0.0)})
    r = by_claim(claims.check_panel(ds, "figure-1", "b", ["linear_scaling", "plateau"], golden))
    assert r["linear_scaling"].status == "PASS"
    assert r["plateau"].status == "FAIL"


def test_sparse_slower_fails_when_one_batch_size_is_faster(golden):
    sparse = k_curve(33400, 75)
    sparse[4] = k_curve(20000, 50)[4] * 0.9
    ds = make_ds({0.0: k_curve(20000, 50), 0.9: sparse})
    r = by_claim(claims.check_panel(ds, "figure-1", "b", ["sparse_slower"], golden))["sparse_slower"]
    assert r.status == "FAIL"
    assert r.values["ratios"]["32"] == pytest.approx(0.9)
    assert "too low at B=32" in r.measured
    assert "32:0.90" in r.detail


def test_sparse_slower_is_strict(golden):
    dense = k_curve(20000, 50)
    ds = make_ds({0.0: dense, 0.9: dense.copy()})
    r = by_claim(claims.check_panel(ds, "figure-1", "b", ["sparse_slower"], golden))["sparse_slower"]
    assert r.status == "FAIL"  # ratio exactly 1 is not "slower"


def test_sparse_c1_larger_fails_when_sparse_c1_smaller(golden):
    ds = make_ds({0.0: k_curve(20000, 50), 0.9: k_curve(10000, 200)})
    r = by_claim(claims.check_panel(ds, "figure-1", "b", ["sparse_c1_larger"], golden))
    assert r["sparse_c1_larger"].status == "FAIL"
    assert r["sparse_c1_larger"].values["ratio"] == pytest.approx(0.5, rel=1e-3)


def test_s_max_is_largest_sparsity_in_data(golden):
    ds = make_ds({0.0: k_curve(20000, 50), 0.5: k_curve(25000, 55), 0.7: k_curve(30000, 60)})
    r = by_claim(claims.check_panel(ds, "figure-1", "b", ["sparse_slower"], golden))["sparse_slower"]
    assert r.status == "PASS" and r.values["s_max"] == 0.7


def test_missing_panel_is_not_run_for_every_claim(golden):
    results = claims.verify_dataset(good_ds(), "figure-1", {"b": ALL, "c": ALL}, golden)
    assert [r.status for r in results[:4]] == ["PASS"] * 4
    assert [r.status for r in results[4:]] == ["NOT-RUN"] * 4
    assert "python -m repro run specs/figure-1.toml" in results[4].detail
    assert claims.exit_code(results) == 0


def test_all_nan_panel_is_not_run_never_pass(golden):
    nan = np.full(len(B), np.nan)
    ds = make_ds({0.0: nan, 0.9: nan})
    results = claims.check_panel(ds, "figure-1", "b", ALL, golden)
    assert {r.status for r in results} == {"NOT-RUN"}
    assert "python -m repro data fetch mnist" in results[0].detail


def test_missing_sparsity_is_not_run(golden):
    ds = make_ds({0.9: k_curve(33400, 75)})
    r = by_claim(claims.check_panel(ds, "figure-1", "b", ALL, golden))
    assert r["linear_scaling"].status == "PASS"
    assert r["sparse_slower"].status == "NOT-RUN"
    assert "s=0" in r["sparse_slower"].detail
    assert r["sparse_c1_larger"].status == "NOT-RUN"


def test_too_few_batch_sizes_is_not_run(golden):
    b = np.array([2, 4])
    ds = make_ds({0.0: k_curve(20000, 50, b), 0.9: k_curve(33400, 75, b)}, batch_sizes=b)
    r = by_claim(claims.check_panel(ds, "figure-1", "b", ALL, golden))
    assert r["linear_scaling"].status == "NOT-RUN"
    assert "needs 3 batch sizes" in r["linear_scaling"].detail
    assert r["plateau"].status == "FAIL"  # 2 points suffice; slope ~-1 at B=2,4 is no plateau
    assert r["sparse_slower"].status == "PASS"
    assert r["sparse_c1_larger"].status == "NOT-RUN"


def test_sparsity_run_but_never_reaching_goal_is_s_max(golden):
    # 0.9 was run (status != 0) but no trial reached the goal: do not silently compare 0.5 instead.
    ds = make_ds({0.0: k_curve(20000, 50), 0.5: k_curve(25000, 55), 0.9: np.full(len(B), np.nan)})
    ds["status"].loc[{"sparsity": 0.9}] = 2
    r = by_claim(claims.check_panel(ds, "figure-1", "b", ["sparse_slower"], golden))["sparse_slower"]
    assert r.status == "NOT-RUN"
    assert "s=0.9" in r.detail


def test_unknown_claim_and_missing_tolerance_are_not_run(golden):
    partial = {k: v for k, v in golden.items() if k != "plateau"}
    r = by_claim(claims.check_panel(good_ds(), "figure-1", "b", ["plateau", "no_such_claim"], partial))
    assert r["plateau"].status == "NOT-RUN" and "golden/figure-1.toml" in r["plateau"].detail
    assert r["no_such_claim"].status == "NOT-RUN"


def test_per_panel_override(tmp_path):
    text = GOLDEN.read_text() + "\n[panel.b.plateau]\nslope_min = -1.2\n"
    path = tmp_path / "g.toml"
    path.write_text(text)
    golden = claims.load_golden(path)
    ds = make_ds({0.0: k_curve(20000, 0.0), 0.9: k_curve(40000, 0.0)})
    assert claims.check_panel(ds, "figure-1", "b", ["plateau"], golden)[0].status == "PASS"
    ds_c = ds.assign_coords(panel=["c"])
    assert claims.check_panel(ds_c, "figure-1", "c", ["plateau"], golden)[0].status == "FAIL"


def test_exit_code():
    mk = lambda s: claims.ClaimResult("f", "a", "c", s, "-", "-")  # noqa: E731
    assert claims.exit_code([]) == 0
    assert claims.exit_code([mk("PASS"), mk("NOT-RUN")]) == 0
    assert claims.exit_code([mk("PASS"), mk("FAIL"), mk("NOT-RUN")]) == 1


def test_format_table(golden):
    results = claims.verify_dataset(good_ds(), "figure-1", {"b": ALL, "c": ["plateau"]}, golden)
    table = claims.format_table(results)
    lines = table.splitlines()
    assert lines[0].split() == ["FIGURE", "PANEL", "CLAIM", "STATUS", "MEASURED", "TOLERANCE"]
    status_col = lines[0].index("STATUS")
    assert lines[2][status_col:].startswith("PASS")
    assert any(line.startswith("    panel c is not in the results") for line in lines)
    assert any(line.startswith("    ratio per B: 2:1.67, 4:1.67") for line in lines)
    assert lines[-1] == "4 passed, 0 failed, 1 not run"


def test_to_json_is_strict_json(golden):
    nan = np.full(len(B), np.nan)
    nan[:3] = k_curve(20000, 50)[:3]
    ds = make_ds({0.0: k_curve(20000, 50), 0.9: nan})
    results = claims.check_panel(ds, "figure-1", "b", ALL, golden)
    data = json.loads(claims.to_json(results))
    assert [d["claim"] for d in data] == ALL
    assert set(data[0]) == {"figure", "panel", "claim", "status", "measured", "tolerance", "detail", "values"}
    assert data[0]["values"]["tolerance"] == {"points": 3, "slope_min": -1.35, "slope_max": -0.65}
    fit = data[3]["values"]["fit_sparse"]
    assert fit["n_points"] == 3 and not any(isinstance(v, float) and math.isnan(v) for v in fit.values())


# ----------------------------------------------------------------------- malformed golden files

def write(tmp_path, text):
    path = tmp_path / "golden.toml"
    path.write_text(text)
    return path


PROV = 'source = "Fig. 1"\nwhy = "noise"\n'


@pytest.mark.parametrize("text,key", [
    ("[linear_scaling]\npoints = 3\nslope_min = -1.3\n" + PROV, "linear_scaling.slope_max"),
    ("[linear_scaling]\npoints = 3\nslope_min = -1.3\nslope_max = -0.7\nwhy = \"x\"\n", "linear_scaling.source"),
    ("[plateau]\npoints = 2\nslope_min = -0.5\nsource = \"Fig. 1\"\n", "plateau.why"),
    ("[plateau]\npoints = 2\nslope_min = -0.5\nsource = 3\nwhy = \"x\"\n", "plateau.source"),
    ("[plateau]\npoints = \"two\"\nslope_min = -0.5\n" + PROV, "plateau.points"),
    ("[plateau]\npoints = 1\nslope_min = -0.5\n" + PROV, "plateau.points"),
    ("[plateau]\npoints = 2\nslope_min = true\n" + PROV, "plateau.slope_min"),
    ("[linear_scaling]\npoints = 3\nslope_min = -0.5\nslope_max = -1.0\n" + PROV, "linear_scaling.slope_min"),
    ("[sparse_slower]\nmin_ratio = 1.0\npaper_band = [1.5]\n" + PROV, "sparse_slower.paper_band"),
    ("[sparse_c1_larger]\nmin_ratio = 1.0\nstrict = \"yes\"\n" + PROV, "sparse_c1_larger.strict"),
    ("[panel.b.plateau]\nslope_min = -0.4\n", "panel.b.plateau"),
    ("stray = 1\n", "stray"),
])
def test_load_golden_errors_name_file_and_key(tmp_path, text, key):
    path = write(tmp_path, text)
    with pytest.raises(UsageError) as info:
        claims.load_golden(path)
    assert info.value.key == key
    assert info.value.file == str(path)
    assert info.value.fix


def test_load_golden_bad_toml_and_missing_file(tmp_path):
    with pytest.raises(UsageError, match="not valid TOML"):
        claims.load_golden(write(tmp_path, "[plateau\n"))
    with pytest.raises(UsageError, match="not found"):
        claims.load_golden(tmp_path / "nope.toml")


def test_junit_has_one_case_per_claim_and_never_passes_a_not_run():
    import xml.etree.ElementTree as ET
    rs = [claims.ClaimResult("figure-1", "a", "plateau", claims.PASS, "-0.1", ">= -0.5"),
          claims.ClaimResult("figure-1", "a", "sparse_slower", claims.FAIL, "0.9", ">= 1.0"),
          claims.ClaimResult("figure-1", "d", "plateau", claims.NOT_RUN, "-", "-", "no data; run: x")]
    root = ET.fromstring(claims.to_junit(rs))
    suite = root.find("testsuite")
    assert suite.get("name") == "figure-1"
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    cases = suite.findall("testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [
        ("figure-1.panel_a", "plateau"), ("figure-1.panel_a", "sparse_slower"),
        ("figure-1.panel_d", "plateau")]
    assert cases[0].find("failure") is None and cases[0].find("skipped") is None
    assert "0.9" in cases[1].find("failure").get("message")
    assert "run: x" in cases[2].find("skipped").get("message")


# ---------------------------------------------------------------- the wider claims catalogue
CATALOGUE_GOLDEN = {
    "diminishing_returns": {"min_flattening": 0.25},
    "sparse_ratio_band": {"band": [1.5, 4.5]},
    "sparse_critical_batch_no_smaller": {"factor": 2.0, "min_ratio": 1.0},
    "c1_increasing_with_sparsity": {"min_ratio": 1.0, "strict": True},
    "best_lr_nondecreasing": {"max_drop": 1.5},
    "momentum_beats_sgd": {"reference_panel": "a", "min_kstar_ratio": 1.0, "min_b_crit_ratio": 1.0},
    "best_inside_range": {"edge_fraction": 0.05},
    "feasible_lr_range_shrinks": {"max_ratio": 1.0},
}


def check(ds, claim, **tol):
    golden = {claim: {**CATALOGUE_GOLDEN[claim], **tol, "source": "test", "why": "test"}}
    return claims.check_one(ds, "figure-1", "b", claim, golden)


def test_diminishing_returns_sees_the_bend_and_not_a_straight_line():
    assert check(good_ds(), "diminishing_returns").status == claims.PASS  # -1 -> ~0
    straight = make_ds({0.0: 1e5 / B, 0.9: 2e5 / B})
    r = check(straight, "diminishing_returns")
    assert r.status == claims.FAIL and "-1.00 -> -1.00" in r.measured


def test_sparse_ratio_band():
    assert check(good_ds(), "sparse_ratio_band").status == claims.PASS  # ratio 1.5 .. 1.67
    far = make_ds({0.0: k_curve(20000, 50), 0.9: k_curve(200000, 500)})  # 10x
    assert check(far, "sparse_ratio_band").status == claims.FAIL


def test_sparse_critical_batch_no_smaller():
    # dense leaves linear scaling (x2) where 20000/B ~ 50, sparse (c1 and c2 both x10) at the same B
    same = make_ds({0.0: k_curve(20000, 50), 0.9: k_curve(200000, 500)})
    assert check(same, "sparse_critical_batch_no_smaller").status == claims.PASS
    earlier = make_ds({0.0: k_curve(20000, 50), 0.9: k_curve(20000, 500)})  # sparse plateaus 10x sooner
    r = check(earlier, "sparse_critical_batch_no_smaller")
    assert r.status == claims.FAIL and r.values["ratio"] < 1


def test_c1_increasing_with_sparsity_over_every_step():
    up = make_ds({0.0: k_curve(20000, 50), 0.5: k_curve(24000, 55), 0.9: k_curve(33400, 75)})
    assert check(up, "c1_increasing_with_sparsity").status == claims.PASS
    dip = make_ds({0.0: k_curve(20000, 50), 0.5: k_curve(15000, 55), 0.9: k_curve(33400, 75)})
    assert check(dip, "c1_increasing_with_sparsity").status == claims.FAIL


def test_best_lr_nondecreasing_reads_the_best_trials():
    ds = make_ds({0.0: k_curve(20000, 50, B[:3])}, batch_sizes=B[:3])
    ds["best_trial"] = (("panel", "sparsity", "batch_size"), np.zeros((1, 1, 3), np.int64))
    lr = np.array([0.01, 0.02, 0.05]).reshape(1, 1, 3, 1)
    ds["learning_rate"] = (("panel", "sparsity", "batch_size", "trial"), lr)
    assert check(ds, "best_lr_nondecreasing").status == claims.PASS
    ds["learning_rate"] = (("panel", "sparsity", "batch_size", "trial"), lr[..., ::-1, :].copy())
    r = check(ds, "best_lr_nondecreasing")
    assert r.status == claims.FAIL and r.values["worst_drop"] == pytest.approx(2.5)


def test_not_run_says_which_points_ran_without_reaching_the_goal_instead_of_asking_to_rerun():
    """SYNTHETIC: 2 B x s 0, 0.9, 2 trials; at s=0.9, B=4 both trials ran and missed the goal."""
    b = B[:2]
    ds = make_ds({0.0: k_curve(20000, 50, b), 0.9: [k_curve(40000, 80, b)[0], np.nan]}, batch_sizes=b)
    ds = ds.drop_vars("status").drop_dims("trial")
    status = np.array([[[1, 2], [1, 1]], [[1, 2], [2, 2]]], np.int8)[None]
    ds["status"] = (("panel", "sparsity", "batch_size", "trial"), status)
    ds["best_trial"] = (("panel", "sparsity", "batch_size"), np.array([[[0, 0], [0, -1]]]))
    ds["learning_rate"] = (("panel", "sparsity", "batch_size", "trial"), np.full(status.shape, 0.1))
    ds["eval_step"] = (("panel", "batch_size", "eval"), np.zeros((1, 2, 1), np.int64))
    r = check(ds, "best_lr_nondecreasing")
    assert r.status == claims.NOT_RUN
    assert "no trial reached the goal at B=4 s=0.9 (2 trials)" in r.detail and "repro run" not in r.detail
    ds["status"][0, 1, 1] = 0  # the point has not run yet: the hint is the command that runs it
    r = check(ds, "best_lr_nondecreasing")
    assert "no trial reached" not in r.detail and "python -m repro run" in r.detail


def two_panels(sgd, momentum):
    """SYNTHETIC Figure 2: panel a (SGD) and b (momentum), K* curves per sparsity."""
    a, b = make_ds(sgd, panel="a"), make_ds(momentum, panel="b")
    return xr.concat([a, b], dim="panel")


def test_momentum_beats_sgd_needs_lower_large_batch_k_and_larger_b_crit():
    sgd = {0.0: k_curve(20000, 200), 0.9: k_curve(40000, 400)}        # B_crit 100
    better = {0.0: k_curve(20000, 20), 0.9: k_curve(40000, 40)}       # B_crit 1000, lower plateau
    r = check(two_panels(sgd, better), "momentum_beats_sgd")
    assert r.status == claims.PASS and r.values["rows"][0]["b_crit_ratio"] == pytest.approx(10, rel=0.05)
    worse = {0.0: k_curve(20000, 400), 0.9: k_curve(40000, 800)}      # plateaus sooner and higher
    assert check(two_panels(sgd, worse), "momentum_beats_sgd").status == claims.FAIL
    r = check(make_ds(better), "momentum_beats_sgd")                  # no SGD panel in the data
    assert r.status == claims.NOT_RUN and "reference panel 'a'" in r.detail


def landscape(lrs, status, lo=1e-3, hi=10.0):
    """SYNTHETIC landscape point: one B, s 0 and 0.9, trials with learning rates `lrs` and
    statuses `status` = {s: [1 complete | 2 incomplete | 3 infeasible, ...]}; trial 0 is best."""
    n = len(lrs)
    ds = make_ds({0.0: [100.0], 0.9: [300.0]}, batch_sizes=[128])
    ds = ds.drop_vars("status").drop_dims("trial") if "trial" in ds.dims else ds
    st = np.array([[status[0.0]], [status[0.9]]], np.int8)[None]
    ds["status"] = (("panel", "sparsity", "batch_size", "trial"), st)
    ds["learning_rate"] = (("panel", "sparsity", "batch_size", "trial"),
                           np.broadcast_to(np.asarray(lrs, float), st.shape).copy())
    ds["best_trial"] = (("panel", "sparsity", "batch_size"), np.zeros((1, 2, 1), np.int64))
    ds = ds.assign_coords(trial=np.arange(n), hp=["learning_rate", "momentum"])
    ds["search_min"] = (("panel", "hp"), [[lo, np.nan]])
    ds["search_max"] = (("panel", "hp"), [[hi, np.nan]])
    ds["search_scale"] = (("panel", "hp"), np.array([["log", ""]], dtype=object))
    return ds


def test_best_inside_range_flags_a_best_trial_at_the_edge_of_the_search():
    inside = landscape([0.1, 1e-3, 9.0], {0.0: [1, 2, 3], 0.9: [1, 2, 3]})
    r = check(inside, "best_inside_range")
    assert r.status == claims.PASS and r.values["closest_to_edge"] == pytest.approx(0.5)
    edge = landscape([8.0, 0.1, 1e-3], {0.0: [1, 2, 3], 0.9: [1, 2, 3]})  # 8 is 2.4 % from 10 in log
    r = check(edge, "best_inside_range")
    assert r.status == claims.FAIL and "learning_rate=8" in r.measured


def test_feasible_lr_range_shrinks_compares_decades_of_goal_reaching_learning_rates():
    lrs = [0.1, 0.01, 1.0, 0.001]
    shrinks = landscape(lrs, {0.0: [1, 1, 1, 2], 0.9: [1, 1, 3, 2]})     # 2 decades -> 1
    r = check(shrinks, "feasible_lr_range_shrinks")
    assert r.status == claims.PASS and r.values["rows"][0]["dense"][0] == pytest.approx(2.0)
    grows = landscape(lrs, {0.0: [1, 1, 3, 2], 0.9: [1, 1, 1, 1]})       # 1 decade -> 3
    assert check(grows, "feasible_lr_range_shrinks").status == claims.FAIL
    unfinished = landscape(lrs, {0.0: [1, 1, 1, 0], 0.9: [1, 1, 1, 1]})  # a trial not run yet
    assert check(unfinished, "feasible_lr_range_shrinks").status == claims.NOT_RUN
