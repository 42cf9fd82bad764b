"""One panel's data as the checks see it (:class:`PanelContext`), and the small statistics the
checks share: slopes over chosen batch sizes, K* ratios between sparsities, ratios of fitted
Prop. 4.1 constants, and what would decide an interval that straddles its threshold.

A statistic of one panel's K* table gets its (value, interval) from :meth:`PanelContext.stat`;
the other resampled quantities (fitted constants, two panels' K*, trials, smoothness runs) take
their interval from ``repro.evidence.interval``; no check computes a percentile itself.
"""
import dataclasses
import math

import numpy as np

from .. import analysis, evidence

from .base import INCONCLUSIVE, NotRun, decide
from .control import log_scale
from .text import fmt_iv, fmt_s


@dataclasses.dataclass(frozen=True)
class Request:
    """What would decide an undecided verdict, as something `repro decide` can add and price."""

    kind: str                  # "trials" | "batch_sizes" | "budget" | "finishers" | "seeds"
    panel: str                 # the panel it adds to
    why: str                   # which statistic is undecided, and by how much
    batch_sizes: tuple = ()    # "batch_sizes": the B to add; "budget": the B whose budget is short
    sparsity: float | None = None


class PanelContext:
    """One panel's evidence, its point estimate, resampled replicates, half-budget table and
    censored bounds, computed once; `stat` gives every statistic its interval.

    While a claim is checked, `notes` collects what its statistics read that limits them
    (points with no search evidence, censored points, best trials at the edge of the box) and
    `requests` what would decide it; the runner resets both per claim."""

    def __init__(self, ev, ds=None, panel=None, results_dir=None):
        self.ev, self.ds, self.panel, self.results_dir = ev, ds, panel, results_dir
        self.est = None if ev is None else evidence.point_estimate(ev)  # None: smoothness runs
        self._reps = None
        self._fits = {}
        self._fit_cache = {}
        if ev is not None:
            self.half = evidence.half_budget_table(ev)
            self.bounds = evidence.bound_table(ev)
            self.coarse = evidence.coarse_points(ev)
            self.edge = evidence.edge_points(ev)
        self.reset()

    def reset(self):
        """Start a claim: no notes, no requests."""
        self.notes = {"coarse": set(), "censored": set(), "edge": set(), "misses": set()}
        self.requests = []

    @property
    def misses(self):
        """(nS, nB) bool: points with a K* where so few trials reach the goal within the budget
        that more than the interval's tail share of resampled searches find none (each such
        replicate is only a bound), so an interval reading them stays open on that side."""
        self._resample()
        return self._misses

    def _resample(self):
        """The replicates and their bounds, once per panel (every claim's statistics read them)."""
        if self._reps is None:
            self._reps, self._beyond = evidence.replicates_with_bounds(self.ev)
            share = np.isfinite(self._beyond).mean(axis=0)
            self._misses = (share > (1 - evidence.LEVEL) / 2) & np.isfinite(self.est)

    @property
    def reps(self):
        self._resample()
        return self._reps

    @property
    def beyond(self):
        """(n_boot, nS, nB): the budget a replicate's K* exceeds where its resampled search found
        nothing within it, NaN elsewhere (repro.evidence.replicates_with_bounds)."""
        self._resample()
        return self._beyond

    @property
    def b(self):
        return self.ev.batch_sizes

    @property
    def sparsities(self):
        return list(self.ev.sparsities)

    @property
    def panel_id(self):
        return str(self.panel) if self.panel is not None else "table"

    def row(self, s):
        return self.est[self.ev.s_index(s)]

    def rep_rows(self, s):
        return self.reps[:, self.ev.s_index(s)]

    def censored(self, s):
        """The batch sizes where sparsity s is censored (no trial within the budget)."""
        return self.b[np.isfinite(self.bounds[self.ev.s_index(s)])]

    def stat(self, fn, ratio=False):
        """fn(table) on the estimate, the replicates and the half-budget table: (value, interval)
        by repro.evidence.statistic (resampling, widened by the search's half-budget shift,
        stretched over censored bounds); `ratio`: fn is a ratio of positive quantities, taken on
        the log scale (repro.evidence.log_statistic). Notes the limiting points fn reads."""
        take = evidence.log_statistic if ratio else evidence.statistic
        st = take(fn, self.est, self.reps, self.half, bounds=self.bounds, beyond=self.beyond)
        self.last = st
        filled = np.where(np.isfinite(self.bounds), self.bounds, self.est)
        for name, mask in (("coarse", self.coarse), ("edge", self.edge), ("misses", self.misses)):
            for w in zip(*np.nonzero(mask)):
                if evidence.reads_point(fn, filled, w):
                    self.notes[name].add(w)
        self.notes["censored"].update(st.bounds)
        return st.value, st.interval

    def fit(self, s):
        """Prop. 4.1 fit of sparsity s with (n_boot, 3) replicate columns c1, c2, B_crit."""
        if s not in self._fits:
            point = analysis.fit_prop41(self.b, self.row(s))
            cols = evidence.fit_replicates(self.b, self.rep_rows(s))
            self._fits[s] = (point, cols)
            for row, c in zip(self.rep_rows(s), cols):
                self._fit_cache[np.asarray(row, float).tobytes()] = c
        return self._fits[s]

    def fitted(self, row):
        """(c1, c2, B_crit) of the Prop. 4.1 fit of one K* row (cached: replicate rows are fitted
        once, together, by `fit`)."""
        key = np.asarray(row, float).tobytes()
        if key not in self._fit_cache:
            f = analysis.fit_prop41(self.b, row)
            self._fit_cache[key] = np.array([f["c1"], f["c2"], f["b_crit"]])
        return self._fit_cache[key]

    def fitted_rows(self, rows):
        """(n, 3): `fitted` of every row of `rows` (n, nB), the uncached ones in one fit."""
        rows = np.asarray(rows, dtype=float)
        keys = [r.tobytes() for r in rows]
        missing = [n for n, k in enumerate(keys) if k not in self._fit_cache]
        if missing:
            f = analysis.fit_prop41_rows(self.b, rows[missing])
            for m, n in enumerate(missing):
                self._fit_cache[keys[n]] = np.array([f["c1"][m], f["c2"][m], f["b_crit"][m]])
        return np.stack([self._fit_cache[k] for k in keys])

    def uncertainty(self):
        return ", ".join(self.ev.sources()) or "none measured"

    def point_text(self, points):
        """'B=16 s=0.9, B=64 s=0' for (sparsity index, batch index) pairs."""
        return ", ".join(f"B={int(self.b[i])} s={fmt_s(self.ev.sparsities[j])}" for j, i in sorted(points))

    def request(self, kind, why, batch_sizes=(), sparsity=None):
        self.requests.append(Request(kind=kind, panel=self.panel_id, why=why,
                                     batch_sizes=tuple(int(b) for b in batch_sizes), sparsity=sparsity))

    def request_batch_sizes(self, s, needed, why):
        """Ask for batch sizes at sparsity s where fewer than `needed` have a K* (a Prop. 4.1
        fit, a bend): 4x below the smallest with a K* (the c1 end), then 4x above the largest
        (the c2 end), and so on outwards, as many as are missing."""
        # with no K* at all the grid's batch sizes stand in (more B there would not help: the
        # trials or budget requests of the same verdict would)
        have, _ = finite_b(self.row(s), self.b)
        have = have if have.size else self.b
        missing = needed - have.size
        lo, hi, out = float(have.min()), float(have.max()), []
        while len(out) < missing and hi < 1 << 20:
            lo, hi = lo / 4, hi * 4
            out += [b for b in (lo, hi) if b >= 1 and b not in self.b]
        if out:
            self.request("batch_sizes", why, batch_sizes=out[:missing], sparsity=s)


def dense_and_sparsest(sparsities):
    """(0.0, s_max) from the panel's sparsities, or NotRun."""
    if 0.0 not in sparsities:
        raise NotRun("needs the dense network (s=0) in the data")
    s_max = max(sparsities)
    if s_max <= 0.0:
        raise NotRun("needs a sparsity above 0 in the data")
    return 0.0, s_max


def no_uncertainty(ctx, v):
    """No measured uncertainty: a decision would claim an exactness the data do not show."""
    if ctx.ev.sources():
        return v
    v.detail = ("no uncertainty is measured (one seed, one search per point, no evaluation "
                "schedule): give per-trial rows, several seeds, or a results file; "
                f"the point estimate alone would give {v.status}")
    v.status = INCONCLUSIVE
    return v


def to_decide(ctx, value, iv, threshold):
    """What would decide an interval that straddles `threshold` (text), and the request it
    makes: where the search's half-budget shift (ctx.last) is what keeps the interval across,
    more trials per point (a finer search); where resampling is, more trials or replicate
    seeds (which now sample other Sobol points)."""
    st = getattr(ctx, "last", None)
    shift = st.search_shift if st is not None else 0.0
    n_trials, n_seeds = ctx.ev.n_trials, ctx.ev.n_seeds
    log = st is not None and st.log and threshold > 0  # a ratio: its widths are factors
    if log:
        value, iv, threshold = log_scale(value), (log_scale(iv[0]), log_scale(iv[1])), math.log(threshold)
    half = (iv[1] - iv[0]) / 2
    gap = abs(value - threshold)
    if ctx.notes["coarse"]:
        pts = ctx.point_text(ctx.notes["coarse"])
        ctx.request("finishers", f"no search evidence at {pts}")
        return (f"search too coarse at {pts}: every losing trial was capped at the winner's step, "
                "so the search's resolution is unknown; race those points again with finishers >= 2 "
                "(the default; grid key `finishers`)")
    if st is not None and st.bounds and not math.isfinite(half):
        pts = ctx.point_text(st.bounds)
        ctx.request("budget", f"K* above the step budget at {pts}",
                    batch_sizes=[ctx.b[i] for _, i in st.bounds])
        return (f"K* exceeds the step budget at {pts} (a bound, not a value); a larger budget there "
                "(grid keys `max_steps`, `max_examples`) would measure it")
    if not (math.isfinite(half) and math.isfinite(gap)) and ctx.notes["misses"]:
        pts = ctx.point_text(ctx.notes["misses"])
        short = sorted({ctx.b[i] for _, i in ctx.notes["misses"]})
        ctx.request("budget", f"few trials reach the goal within the budget at {pts}", batch_sizes=short)
        ctx.request("trials", f"few trials reach the goal within the budget at {pts}")
        return (f"more trials reaching the goal at {pts}: so few reach it within the step budget "
                "that a search of this size often finds none (the interval is open on that side); "
                "a larger budget there (grid keys `max_steps`, `max_examples`) lets more of them "
                f"finish, or more trials per point (grid key `trials`, now {n_trials})")
    if not (math.isfinite(half) and math.isfinite(gap)):
        ctx.request("trials", "a search that often finds no trial reaching the goal")
        return ("a finer search: at some point it reads, so few trials reach the goal that a "
                "search of this size often finds none (the interval is unbounded); more trials "
                f"per point (grid key `trials`, now {n_trials}) or a wider search space there")
    if gap <= 1e-12 * max(1.0, abs(threshold)):
        return f"the estimate sits on the threshold {threshold:g}; no amount of data decides it"
    if shift >= 0.5 * half:
        moves = f"by a factor {math.exp(shift):.2g}" if log else f"by {shift:.2g}"
        width = f"a factor {math.exp(half):.2g}" if log else f"{half:.2g}"
        ctx.request("trials", f"the half-budget search moves the statistic {moves}")
        return (f"a finer search: the best of half the trials moves the statistic {moves} "
                f"(of the interval's half-width, {width}); more trials per point (grid key "
                f"`trials`, now {n_trials}) would narrow it")
    ctx.request("seeds", f"resampling spread {half:.2g} against a distance {gap:.2g} to {threshold:g}"
                + (" (log scale)" if log else ""))
    need = math.ceil(n_seeds * (half / gap) ** 2)
    return (f"an interval {gap / half:.2f}x as wide: more replicate searches (grid key `seeds`, "
            f"now {n_seeds}; about {max(need, 2 * n_seeds)}) or trials (now {n_trials})")


def finite_b(row, b):
    """The batch sizes where `row` has a K*, and those K*."""
    keep = np.isfinite(row)
    return b[keep], row[keep]


def slope_over(b_sel, b_all):
    """fn(table row) -> log-log slope over the batch sizes b_sel (fn.over_rows: of each row of
    an (n, nB) stack; a row missing a selected point takes the slope over the others, as fn)."""
    idx = np.isin(b_all, b_sel)
    b = b_all[idx]

    def slope(row):
        return evidence.slope(b, row[idx])

    x = np.log2(b) - np.log2(b).mean() if b.size else b
    sxx = float(x @ x) if b.size else 0.0

    def over_rows(rows):
        sel = np.asarray(rows, dtype=float)[:, idx]
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.log2(sel)
        whole = np.isfinite(y).all(axis=1) & (sel > 0).all(axis=1)
        out = np.full(sel.shape[0], np.nan)
        if sxx > 0:
            yc = y[whole] - y[whole].mean(axis=1, keepdims=True)
            out[whole] = yc @ x / sxx
        for n in np.nonzero(~whole)[0]:
            out[n] = evidence.slope(b, sel[n])
        return out
    slope.over_rows = over_rows
    return slope


def of_sparsity(row_fn, j):
    """fn(table) = row_fn(table[j]), keeping row_fn's `over_rows` (for a stack of tables)."""
    def fn(t):
        return row_fn(t[j])
    if hasattr(row_fn, "over_rows"):
        fn.over_rows = lambda stack: row_fn.over_rows(stack[:, j])
    return fn


def ran(ctx, j, i):
    """Every search of point (sparsity j, batch i) ran all its trials."""
    t = ctx.ev.trials[:, j, i]
    return bool((~np.isnan(t)).all(axis=1).any())


def ratio_stats(ctx, s0, s1):
    """Per batch size: (ratio K*(s1)/K*(s0), interval, note) where decidable."""
    j0, j1 = ctx.ev.s_index(s0), ctx.ev.s_index(s1)
    rows = {}
    for i, b in enumerate(ctx.b):
        k0, k1 = ctx.est[j0, i], ctx.est[j1, i]

        def ratio(t, i=i):
            return t[j1, i] / t[j0, i]
        if np.isfinite(k0) and np.isfinite(k1):
            value, iv = ctx.stat(ratio, ratio=True)
            rows[int(b)] = (value, iv, "")
        elif np.isfinite(k0) != np.isfinite(k1) and ran(ctx, j0, i) and ran(ctx, j1, i):
            # One side missed the goal within its step budget: the ratio is bounded on one side
            # only (a K* table gives no budget: then the ratio is undecided at this B).
            budget = (ctx.ev.budget or {}).get(int(b), math.nan)
            missed = j0 if np.isfinite(k1) else j1
            if math.isfinite(budget) and np.isfinite(ctx.bounds[missed, i]):
                # the censored point enters as K* > budget, the other with its uncertainty
                value, iv = ctx.stat(ratio, ratio=True)
                who = "dense" if missed == j0 else "sparse"
                rows[int(b)] = (value, iv, f"{who} missed the goal within {budget:g} steps")
                continue
            if np.isfinite(k1):  # dense missed, sparse reached: ratio < K*(sparse) / budget
                bound = k1 / budget
                rows[int(b)] = (bound, (-math.inf, bound if math.isfinite(bound) else math.inf),
                                "dense missed the goal" + (f" within {budget:g} steps" if math.isfinite(budget) else ""))
            else:  # sparse missed, dense reached: ratio > budget / K*(dense)
                bound = budget / k0
                rows[int(b)] = (bound, (bound if math.isfinite(bound) else -math.inf, math.inf),
                                "sparse missed the goal" + (f" within {budget:g} steps" if math.isfinite(budget) else ""))
    return rows


def fit_ratio(ctx, s_num, s_den, column):
    """Ratio of a fitted constant (column 0 c1, 2 B_crit) between two sparsities, with interval;
    NotRun-free: returns (value, interval, why_not) where why_not explains an undefined ratio."""
    p_num, r_num = ctx.fit(s_num)
    p_den, r_den = ctx.fit(s_den)
    unfitted = [(s, p) for s, p in ((s_num, p_num), (s_den, p_den)) if math.isnan(p["c1"])]
    for s, p in unfitted:
        ctx.request_batch_sizes(s, analysis.MIN_FIT_POINTS, f"the Prop. 4.1 fit (s={fmt_s(s)})")
    if unfitted:
        s, p = unfitted[0]
        return math.nan, (-math.inf, math.inf), (
            f"the Prop. 4.1 fit at s={fmt_s(s)} needs {analysis.MIN_FIT_POINTS} batch sizes "
            f"with a K*, has {p['n_points']}")
    key = ("c1", "c2", "b_crit")[column]
    num, den = p_num[key], p_den[key]
    if not (den > 0 and math.isfinite(den)) or not math.isfinite(num):
        what = {"c1": "no linear-scaling term (c1 = 0)", "b_crit": "no plateau term on the grid (B_crit infinite)"}[key]
        bad = s_den if not (den > 0 and math.isfinite(den)) else s_num
        return math.nan, (-math.inf, math.inf), (
            f"the fit at s={fmt_s(bad)} has {what}: batch sizes " +
            ("further below" if key == "c1" else "further above") + " the grid would decide")
    j_num, j_den = ctx.ev.s_index(s_num), ctx.ev.s_index(s_den)

    def ratio(t):
        with np.errstate(divide="ignore", invalid="ignore"):
            r = ctx.fitted(t[j_num])[column] / ctx.fitted(t[j_den])[column]
        return float(r) if not np.isnan(r) else math.nan

    def ratio_rows(stack):
        with np.errstate(divide="ignore", invalid="ignore"):
            return ctx.fitted_rows(stack[:, j_num])[:, column] / ctx.fitted_rows(stack[:, j_den])[:, column]
    ratio.over_rows = ratio_rows
    value, iv = ctx.stat(ratio, ratio=True)
    return value, iv, ""


def c1_ratio_verdict(ctx, floor, s_num, s_den):
    """'fitted c1(s_num)/c1(s_den) > floor' with its interval:
    (status, measured text, detail, value, interval)."""
    value, iv, why = fit_ratio(ctx, s_num, s_den, column=0)
    if why:
        return INCONCLUSIVE, "-", why, value, iv
    status = decide(iv, (floor, math.inf), above=True, log=True)
    detail = ""
    if status == INCONCLUSIVE:
        detail = f"interval straddles {floor:g}; to decide: " + to_decide(ctx, value, iv, floor)
    return status, fmt_iv(value, iv), detail, value, iv
