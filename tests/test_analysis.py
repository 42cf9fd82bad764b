"""Tests for repro.analysis on synthetic K*(B) curves generated from known c1, c2."""

import math

import numpy as np
import pytest
import xarray as xr

from repro import analysis

C1, C2 = 20000.0, 50.0
B = 2.0 ** np.arange(1, 15)  # 2 .. 16384


def curve(c1=C1, c2=C2, b=B, noise=0.0, seed=0):
    """K* = c1/B + c2, optionally with multiplicative noise uniform in [-noise, +noise]."""
    k = c1 / b + c2
    if noise:
        k = k * (1 + np.random.default_rng(seed).uniform(-noise, noise, size=k.shape))
    return k


def test_fit_recovers_exact_constants():
    fit = analysis.fit_prop41(B, curve())
    assert fit["c1"] == pytest.approx(C1, rel=1e-4)
    assert fit["c2"] == pytest.approx(C2, rel=1e-4)
    assert fit["b_crit"] == pytest.approx(C1 / C2, rel=1e-4)
    assert fit["rms_log_residual"] < 1e-6
    assert fit["n_points"] == len(B)


@pytest.mark.parametrize("seed", range(5))
def test_fit_recovers_constants_with_3pct_noise(seed):
    fit = analysis.fit_prop41(B, curve(noise=0.03, seed=seed))
    assert fit["c1"] == pytest.approx(C1, rel=0.05)
    assert fit["c2"] == pytest.approx(C2, rel=0.05)
    assert 0 < fit["rms_log_residual"] < 0.03


@pytest.mark.parametrize("c1,c2", [(1000.0, 200.0), (5e5, 3.0), (64.0, 1.0)])
def test_fit_other_constants(c1, c2):
    fit = analysis.fit_prop41(B, curve(c1, c2))
    assert fit["c1"] == pytest.approx(c1, rel=1e-3)
    assert fit["c2"] == pytest.approx(c2, rel=1e-3)


def test_fit_pure_linear_scaling_gives_zero_plateau():
    fit = analysis.fit_prop41(B[:6], curve(c2=0.0, b=B[:6]))
    assert fit["c1"] == pytest.approx(C1, rel=1e-4)
    assert fit["c2"] == pytest.approx(0.0, abs=1e-3)
    assert fit["b_crit"] > 1e6


def test_fit_ignores_nan_points():
    k = curve()
    k[[0, 5, 13]] = np.nan
    fit = analysis.fit_prop41(B, k)
    assert fit["n_points"] == len(B) - 3
    assert fit["c1"] == pytest.approx(C1, rel=1e-4)
    assert fit["c2"] == pytest.approx(C2, rel=1e-4)


def test_fit_needs_three_points():
    k = np.full(len(B), np.nan)
    k[:2] = curve()[:2]
    fit = analysis.fit_prop41(B, k)
    assert fit["n_points"] == 2
    assert all(math.isnan(fit[key]) for key in ("c1", "c2", "b_crit", "rms_log_residual"))


def test_loglog_slope():
    assert analysis.loglog_slope(B[:3], curve(c2=0.0)[:3]) == pytest.approx(-1.0)
    assert analysis.loglog_slope(B[-3:], np.full(3, 7.0)) == pytest.approx(0.0)
    assert analysis.loglog_slope([2, 4, 8], [100, 50 * 2 ** -0.5, 25]) == pytest.approx(-1.0)
    assert analysis.loglog_slope([2, 8], [64, 4]) == pytest.approx(-2.0)


def test_loglog_slope_nan_handling():
    assert analysis.loglog_slope([2, 4, 8], [100, np.nan, 25]) == pytest.approx(-1.0)
    assert math.isnan(analysis.loglog_slope([2, 4], [100, np.nan]))
    assert math.isnan(analysis.loglog_slope([], []))


def synthetic_dataset():
    """A SYNTHETIC dataset in the results-format layout (only steps_to_result is needed)."""
    sparsities = [0.0, 0.9]
    k = np.stack([curve(C1, C2), curve(2 * C1, 1.5 * C2)])[None]
    k[0, 1, -1] = np.nan
    return xr.Dataset(
        {"steps_to_result": (("panel", "sparsity", "batch_size"), k)},
        coords={"panel": ["a"], "sparsity": sparsities, "batch_size": B.astype(np.int64)},
    )


def test_steps_to_result_and_fits_per_sparsity():
    ds = synthetic_dataset()
    k = analysis.steps_to_result(ds, "a")
    assert k.dims == ("sparsity", "batch_size")
    assert int(k.isnull().sum()) == 1
    per = analysis.fits(ds, "a")
    assert set(per) == {0.0, 0.9}
    assert per[0.0]["c1"] == pytest.approx(C1, rel=1e-4)
    assert per[0.9]["c1"] == pytest.approx(2 * C1, rel=1e-4)
    assert per[0.9]["c2"] == pytest.approx(1.5 * C2, rel=1e-4)
    assert per[0.9]["n_points"] == len(B) - 1


def test_steps_to_result_unknown_panel():
    with pytest.raises(KeyError):
        analysis.steps_to_result(synthetic_dataset(), "z")


def test_critical_batch_direct():
    b = np.array([2, 4, 8, 16, 32, 64])
    k = 1000.0 / b + 10.0  # leaves linear scaling as B grows: K = 510, 260, 135, 72.5, 41.25, 25.6
    # linear prediction from B = 2: 510 * 2 / B = 255, 127.5, 63.75, 31.9, 15.9
    assert analysis.critical_batch_direct(b, k, 1.5) == 64.0  # 25.6 > 1.5 * 15.94 (B=32: 41.25 < 47.8)
    assert analysis.critical_batch_direct(b, k, 1.1) == 16.0  # 72.5 > 1.1 * 63.75
    assert math.isnan(analysis.critical_batch_direct(b, 1000.0 / b, 1.01))  # perfectly linear
