"""What a K*(B) table says, with its uncertainty: point estimates and resampled replicates.

Pure numerics over small arrays (no tolerances, no verdicts: that is ``repro.claims``).
Three sources of uncertainty are used, each where the data have it:

- **evaluation quantisation**: a trial evaluated at steps ..., p, K that first meets the goal at
  K met it somewhere in (p, K]; each replicate draws K* uniformly from that interval;
- **search resolution**: K* is a minimum over a point's trials; each replicate resamples the
  trials of a search with replacement (a capped trial enters at its cap, the step it was stopped
  at, which is a lower bound of the steps it needed: with capping on this part of the spread is
  a lower bound, ``repro run --no-capping`` measures it in full);
- **replicate seeds**: independent searches of the same point with other initialisation and
  data-order seeds (grid key ``seeds``); each replicate resamples the seeds with replacement.

A point's estimate is the geometric mean over seeds of each seed's K*; a replicate is the same
statistic of resampled seeds, trials and quantisation. Intervals are percentile intervals of
any statistic computed on every replicate (``interval``).
"""
import dataclasses
import math

import numpy as np

from . import analysis

LEVEL = 0.95  # two-sided percentile interval
N_BOOT = 400  # replicates per panel


@dataclasses.dataclass(frozen=True)
class Evidence:
    """Every trial outcome of one panel, the layout all claims read.

    ``trials[seed, sparsity, batch, trial]``: the step the trial reached the goal (complete), the
    step it was stopped at (capped: a lower bound, ``capped`` True there), ``inf`` (ran and missed
    the goal, or diverged) or NaN (not run).
    """

    batch_sizes: np.ndarray          # (nB,) ascending
    sparsities: tuple                # ascending floats
    trials: np.ndarray               # (nSeed, nS, nB, nT) float
    capped: np.ndarray               # (nSeed, nS, nB, nT) bool
    eval_steps: dict | None = None   # batch size -> ascending evaluation steps; None: unknown
    budget: dict | None = None       # batch size -> last step a trial may run; None: unknown
    hp: dict = dataclasses.field(default_factory=dict)  # name -> (nSeed, nS, nB, nT) values

    @property
    def n_seeds(self):
        return self.trials.shape[0]

    @property
    def n_trials(self):
        return self.trials.shape[3]

    def sources(self) -> list:
        """The uncertainty sources these data have, as words."""
        out = []
        if self.eval_steps:
            out.append("evaluation quantisation")
        if self.n_trials > 1:
            out.append(f"search resolution ({self.n_trials} trials)")
        if self.n_seeds > 1:
            out.append(f"{self.n_seeds} replicate seeds")
        return out

    def s_index(self, s):
        return self.sparsities.index(float(s))


def kstar_by_seed(ev: Evidence) -> np.ndarray:
    """(nSeed, nS, nB): min over each search's complete trials; NaN if none reached the goal or
    a trial has not run (a partial search gives only an upper bound)."""
    reached = np.where(ev.capped | ~np.isfinite(ev.trials), np.inf, ev.trials)
    k = reached.min(axis=3)
    partial = np.isnan(ev.trials).any(axis=3)
    return np.where(np.isfinite(k) & ~partial, k, np.nan)


def _geo_mean(values, axis):
    """Geometric mean over `axis`, ignoring NaN; NaN where every value is NaN."""
    with np.errstate(invalid="ignore", divide="ignore"):
        logs = np.log(values)
        n = np.isfinite(logs).sum(axis=axis)
        total = np.where(np.isfinite(logs), logs, 0.0).sum(axis=axis)
        return np.where(n > 0, np.exp(total / np.maximum(n, 1)), np.nan)


def point_estimate(ev: Evidence) -> np.ndarray:
    """(nS, nB): the geometric mean over seeds of each seed's K* (NaN where no seed has one)."""
    return _geo_mean(kstar_by_seed(ev), axis=0)


def _previous_eval(ev, b, k):
    """The evaluation step before each K in `k` at batch size b (0 before the first)."""
    steps = np.asarray(ev.eval_steps[int(b)], dtype=float)
    idx = np.searchsorted(steps, k, side="left") - 1
    return np.where(idx >= 0, steps[np.clip(idx, 0, None)], 0.0)


def _next_eval(ev, b, k):
    """The first evaluation step after each K (K + 1 when the schedule is unknown)."""
    if not ev.eval_steps or int(b) not in ev.eval_steps:
        return k + 1
    steps = np.asarray(ev.eval_steps[int(b)], dtype=float)
    idx = np.searchsorted(steps, k, side="right")
    return np.where(idx < steps.size, steps[np.clip(idx, None, steps.size - 1)], np.inf)


def replicates(ev: Evidence, n_boot=N_BOOT, seed=0) -> np.ndarray:
    """(n_boot, nS, nB) resampled K* tables (NaN where a replicate's searches all missed)."""
    rng = np.random.default_rng(seed)
    n_seed, n_s, n_b, _ = ev.trials.shape
    out = np.full((n_boot, n_s, n_b), np.nan)
    for j in range(n_s):
        for i, b in enumerate(ev.batch_sizes):
            per_seed = []  # (n_boot,) K* draws of each seed's search
            for r in range(n_seed):
                vals = ev.trials[r, j, i]
                ran = ~np.isnan(vals)
                if not ran.any() or not ran.all():
                    continue  # a partial or absent search says nothing about this point
                if ev.capped[r, j, i].any():  # stopped at its cap: it needed more steps
                    vals = np.where(ev.capped[r, j, i], _next_eval(ev, b, vals), vals)
                pick = vals[rng.integers(0, vals.size, (n_boot, vals.size))]
                k = pick.min(axis=1)
                if ev.eval_steps and int(b) in ev.eval_steps:
                    finite = np.isfinite(k)
                    prev = _previous_eval(ev, b, np.where(finite, k, 0.0))
                    u = rng.random(n_boot)
                    k_safe = np.where(finite, k, 0.0)
                    k = np.where(finite, k_safe - u * (k_safe - prev), k)
                per_seed.append(np.where(np.isfinite(k), k, np.nan))
            if not per_seed:
                continue
            draws = np.stack(per_seed)  # (n_avail, n_boot)
            pick = rng.integers(0, len(per_seed), (n_boot, len(per_seed)))
            chosen = np.take_along_axis(draws.T, pick, axis=1)  # (n_boot, n_avail)
            out[:, j, i] = _geo_mean(chosen, axis=1)
    return out


def interval(values, level=LEVEL):
    """Percentile interval of replicate values; NaN replicates count as unknown, so more than
    the interval's tail share of them widens it to (-inf, inf)."""
    v = np.asarray(values, dtype=float)
    tail = (1 - level) / 2
    if v.size == 0 or np.isnan(v).mean() > tail:
        return (-math.inf, math.inf)
    v = v[~np.isnan(v)]
    return (float(np.quantile(v, tail, method="inverted_cdf")),
            float(np.quantile(v, 1 - tail, method="inverted_cdf")))


def slope(batch_sizes, k) -> float:
    """Least-squares slope of log2 K against log2 B over the finite points (NaN if < 2)."""
    return analysis.loglog_slope(batch_sizes, k)


def fit_replicates(batch_sizes, tables, start=None) -> np.ndarray:
    """(n_boot, 3) columns c1, c2, B_crit of the fit of each replicate row (NaN: too few points);
    `start` (c1, c2): the fit of the data, where each refit starts."""
    out = np.full((len(tables), 3), np.nan)
    for n, row in enumerate(tables):
        f = analysis.fit_prop41(batch_sizes, row, start=start)
        out[n] = (f["c1"], f["c2"], f["b_crit"])
    return out


# --------------------------------------------------------------------------- builders

def from_dataset(ds, panel) -> Evidence:
    """The Evidence of one panel of a results dataset (docs/results-format.md); replicate seeds
    from the ``*_by_seed`` variables when the file has them."""
    sub = ds.sel(panel=panel)
    by_seed = "status_by_seed" in ds and "steps_by_seed" in ds
    status = sub["status_by_seed"] if by_seed else sub["status"].expand_dims("seed")
    steps = sub["steps_by_seed"] if by_seed else sub["steps"].expand_dims("seed")
    order = ("seed", "sparsity", "batch_size", "trial")
    status = status.transpose(*order).values
    steps = steps.transpose(*order).values.astype(float)
    values = np.full(steps.shape, np.inf)  # incomplete or infeasible: missed the goal
    done = (status == 1) | (status == 4)
    values[done] = steps[done]
    values[status == 0] = np.nan
    batch = ds["batch_size"].values.astype(int)
    eval_steps, budget = {}, {}
    if "eval_step" in sub:
        for i, b in enumerate(batch):
            row = sub["eval_step"].sel(batch_size=b).values
            row = np.sort(row[row >= 0]).astype(float)
            if row.size:
                eval_steps[int(b)], budget[int(b)] = row, float(row[-1])
    # Batch sizes of the file that this panel's grid does not have (the file's batch_size axis is
    # the union over panels) are dropped: they are not points of this study.
    in_grid = np.array([int(b) in eval_steps for b in batch]) if eval_steps else \
        (status != 0).any(axis=(0, 1, 3))
    hp = {}
    for name in ("learning_rate", "momentum"):
        if name in sub:  # seed 0's search (the main variables): best_lr and lr-range claims read it
            hp[name] = sub[name].transpose("sparsity", "batch_size", "trial").values[None].astype(float)
    sparsities = tuple(float(s) for s in ds["sparsity"].values)
    keep = [j for j in range(len(sparsities)) if (status[:, j] != 0).any()]
    values, status = values[:, keep][:, :, in_grid], status[:, keep][:, :, in_grid]
    return Evidence(batch_sizes=batch[in_grid].astype(float), sparsities=tuple(sparsities[j] for j in keep),
                    trials=values, capped=status == 4,
                    eval_steps=eval_steps or None, budget=budget or None,
                    hp={k: v[:, keep][:, :, in_grid] for k, v in hp.items()})


def from_rows(rows) -> Evidence:
    """Evidence from table rows: dicts with batch_size, sparsity, steps_to_result (NaN or
    missing: did not reach the goal), and optionally seed and trial. Without a trial column
    each row is one search's K*."""
    batch = sorted({float(r["batch_size"]) for r in rows})
    spars = sorted({float(r["sparsity"]) for r in rows})
    seeds = sorted({r.get("seed", 0) for r in rows})
    trials = sorted({r.get("trial", 0) for r in rows})
    values = np.full((len(seeds), len(spars), len(batch), len(trials)), np.nan)
    for r in rows:
        k = r["steps_to_result"]
        values[seeds.index(r.get("seed", 0)), spars.index(float(r["sparsity"])),
               batch.index(float(r["batch_size"])), trials.index(r.get("trial", 0))] = \
            k if k is not None and np.isfinite(k) else np.inf
    # a search with some trials absent from the table: those trials are taken as not listed
    # rather than not run, so the search still has a K* (the table's author chose its trials)
    for idx in np.ndindex(values.shape[:3]):
        row = values[idx]
        if np.isnan(row).any() and not np.isnan(row).all():
            finite = row[~np.isnan(row)]
            values[idx] = np.resize(finite, row.size)
    return Evidence(batch_sizes=np.asarray(batch), sparsities=tuple(spars), trials=values,
                    capped=np.zeros(values.shape, bool))


def fit_intervals(ds, panel, n_boot=N_BOOT, seed=0) -> dict:
    """Prop. 4.1 fits per sparsity of a results panel with 95 % intervals from the same
    resampling the claims use (quantisation, trials, seeds): {sparsity: {c1, c2, b_crit,
    rms_log_residual, n_points (the fit of the point estimate), "ci": {c1, c2, b_crit: (lo, hi)},
    "n_boot", "uncertainty"}}."""
    ev = from_dataset(ds, panel)
    est, reps = point_estimate(ev), replicates(ev, n_boot=n_boot, seed=seed)
    out = {}
    for j, s in enumerate(ev.sparsities):
        fit = analysis.fit_prop41(ev.batch_sizes, est[j])
        start = (fit["c1"], fit["c2"]) if math.isfinite(fit["c1"]) else None
        cols = fit_replicates(ev.batch_sizes, reps[:, j], start=start)
        ci = {name: interval(cols[:, i]) for i, name in enumerate(("c1", "c2", "b_crit"))}
        ci = {k: (v if all(map(math.isfinite, v)) else (math.nan, math.nan)) for k, v in ci.items()}
        out[float(s)] = {**fit, "ci": ci, "n_boot": n_boot, "uncertainty": ", ".join(ev.sources())}
    return out
