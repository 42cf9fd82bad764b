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
any statistic computed on every replicate (``interval``), widened for what resampling cannot
see, the search's own coarseness, and stretched over censored points (``statistic``; the
section "the search itself" below).
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


def replicates(ev: Evidence, n_boot=None, seed=0) -> np.ndarray:
    """(n_boot, nS, nB) resampled K* tables (NaN where a replicate's searches all missed);
    n_boot None: N_BOOT."""
    return replicates_with_bounds(ev, n_boot=n_boot, seed=seed)[0]


def replicates_with_bounds(ev: Evidence, n_boot=None, seed=0):
    """(table, beyond), each (n_boot, nS, nB): `replicates`, and the budget where a replicate is
    NaN because its resampled searches had no trial reach the goal within a known budget (NaN
    elsewhere). Such a replicate search has K* > budget, a bound and not an unknown: `statistic`
    reads it as one. (With several seeds a replicate is NaN only when every chosen seed's search
    missed, as before.)"""
    n_boot = N_BOOT if n_boot is None else n_boot
    rng = np.random.default_rng(seed)
    n_seed, n_s, n_b, _ = ev.trials.shape
    out = np.full((n_boot, n_s, n_b), np.nan)
    beyond = np.full((n_boot, n_s, n_b), np.nan)
    for j in range(n_s):
        for i, b in enumerate(ev.batch_sizes):
            per_seed = []  # (n_boot,) K* draws of each seed's search
            budget = (ev.budget or {}).get(int(b), math.nan)
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
            if math.isfinite(budget):  # every resampled search missed: K* > budget there
                beyond[:, j, i] = np.where(np.isnan(out[:, j, i]), budget, np.nan)
    return out, beyond


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


def fit_replicates(batch_sizes, tables) -> np.ndarray:
    """(n_boot, 3) columns c1, c2, B_crit of the Prop. 4.1 fit of each replicate row (NaN: too
    few points)."""
    tables = np.asarray(tables, dtype=float)
    if tables.size == 0:
        return np.full((len(tables), 3), np.nan)
    f = analysis.fit_prop41_rows(batch_sizes, tables.reshape(len(tables), -1))
    return np.stack([f["c1"], f["c2"], f["b_crit"]], axis=1)


# --------------------------------------------------------------------------- the search itself
#
# A point's K* is the best of n trials at fixed Sobol points, so it is biased upwards by how
# coarsely the search samples the learning rate, differently at each B (the optimum moves with
# B while the points do not). Resampling trials cannot see that bias (a resampled minimum is
# never below the observed one). What the data can show is how much the best K* moves with the
# search's budget: the half-budget table is the expected best of ceil(n/2) of the n trials,
# drawn without replacement, and every statistic is widened on both sides by how far it moves
# between the half-budget and the full table (`statistic`). A point whose losing trials were
# all capped at the winner's step shows nothing about the search (its half-budget K* is
# unknown), so a statistic that reads it has an unbounded interval: racing keeps `finishers`
# >= 2 trials going to the goal for this (repro.race).

HALF_BUDGET_WIDEN = 2.0  # the widening is this many times the half-budget shift: the factor whose
# slope intervals cover the true slope at the nominal rate in the simulator fitted to real searches
# (tests/test_calibration.py; CHANGELOG.md has the coverage at each factor)


def _search_values(ev, r, j, i):
    """Trial values of one search for order statistics: a complete trial at its step, a capped
    one at the evaluation after its cap (it needed more), a missed one at the budget (a lower
    bound: it needed more than the budget); None if the search did not run every trial."""
    vals = ev.trials[r, j, i].astype(float)
    if np.isnan(vals).any():
        return None
    b = ev.batch_sizes[i]
    capped = ev.capped[r, j, i]
    if capped.any():
        vals = np.where(capped, _next_eval(ev, b, vals), vals)
    budget = (ev.budget or {}).get(int(b), math.inf)
    return np.where(np.isfinite(vals), vals, budget)


def expected_best_log(values, m) -> float:
    """E[log min] of m of `values` drawn without replacement (the m-out-of-n best): the i-th
    smallest of n is the minimum of an m-subset with probability C(n-i, m-1) / C(n, m)."""
    v = np.sort(np.asarray(values, dtype=float))
    n = v.size
    if not 1 <= m <= n:
        raise ValueError(f"m must lie in 1..{n}, got {m}")
    weights = np.array([math.comb(n - i, m - 1) for i in range(1, n + 1)], dtype=float) / math.comb(n, m)
    with np.errstate(divide="ignore"):
        logs = np.log(v)
    used = weights > 0
    return float(np.sum(weights[used] * logs[used]))


def half_budget_size(n_trials) -> int:
    """The half-budget search: ceil(n/2) trials."""
    return max(1, math.ceil(n_trials / 2))


def coarse_points(ev) -> np.ndarray:
    """(nS, nB) bool: points with a K* where some search of several trials has fewer than 2
    complete trials and some trial capped: the losers were stopped at the winner's step (their
    outcome is only a lower bound), so the search shows nothing of its own resolution there.
    With two finishers a point with one complete trial has no capped one (the others ran to the
    budget or diverged, which is known). A one-trial search has no resolution to show at all
    (`Evidence.sources` says so)."""
    complete = np.isfinite(ev.trials) & ~ev.capped
    few = ((complete.sum(axis=3) < 2) & ev.capped.any(axis=3)).any(axis=0)
    return few & np.isfinite(point_estimate(ev)) & (ev.n_trials > 1)


def censored_points(ev) -> np.ndarray:
    """(nS, nB) bool: points where every trial of every search ran and none reached the goal
    within the budget (K* > budget, a bound, not a gap); needs the budget to be known."""
    if not ev.budget:
        return np.zeros((len(ev.sparsities), len(ev.batch_sizes)), bool)
    ran = ~np.isnan(ev.trials).any(axis=3)
    none = ~(np.isfinite(ev.trials) & ~ev.capped).any(axis=3)
    known_budget = np.array([int(b) in ev.budget for b in ev.batch_sizes])
    return (ran & none).all(axis=0) & known_budget[None, :]


def bound_table(ev) -> np.ndarray:
    """(nS, nB): the budget at censored points (K* exceeds it), NaN elsewhere."""
    out = np.full((len(ev.sparsities), len(ev.batch_sizes)), np.nan)
    cens = censored_points(ev)
    for i, b in enumerate(ev.batch_sizes):
        if cens[:, i].any():
            out[cens[:, i], i] = ev.budget[int(b)]
    return out


def half_budget_table(ev) -> np.ndarray:
    """(nS, nB): the geometric mean over seeds of each search's expected best of ceil(n/2) of its
    trials (`expected_best_log`); NaN where the point has no K* or is `coarse_points`."""
    m = half_budget_size(ev.n_trials)
    out = np.full((len(ev.sparsities), len(ev.batch_sizes)), np.nan)
    est = point_estimate(ev)
    coarse = coarse_points(ev)
    for j in range(len(ev.sparsities)):
        for i in range(len(ev.batch_sizes)):
            if not np.isfinite(est[j, i]) or coarse[j, i]:
                continue
            logs = [expected_best_log(v, m) for r in range(ev.n_seeds)
                    if (v := _search_values(ev, r, j, i)) is not None]
            logs = [x for x in logs if math.isfinite(x)]
            if logs:
                out[j, i] = math.exp(sum(logs) / len(logs))
    return out


def edge_points(ev) -> np.ndarray:
    """(nS, nB) bool: points whose best trial (seed 0's search) has the smallest or largest
    effective learning rate lr / (1 - momentum) among the point's trials: the best of the box
    may lie outside it. False where metaparameters are unknown."""
    out = np.zeros((len(ev.sparsities), len(ev.batch_sizes)), bool)
    lr = ev.hp.get("learning_rate")
    if lr is None:
        return out
    eff = lr[0] / (1.0 - ev.hp["momentum"][0]) if "momentum" in ev.hp else lr[0]
    reached = np.where(ev.capped[0] | ~np.isfinite(ev.trials[0]), np.inf, ev.trials[0])
    for j in range(len(ev.sparsities)):
        for i in range(len(ev.batch_sizes)):
            row, e = reached[j, i], eff[j, i]
            if not np.isfinite(row).any() or not np.isfinite(e).all() or np.unique(e).size < 3:
                continue
            best = int(np.argmin(row))
            out[j, i] = e[best] in (e.min(), e.max())
    return out


@dataclasses.dataclass(frozen=True)
class Statistic:
    """A statistic of the K* table with its interval: resampling, widened by the search's
    half-budget shift, and over the range of every censored point it reads."""

    value: float          # on the point estimate (censored points at their bound)
    interval: tuple       # (lo, hi)
    search_shift: float   # |value - value on the half-budget table| x HALF_BUDGET_WIDEN
    bounds: tuple = ()    # (sparsity index, batch index) of censored points the value reads
    log: bool = False     # a ratio: interval and search_shift were taken on log(value)


_FAR = (1e3, 1e6)  # a censored K* at these multiples of its bound stands for "much larger"


def reads_point(fn, table, where):
    """Whether fn's value on `table` changes when the K* at `where` grows (fn reads that point)."""
    a, b = table.copy(), table.copy()
    a[where], b[where] = table[where], table[where] * _FAR[0]
    va, vb = fn(a), fn(b)
    return not (va == vb or (math.isnan(va) and math.isnan(vb)))


def _search_shift(fn, table, half, censored, value) -> float:
    """How far fn moves if the search's K* at each point it reads were its half-budget K*
    instead, point by point, summed without letting points cancel (a search may be biased
    differently at each B): sum_i |fn(table with K_i := half_i) - fn(table)|. Infinite where
    fn reads a point with no half-budget K* (no search evidence); censored points are left to
    their bound."""
    if not math.isfinite(value):
        return math.inf
    total = 0.0
    for w in zip(*np.nonzero(np.isfinite(table) & ~censored)):
        h = half[w]
        if h == table[w]:
            continue
        moved = table.copy()
        moved[w] = h if math.isfinite(h) else table[w] * _FAR[0]
        v = fn(moved)
        if math.isnan(v) and not math.isfinite(h):
            continue  # fn does not read this point (NaN either way would be caught below)
        if not math.isfinite(h):
            if reads_point(fn, table, w):
                return math.inf
            continue
        if not math.isfinite(v):
            return math.inf
        total += abs(v - value)
    return total


def _rows(fn, stack):
    """fn of every table of a (n, nS, nB) stack (`fn.over_rows` when fn has it)."""
    over_rows = getattr(fn, "over_rows", None)
    return np.asarray(over_rows(stack), dtype=float) if over_rows is not None \
        else np.array([fn(t) for t in stack], dtype=float)


def _replicate_interval(fn, stack, beyond, level):
    """The percentile interval of fn over the replicate tables `stack`, where `beyond` (same
    shape; NaN elsewhere) holds the budget that a replicate's K* exceeds (its resampled search
    found nothing within it). Each such K* lies anywhere above its bound: fn is taken with all
    of them at the bound, and with all far above it (a replicate whose fn still moves between
    10^3 and 10^6 x the bound is unbounded that way); the interval spans both."""
    has = np.isfinite(beyond)
    if not has.any():
        return interval(_rows(fn, stack), level)
    at_bound = _rows(fn, np.where(has, beyond, stack))
    near = _rows(fn, np.where(has, beyond * _FAR[0], stack))
    far = _rows(fn, np.where(has, beyond * _FAR[1], stack))
    with np.errstate(invalid="ignore"):  # inf - inf where fn is already unbounded: not moving
        moving = np.isfinite(near) & ~np.isnan(far) & \
            ~(np.abs(far - near) <= 1e-6 * np.maximum(1.0, np.abs(near)))
        far = np.where(moving, np.sign(far - near) * math.inf, near)
    (lo1, hi1), (lo2, hi2) = interval(at_bound, level), interval(far, level)
    return min(lo1, lo2), max(hi1, hi2)


def _log_of(fn):
    """log(fn), with a value <= 0 at -inf (a ratio of positive things that is not positive has
    no scale: it lies below any positive threshold), and `over_rows` where fn has it."""
    def logged(v):
        v = np.asarray(v, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(v > 0, np.log(np.where(v > 0, v, 1.0)), np.where(np.isnan(v), np.nan, -np.inf))

    def g(t):
        return float(logged(fn(t)))
    over_rows = getattr(fn, "over_rows", None)
    if over_rows is not None:
        g.over_rows = lambda stack: logged(over_rows(stack))
    return g


def log_statistic(fn, est, reps, half, **kw) -> Statistic:
    """`statistic` of a ratio of positive quantities, taken on log(fn) and mapped back: its
    resampling and search shift are multiplicative (a K* a search overshoots by a factor moves
    a ratio by that factor), so the interval is (value / x, value * y), never below 0.
    `search_shift` stays in log units."""
    st = statistic(_log_of(fn), est, reps, half, **kw)
    lo, hi = st.interval
    return Statistic(math.exp(st.value) if not math.isnan(st.value) else math.nan,
                     (math.exp(lo), math.exp(hi)), st.search_shift, st.bounds, log=True)


def statistic(fn, est, reps, half, bounds=None, widen=None, level=LEVEL, beyond=None) -> Statistic:
    """fn(table) -> float over the K* table (nS, nB), with its interval (`fn.over_rows(stack)`,
    if fn has it, gives fn of every table of a (n, nS, nB) stack at once).

    `est` the point estimate, `reps` (n_boot, nS, nB) replicates, `half` the half-budget table,
    `bounds` the censored points' budgets (NaN elsewhere), `beyond` the replicates' bounds
    (`replicates_with_bounds`; None: a replicate with no K* is unknown). The interval is the
    percentile interval of fn over the replicates (`_replicate_interval`), widened on both sides
    by `widen` x the search shift
    (`_search_shift`: each read point's move to its half-budget K*, summed; infinite where fn
    reads a point with no half-budget K*), and stretched over the values fn
    takes as each censored point it reads goes from its bound to far above it (an end that
    keeps moving is infinite)."""
    widen = HALF_BUDGET_WIDEN if widen is None else widen
    est = np.asarray(est, dtype=float)
    bounds = np.full(est.shape, np.nan) if bounds is None else np.asarray(bounds, dtype=float)
    read = [w for w in zip(*np.nonzero(np.isfinite(bounds)))
            if reads_point(fn, np.where(np.isfinite(bounds), bounds, est), w)][:4]
    variants = [()] if not read else [tuple(c) for c in np.ndindex(*(3,) * len(read))]
    values, los, his, shifts = [], [], [], []
    for combo in variants:
        scale = np.ones(est.shape)
        for w, c in zip(read, combo):
            scale[w] = (1.0, *_FAR)[c]
        fill = np.where(np.isfinite(bounds), bounds * scale, np.nan)
        has_fill = np.isfinite(fill)

        def filled(t, has_fill=has_fill, fill=fill):
            return np.where(has_fill, fill, t) if read else t
        v = fn(filled(est))
        stack = np.where(has_fill[None], fill[None], reps) if read else np.asarray(reps, dtype=float)
        rep_bounds = np.full(stack.shape, np.nan) if beyond is None else \
            np.where(has_fill[None], np.nan, beyond)  # a censored point is filled already
        lo, hi = _replicate_interval(fn, stack, rep_bounds, level)
        shift = _search_shift(fn, filled(est), np.asarray(half, dtype=float), np.isfinite(bounds), v) * widen
        values.append(v)
        los.append(lo - shift)
        his.append(hi + shift)
        shifts.append(shift)
    lo, hi = min(los), max(his)
    if read:
        near = [k for k, c in enumerate(variants) if all(x == 1 for x in c)]
        far = [k for k, c in enumerate(variants) if all(x == 2 for x in c)]
        base = [k for k, c in enumerate(variants) if all(x == 0 for x in c)][0]
        if near and far and math.isfinite(values[near[0]]) and math.isfinite(values[far[0]]):
            moving = abs(values[far[0]] - values[near[0]]) > 1e-6 * max(1.0, abs(values[near[0]]))
            if moving:  # still moving between 10^3 and 10^6 x the bound: unbounded that way
                if values[far[0]] > values[base]:
                    hi = math.inf
                else:
                    lo = -math.inf
        return Statistic(values[base], (lo, hi), shifts[base], tuple(read))
    return Statistic(values[0], (lo, hi), shifts[0])


# --------------------------------------------------------------------------- builders

def from_dataset(ds, panel) -> Evidence:
    """The Evidence of one panel of a results dataset (docs/results-format.md); replicate seeds
    from the ``*_by_seed`` variables when the file has them."""
    sub = ds.sel(panel=panel)
    if "grid_trials" in sub:  # the trial axis is the longest panel's: keep this panel's own trials
        sub = sub.isel(trial=slice(0, int(sub["grid_trials"])))
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
        cols = fit_replicates(ev.batch_sizes, reps[:, j])
        ci = {name: interval(cols[:, i]) for i, name in enumerate(("c1", "c2", "b_crit"))}
        ci = {k: (v if all(map(math.isfinite, v)) else (math.nan, math.nan)) for k, v in ci.items()}
        out[float(s)] = {**fit, "ci": ci, "n_boot": n_boot, "uncertainty": ", ".join(ev.sources())}
    return out
