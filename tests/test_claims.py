"""Tests for repro.claims.

All datasets here are SYNTHETIC: small xarray Datasets in the documented results layout
(docs/results-format.md) whose K*(B) curves are generated from K* = c1/B + c2, so each claim's
outcome is known in advance. No training is involved.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from repro import claims
from repro.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "golden" / "figure-1.toml"
B = 2 ** np.arange(1, 15)  # 2 .. 16384
ALL = ["linear_scaling", "diminishing_returns", "plateau", "sparse_slower", "sparse_c1_larger",
       "sparse_critical_batch_no_smaller"]


def k_curve(c1, c2, b=B):
    """K* = c1/B + c2."""
    return c1 / b.astype(float) + c2


SCHEDULE = np.unique(np.ceil(4 * 2 ** (np.arange(200) / 8)).astype(np.int64))  # 8 per octave
SPREAD = (1.0, 1.1, 1.25, 1.4, 1.6, 2.0)  # trial t reaches the goal at K x SPREAD[t]
FINE = (1.0, 1.0, 1.02, 1.05, 1.1, 1.3)  # a finer search: two trials of six find the best K


def quantise(k):
    """The first evaluation step at or after k."""
    return float(SCHEDULE[np.searchsorted(SCHEDULE, k)])


def make_ds(curves, panel="b", batch_sizes=B, with_status=True, spread=SPREAD):
    """SYNTHETIC results dataset: ``curves`` maps sparsity -> true K* over ``batch_sizes``
    (NaN: no trial reaches the goal). Each point has len(spread) trials; trial t reaches the
    goal at the evaluation step at or after K x spread[t] (so the best is trial 0), on a geometric
    schedule of 8 evaluations per octave."""
    sparsities = sorted(curves)
    n_t = len(spread)
    shape = (1, len(sparsities), len(batch_sizes), n_t)
    status = np.full(shape, 2, np.int8)
    steps = np.full(shape, int(SCHEDULE[-1]), np.int64)
    for j, s in enumerate(sparsities):
        for i, k in enumerate(np.asarray(curves[s], dtype=float)):
            if np.isfinite(k):
                for t in range(n_t):
                    status[0, j, i, t], steps[0, j, i, t] = 1, quantise(k * spread[t])
    kstar = np.where((status == 1).any(-1), np.where(status == 1, steps, np.inf).min(-1), np.nan)
    data = {
        "steps_to_result": (("panel", "sparsity", "batch_size"), kstar.astype(float)),
        "goal_error": (("panel",), [0.02]),
        "dataset": (("panel",), ["mnist"]),
        "eval_step": (("panel", "batch_size", "eval"), np.broadcast_to(SCHEDULE, (1, len(batch_sizes), SCHEDULE.size)).copy()),
    }
    if with_status:
        data["status"] = (("panel", "sparsity", "batch_size", "trial"), status)
        data["steps"] = (("panel", "sparsity", "batch_size", "trial"), steps)
    coords = {"panel": [panel], "sparsity": sparsities, "batch_size": np.asarray(batch_sizes, np.int64),
              "trial": np.arange(n_t)}
    return xr.Dataset(data, coords=coords)


def good_ds():
    """Dense c1=20000, c2=50 (B_crit 400); 90 % sparse c1 2.5x, c2 2x (B_crit 500): every claim
    holds, and B reaches 16384 >= 4 B_crit (the plateau). Two trials of six find the best K,
    so resampled searches rarely miss it and the plateau's slope is decidable."""
    return make_ds({0.0: k_curve(20000, 50), 0.9: k_curve(50000, 100)}, spread=FINE)


@pytest.fixture(scope="module")
def golden():
    return claims.load_golden(GOLDEN)


def by_claim(results):
    return {r.claim: r for r in results}


def test_golden_file_loads_and_has_provenance(golden):
    for name in ALL:
        assert isinstance(golden[name]["source"], str) and golden[name]["source"]
        assert isinstance(golden[name]["why"], str) and golden[name]["why"]
    assert golden["sparse_slower"]["paper_band"] == [1.5, 4.5]
    assert "Prop. 4.1" in golden["plateau"]["source"] and "Prop. 4.1" in golden["linear_scaling"]["source"]


def test_prop41_curves_pass_every_claim_with_an_interval(golden):
    results = claims.check_panel(good_ds(), "figure-1", "b", ALL, golden)
    r = by_claim(results)
    assert {c: x.status for c, x in r.items()} == {c: "PASS" for c in ALL}, claims.format_table(results)
    lin = r["linear_scaling"].values["slopes"]["0"]
    assert lin["interval"][0] <= lin["slope"] <= lin["interval"][1]
    # the linear regime is B <= B_crit/2 = 200 of the fit (c1/c2 = 400): B = 2 .. 128
    assert lin["batch_sizes"] == [2, 4, 8, 16, 32, 64, 128]
    assert r["plateau"].values["slopes"]["0"]["batch_sizes"] == [8192, 16384]
    assert r["sparse_c1_larger"].paper == "~1.67 (App. C)"
    assert "Fig. 12" in r["sparse_slower"].source
    assert "[" in r["sparse_slower"].measured  # the interval is shown
    assert r["linear_scaling"].values["uncertainty"].startswith("evaluation quantisation")
    assert claims.exit_code(results) == 0


def test_linear_scaling_fails_when_slope_too_shallow(golden):
    shallow = 1000 * B.astype(float) ** -0.4  # a power law: the fit puts B_crit high, slope -0.4
    r = by_claim(claims.check_panel(make_ds({0.0: shallow, 0.9: 2 * shallow}, spread=FINE), "figure-1", "b",
                                    ["linear_scaling"], golden))["linear_scaling"]
    assert r.status == "FAIL", r.measured
    assert r.values["slopes"]["0"]["interval"][1] < -0.4 + 0.2


def test_linear_scaling_is_inconclusive_when_the_grid_starts_past_b_crit(golden):
    b = np.array([1024, 2048, 4096, 8192])
    ds = make_ds({0.0: k_curve(20000, 50, b), 0.9: k_curve(33400, 75, b)}, batch_sizes=b)
    r = claims.check_panel(ds, "figure-1", "b", ["linear_scaling"], golden)[0]
    assert r.status == "INCONCLUSIVE" and "batch sizes below" in r.detail


def test_plateau_fails_when_k_rises_and_is_inconclusive_before_the_plateau(golden):
    rising = k_curve(20000, 50)
    rising[-1] = 2 * rising[-2]
    r = claims.check_panel(make_ds({0.0: rising, 0.9: 2 * rising}), "figure-1", "b", ["plateau"], golden)[0]
    assert r.status == "FAIL" and "rises" in r.detail
    linear = make_ds({0.0: k_curve(20000, 0.0), 0.9: k_curve(40000, 0.0)})
    r = claims.check_panel(linear, "figure-1", "b", ["plateau"], golden)[0]
    assert r.status == "INCONCLUSIVE" and "before the plateau" in r.detail


def test_plateau_at_b_crit_is_not_a_plateau(golden):
    b = np.array([16, 64, 256, 1024])
    ds = make_ds({0.0: k_curve(1024 * 100, 100, b), 0.9: k_curve(2048 * 200, 200, b)}, batch_sizes=b)
    r = claims.check_panel(ds, "figure-1", "b", ["plateau"], golden)[0]
    assert r.status != "PASS" and r.values["slopes"]["0"]["slope"] < -0.3


def test_sparse_slower_fails_when_one_batch_size_is_faster(golden):
    sparse = k_curve(50000, 100)
    sparse[4] = k_curve(20000, 50)[4] * 0.6
    ds = make_ds({0.0: k_curve(20000, 50), 0.9: sparse})
    r = claims.check_panel(ds, "figure-1", "b", ["sparse_slower"], golden)[0]
    assert r.status == "FAIL" and "B=[32]" in r.detail
    assert r.values["ratios"]["32"]["interval"][1] < 1


def test_sparse_slower_within_noise_is_not_a_pass(golden):
    dense = k_curve(20000, 50)
    r = claims.check_panel(make_ds({0.0: dense, 0.9: 1.01 * dense}), "figure-1", "b", ["sparse_slower"], golden)[0]
    assert r.status in ("INCONCLUSIVE", "FAIL")


def test_sparse_slower_counts_a_batch_size_only_sparse_reached(golden):
    dense = k_curve(20000, 50)
    dense[3] = np.nan  # dense missed the goal at B=16 while sparse reached it
    r = claims.check_panel(make_ds({0.0: dense, 0.9: k_curve(50000, 100)}), "figure-1", "b",
                           ["sparse_slower"], golden)[0]
    assert r.status == "FAIL" and "16" in r.values["ratios"] and "dense missed" in r.measured


def test_sparse_c1_larger_fails_when_sparse_c1_smaller(golden):
    ds = make_ds({0.0: k_curve(20000, 50), 0.9: k_curve(10000, 200)})
    r = claims.check_panel(ds, "figure-1", "b", ["sparse_c1_larger"], golden)[0]
    assert r.status == "FAIL" and r.values["ratio"] == pytest.approx(0.5, rel=0.15)


def test_s_max_is_largest_sparsity_in_data(golden):
    ds = make_ds({0.0: k_curve(20000, 50), 0.5: k_curve(25000, 55), 0.7: k_curve(50000, 100)})
    r = claims.check_panel(ds, "figure-1", "b", ["sparse_slower"], golden)[0]
    assert r.values["s_max"] == 0.7


def test_missing_panel_is_not_run_for_every_claim(golden):
    results = claims.verify_dataset(good_ds(), "figure-1", {"b": ALL, "c": ALL}, golden)
    assert [r.status for r in results[len(ALL):]] == ["NOT-RUN"] * len(ALL)
    assert "python -m repro run specs/figure-1.toml" in results[len(ALL)].detail
    assert claims.exit_code(results) == 0


def test_all_nan_panel_is_not_run_never_pass(golden):
    nan = np.full(len(B), np.nan)
    ds = make_ds({0.0: nan, 0.9: nan})
    ds["status"][:] = 0  # nothing has run yet
    results = claims.check_panel(ds, "figure-1", "b", ALL, golden)
    assert {r.status for r in results} == {"NOT-RUN"}
    assert "python -m repro data fetch mnist" in results[0].detail


def test_missing_sparsity_is_not_run(golden):
    r = by_claim(claims.check_panel(make_ds({0.9: k_curve(33400, 75)}), "figure-1", "b", ALL, golden))
    assert r["sparse_slower"].status == "NOT-RUN" and "s=0" in r["sparse_slower"].detail
    assert r["sparse_c1_larger"].status == "NOT-RUN"


def test_too_few_batch_sizes_is_inconclusive_never_pass(golden):
    b = np.array([2, 4])
    ds = make_ds({0.0: k_curve(20000, 50, b), 0.9: k_curve(33400, 75, b)}, batch_sizes=b)
    r = by_claim(claims.check_panel(ds, "figure-1", "b", ALL, golden))
    for c in ("linear_scaling", "sparse_c1_larger", "diminishing_returns", "sparse_critical_batch_no_smaller"):
        assert r[c].status == "INCONCLUSIVE" and r[c].detail, c


def test_no_measured_uncertainty_is_never_decided(golden):
    rows = [{"batch_size": int(b), "sparsity": s, "steps_to_result": float(k)}
            for s, c in ((0.0, k_curve(20000, 50)), (0.9, k_curve(50000, 100))) for b, k in zip(B, c)]
    results = claims.verify_table(rows, ["sparse_slower", "linear_scaling"], golden)
    assert {r.status for r in results} == {"INCONCLUSIVE"}
    assert "no uncertainty is measured" in results[0].detail and "PASS" in results[0].detail


def test_unknown_claim_and_missing_tolerance_are_not_run(golden):
    partial = {k: v for k, v in golden.items() if k != "plateau"}
    r = by_claim(claims.check_panel(good_ds(), "figure-1", "b", ["plateau", "no_such_claim"], partial))
    assert r["plateau"].status == "NOT-RUN" and "golden/figure-1.toml" in r["plateau"].detail
    assert r["no_such_claim"].status == "NOT-RUN"


def test_per_panel_override(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text(GOLDEN.read_text() + "\n[panel.b.sparse_slower]\nmin_ratio = 5.0\n")
    golden = claims.load_golden(path)
    ds = make_ds({0.0: k_curve(20000, 50), 0.9: k_curve(50000, 100)}, spread=FINE)
    assert claims.check_panel(ds, "figure-1", "b", ["sparse_slower"], golden)[0].status == "FAIL"
    ds_c = ds.assign_coords(panel=["c"])
    assert claims.check_panel(ds_c, "figure-1", "c", ["sparse_slower"], golden)[0].status == "PASS"


def test_exit_code():
    mk = lambda s: claims.ClaimResult("f", "a", "c", s, "-", "-")  # noqa: E731
    assert claims.exit_code([]) == 0
    assert claims.exit_code([mk("PASS"), mk("NOT-RUN"), mk("INCONCLUSIVE")]) == 0
    assert claims.exit_code([mk("PASS"), mk("INCONCLUSIVE")], strict=True) == 1
    assert claims.exit_code([mk("PASS"), mk("FAIL"), mk("NOT-RUN")]) == 1


def test_format_table(golden):
    results = claims.verify_dataset(good_ds(), "figure-1", {"b": ALL, "c": ["plateau"]}, golden)
    lines = claims.format_table(results).splitlines()
    assert lines[0].split() == ["FIGURE", "PANEL", "CLAIM", "STATUS", "MEASURED", "TOLERANCE"]
    assert any(line.startswith("    panel c is not in the results") for line in lines)
    assert any(line.startswith("    paper: 1.5-4.5x (Fig. 12)") for line in lines)
    assert lines[-2] == f"{len(ALL)} passed, 0 failed, 0 inconclusive, 1 not run"


def test_to_json_is_strict_json(golden):
    nan = np.full(len(B), np.nan)
    nan[:3] = k_curve(20000, 50)[:3]
    results = claims.check_panel(make_ds({0.0: k_curve(20000, 50), 0.9: nan}), "figure-1", "b", ALL, golden)
    data = json.loads(claims.to_json(results))
    assert [d["claim"] for d in data] == ALL
    assert set(data[0]) == {"figure", "panel", "claim", "status", "measured", "tolerance", "detail",
                            "values", "paper", "source"}
    assert data[0]["values"]["tolerance"] == {"slope_min": -1.3333, "slope_max": -0.6667}


# ----------------------------------------------------------------------- malformed golden files

def write(tmp_path, text):
    path = tmp_path / "golden.toml"
    path.write_text(text)
    return path


PROV = 'source = "Fig. 1"\nwhy = "noise"\n'


@pytest.mark.parametrize("text,key", [
    ("[linear_scaling]\nslope_min = -1.3\n" + PROV, "linear_scaling.slope_max"),
    ("[linear_scaling]\nslope_min = -1.3\nslope_max = -0.7\nwhy = \"x\"\n", "linear_scaling.source"),
    ("[plateau]\nslope_min = -0.5\nsource = \"Fig. 1\"\n", "plateau.why"),
    ("[plateau]\nslope_min = -0.5\nsource = 3\nwhy = \"x\"\n", "plateau.source"),
    ("[plateau]\nslope_min = true\n" + PROV, "plateau.slope_min"),
    ("[plateau]\nslope_min = -0.2\nnot_shown_on = [\"reduced\"]\n" + PROV, "plateau.not_shown_on"),
    ("[linear_scaling]\nslope_min = -0.5\nslope_max = -1.0\n" + PROV, "linear_scaling.slope_min"),
    ("[sparse_slower]\nmin_ratio = 1.0\npaper_band = [1.5]\n" + PROV, "sparse_slower.paper_band"),
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


def test_junit_fails_a_fail_and_skips_inconclusive_and_not_run_with_the_reason():
    import xml.etree.ElementTree as ET
    rs = [claims.ClaimResult("figure-1", "a", "plateau", claims.PASS, "-0.1", ">= -0.2"),
          claims.ClaimResult("figure-1", "a", "sparse_slower", claims.FAIL, "0.9", "> 1"),
          claims.ClaimResult("figure-1", "a", "sparse_c1_larger", claims.INCONCLUSIVE, "1.1 [0.9, 1.3]", "> 1",
                             "interval straddles 1; to decide: more seeds"),
          claims.ClaimResult("figure-1", "d", "plateau", claims.NOT_RUN, "-", "-", "no data; run: x")]
    suite = ET.fromstring(claims.to_junit(rs)).find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("4", "1", "2")
    cases = suite.findall("testcase")
    assert cases[0].find("failure") is None and cases[0].find("skipped") is None
    assert "0.9" in cases[1].find("failure").get("message")
    assert cases[2].find("skipped").get("message").startswith("INCONCLUSIVE") and "more seeds" in \
        cases[2].find("skipped").get("message")
    assert "run: x" in cases[3].find("skipped").get("message")


# ---------------------------------------------------------------- the wider claims catalogue

CATALOGUE_GOLDEN = {
    "diminishing_returns": {"min_flattening": 0.0},
    "sparse_ratio_band": {"band": [1.5, 4.5]},
    "sparse_critical_batch_no_smaller": {"min_ratio": 1.0},
    "c1_increasing_with_sparsity": {"min_ratio": 1.0},
    "best_lr_nondecreasing": {"max_drop": 1.0},
    "momentum_beats_sgd": {"reference_panel": "a", "min_kstar_ratio": 1.0, "min_b_crit_ratio": 1.0},
    "feasible_lr_range_shrinks": {"max_ratio": 1.0},
}


def check(ds, claim, **tol):
    golden = {claim: {**CATALOGUE_GOLDEN[claim], **tol, "source": "test", "why": "test"}}
    return claims.check_one(ds, "figure-1", "b", claim, golden)


def test_diminishing_returns_sees_the_bend_and_not_a_straight_line_or_a_rise():
    assert check(good_ds(), "diminishing_returns").status == claims.PASS
    straight = check(make_ds({0.0: 1e5 / B, 0.9: 2e5 / B}), "diminishing_returns")
    assert straight.status != claims.PASS
    rising = k_curve(20000, 50)
    rising[-1] = 2 * rising[-2]
    r = check(make_ds({0.0: rising, 0.9: 2 * rising}, spread=FINE), "diminishing_returns")
    assert r.status == claims.FAIL and "8192->16384" in r.detail
    # a coarse search cannot show the rise beyond its uncertainty, but a measured rise keeps
    # the bend from passing
    coarse = check(make_ds({0.0: rising, 0.9: 2 * rising}), "diminishing_returns")
    assert coarse.status == claims.INCONCLUSIVE and "rises at B 8192->16384" in coarse.detail


def test_sparse_ratio_band():
    assert check(good_ds(), "sparse_ratio_band").status == claims.PASS  # ratio 2.5 .. 2
    far = make_ds({0.0: k_curve(20000, 50), 0.9: k_curve(200000, 500)})  # 10x
    assert check(far, "sparse_ratio_band").status == claims.FAIL


def test_sparse_critical_batch_no_smaller():
    larger = make_ds({0.0: k_curve(20000, 200), 0.9: k_curve(200000, 200)}, spread=FINE)  # B_crit 100 -> 1000
    assert check(larger, "sparse_critical_batch_no_smaller").status == claims.PASS
    earlier = make_ds({0.0: k_curve(20000, 50), 0.9: k_curve(20000, 500)}, spread=FINE)  # sparse plateaus 10x sooner
    r = check(earlier, "sparse_critical_batch_no_smaller")
    assert r.status == claims.FAIL and r.values["interval"][1] < 1


def test_c1_increasing_with_sparsity_over_every_step():
    up = make_ds({0.0: k_curve(20000, 50), 0.5: k_curve(40000, 55), 0.9: k_curve(80000, 75)})
    assert check(up, "c1_increasing_with_sparsity").status == claims.PASS
    dip = make_ds({0.0: k_curve(20000, 50), 0.5: k_curve(8000, 55), 0.9: k_curve(80000, 75)})
    assert check(dip, "c1_increasing_with_sparsity").status == claims.FAIL


def with_lr(ds, lr):
    """Add per-trial learning rates lr[sparsity][batch] (the same for every trial of a point
    but trial 0, the best, which gets the given value; others get a value far away)."""
    full = np.broadcast_to(np.asarray(lr, float)[None, :, :, None], ds["status"].shape).copy()
    ds["learning_rate"] = (("panel", "sparsity", "batch_size", "trial"), full)
    return ds


def test_best_lr_nondecreasing_reads_the_best_trials():
    b = B[:3]
    ds = make_ds({0.0: k_curve(20000, 50, b)}, batch_sizes=b)
    assert check(with_lr(ds, [[0.01, 0.02, 0.05]]), "best_lr_nondecreasing").status == claims.PASS
    r = check(with_lr(ds, [[0.05, 0.02, 0.01]]), "best_lr_nondecreasing")
    assert r.status == claims.FAIL and r.values["best_lr"]["0"]["worst_drop"] == pytest.approx(2.5)


def two_panels(sgd, momentum):
    """SYNTHETIC Figure 2: panel a (SGD) and b (momentum), K* curves per sparsity."""
    a, b = make_ds(sgd, panel="a"), make_ds(momentum, panel="b")
    return xr.concat([a, b], dim="panel")


def test_momentum_beats_sgd_needs_lower_large_batch_k_and_larger_b_crit():
    sgd = {0.0: k_curve(20000, 200), 0.9: k_curve(40000, 400)}        # B_crit 100
    better = {0.0: k_curve(20000, 20), 0.9: k_curve(40000, 40)}       # B_crit 1000, lower plateau
    r = check(two_panels(sgd, better), "momentum_beats_sgd")
    assert r.status == claims.PASS and r.values["rows"][0]["b_crit_ratio"] == pytest.approx(10, rel=0.2)
    worse = {0.0: k_curve(20000, 400), 0.9: k_curve(40000, 800)}      # plateaus sooner and higher
    assert check(two_panels(sgd, worse), "momentum_beats_sgd").status == claims.FAIL
    r = check(make_ds(better), "momentum_beats_sgd")                  # no SGD panel in the data
    assert r.status == claims.NOT_RUN and "reference panel 'a'" in r.detail


def landscape(lrs, status):
    """SYNTHETIC landscape point: one B, s 0 and 0.9, trials with learning rates `lrs` and
    statuses {s: [1 complete | 2 incomplete | 3 infeasible | 0 not run, ...]}."""
    n = len(lrs)
    ds = make_ds({0.0: [100.0], 0.9: [300.0]}, batch_sizes=[128], spread=(1.0,) * n)
    st = np.array([[status[0.0]], [status[0.9]]], np.int8)[None]
    ds["status"] = (("panel", "sparsity", "batch_size", "trial"), st)
    ds["learning_rate"] = (("panel", "sparsity", "batch_size", "trial"),
                           np.broadcast_to(np.asarray(lrs, float), st.shape).copy())
    return ds


def test_feasible_lr_range_shrinks_compares_decades_of_goal_reaching_learning_rates():
    lrs = [0.1, 0.01, 1.0, 0.001, 0.05, 0.2, 0.02, 0.5]
    shrinks = landscape(lrs, {0.0: [1, 1, 1, 1, 1, 1, 1, 1], 0.9: [1, 2, 2, 2, 1, 1, 2, 2]})
    r = check(shrinks, "feasible_lr_range_shrinks")
    assert r.status == claims.PASS and r.values["rows"][0]["dense_decades"] == pytest.approx(3.0)
    grows = landscape(lrs, {0.0: [1, 2, 2, 2, 1, 1, 2, 2], 0.9: [1, 1, 1, 1, 1, 1, 1, 1]})
    assert check(grows, "feasible_lr_range_shrinks").status == claims.FAIL
    none = landscape(lrs, {0.0: [1, 1, 1, 2, 1, 1, 1, 1], 0.9: [2, 2, 2, 2, 3, 2, 2, 2]})
    assert check(none, "feasible_lr_range_shrinks").status == claims.INCONCLUSIVE  # never a vacuous PASS
    unfinished = landscape(lrs, {0.0: [1, 1, 1, 0, 1, 1, 1, 1], 0.9: [1, 1, 1, 1, 1, 1, 1, 1]})
    assert check(unfinished, "feasible_lr_range_shrinks").status == claims.NOT_RUN


def smooth_ds(lip_dense, lip_sparse, loss_dense, loss_sparse):
    """SYNTHETIC smoothness results (docs/results-format.md): per-step L and training loss."""
    steps = np.arange(len(lip_dense))
    ds = xr.Dataset({
        "lipschitz": (("panel", "sparsity", "step"), np.array([[lip_dense, lip_sparse]], float)),
        "train_loss": (("panel", "sparsity", "step"), np.array([[loss_dense, loss_sparse]], float)),
        "final_loss": (("panel", "sparsity"), np.array([[loss_dense[-1], loss_sparse[-1]]], float)),
        "status": (("panel", "sparsity"), np.array([["complete", "complete"]], dtype=object)),
    }, coords={"panel": ["a"], "sparsity": [0.0, 0.9], "step": steps})
    ds.attrs["kind"] = "smoothness"
    return ds


def test_smoothness_claims_fail_on_data_that_contradict_them():
    rng = np.random.default_rng(0)
    low, high = 0.5 + 0.05 * rng.random(12), 1.5 + 0.05 * rng.random(12)
    golden = {"lipschitz_increasing": {"min_ratio": 1.0, "source": "test", "why": "test"},
              "sparse_loss_higher": {"min_ratio": 1.0, "source": "test", "why": "test"}}
    holds = smooth_ds(low, high, low, high)
    contradicts = smooth_ds(high, low, high, low)  # the sparse network is smoother and fits better
    for claim in golden:
        read = {"reading": claims.SMOOTHNESS_RESULTS}  # smoothness runs, as repro.study says for figure-4
        assert claims.check_one(holds, "figure-4", "a", claim, golden, **read).status == claims.PASS, claim
        assert claims.check_one(contradicts, "figure-4", "a", claim, golden, **read).status == claims.FAIL, claim


# ----------------------------------------------------------------------------- the registry

def test_the_registry_names_are_the_spec_vocabulary():
    from repro import spec
    assert sorted(claims.REGISTRY) == sorted(spec.CLAIMS) and len(claims.REGISTRY) == len(spec.CLAIMS)
    assert all(name == c.name and isinstance(c, claims.Claim) for name, c in claims.REGISTRY.items())


def test_each_claim_says_what_it_reads_and_the_table_claims_follow_from_it():
    reads = {name: c.reads for name, c in claims.REGISTRY.items()}
    assert claims.TABLE_CLAIMS == ("linear_scaling", "plateau", "diminishing_returns", "sparse_slower",
                                   "sparse_c1_larger", "sparse_ratio_band", "sparse_critical_batch_no_smaller",
                                   "c1_increasing_with_sparsity")
    assert all(reads[n] is claims.Reads.KSTAR for n in claims.TABLE_CLAIMS)
    assert {n for n, r in reads.items() if r is claims.Reads.SMOOTHNESS} == set(claims.SMOOTHNESS_CLAIMS)
    assert reads["momentum_beats_sgd"] is claims.Reads.REFERENCE_PANEL
    assert reads["best_lr_nondecreasing"] is reads["feasible_lr_range_shrinks"] is claims.Reads.TRIALS
    assert claims.GOLDEN_SCHEMA == {n: dict(c.tolerance_schema) for n, c in claims.REGISTRY.items()}


def test_too_few_batch_sizes_for_a_fit_ask_for_batch_sizes_decide_can_add():
    """SYNTHETIC K* at only B = 64 and 256 (two sparsities, 6 trials each): every claim that
    needs a Prop. 4.1 fit or a bend (3 batch sizes with a K*) is INCONCLUSIVE and asks for
    batch sizes at each sparsity that lacks them (4x below the smallest: the c1 end), as a
    request `repro decide` prices and runs; with B = 16 added, the fits exist and none asks."""
    from repro import evidence
    golden = claims.load_golden(ROOT / "golden" / "figure-1.toml")
    names = ["linear_scaling", "diminishing_returns", "sparse_c1_larger", "sparse_critical_batch_no_smaller"]

    def table(bs):
        b = np.array(bs, dtype=float)
        k = np.stack([2e4 / b + 100, 6e4 / b + 200])  # dense, 90 % sparse
        trials = np.ceil(k[None, :, :, None] * (1 + np.linspace(0, 0.3, 6)))
        return evidence.Evidence(batch_sizes=b, sparsities=(0.0, 0.9), trials=trials,
                                 capped=np.zeros(trials.shape, bool),
                                 eval_steps={int(x): np.arange(1.0, 20001.0) for x in b},
                                 budget={int(x): 20000.0 for x in b})

    for r in claims.check_evidence({"b": table([64, 256])}, names, golden):
        assert r.status == claims.INCONCLUSIVE, r
        asked = {(n["kind"], tuple(n["batch_sizes"]), n["sparsity"]) for n in r.values["needs"]}
        wanted = {0.0, 0.9}
        assert {("batch_sizes", (16,), s) for s in wanted} <= asked, (r.claim, asked)
    for r in claims.check_evidence({"b": table([16, 64, 256])}, names, golden):
        assert not any(n["kind"] == "batch_sizes" and n["batch_sizes"] == [4] for n in r.values.get("needs", ())), r


def test_few_trials_within_the_budget_ask_for_a_larger_budget_there():
    """SYNTHETIC: sparse and dense K* equal at B = 16..256 (6 trials each), except that at
    B = 16, 90 % only one trial reaches the goal within the 20,000-step budget. sparse_slower
    cannot be decided there (a third of resampled searches find nothing: the ratio is open
    above) and asks for a larger step budget at B = 16, which `repro decide` can add, beside
    more trials."""
    from repro import evidence
    golden = claims.load_golden(ROOT / "golden" / "figure-1.toml")
    b = np.array([16.0, 32, 64, 128, 256])
    k = np.stack([2e4 / b + 50, 2e4 / b + 50])
    trials = np.ceil(k[None, :, :, None] * (1 + np.linspace(0, 0.3, 6)))
    trials[0, 1, 0, 1:] = np.inf  # B = 16, 90 %: five trials ran to the budget and missed
    ev = evidence.Evidence(batch_sizes=b, sparsities=(0.0, 0.9), trials=trials,
                           capped=np.zeros(trials.shape, bool),
                           eval_steps={int(x): np.arange(1.0, 20001.0) for x in b},
                           budget={int(x): 20000.0 for x in b})
    r = claims.check_evidence({"b": ev}, ["sparse_slower"], golden)[0]
    assert r.status == claims.INCONCLUSIVE, r
    asked = {(n["kind"], tuple(n["batch_sizes"])) for n in r.values["needs"]}
    assert ("budget", (16,)) in asked and ("trials", ()) in asked, asked
    assert "more trials reaching the goal at B=16 s=0.9" in r.detail and "`max_examples`" in r.detail
