"""Numbers from a results dataset: steps-to-result, Prop. 4.1 fits and log-log slopes.

The input is an ``xarray.Dataset`` in the layout of ``docs/results-format.md``. Everything
here is pure numerics: no tolerances, no pass/fail (that is ``repro.claims``).

Prop. 4.1 of the paper models steps-to-result as ``K* = c1 / B + c2``; the critical batch size
is ``B_crit = c1 / c2`` (where the linear-scaling term equals the plateau term).
"""

import math

import numpy as np
import xarray as xr
from scipy.optimize import least_squares

MIN_FIT_POINTS = 3


def steps_to_result(ds, panel) -> xr.DataArray:
    """K* of one panel as a (sparsity, batch_size) DataArray; NaN where no trial reached the goal.

    Raises KeyError if the panel is not in the dataset.
    """
    if "panel" not in ds.coords or panel not in list(ds["panel"].values):
        raise KeyError(f"panel {panel!r} not in dataset")
    k = ds["steps_to_result"].sel(panel=panel)
    return k.transpose("sparsity", "batch_size").astype(float)


def _finite_pairs(batch_sizes, steps):
    """Return (B, K) float arrays keeping only points where both are finite and positive."""
    b = np.asarray(batch_sizes, dtype=float).ravel()
    k = np.asarray(steps, dtype=float).ravel()
    if b.shape != k.shape:
        raise ValueError(f"batch_sizes and steps differ in length: {b.size} vs {k.size}")
    keep = np.isfinite(b) & np.isfinite(k) & (b > 0) & (k > 0)
    return b[keep], k[keep]


def _nan_fit(n_points):
    """The result of a fit that could not be made."""
    nan = float("nan")
    return {"c1": nan, "c2": nan, "b_crit": nan, "rms_log_residual": nan, "n_points": n_points}


def _initial_guesses(b, k):
    """Starting points (c1, c2) for the log-space fit, derived from the data.

    c2 starts near the plateau (smallest K*), c1 from the smallest-B point after removing
    c2; a couple of alternatives guard against a bad basin.
    """
    order = np.argsort(b)
    b, k = b[order], k[order]
    k_min = float(np.min(k))
    guesses = []
    for frac in (0.9, 0.5, 0.1):
        c2 = frac * k_min
        c1 = max(float(np.median((k - c2) * b)), 1e-12)
        guesses.append((c1, c2))
    guesses.append((max(float(k[0] * b[0]), 1e-12), 1e-3 * k_min))
    return guesses


def fit_prop41(batch_sizes, steps, start=None) -> dict:
    """Fit K* = c1/B + c2 (c1, c2 >= 0) by least squares on log K*.

    Minimises sum_i (log K_i - log(c1/B_i + c2))^2 with c = exp(theta), so both constants
    stay non-negative; several data-derived starting points are tried and the best kept.
    NaN (and non-positive) points are ignored; fewer than 3 points give NaNs.

    `start` (c1, c2), e.g. the fit of the full data when refitting resampled data, is tried
    first and alone when it converges to a fit at least as good as the data-derived guesses' first.

    Returns {"c1", "c2", "b_crit" (= c1/c2, inf if c2 == 0), "rms_log_residual", "n_points"}.
    """
    b, k = _finite_pairs(batch_sizes, steps)
    n = int(b.size)
    if n < MIN_FIT_POINTS:
        return _nan_fit(n)
    log_k = np.log(k)

    def residuals(theta):
        c1, c2 = np.exp(np.clip(theta, -700.0, 700.0))
        return log_k - np.log(c1 / b + c2)

    best = None
    guesses = _initial_guesses(b, k)
    if start is not None and all(np.isfinite(start)):
        guesses = [(max(float(start[0]), 1e-12), max(float(start[1]), 1e-12)), guesses[0]]
    for c1, c2 in guesses:
        sol = least_squares(residuals, x0=np.log([c1, c2]), method="lm", xtol=1e-14, ftol=1e-14)
        if best is None or sol.cost < best.cost:
            best = sol
    c1, c2 = (float(v) for v in np.exp(best.x))
    # A plateau too small to matter anywhere on the data is reported as exactly 0.
    if c2 < 1e-9 * float(np.min(k)):
        c2 = 0.0
    if c1 < 1e-9 * float(np.min(k * b)):
        c1 = 0.0
    b_crit = c1 / c2 if c2 > 0 else math.inf
    rms = float(np.sqrt(np.mean(residuals(np.log([max(c1, 1e-300), max(c2, 1e-300)])) ** 2)))
    return {"c1": c1, "c2": c2, "b_crit": b_crit, "rms_log_residual": rms, "n_points": n}


def loglog_slope(batch_sizes, steps) -> float:
    """Least-squares slope of log2 K* against log2 B over the finite points (NaN if < 2)."""
    b, k = _finite_pairs(batch_sizes, steps)
    if b.size < 2 or np.unique(b).size < 2:
        return float("nan")
    slope, _intercept = np.polyfit(np.log2(b), np.log2(k), 1)
    return float(slope)


def fits(ds, panel) -> dict:
    """fit_prop41 for every sparsity of a panel: {sparsity (float): fit dict}."""
    k = steps_to_result(ds, panel)
    b = k["batch_size"].values
    return {float(s): fit_prop41(b, k.sel(sparsity=s).values) for s in k["sparsity"].values}


def trial_steps(ds, panel) -> xr.DataArray:
    """Steps at which each trial reached the goal: (sparsity, batch_size, trial), NaN if it did not."""
    sub = ds.sel(panel=panel)
    return sub["steps"].where(sub["status"] == 1).astype(float).transpose("sparsity", "batch_size", "trial")


def bootstrap_fits(ds, panel, n_boot=500, seed=0, level=0.95) -> dict:
    """Prop. 4.1 fits per sparsity with bootstrap confidence intervals over trials.

    Each replicate resamples, at every study point independently, that point's trials with
    replacement, takes K* as the minimum over the resampled complete trials and refits.
    Returns {sparsity: {c1, c2, b_crit, rms_log_residual, n_points (the fit on all trials),
    "ci": {c1: (lo, hi), c2: ..., b_crit: ...}, "n_boot"}} with percentile intervals.
    K* is a minimum, so a replicate can lose the best trial but never beat it: read the
    interval as how much the fit moves when trials are lost (it sits at or above the fit for
    c1), not as a symmetric error bar. With best-so-far capping a capped trial also counts as
    not reaching the goal in such replicates; `repro run --no-capping` removes that effect.
    """
    steps = trial_steps(ds, panel)
    batches = steps["batch_size"].values
    rng = np.random.default_rng(seed)
    lo_q, hi_q = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    out = {}
    for s in steps["sparsity"].values:
        per_point = steps.sel(sparsity=s).values  # (batch, trial)
        ran = ds["status"].sel(panel=panel, sparsity=s).transpose("batch_size", "trial").values > 0
        fit = fit_prop41(batches, np.nanmin(np.where(np.isnan(per_point), np.inf, per_point), axis=1))
        reps, seen = [], {}  # replicates often draw the same K* at every point: fit each once
        for _ in range(n_boot):
            k = np.full(len(batches), np.nan)
            for j, row in enumerate(per_point):
                n = int(ran[j].sum())
                if n == 0:
                    continue
                pick = row[ran[j]][rng.integers(0, n, n)]
                if np.isfinite(pick).any():
                    k[j] = np.nanmin(pick)
            key = k.tobytes()
            if key not in seen:
                f = fit_prop41(batches, k)
                seen[key] = (f["c1"], f["c2"], f["b_crit"])
            reps.append(seen[key])
        reps = np.array(reps, dtype=float)
        ci = {}
        for i, name in enumerate(("c1", "c2", "b_crit")):
            col = reps[:, i][np.isfinite(reps[:, i])]
            ci[name] = (float(np.percentile(col, lo_q)), float(np.percentile(col, hi_q))) \
                if col.size >= 0.5 * n_boot else (math.nan, math.nan)
        out[float(s)] = {**fit, "ci": ci, "n_boot": n_boot}
    return out


def critical_batch_direct(batch_sizes, steps, factor) -> float:
    """Smallest B whose K* exceeds the linear-scaling prediction from the smallest B by `factor`.

    Linear scaling predicts K*(B) = K*(B0) * B0 / B; the critical batch size is where the
    measured curve leaves it by more than `factor` (e.g. 1.5 = 50 % more steps than perfect
    scaling). NaN if no measured B does (the curve is still linear up to the largest B).
    """
    b, k = _finite_pairs(batch_sizes, steps)
    if b.size < 2:
        return math.nan
    order = np.argsort(b)
    b, k = b[order], k[order]
    predicted = k[0] * b[0] / b
    over = np.nonzero(k > factor * predicted)[0]
    return float(b[over[0]]) if over.size else math.nan
