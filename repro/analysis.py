"""Numbers from a results dataset: steps-to-result, Prop. 4.1 fits and log-log slopes.

The input is an ``xarray.Dataset`` in the layout of ``docs/results-format.md``. Everything
here is pure numerics: no tolerances, no pass/fail (that is ``repro.claims``).

Prop. 4.1 of the paper models steps-to-result as ``K* = c1 / B + c2``; the critical batch size
is ``B_crit = c1 / c2`` (where the linear-scaling term equals the plateau term).
"""

import math

import numpy as np
import xarray as xr

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


_GRID_DECADES = 4      # B_crit is searched from min(B) / 10^4 to max(B) x 10^4
_GRID_POINTS = 97      # ... on this many log-spaced values (~26 % apart), then refined
_REFINE_STEPS = 40     # by golden section (each step keeps 0.618 of the bracket)


def _profile_rss(log_k, log_b, finite, log_bcrit):
    """Residual sum of squares of the best log c2 at each B_crit: rows (n, nB), candidates
    (n, m) -> (n, m). For a fixed B_crit the model is log K = log c2 + log(1 + B_crit/B), so
    the best log c2 is the mean residual; `log_bcrit` may be -inf (flat) or +inf (c2 = 0)."""
    with np.errstate(over="ignore", invalid="ignore"):
        shape = np.logaddexp(0.0, log_bcrit[..., None] - log_b[:, None, :])  # log(1 + B_crit/B)
        linear = np.isposinf(log_bcrit)[..., None]
        # B_crit -> inf: log(1 + B_crit/B) - log B_crit -> -log B, a constant shift absorbed by c2
        shape = np.where(linear, -log_b[:, None, :], shape)
    resid = np.where(finite[:, None, :], log_k[:, None, :] - shape, 0.0)
    n = finite.sum(axis=1)[:, None]
    mean = resid.sum(axis=2) / np.maximum(n, 1)
    rss = np.where(finite[:, None, :], (resid - mean[..., None]) ** 2, 0.0).sum(axis=2)
    return rss, mean


def fit_prop41_rows(batch_sizes, table) -> dict:
    """Fit K* = c1/B + c2 (c1, c2 >= 0) by least squares on log K* to every row of `table`.

    `table` is (n, nB) (or one row): K* at `batch_sizes`, NaN or non-positive where unmeasured.
    The fit is global: for a fixed B_crit = c1/c2 the best log c2 is a mean, so the residual
    is minimised over B_crit alone (a log-spaced grid, then golden section around the best
    grid value), with the limits c1 = 0 (flat) and c2 = 0 (pure linear scaling) as candidates.
    Rows with fewer than MIN_FIT_POINTS measured points give NaN.

    Returns arrays {"c1", "c2", "b_crit" (inf where c2 = 0), "rms_log_residual", "n_points"}.
    """
    b = np.asarray(batch_sizes, dtype=float).ravel()
    k = np.atleast_2d(np.asarray(table, dtype=float))
    if k.shape[1] != b.size:
        raise ValueError(f"batch_sizes and steps differ in length: {b.size} vs {k.shape[1]}")
    finite = np.isfinite(k) & (k > 0) & np.isfinite(b) & (b > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_k = np.where(finite, np.log(np.where(finite, k, 1.0)), 0.0)
    log_b = np.broadcast_to(np.log(np.where(b > 0, b, 1.0)), k.shape)
    n_points = finite.sum(axis=1)
    ok = (n_points >= MIN_FIT_POINTS)
    lo = math.log(max(float(np.min(b[b > 0])), 1e-300)) - _GRID_DECADES * math.log(10)
    hi = math.log(float(np.max(b))) + _GRID_DECADES * math.log(10)
    grid = np.concatenate([[-np.inf], np.linspace(lo, hi, _GRID_POINTS), [np.inf]])
    rss, _ = _profile_rss(log_k, log_b, finite, np.broadcast_to(grid, (k.shape[0], grid.size)))
    best = np.argmin(rss, axis=1)
    inner = (best > 0) & (best < grid.size - 1)
    # golden section between the grid neighbours of an inner minimum
    left = grid[np.clip(best - 1, 1, grid.size - 2)]
    right = grid[np.clip(best + 1, 1, grid.size - 2)]
    g = (math.sqrt(5) - 1) / 2
    for _ in range(_REFINE_STEPS):
        x1, x2 = right - g * (right - left), left + g * (right - left)
        r, _ = _profile_rss(log_k, log_b, finite, np.stack([x1, x2], axis=1))
        lower = r[:, 0] < r[:, 1]
        right = np.where(lower, x2, right)
        left = np.where(lower, left, x1)
    refined = (left + right) / 2
    log_bcrit = np.where(inner, refined, grid[best])
    rss_best, log_c2 = _profile_rss(log_k, log_b, finite, log_bcrit[:, None])
    rss_grid = rss[np.arange(k.shape[0]), best]
    # never worse than the best grid value (golden section on a non-unimodal bracket)
    use_grid = rss_grid < rss_best[:, 0]
    log_bcrit = np.where(use_grid, grid[best], log_bcrit)
    rss_best, log_c2 = _profile_rss(log_k, log_b, finite, log_bcrit[:, None])
    log_c2 = log_c2[:, 0]
    with np.errstate(over="ignore", invalid="ignore"):
        linear = np.isposinf(log_bcrit)
        flat = np.isneginf(log_bcrit)
        c1 = np.where(linear, np.exp(log_c2), np.where(flat, 0.0, np.exp(log_c2 + log_bcrit)))
        c2 = np.where(linear, 0.0, np.exp(log_c2))
        b_crit = np.where(linear, np.inf, np.where(flat, 0.0, np.exp(log_bcrit)))
        rms = np.sqrt(rss_best[:, 0] / np.maximum(n_points, 1))
    nan = np.full(k.shape[0], np.nan)
    return {"c1": np.where(ok, c1, nan), "c2": np.where(ok, c2, nan),
            "b_crit": np.where(ok, b_crit, nan), "rms_log_residual": np.where(ok, rms, nan),
            "n_points": n_points}


def fit_prop41(batch_sizes, steps) -> dict:
    """Fit K* = c1/B + c2 (c1, c2 >= 0) by least squares on log K* (``fit_prop41_rows`` of one
    row): minimises sum_i (log K_i - log(c1/B_i + c2))^2 over the finite, positive points;
    fewer than 3 points give NaNs.

    Returns {"c1", "c2", "b_crit" (= c1/c2, inf if c2 == 0), "rms_log_residual", "n_points"}.
    """
    b = np.asarray(batch_sizes, dtype=float).ravel()
    k = np.asarray(steps, dtype=float).ravel()
    if b.shape != k.shape:
        raise ValueError(f"batch_sizes and steps differ in length: {b.size} vs {k.size}")
    rows = fit_prop41_rows(b, k[None])
    return {"c1": float(rows["c1"][0]), "c2": float(rows["c2"][0]), "b_crit": float(rows["b_crit"][0]),
            "rms_log_residual": float(rows["rms_log_residual"][0]), "n_points": int(rows["n_points"][0])}


def loglog_slope(batch_sizes, steps) -> float:
    """Least-squares slope of log2 K* against log2 B over the finite points (NaN if < 2)."""
    b, k = _finite_pairs(batch_sizes, steps)
    if b.size < 2:
        return float("nan")
    x, y = np.log2(b), np.log2(k)
    dx = x - x.mean()
    sxx = float(dx @ dx)
    if sxx == 0.0:
        return float("nan")
    return float(dx @ (y - y.mean()) / sxx)


def fits(ds, panel) -> dict:
    """fit_prop41 for every sparsity of a panel: {sparsity (float): fit dict}."""
    k = steps_to_result(ds, panel)
    b = k["batch_size"].values
    return {float(s): fit_prop41(b, k.sel(sparsity=s).values) for s in k["sparsity"].values}


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
