"""One panel's data as the checks see it (:class:`PanelContext`), and the small statistics the
checks share: slopes over chosen batch sizes, K* ratios between sparsities, ratios of fitted
Prop. 4.1 constants, and what would decide an interval that straddles its threshold.

A statistic of one panel's K* table gets its (value, interval) from :meth:`PanelContext.stat`;
the other resampled quantities (fitted constants, two panels' K*, trials, smoothness runs) take
their interval from ``repro.evidence.interval``; no check computes a percentile itself.
"""
import math

import numpy as np

from .. import analysis, evidence

from .base import INCONCLUSIVE, NotRun, decide
from .text import fmt_iv, fmt_s


class PanelContext:
    """One panel's evidence, its point estimate and resampled replicates, computed once."""

    def __init__(self, ev, ds=None, panel=None, results_dir=None):
        self.ev, self.ds, self.panel, self.results_dir = ev, ds, panel, results_dir
        self.est = None if ev is None else evidence.point_estimate(ev)  # None: smoothness runs
        self._reps = None
        self._fits = {}

    @property
    def reps(self):
        if self._reps is None:
            self._reps = evidence.replicates(self.ev)
        return self._reps

    @property
    def b(self):
        return self.ev.batch_sizes

    @property
    def sparsities(self):
        return list(self.ev.sparsities)

    def row(self, s):
        return self.est[self.ev.s_index(s)]

    def rep_rows(self, s):
        return self.reps[:, self.ev.s_index(s)]

    def stat(self, fn):
        """fn(table) on the estimate and on every replicate: (value, interval)."""
        value = fn(self.est)
        return value, evidence.interval([fn(t) for t in self.reps])

    def fit(self, s):
        """Prop. 4.1 fit of sparsity s with (n_boot, 3) replicate columns c1, c2, B_crit."""
        if s not in self._fits:
            point = analysis.fit_prop41(self.b, self.row(s))
            self._fits[s] = (point, evidence.fit_replicates(self.b, self.rep_rows(s)))
        return self._fits[s]

    def uncertainty(self):
        return ", ".join(self.ev.sources()) or "none measured"


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


def to_decide(stat, iv, threshold, n_seeds):
    """What would decide an interval that straddles `threshold`: how many replicate seeds would
    shrink it (as 1/sqrt(n)) to the distance between the estimate and the threshold."""
    half = (iv[1] - iv[0]) / 2
    gap = abs(stat - threshold)
    if not (math.isfinite(half) and math.isfinite(gap)):
        return "more trials or replicate seeds (grid key `seeds`) at the points without a result"
    if gap <= 1e-12 * max(1.0, abs(threshold)):
        return f"the estimate sits on the threshold {threshold:g}; no amount of data decides it"
    need = math.ceil(n_seeds * (half / gap) ** 2)
    if need <= n_seeds:  # a lopsided interval: its side towards the threshold is the long one
        return (f"a narrower interval on the side of {threshold:g}: more replicate seeds "
                f"(e.g. {2 * n_seeds}; grid key `seeds`, now {n_seeds})")
    return f"an interval {gap / half:.2f}x as wide, e.g. about {need} replicate seeds (grid key `seeds`; now {n_seeds})"


def finite_b(row, b):
    """The batch sizes where `row` has a K*, and those K*."""
    keep = np.isfinite(row)
    return b[keep], row[keep]


def slope_over(b_sel, b_all):
    """fn(table row) -> log-log slope over the batch sizes b_sel."""
    idx = np.isin(b_all, b_sel)
    return lambda row: evidence.slope(b_all[idx], row[idx])


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
        if np.isfinite(k0) and np.isfinite(k1):
            value, iv = ctx.stat(lambda t: t[j1, i] / t[j0, i])
            rows[int(b)] = (value, iv, "")
        elif np.isfinite(k0) != np.isfinite(k1) and ran(ctx, j0, i) and ran(ctx, j1, i):
            # One side missed the goal within its step budget: the ratio is bounded on one side
            # only (a K* table gives no budget: then the ratio is undecided at this B).
            budget = (ctx.ev.budget or {}).get(int(b), math.nan)
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
    for s, p in ((s_num, p_num), (s_den, p_den)):
        if math.isnan(p["c1"]):
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
    with np.errstate(divide="ignore", invalid="ignore"):
        reps = r_num[:, column] / r_den[:, column]
    reps = np.where(np.isfinite(reps) | np.isinf(reps), reps, np.nan)
    return num / den, evidence.interval(reps), ""


def c1_ratio_verdict(ctx, floor, s_num, s_den):
    """'fitted c1(s_num)/c1(s_den) > floor' with its interval:
    (status, measured text, detail, value, interval)."""
    value, iv, why = fit_ratio(ctx, s_num, s_den, column=0)
    if why:
        return INCONCLUSIVE, "-", why, value, iv
    status = decide(iv, (floor, math.inf), above=True)
    detail = ""
    if status == INCONCLUSIVE:
        detail = f"interval straddles {floor:g}; to decide: " + to_decide(value, iv, floor, ctx.ev.n_seeds)
    return status, fmt_iv(value, iv), detail, value, iv
