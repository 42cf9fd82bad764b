"""Named claim checks on a results dataset or a K* table, with tolerances from a golden file.

A golden file (``golden/<figure>.toml``, described in ``golden/README.md``) has one table per
claim holding its tolerance numbers plus ``source`` (where in the paper or in Prop. 4.1 the
number comes from) and ``why``. ``[panel.<id>.<claim>]`` tables override keys for one panel.

Every claim is a statistic of the data (a slope, a ratio, a fitted constant) with a 95 %
interval over resampled evaluation steps, trials and replicate seeds (``repro.evidence``), and
gives one of four verdicts:

- PASS: the interval lies where the claim holds;
- FAIL: the interval lies where it does not (the data contradict it beyond their uncertainty);
- INCONCLUSIVE: the interval straddles the threshold, or the grid does not reach the regime the
  claim is about (decided from the fitted B_crit); ``detail`` says what would decide it;
- NOT-RUN: no data; ``detail`` says what to run.
"""
import difflib

import json
import math
import pathlib
import tomllib
from dataclasses import asdict, dataclass, field

import numpy as np

from repro import analysis, evidence
from repro import spec as spec_mod
from repro.errors import UsageError

PASS, FAIL, INCONCLUSIVE, NOT_RUN = "PASS", "FAIL", "INCONCLUSIVE", "NOT-RUN"
VERDICTS = (PASS, FAIL, INCONCLUSIVE, NOT_RUN)


@dataclass
class ClaimResult:
    """The outcome of one claim on one panel."""

    figure: str
    panel: str
    claim: str
    status: str  # "PASS" | "FAIL" | "INCONCLUSIVE" | "NOT-RUN"
    measured: str  # human readable measured value(s), with their interval
    tolerance: str  # human readable tolerance
    detail: str = ""  # NOT-RUN: why, and the command that fixes it; INCONCLUSIVE: what would decide it
    values: dict = field(default_factory=dict)  # machine-readable numbers for --json
    paper: str = ""  # the paper's own number for this claim, where it gives one
    source: str = ""  # where the tolerance and the paper's number come from (golden `source`)


# --------------------------------------------------------------------------- golden file

_NUMBER = (int, float)

# claim -> {key: (types, required)}; `source` and `why` are required for every claim.
GOLDEN_SCHEMA = {
    "linear_scaling": {"slope_min": (_NUMBER, True), "slope_max": (_NUMBER, True)},
    "plateau": {"slope_min": (_NUMBER, True)},
    "diminishing_returns": {"min_flattening": (_NUMBER, True)},
    "sparse_slower": {"min_ratio": (_NUMBER, True), "paper_band": (list, False)},
    "sparse_c1_larger": {"min_ratio": (_NUMBER, True), "paper_value": (_NUMBER, False)},
    "sparse_ratio_band": {"band": (list, True)},
    "sparse_critical_batch_no_smaller": {"min_ratio": (_NUMBER, True)},
    "c1_increasing_with_sparsity": {"min_ratio": (_NUMBER, True)},
    "best_lr_nondecreasing": {"max_drop": (_NUMBER, True)},
    "momentum_beats_sgd": {"reference_panel": (str, True), "min_kstar_ratio": (_NUMBER, True),
                           "min_b_crit_ratio": (_NUMBER, True)},
    "feasible_lr_range_shrinks": {"max_ratio": (_NUMBER, True)},
    "lipschitz_increasing": {"min_ratio": (_NUMBER, True), "monotone": (bool, False),
                             "paper_values": (list, False)},
    "c1_decomposition": {"min_predicted_ratio": (_NUMBER, True), "reference": (str, False),
                         "paper_ratios": (dict, False)},
    "noise_scale_vs_critical_batch": {"max_factor": (_NUMBER, True), "reference": (str, True)},
    "sparse_loss_higher": {"min_ratio": (_NUMBER, True)},
}


def _type_name(types):
    """Human name of an accepted type (or tuple of types)."""
    if types is _NUMBER:
        return "a number"
    return {int: "an integer", bool: "true or false", list: "a list", str: "a string",
            dict: "a table"}[types]


def _is_type(value, types):
    """isinstance, but a TOML boolean is never a number or integer."""
    if isinstance(value, bool) and types is not bool:
        return False
    return isinstance(value, types)


def _check_entry(path, key, entry, claim, need_provenance):
    """Validate one claim table (or a per-panel override of it)."""
    if not isinstance(entry, dict):
        raise UsageError(path, key, "must be a table", f"write it as [{key}] with its tolerance keys")
    if need_provenance:
        for meta in ("source", "why"):
            if not isinstance(entry.get(meta), str) or not entry[meta].strip():
                raise UsageError(path, f"{key}.{meta}", "missing or not a non-empty string",
                                 f"add {meta} = \"...\" saying " +
                                 ("where in the paper the number comes from" if meta == "source"
                                  else "why the tolerance is that wide"))
    for meta in ("source", "why"):
        if meta in entry and not isinstance(entry[meta], str):
            raise UsageError(path, f"{key}.{meta}", "must be a string", f"write {meta} = \"...\"")
    known = {"source", "why", *GOLDEN_SCHEMA.get(claim, {})}
    for name in entry:
        if claim in GOLDEN_SCHEMA and name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            raise UsageError(path, f"{key}.{name}", "unknown tolerance key",
                             (f"did you mean {close[0]!r}? " if close else "") +
                             f"known: {', '.join(sorted(known))}")
    for name, (types, required) in GOLDEN_SCHEMA.get(claim, {}).items():
        if name not in entry:
            if required and need_provenance:
                raise UsageError(path, f"{key}.{name}", "missing tolerance key",
                                 f"add {name} = <{_type_name(types)}> to [{key}]")
            continue
        if not _is_type(entry[name], types):
            raise UsageError(path, f"{key}.{name}", f"must be {_type_name(types)}, got {entry[name]!r}",
                             f"write {name} as {_type_name(types)}")
    _check_values(path, key, entry, claim)


def _check_values(path, key, entry, claim):
    """Range checks that types alone do not catch."""
    if claim == "linear_scaling" and "slope_min" in entry and "slope_max" in entry:
        if entry["slope_min"] > entry["slope_max"]:
            raise UsageError(path, f"{key}.slope_min", "is larger than slope_max", "swap them")
    for name in ("paper_band", "band"):
        band = entry.get(name)
        if band is not None and (len(band) != 2 or not all(_is_type(v, _NUMBER) for v in band)
                                 or band[0] > band[1]):
            raise UsageError(path, f"{key}.{name}", "must be a list of two increasing numbers",
                             f"write {name} = [low, high]")


_including = []  # golden files being read through `include`, to stop cycles


def load_golden(path) -> dict:
    """Read and validate a golden TOML file; returns its tables as a plain dict.

    Top-level tables are claims (``[linear_scaling]`` ...); ``[panel.<id>.<claim>]`` tables
    override keys for one panel; ``include = "other.toml"`` takes another file's claim tables
    first (this file's own tables win; the other file's panel overrides are not taken). Raises UsageError naming the file and key on any problem.
    """
    try:
        with open(path, "rb") as fh:
            golden = tomllib.load(fh)
    except FileNotFoundError:
        raise UsageError(path, "", "golden file not found", "create it; see golden/README.md") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(path, "", f"not valid TOML: {exc}", "fix the syntax") from None
    if "include" in golden:  # tolerances shared with another figure: its tables, then ours
        inc = golden.pop("include")
        if not isinstance(inc, str):
            raise UsageError(path, "include", "must be a file name", 'e.g. include = "figure-1.toml"')
        target = pathlib.Path(path).parent / inc
        if _including.count(str(target.resolve())) or len(_including) > 8:
            raise UsageError(path, "include", f"includes itself ({inc})", "break the cycle")
        _including.append(str(target.resolve()))
        try:
            base = load_golden(target)
        finally:
            _including.pop()
        base.pop("panel", None)  # per-panel overrides belong to that figure's panels only
        base.pop("figure", None)
        golden = {**base, **golden}
    for key, entry in golden.items():
        if key == "panel":
            _check_overrides(path, entry, golden)
        elif isinstance(entry, dict):
            _check_entry(path, key, entry, key, need_provenance=True)
        elif key not in ("figure", "description"):
            raise UsageError(path, key, "unexpected top-level key", "claims are tables: [claim_name]")
    return golden


def _check_overrides(path, panels, golden):
    """Validate [panel.<id>.<claim>] override tables."""
    if not isinstance(panels, dict):
        raise UsageError(path, "panel", "must be a table of panels", "write [panel.<id>.<claim>]")
    for pid, claims in panels.items():
        if not isinstance(claims, dict):
            raise UsageError(path, f"panel.{pid}", "must be a table of claims", f"write [panel.{pid}.<claim>]")
        for claim, entry in claims.items():
            if claim not in golden:
                raise UsageError(path, f"panel.{pid}.{claim}", "overrides a claim with no top-level table",
                                 f"add [{claim}] first")
            _check_entry(path, f"panel.{pid}.{claim}", entry, claim, need_provenance=False)


def tolerance_for(golden, panel_id, claim):
    """The claim's golden table with any per-panel override applied; None if absent."""
    base = golden.get(claim)
    if not isinstance(base, dict):
        return None
    override = golden.get("panel", {}).get(str(panel_id), {}).get(claim, {})
    return {**base, **override}


# --------------------------------------------------------------------------- helpers

def _fmt_s(s):
    """Sparsity as a short string: 0.9 -> '0.9'."""
    return f"{float(s):g}"


def _fmt(x, digits=2):
    """A number for a table cell."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "nan"
    if isinstance(x, float) and math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.{digits}f}"


def _iv(stat, iv, digits=2):
    """'0.84 [0.71, 0.97]': a statistic with its interval."""
    return f"{_fmt(stat, digits)} [{_fmt(iv[0], digits)}, {_fmt(iv[1], digits)}]"


class _NotRun(Exception):
    """Raised inside a claim check when there are no data for it at all."""


@dataclass
class Verdict:
    """What a check returns: the verdict and its text (check_one adds figure, panel, claim)."""

    status: str
    measured: str
    tolerance: str
    detail: str = ""
    values: dict = field(default_factory=dict)
    paper: str = ""


def decide(interval, band, above=False):
    """PASS when the interval lies inside the band where the claim holds, FAIL when it lies
    wholly outside it, INCONCLUSIVE when it straddles an edge. `above`: the claim is "more than
    band[0]", so an interval starting exactly at band[0] (a ratio of exactly 1, say) is not a PASS."""
    lo, hi = interval
    a, b = band
    if (a < lo if above else a <= lo) and hi <= b:
        return PASS
    if hi < a or lo > b or (above and hi <= a):
        return FAIL
    return INCONCLUSIVE


def _worst(statuses):
    """Combine verdicts of parts that must all hold: any FAIL, else any INCONCLUSIVE, else PASS."""
    for s in (FAIL, INCONCLUSIVE):
        if s in statuses:
            return s
    return PASS


def _to_decide(stat, iv, threshold, n_seeds):
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
            start = (point["c1"], point["c2"]) if math.isfinite(point["c1"]) else None
            self._fits[s] = (point, evidence.fit_replicates(self.b, self.rep_rows(s)))
        return self._fits[s]

    def uncertainty(self):
        return ", ".join(self.ev.sources()) or "none measured"


def _dense_and_sparsest(sparsities):
    """(0.0, s_max) from the panel's sparsities, or _NotRun."""
    if 0.0 not in sparsities:
        raise _NotRun("needs the dense network (s=0) in the data")
    s_max = max(sparsities)
    if s_max <= 0.0:
        raise _NotRun("needs a sparsity above 0 in the data")
    return 0.0, s_max


def _no_uncertainty(ctx, v):
    """No measured uncertainty: a decision would claim an exactness the data do not show."""
    if ctx.ev.sources():
        return v
    v.detail = ("no uncertainty is measured (one seed, one search per point, no evaluation "
                "schedule): give per-trial rows, several seeds, or a results file; "
                f"the point estimate alone would give {v.status}")
    v.status = INCONCLUSIVE
    return v


def _finite_b(row, b):
    keep = np.isfinite(row)
    return b[keep], row[keep]


def _slope_over(b_sel, b_all):
    """fn(table row) -> log-log slope over the batch sizes b_sel."""
    idx = np.isin(b_all, b_sel)
    return lambda row: evidence.slope(b_all[idx], row[idx])


# --------------------------------------------------------------------------- K*(B) claims

def _check_linear_scaling(ctx, tol):
    """Per sparsity: over the grid's batch sizes with B <= B_crit/2 (the fitted Prop. 4.1 B_crit,
    where its local slope -1/(1 + B/B_crit) is at most -2/3), the log-log slope of K* lies in
    [slope_min, slope_max], with its interval."""
    band = (tol["slope_min"], tol["slope_max"])
    parts, texts, details, values = [], [], [], {}
    for s in ctx.sparsities:
        row = ctx.row(s)
        point, reps = ctx.fit(s)
        if math.isnan(point["c1"]):
            parts.append(INCONCLUSIVE)
            details.append(f"s={_fmt_s(s)}: the Prop. 4.1 fit needs {analysis.MIN_FIT_POINTS} "
                           f"batch sizes with a K*, has {point['n_points']}")
            continue
        b_crit = point["b_crit"]
        window = ctx.b[ctx.b <= b_crit / 2]
        unreached = [int(b) for b in window if not np.isfinite(row[ctx.b == b][0])
                     and _ran(ctx, ctx.ev.s_index(s), int(np.nonzero(ctx.b == b)[0][0]))]
        measured_b = [b for b in window if np.isfinite(row[ctx.b == b][0])]
        if len(measured_b) < 2:
            parts.append(INCONCLUSIVE)
            why = (f"s={_fmt_s(s)}: the linear regime is B <= B_crit/2 = {b_crit / 2:.3g} "
                   f"(fitted B_crit {b_crit:.3g}); the grid has {len(measured_b)} measured B there")
            if unreached:
                why += f" (no K* at B={unreached}: a larger step budget there would decide)"
            else:
                why += f": batch sizes below {b_crit / 2:.3g} would decide"
            details.append(why)
            continue
        value, iv = ctx.stat(lambda t, j=ctx.ev.s_index(s), w=np.asarray(measured_b):
                             _slope_over(w, ctx.b)(t[j]))
        verdict = decide(iv, band)
        parts.append(verdict)
        texts.append(f"{_iv(value, iv)} (s={_fmt_s(s)}, B {int(measured_b[0])}-{int(measured_b[-1])})")
        values[_fmt_s(s)] = {"slope": value, "interval": iv, "batch_sizes": [int(x) for x in measured_b],
                             "b_crit": b_crit}
        if verdict == INCONCLUSIVE:
            edge = band[0] if iv[0] < band[0] else band[1]
            details.append(f"s={_fmt_s(s)}: interval straddles {edge:g}; to decide: "
                           + _to_decide(value, iv, edge, ctx.ev.n_seeds))
        if unreached:
            details.append(f"s={_fmt_s(s)}: no K* at B={unreached} inside the linear regime")
    return Verdict(_worst(parts), "slope " + ("; ".join(texts) or "-"),
                   f"log-log slope in [{band[0]:g}, {band[1]:g}] over B <= B_crit/2",
                   "; ".join(details), {"slopes": values, "statistic": "log-log slope"})


def _check_plateau(ctx, tol):
    """Per sparsity: the local slope at the largest B (over the two largest measured B) is at
    least slope_min (by Prop. 4.1, B >= 4 B_crit for -0.2) and K* does not rise beyond its
    uncertainty (FAIL when the slope's lower bound is above 0). A curve still falling where the
    fit says the grid has not reached 4 B_crit is INCONCLUSIVE, with the B that would decide."""
    lo_ok = tol["slope_min"]
    parts, texts, details, values = [], [], [], {}
    for s in ctx.sparsities:
        b, v = _finite_b(ctx.row(s), ctx.b)
        if b.size < 2:
            parts.append(INCONCLUSIVE)
            details.append(f"s={_fmt_s(s)}: {b.size} batch size(s) with a K*; needs 2 at the large-B end")
            continue
        top = b[-2:]
        value, iv = ctx.stat(lambda t, j=ctx.ev.s_index(s), w=top: _slope_over(w, ctx.b)(t[j]))
        values[_fmt_s(s)] = {"slope": value, "interval": iv, "batch_sizes": [int(x) for x in top]}
        texts.append(f"{_iv(value, iv)} (s={_fmt_s(s)}, B {int(top[0])}-{int(top[1])})")
        point, _ = ctx.fit(s)
        fitted = not math.isnan(point["c1"])
        need = 4 * point["b_crit"] if fitted and math.isfinite(point["b_crit"]) else math.inf
        reached = top[-1] >= need
        if iv[0] > 0:
            parts.append(FAIL)
            details.append(f"s={_fmt_s(s)}: K* rises from B={int(top[0])} to {int(top[1])} beyond its uncertainty")
        elif iv[0] >= lo_ok:
            parts.append(PASS)
        elif iv[1] < lo_ok and reached:
            parts.append(FAIL)
            details.append(f"s={_fmt_s(s)}: still falling at B={int(top[1])}, which the fit places "
                           f"in the plateau (B >= 4 B_crit = {need:.3g})")
        else:
            parts.append(INCONCLUSIVE)
            if not reached:
                where = (f"the Prop. 4.1 fit needs {analysis.MIN_FIT_POINTS} batch sizes with a K*" if not fitted
                         else "B_crit is beyond the grid (the fit has no plateau term)" if math.isinf(need)
                         else f"batch sizes >= 4 B_crit = {need:.3g} (fitted B_crit {point['b_crit']:.3g})")
                details.append(f"s={_fmt_s(s)}: the grid stops at B={int(top[1])}, before the plateau; to decide: {where}")
            else:
                details.append(f"s={_fmt_s(s)}: interval straddles {lo_ok:g}; to decide: "
                               + _to_decide(value, iv, lo_ok, ctx.ev.n_seeds))
    return Verdict(_worst(parts), "slope " + ("; ".join(texts) or "-"),
                   f"local slope at the largest B >= {lo_ok:g}, and not rising beyond uncertainty",
                   "; ".join(details), {"slopes": values, "statistic": "log-log slope at the largest B"})


def _check_diminishing_returns(ctx, tol):
    """Per sparsity: the local slope rises from the small-B end to the large-B end (the slope
    over the 2 largest measured B minus the slope over the 2 smallest, > min_flattening beyond
    uncertainty; Prop. 4.1's slope rises monotonically), and K* never rises between consecutive
    measured B beyond its uncertainty."""
    need = tol["min_flattening"]
    parts, texts, details, values = [], [], [], {}
    for s in ctx.sparsities:
        j = ctx.ev.s_index(s)
        b, v = _finite_b(ctx.row(s), ctx.b)
        if b.size < 3:
            parts.append(INCONCLUSIVE)
            details.append(f"s={_fmt_s(s)}: {b.size} batch sizes with a K*; needs 3")
            continue
        small, large = b[:2], b[-2:]
        value, iv = ctx.stat(lambda t: _slope_over(large, ctx.b)(t[j]) - _slope_over(small, ctx.b)(t[j]))
        rises = []
        for a, c in zip(b, b[1:]):
            ia, ic = int(np.nonzero(ctx.b == a)[0][0]), int(np.nonzero(ctx.b == c)[0][0])
            _, r_iv = ctx.stat(lambda t: t[j, ic] / t[j, ia])
            if r_iv[0] > 1:
                rises.append(f"{int(a)}->{int(c)}")
        verdict = FAIL if rises else decide(iv, (need, math.inf), above=True)
        parts.append(verdict)
        texts.append(f"{_iv(value, iv)} (s={_fmt_s(s)})")
        values[_fmt_s(s)] = {"flattening": value, "interval": iv, "rises": rises}
        if rises:
            details.append(f"s={_fmt_s(s)}: K* rises beyond its uncertainty at B {', '.join(rises)}")
        elif verdict == INCONCLUSIVE:
            details.append(f"s={_fmt_s(s)}: interval straddles {need:g}; to decide: "
                           + _to_decide(value, iv, need, ctx.ev.n_seeds))
    return Verdict(_worst(parts), "flattening " + ("; ".join(texts) or "-"),
                   f"large-B slope - small-B slope > {need:g}, K* never rising",
                   "; ".join(details), {"bends": values, "statistic": "slope change"})


def _ratio_stats(ctx, s0, s1):
    """Per batch size: (ratio K*(s1)/K*(s0), interval, note) where decidable."""
    j0, j1 = ctx.ev.s_index(s0), ctx.ev.s_index(s1)
    rows = {}
    for i, b in enumerate(ctx.b):
        k0, k1 = ctx.est[j0, i], ctx.est[j1, i]
        if np.isfinite(k0) and np.isfinite(k1):
            value, iv = ctx.stat(lambda t: t[j1, i] / t[j0, i])
            rows[int(b)] = (value, iv, "")
        elif np.isfinite(k0) != np.isfinite(k1) and _ran(ctx, j0, i) and _ran(ctx, j1, i):
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


def _ran(ctx, j, i):
    """Every search of point (sparsity j, batch i) ran all its trials."""
    t = ctx.ev.trials[:, j, i]
    return bool((~np.isnan(t)).all(axis=1).any())


def _check_sparse_slower(ctx, tol):
    """K*(s_max)/K*(0): above min_ratio beyond uncertainty at every B (a B where dense missed the
    goal and sparse reached it counts against), and its geometric mean over B inside the paper's
    band with its interval."""
    s0, s_max = _dense_and_sparsest(ctx.sparsities)
    rows = _ratio_stats(ctx, s0, s_max)
    if not rows:
        raise _NotRun(f"no batch size has a measured K* at both s=0 and s={_fmt_s(s_max)}")
    floor = tol["min_ratio"]
    per_b = {b: decide(iv, (floor, math.inf), above=True) for b, (_, iv, _) in rows.items()}
    both = [b for b, (_, _, note) in rows.items() if not note]
    j0, j1 = ctx.ev.s_index(s0), ctx.ev.s_index(s_max)
    idx = np.isin(ctx.b, both)
    mean_fn = lambda t: float(np.exp(np.mean(np.log(t[j1, idx] / t[j0, idx])))) if idx.any() else math.nan  # noqa: E731
    mean, mean_iv = ctx.stat(mean_fn)
    parts = list(per_b.values())
    band = tol.get("paper_band")
    if band and idx.any():
        parts.append(decide(mean_iv, tuple(band)))
    status = _worst(parts)
    measured = (f"mean ratio {_iv(mean, mean_iv)} over B {both}; per B: " +
                ", ".join(f"{b}: {_iv(r, iv)}" + (f" ({note})" if note else "") for b, (r, iv, note) in rows.items()))
    details = []
    faster = [b for b, v in per_b.items() if v == FAIL]
    if faster:
        details.append(f"sparse not slower beyond uncertainty at B={faster}")
    if band and idx.any() and decide(mean_iv, tuple(band)) == FAIL:
        details.append(f"mean ratio outside the paper's {band[0]:g}-{band[1]:g} beyond its uncertainty")
    open_b = [b for b, v in per_b.items() if v == INCONCLUSIVE]
    if open_b:
        details.append(f"ratio interval straddles {floor:g} at B={open_b}; to decide: "
                       + _to_decide(rows[open_b[0]][0], rows[open_b[0]][1], floor, ctx.ev.n_seeds))
    if band and idx.any() and decide(mean_iv, tuple(band)) == INCONCLUSIVE and status != FAIL:
        edge = band[0] if mean_iv[0] < band[0] else band[1]
        details.append(f"mean ratio interval straddles the paper's {edge:g}; to decide: "
                       + _to_decide(mean, mean_iv, edge, ctx.ev.n_seeds))
    tolerance = f"ratio > {floor:g} at every B" + (f", mean in the paper's [{band[0]:g}, {band[1]:g}]" if band else "")
    return Verdict(status, measured, tolerance, "; ".join(details),
                   {"s_max": s_max, "ratios": {str(b): {"ratio": r, "interval": iv} for b, (r, iv, _) in rows.items()},
                    "mean_ratio": mean, "interval": mean_iv, "statistic": "K*(s_max)/K*(0)"},
                   paper=f"{band[0]:g}-{band[1]:g}x (Fig. 12)" if band else "")


def _check_sparse_ratio_band(ctx, tol):
    """K*(s_max)/K*(0) inside the paper's band at every B where both are measured."""
    lo, hi = tol["band"]
    s0, s_max = _dense_and_sparsest(ctx.sparsities)
    rows = {b: r for b, r in _ratio_stats(ctx, s0, s_max).items() if not r[2]}
    if not rows:
        raise _NotRun(f"no batch size has a measured K* at both s=0 and s={_fmt_s(s_max)}")
    per_b = {b: decide(iv, (lo, hi)) for b, (_, iv, _) in rows.items()}
    details = [f"outside the band beyond uncertainty at B={[b for b, v in per_b.items() if v == FAIL]}"] \
        if FAIL in per_b.values() else []
    if INCONCLUSIVE in per_b.values():
        details.append(f"interval straddles the band's edge at B={[b for b, v in per_b.items() if v == INCONCLUSIVE]}")
    return Verdict(_worst(list(per_b.values())),
                   "ratio " + ", ".join(f"{_iv(r, iv)} (B={b})" for b, (r, iv, _) in rows.items()),
                   f"K*(s={_fmt_s(s_max)})/K*(0) in [{lo:g}, {hi:g}] at every B", "; ".join(details),
                   {"s_max": s_max, "ratios": {str(b): {"ratio": r, "interval": iv} for b, (r, iv, _) in rows.items()}},
                   paper=f"{lo:g}-{hi:g}x (Fig. 12)")


def _fit_ratio(ctx, s_num, s_den, column, name):
    """Ratio of a fitted constant (column 0 c1, 2 B_crit) between two sparsities, with interval;
    _NotRun-free: returns (value, interval, why_not) where why_not explains an undefined ratio."""
    p_num, r_num = ctx.fit(s_num)
    p_den, r_den = ctx.fit(s_den)
    for s, p in ((s_num, p_num), (s_den, p_den)):
        if math.isnan(p["c1"]):
            return math.nan, (-math.inf, math.inf), (
                f"the Prop. 4.1 fit at s={_fmt_s(s)} needs {analysis.MIN_FIT_POINTS} batch sizes "
                f"with a K*, has {p['n_points']}")
    key = ("c1", "c2", "b_crit")[column]
    num, den = p_num[key], p_den[key]
    if not (den > 0 and math.isfinite(den)) or not math.isfinite(num):
        what = {"c1": "no linear-scaling term (c1 = 0)", "b_crit": "no plateau term on the grid (B_crit infinite)"}[key]
        bad = s_den if not (den > 0 and math.isfinite(den)) else s_num
        return math.nan, (-math.inf, math.inf), (
            f"the fit at s={_fmt_s(bad)} has {what}: batch sizes " +
            ("further below" if key == "c1" else "further above") + " the grid would decide")
    with np.errstate(divide="ignore", invalid="ignore"):
        reps = r_num[:, column] / r_den[:, column]
    reps = np.where(np.isfinite(reps) | np.isinf(reps), reps, np.nan)
    return num / den, evidence.interval(reps), ""


def _ratio_claim(ctx, tol, s_num, s_den, column, label):
    """Verdict for 'fitted <label>(s_num)/<label>(s_den) > min_ratio' with its interval."""
    floor = tol["min_ratio"]
    value, iv, why = _fit_ratio(ctx, s_num, s_den, column, label)
    if why:
        return INCONCLUSIVE, "-", why, value, iv
    status = decide(iv, (floor, math.inf), above=True)
    detail = ""
    if status == INCONCLUSIVE:
        detail = f"interval straddles {floor:g}; to decide: " + _to_decide(value, iv, floor, ctx.ev.n_seeds)
    return status, _iv(value, iv), detail, value, iv


def _check_sparse_c1_larger(ctx, tol):
    """c1 of the Prop. 4.1 fit at s_max over c1 dense: interval above min_ratio."""
    s0, s_max = _dense_and_sparsest(ctx.sparsities)
    status, text, detail, value, iv = _ratio_claim(ctx, tol, s_max, s0, 0, "c1")
    paper = f"~{tol['paper_value']:g} (App. C)" if "paper_value" in tol else ""
    return Verdict(status, f"c1 ratio {text}", f"c1(s={_fmt_s(s_max)})/c1(0) > {tol['min_ratio']:g}",
                   detail, {"s_max": s_max, "ratio": value, "interval": iv, "statistic": "c1 ratio",
                            "fit_dense": ctx.fit(s0)[0], "fit_sparse": ctx.fit(s_max)[0]}, paper=paper)


def _check_sparse_critical_batch_no_smaller(ctx, tol):
    """B_crit = c1/c2 of the Prop. 4.1 fit at s_max over dense's: not below min_ratio beyond
    uncertainty (FAIL when the interval lies below it)."""
    s0, s_max = _dense_and_sparsest(ctx.sparsities)
    floor = tol["min_ratio"]
    value, iv, why = _fit_ratio(ctx, s_max, s0, 2, "B_crit")
    crit = {_fmt_s(s): ctx.fit(s)[0]["b_crit"] for s in (s0, s_max)}
    if why:
        return Verdict(INCONCLUSIVE, "B_crit " + ", ".join(f"{_fmt(c, 0)} (s={s})" for s, c in crit.items()),
                       f"B_crit(s={_fmt_s(s_max)})/B_crit(0) >= {floor:g}", why, {"b_crit": crit})
    status = decide(iv, (floor, math.inf))
    detail = "" if status != INCONCLUSIVE else (
        f"interval straddles {floor:g}; to decide: " + _to_decide(value, iv, floor, ctx.ev.n_seeds))
    return Verdict(status, f"B_crit ratio {_iv(value, iv)}; B_crit " +
                   ", ".join(f"{_fmt(c, 0)} (s={s})" for s, c in crit.items()),
                   f"B_crit(s={_fmt_s(s_max)})/B_crit(0) >= {floor:g}", detail,
                   {"b_crit": crit, "ratio": value, "interval": iv, "statistic": "B_crit ratio"},
                   paper="no smaller (Fig. 1 col. 4; Momentum ~2^9 dense vs ~2^11 at 90 %)")


def _check_c1_increasing_with_sparsity(ctx, tol):
    """c1 rises from each sparsity to the next: every consecutive ratio's interval above min_ratio."""
    ss = sorted(ctx.sparsities)
    if len(ss) < 2:
        raise _NotRun("needs at least two sparsities")
    parts, texts, details, values = [], [], [], {}
    for a, b in zip(ss, ss[1:]):
        status, text, detail, value, iv = _ratio_claim(ctx, tol, b, a, 0, "c1")
        parts.append(status)
        texts.append(f"{_fmt_s(b)}/{_fmt_s(a)}: {text}")
        values[f"{_fmt_s(b)}/{_fmt_s(a)}"] = {"ratio": value, "interval": iv}
        if detail:
            details.append(f"{_fmt_s(b)}/{_fmt_s(a)}: {detail}")
    return Verdict(_worst(parts), "c1 ratio " + "; ".join(texts),
                   f"c1(next sparsity)/c1 > {tol['min_ratio']:g} at each step", "; ".join(details),
                   {"ratios": values, "statistic": "c1 ratio"})


def _check_momentum_beats_sgd(ctx, tol):
    """Fig. 2: K*(SGD)/K* at the largest common B and B_crit/B_crit(SGD) above their minima,
    each with an interval from both panels' replicates, at every sparsity both measured."""
    ref = str(tol["reference_panel"])
    if ctx.ds is None or ref not in [str(p) for p in ctx.ds.panel.values]:
        raise _NotRun(f"reference panel {ref!r} is not in the results")
    other = PanelContext(evidence.from_dataset(ctx.ds, ref))
    parts, texts, details, rows = [], [], [], []
    for s in ctx.sparsities:
        if s not in other.sparsities:
            continue
        j, jr = ctx.ev.s_index(s), other.ev.s_index(s)
        common = [i for i, b in enumerate(ctx.b) if np.isfinite(ctx.est[j, i]) and np.isfinite(other.est[jr, i])]
        if not common:
            continue
        i = common[-1]
        k_ratio = other.est[jr, i] / ctx.est[j, i]
        k_iv = evidence.interval(other.reps[:, jr, i] / ctx.reps[:, j, i])
        p, r = ctx.fit(s)
        pr, rr = other.fit(s)
        with np.errstate(divide="ignore", invalid="ignore"):
            c_ratio = p["b_crit"] / pr["b_crit"]
            c_iv = evidence.interval(r[:, 2] / rr[:, 2])
        st = [decide(k_iv, (tol["min_kstar_ratio"], math.inf), above=True),
              decide(c_iv, (tol["min_b_crit_ratio"], math.inf), above=True) if math.isfinite(c_ratio) else INCONCLUSIVE]
        parts.append(_worst(st))
        texts.append(f"s={_fmt_s(s)}: K*({ref})/K* {_iv(k_ratio, k_iv)} at B={int(ctx.b[i])}, "
                     f"B_crit x{_iv(c_ratio, c_iv)}")
        rows.append({"sparsity": s, "batch_size": int(ctx.b[i]), "kstar_ratio": k_ratio,
                     "kstar_interval": k_iv, "b_crit_ratio": c_ratio, "b_crit_interval": c_iv})
        if INCONCLUSIVE in st:
            details.append(f"s={_fmt_s(s)}: an interval straddles its minimum; more replicate seeds would decide")
    if not rows:
        raise _NotRun(f"no sparsity with K* measured on both this panel and panel {ref}")
    return Verdict(_worst(parts), "; ".join(texts),
                   f"K*({ref})/K* > {tol['min_kstar_ratio']:g} at the largest B and "
                   f"B_crit/B_crit({ref}) > {tol['min_b_crit_ratio']:g}", "; ".join(details), {"rows": rows})


def _best_lrs(ctx, rng, n_boot):
    """Per sparsity and B: the best trial's learning rate on the data and on resampled trials
    (seed 0's search: a replicate redraws its trials with replacement)."""
    lr = ctx.ev.hp["learning_rate"][0]
    vals = np.where(ctx.ev.capped[0], np.inf, ctx.ev.trials[0])
    n_t = vals.shape[-1]
    point = np.full(vals.shape[:2], np.nan)
    reps = np.full((n_boot,) + vals.shape[:2], np.nan)
    for j in range(vals.shape[0]):
        for i in range(vals.shape[1]):
            v = vals[j, i]
            if np.isnan(v).any() or not np.isfinite(v).any():
                continue
            point[j, i] = lr[j, i, int(np.argmin(v))]
            pick = rng.integers(0, n_t, (n_boot, n_t))
            drawn = v[pick]
            best = np.take_along_axis(pick, np.argmin(drawn, axis=1)[:, None], axis=1)[:, 0]
            reps[:, j, i] = np.where(np.isfinite(drawn.min(axis=1)), lr[j, i, best], np.nan)
    return point, reps


def _check_best_lr_nondecreasing(ctx, tol):
    """The best trial's learning rate does not fall as B grows (Fig. 3): for every sparsity the
    largest fall between consecutive measured B, lr(B)/lr(next B), is at most max_drop, with an
    interval from resampling each search's trials."""
    if "learning_rate" not in ctx.ev.hp:
        raise _NotRun("needs per-trial learning rates in the results")
    point, reps = _best_lrs(ctx, np.random.default_rng(0), evidence.N_BOOT)
    limit = tol["max_drop"]
    parts, texts, details, values = [], [], [], {}
    for j, s in enumerate(ctx.sparsities):
        idx = [i for i in range(len(ctx.b)) if np.isfinite(point[j, i])]
        if len(idx) < 2:
            parts.append(INCONCLUSIVE)
            details.append(f"s={_fmt_s(s)}: {len(idx)} batch sizes with a best trial; needs 2")
            continue
        worst = lambda lr: max(lr[a] / lr[b] for a, b in zip(idx, idx[1:]))  # noqa: E731
        value = worst(point[j])
        iv = evidence.interval([worst(r) for r in reps[:, j]])
        status = decide(iv, (0.0, limit))
        parts.append(status)
        texts.append(f"s={_fmt_s(s)}: " + ", ".join(f"{point[j, i]:.3g}" for i in idx) +
                     f" (largest fall x{_iv(value, iv)})")
        values[_fmt_s(s)] = {"best_lr": {str(int(ctx.b[i])): point[j, i] for i in idx},
                             "worst_drop": value, "interval": iv}
        if status == INCONCLUSIVE:
            details.append(f"s={_fmt_s(s)}: the best trial changes under resampling; more trials per point would decide")
    return Verdict(_worst(parts), "best lr " + "; ".join(texts),
                   f"lr(B)/lr(next B) <= {limit:g}", "; ".join(details),
                   {"best_lr": values, "statistic": "largest fall of the best lr"})


def _check_feasible_lr_range_shrinks(ctx, tol):
    """Fig. 5: the goal-reaching learning rates span fewer decades at s_max than dense, at every
    batch size where every trial ran: width(s_max) <= max_ratio x width(0), with an interval from
    resampling trials. No sparse trial reaching the goal is never a PASS."""
    s0, s_max = _dense_and_sparsest(ctx.sparsities)
    if "learning_rate" not in ctx.ev.hp:
        raise _NotRun("needs per-trial learning rates")
    lr = ctx.ev.hp["learning_rate"][0]
    ok_mask = np.isfinite(ctx.ev.trials[0]) & ~ctx.ev.capped[0]
    j0, j1 = ctx.ev.s_index(s0), ctx.ev.s_index(s_max)
    rng = np.random.default_rng(0)

    def width(lrs):
        return math.log10(lrs.max() / lrs.min()) if lrs.size else math.nan

    parts, texts, rows = [], [], []
    for i, b in enumerate(ctx.b):
        if np.isnan(ctx.ev.trials[0, [j0, j1], i]).any():
            continue  # every trial must have run: a landscape shows them all
        d, sp = lr[j0, i][ok_mask[j0, i]], lr[j1, i][ok_mask[j1, i]]
        if d.size < 2:
            continue
        if sp.size == 0:
            parts.append(INCONCLUSIVE)
            texts.append(f"B={int(b)}: dense {width(d):.2f} decades, sparse: no trial reached the goal")
            rows.append({"batch_size": int(b), "dense_decades": width(d), "sparse_decades": None})
            continue
        n = lr.shape[-1]
        reps = []
        for _ in range(evidence.N_BOOT):
            pick = rng.integers(0, n, n)
            wd = width(lr[j0, i][pick][ok_mask[j0, i][pick]])
            ws = width(lr[j1, i][pick][ok_mask[j1, i][pick]])
            ws = 0.0 if math.isnan(ws) else ws  # no sparse trial drawn reached the goal: width 0
            if math.isnan(wd) or (wd == 0 and ws == 0):
                reps.append(math.nan)
            else:
                reps.append(ws / wd if wd > 0 else math.inf)
        value = width(sp) / width(d)
        iv = evidence.interval(reps)
        parts.append(decide(iv, (-math.inf, tol["max_ratio"])))
        texts.append(f"B={int(b)}: width ratio {_iv(value, iv)}")
        rows.append({"batch_size": int(b), "dense_decades": width(d), "sparse_decades": width(sp),
                     "ratio": value, "interval": iv})
    if not rows:
        raise _NotRun("needs a batch size where every trial ran at s=0 and s_max and 2 dense trials completed")
    detail = "" if _worst(parts) != INCONCLUSIVE else \
        "a sparse search with no goal-reaching trial, or an interval across the limit: more trials per point would decide"
    return Verdict(_worst(parts), "goal-reaching lr " + "; ".join(texts),
                   f"width(s={_fmt_s(s_max)})/width(0) < {tol['max_ratio']:g}, in decades of learning rate",
                   detail, {"rows": rows})


# --------------------------------------------------------------------------- smoothness runs

def _smooth_sparsities(ds, panel):
    return [float(s) for s in ds.sparsity.values
            if str(ds["status"].sel(panel=panel, sparsity=s).values) == "complete"]


def _samples(ds, panel, s, name):
    v = ds[name].sel(panel=panel, sparsity=s).values.astype(float)
    return v[np.isfinite(v)]


def _mean_ratio_interval(a, b, rng, n_boot=evidence.N_BOOT):
    """mean(a)/mean(b) with a percentile interval from resampling each sample set."""
    if a.size < 2 or b.size < 2:
        return float(a.mean() / b.mean()), (-math.inf, math.inf)
    ra = a[rng.integers(0, a.size, (n_boot, a.size))].mean(axis=1)
    rb = b[rng.integers(0, b.size, (n_boot, b.size))].mean(axis=1)
    return float(a.mean() / b.mean()), evidence.interval(ra / rb)


def _check_lipschitz_increasing(ctx, tol):
    """Fig. 4: the mean local Lipschitz constant over training grows with sparsity: L(s_max)/L(0)
    above min_ratio (and, with monotone, every step), with an interval from resampling the
    measured steps of each run (consecutive steps are correlated: the interval is a lower bound
    of the spread; replicate runs would measure it in full)."""
    ds, panel = ctx.ds, ctx.panel
    sparsities = _smooth_sparsities(ds, panel)
    s0, s_max = _dense_and_sparsest(sparsities)
    ss = sorted(sparsities)
    rng = np.random.default_rng(0)
    pairs = list(zip(ss, ss[1:])) if tol.get("monotone") else [(s0, s_max)]
    parts, texts, values = [], [], {}
    for a, b in pairs:
        value, iv = _mean_ratio_interval(_samples(ds, panel, b, "lipschitz"), _samples(ds, panel, a, "lipschitz"), rng)
        parts.append(decide(iv, (tol["min_ratio"], math.inf), above=True))
        texts.append(f"L({_fmt_s(b)})/L({_fmt_s(a)}) {_iv(value, iv)}")
        values[f"{_fmt_s(b)}/{_fmt_s(a)}"] = {"ratio": value, "interval": iv}
    mean_l = {_fmt_s(s): float(_samples(ds, panel, s, "lipschitz").mean()) for s in ss}
    paper = tol.get("paper_values")
    return Verdict(_worst(parts), "mean L " + ", ".join(f"{v:.3g} (s={s})" for s, v in mean_l.items()) +
                   "; " + "; ".join(texts),
                   f"L(s_max)/L(0) > {tol['min_ratio']:g}" + (" at every step in sparsity" if tol.get("monotone") else ""),
                   "" if _worst(parts) != INCONCLUSIVE else "interval across the limit: longer runs (more measured steps) or replicate runs would decide",
                   {"mean_lipschitz": mean_l, "ratios": values, "statistic": "mean L ratio"},
                   paper=("s = 0/0.5/0.7/0.9: " + " / ".join(map(str, paper)) + " (Fig. 4)") if paper else "")


def _reference(tol, results_dir):
    """(dataset, panel) of `reference = "figure-N:panel"`, read from the results folder."""
    from . import store
    ref = tol.get("reference", "")
    if ":" not in ref:
        raise _NotRun(f"golden reference {ref!r} is not 'figure-N:panel'")
    fig, panel = ref.split(":", 1)
    path = pathlib.Path(results_dir or "results") / f"{fig}.nc"
    if not path.exists():
        raise _NotRun(f"needs {path} (run: python -m repro run specs/{fig}.toml)")
    ds = store.open_results(path)
    if panel not in [str(p) for p in ds.panel.values]:
        raise _NotRun(f"{path} has no panel {panel}")
    return ds, panel


def _check_c1_decomposition(ctx, tol):
    """App. C: c1 = Delta L beta / (mu^2 eps^2): the ratios (s_max over dense) of Delta, beta and
    mean L predict the c1 ratio, which must exceed min_predicted_ratio beyond the interval of L's
    ratio (Delta and beta are one number per run: no interval), with L's ratio the largest factor.
    The fitted c1 ratio of the `reference` study is shown beside it."""
    ds, panel = ctx.ds, ctx.panel
    s0, s_max = _dense_and_sparsest(_smooth_sparsities(ds, panel))
    r = {name: float(ds[name].sel(panel=panel, sparsity=s_max) / ds[name].sel(panel=panel, sparsity=s0))
         for name in ("delta", "beta")}
    l_ratio, l_iv = _mean_ratio_interval(_samples(ds, panel, s_max, "lipschitz"),
                                         _samples(ds, panel, s0, "lipschitz"), np.random.default_rng(0))
    r["lipschitz"] = l_ratio
    k = r["delta"] * r["beta"]
    predicted, p_iv = k * l_ratio, (k * l_iv[0], k * l_iv[1])
    try:
        ref_ds, ref_panel = _reference(tol, ctx.results_dir)
        ref_ctx = PanelContext(evidence.from_dataset(ref_ds, ref_panel))
        _, fitted_text, _, fitted, _ = _ratio_claim(ref_ctx, {"min_ratio": 1.0}, s_max, s0, 0, "c1")
        note = f"fitted c1 ratio of {tol['reference']}: {fitted_text}"
    except (_NotRun, KeyError, ValueError) as why:
        fitted, note = math.nan, f"fitted c1 ratio not available: {why}"
    parts = [decide(p_iv, (tol["min_predicted_ratio"], math.inf), above=True),
             decide(l_iv, (max(r["delta"], r["beta"]), math.inf), above=True)]
    paper = tol.get("paper_ratios")
    return Verdict(_worst(parts), f"Delta x{r['delta']:.2f}, beta x{r['beta']:.2f}, L x{_iv(l_ratio, l_iv)} -> "
                   f"predicted c1 x{_iv(predicted, p_iv)}; {note}",
                   f"predicted c1(s_max)/c1(0) > {tol['min_predicted_ratio']:g} and L's ratio the largest factor",
                   "" if _worst(parts) != INCONCLUSIVE else "an interval across its limit: longer runs or replicate runs would decide",
                   {"ratios": r, "predicted_c1_ratio": predicted, "interval": p_iv, "fitted_c1_ratio": fitted},
                   paper=("App. C: " + ", ".join(f"{a} x{b}" for a, b in paper.items())) if paper else "")


def _check_noise_scale_vs_critical_batch(ctx, tol):
    """McCandlish et al. (2018): the simple noise scale B_simple (mean over the measured steps)
    predicts the critical batch size: B_crit (fitted, `reference` study) / B_simple within a
    factor max_factor either way, beyond the intervals of both, at each sparsity both have."""
    ds, panel = ctx.ds, ctx.panel
    ref_ds, ref_panel = _reference(tol, ctx.results_dir)
    ref_ctx = PanelContext(evidence.from_dataset(ref_ds, ref_panel))
    rng = np.random.default_rng(0)
    f = tol["max_factor"]
    parts, rows = [], []
    for s in _smooth_sparsities(ds, panel):
        if s not in ref_ctx.sparsities:
            continue
        point, reps = ref_ctx.fit(s)
        if not math.isfinite(point["b_crit"]):
            continue
        noise = _samples(ds, panel, s, "noise_scale")
        b_simple = float(noise.mean())
        ns = noise[rng.integers(0, noise.size, (len(reps), noise.size))].mean(axis=1)
        iv = evidence.interval(reps[:, 2] / ns)
        value = point["b_crit"] / b_simple
        parts.append(decide(iv, (1 / f, f)))
        rows.append({"sparsity": s, "b_simple": b_simple, "b_crit": point["b_crit"], "ratio": value, "interval": iv})
    if not rows:
        raise _NotRun(f"no sparsity with a finite fitted B_crit measured here and in {tol['reference']}")
    return Verdict(_worst(parts), "; ".join(f"s={_fmt_s(r['sparsity'])}: B_simple {r['b_simple']:.3g} vs B_crit "
                                            f"{r['b_crit']:.3g} (x{_iv(r['ratio'], r['interval'])})" for r in rows),
                   f"B_crit({tol['reference']}) / B_simple within [1/{f:g}, {f:g}]",
                   "" if _worst(parts) != INCONCLUSIVE else "an interval across the factor: replicate seeds of the reference study would decide",
                   {"rows": rows})


def _check_sparse_loss_higher(ctx, tol):
    """Fig. 6: the sparsest network ends its run at a higher training loss than the dense one:
    the mean training loss over the last quarter of the measured steps, s_max over dense, above
    min_ratio with an interval from resampling those steps."""
    ds, panel = ctx.ds, ctx.panel
    s0, s_max = _dense_and_sparsest(_smooth_sparsities(ds, panel))

    def tail(s):
        v = _samples(ds, panel, s, "train_loss")
        return v[-max(2, v.size // 4):]
    value, iv = _mean_ratio_interval(tail(s_max), tail(s0), np.random.default_rng(0))
    status = decide(iv, (tol["min_ratio"], math.inf), above=True)
    loss = {_fmt_s(s): float(ds["final_loss"].sel(panel=panel, sparsity=s)) for s in (s0, s_max)}
    return Verdict(status, "final training loss " + ", ".join(f"{v:.4f} (s={s})" for s, v in loss.items()) +
                   f"; last-quarter mean ratio {_iv(value, iv)}",
                   f"f(s={_fmt_s(s_max)})/f(0) > {tol['min_ratio']:g} over the last quarter of the run",
                   "" if status != INCONCLUSIVE else "interval across the limit: longer runs or replicate runs would decide",
                   {"final_loss": loss, "ratio": value, "interval": iv})


# The claim names are defined once, in repro.spec (a spec's `claims` list is checked against
# them); each has its check here.
CLAIMS = {name: globals()[f"_check_{name}"] for name in spec_mod.CLAIMS}
SMOOTHNESS_CLAIMS = ("lipschitz_increasing", "c1_decomposition", "noise_scale_vs_critical_batch",
                     "sparse_loss_higher")
# Claims a K* table alone can decide (``verify --table``): no per-trial metaparameters,
# no smoothness runs, no second panel.
TABLE_CLAIMS = ("linear_scaling", "plateau", "diminishing_returns", "sparse_slower", "sparse_c1_larger",
                "sparse_ratio_band", "sparse_critical_batch_no_smaller", "c1_increasing_with_sparsity")


# --------------------------------------------------------------------------- running claims

def not_run(figure_id, panel_id, claim, why, tolerance=""):
    """A NOT-RUN result."""
    return ClaimResult(figure_id, str(panel_id), claim, NOT_RUN, "-", tolerance or "-", why)


def _searched_without_result(ds, panel_id):
    """Study points of a panel whose trials all ran and none reached the goal, as text
    ('B=128 s=0.9 (12 trials)'), and whether some point of the panel has not run at all."""
    if not {"status", "eval_step", "steps_to_result"} <= set(ds) or panel_id not in list(ds["panel"].values):
        return "", True
    status = ds["status"].sel(panel=panel_id)
    in_grid = ds["eval_step"].sel(panel=panel_id).isel(eval=0) >= 0
    ran = (status > 0).sum("trial")
    k = ds["steps_to_result"].sel(panel=panel_id)
    points, missing = [], False
    for s in ds["sparsity"].values:
        if not bool((ran.sel(sparsity=s) > 0).any()):
            continue  # a sparsity this panel does not have (or has not started)
        for b in ds["batch_size"].values:
            if not bool(in_grid.sel(batch_size=b)):
                continue
            n = int(ran.sel(sparsity=s, batch_size=b))
            if n == 0:
                missing = True
            elif np.isnan(float(k.sel(sparsity=s, batch_size=b))) and \
                    not bool((status.sel(sparsity=s, batch_size=b) == 1).any()):
                points.append(f"B={int(b)} s={_fmt_s(s)} ({n} trials)")
    return ", ".join(points), missing


def _run_hint(ds, figure_id, panel_id):
    """What to run to get results for a panel (mentions fetching its dataset when known); where
    trials ran and none reached the goal, says so, since running again would train nothing."""
    unreached, missing = _searched_without_result(ds, panel_id)
    if unreached and not missing:
        return (f"measured: no trial reached the goal at {unreached} within the step budget "
                f"(a larger max_steps or max_examples, or more trials, in the spec's grid could)")
    grid = ds.attrs.get("grid", "reduced")
    hint = f"run: python -m repro run {ds.attrs.get('spec_path', f'specs/{figure_id}.toml')}" + \
        ("" if grid == "reduced" else f" --grid {grid}") + f" --panel {panel_id}" + \
        (f" --goal {ds.attrs['goal']}" if ds.attrs.get("goal") else "")
    if "dataset" in ds and "panel" in ds.coords and panel_id in list(ds["panel"].values):
        name = str(ds["dataset"].sel(panel=panel_id).values)
        hint += f" (if its data is missing: python -m repro data fetch {name})"
    if unreached:
        hint = f"measured: no trial reached the goal at {unreached}; " + hint
    return hint


def _panel_missing_reason(ds, figure_id, panel_id):
    """Why a panel cannot be checked at all, or None if it has some K* (or smoothness run)."""
    if "panel" not in ds.coords or panel_id not in list(ds["panel"].values):
        return f"panel {panel_id} is not in the results; " + _run_hint(ds, figure_id, panel_id)
    if ds.attrs.get("kind") == "smoothness":
        return None if _smooth_sparsities(ds, panel_id) else \
            f"panel {panel_id} has no finished smoothness run; " + _run_hint(ds, figure_id, panel_id)
    if not bool(analysis.steps_to_result(ds, panel_id).notnull().any()):
        return f"panel {panel_id} has no measured K* (not run, or no trial reached the goal); " + \
            _run_hint(ds, figure_id, panel_id)
    return None


def _result(figure_id, panel_id, claim, tol, v: Verdict, ctx) -> ClaimResult:
    """A check's Verdict as a ClaimResult, with the tolerance, paper number and uncertainty."""
    values = {**v.values, "tolerance": {key: x for key, x in tol.items() if key not in ("source", "why")},
              "uncertainty": ctx.uncertainty() if ctx is not None else ""}
    return ClaimResult(figure_id, str(panel_id), claim, v.status, v.measured, v.tolerance,
                       detail=v.detail, values=values, paper=v.paper, source=tol.get("source", ""))


def check_one(ds, figure_id, panel_id, claim, golden, results_dir=None, ctx=None) -> ClaimResult:
    """Check a single claim on a panel that has some measured K* (or smoothness runs);
    `results_dir` holds the results a claim with a `reference` reads."""
    if claim not in CLAIMS:
        return not_run(figure_id, panel_id, claim, f"claim {claim!r} is not implemented in repro.claims")
    tol = tolerance_for(golden, panel_id, claim)
    if tol is None:
        return not_run(figure_id, panel_id, claim,
                        f"no tolerance for {claim!r}; add a [{claim}] table to golden/{figure_id}.toml")
    smooth = ds.attrs.get("kind") == "smoothness"
    if smooth != (claim in SMOOTHNESS_CLAIMS):
        return not_run(figure_id, panel_id, claim, f"claim {claim!r} reads " +
                       ("smoothness runs" if claim in SMOOTHNESS_CLAIMS else "K*(B) of a search") +
                       f"; figure {figure_id} has none")
    if ctx is None:
        ev = None if smooth else evidence.from_dataset(ds, panel_id)
        ctx = PanelContext(ev, ds=ds, panel=panel_id, results_dir=results_dir)
    try:
        verdict = CLAIMS[claim](ctx, tol)
    except _NotRun as why:
        return not_run(figure_id, panel_id, claim, f"{why}; " + _run_hint(ds, figure_id, panel_id))
    if not smooth:
        verdict = _no_uncertainty(ctx, verdict)
    return _result(figure_id, panel_id, claim, tol, verdict, None if smooth else ctx)


def check_panel(ds, figure_id, panel_id, claims, golden, results_dir=None) -> list:
    """Check the named claims on one panel; a panel with no data gives NOT-RUN for each."""
    missing = _panel_missing_reason(ds, figure_id, panel_id)
    if missing:
        return [not_run(figure_id, panel_id, c, missing) for c in claims]
    ctx = None
    if ds.attrs.get("kind") != "smoothness":  # one set of replicates for all the panel's claims
        ctx = PanelContext(evidence.from_dataset(ds, panel_id), ds=ds, panel=panel_id, results_dir=results_dir)
    return [check_one(ds, figure_id, panel_id, c, golden, results_dir, ctx=ctx) for c in claims]


def verify_dataset(ds, figure_id, panels, golden, results_dir=None) -> list:
    """Check every panel's claims: ``panels`` maps panel id -> list of claim names (from the spec);
    claims with a golden `reference` read other figures' results from `results_dir`."""
    results = []
    for panel_id, claims in panels.items():
        results.extend(check_panel(ds, figure_id, panel_id, claims, golden, results_dir))
    return results


def verify_table(rows, claims, golden, *, panel="table", figure="table") -> list:
    """The named claims on a K* table (``read_table`` rows), with `golden`'s tolerances for
    `panel` (its panel overrides apply when `panel` names one)."""
    ev = evidence.from_rows(rows)
    ctx = PanelContext(ev)
    out = []
    for claim in claims:
        if claim not in TABLE_CLAIMS:
            raise UsageError("--claims", claim, "cannot be checked on a K* table",
                             f"choose from: {', '.join(TABLE_CLAIMS)}")
        tol = tolerance_for(golden, panel, claim)
        if tol is None:
            raise UsageError("--golden", claim, "no tolerance for this claim in the golden file",
                             f"add a [{claim}] table, or pass --golden golden/figure-1.toml")
        try:
            verdict = _no_uncertainty(ctx, CLAIMS[claim](ctx, tol))
        except _NotRun as why:
            out.append(not_run(figure, panel, claim, str(why)))
            continue
        out.append(_result(figure, panel, claim, tol, verdict, ctx))
    return out


TABLE_COLUMNS = ("batch_size", "sparsity", "steps_to_result")


def read_table(path) -> list:
    """Rows of a K* table CSV: columns batch_size, sparsity, steps_to_result (empty or nan: the
    goal was not reached), optional seed and trial. Raises UsageError naming the file, row and column."""
    import csv
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            missing = [c for c in TABLE_COLUMNS if c not in header]
            if missing:
                raise UsageError(path, missing[0], "missing column",
                                 f"the header must name {', '.join(TABLE_COLUMNS)} (optional: seed, trial)")
            rows = []
            for n, raw in enumerate(reader, start=2):
                raw = {k.strip(): (v or "").strip() for k, v in raw.items() if k}
                row = {}
                for col in header:
                    if col not in (*TABLE_COLUMNS, "seed", "trial"):
                        continue
                    text = raw.get(col, "")
                    try:
                        if col == "steps_to_result":
                            row[col] = math.nan if text in ("", "nan", "NaN") else float(text)
                        elif col in ("batch_size", "seed", "trial"):
                            row[col] = int(text)
                        else:
                            row[col] = float(text)
                    except ValueError:
                        raise UsageError(path, f"line {n}, {col}", f"not a number: {text!r}",
                                         "write a number (steps_to_result may be empty: goal not reached)") from None
                if row["batch_size"] <= 0 or not 0.0 <= row["sparsity"] < 1.0 or \
                        (math.isfinite(row["steps_to_result"]) and row["steps_to_result"] <= 0):
                    raise UsageError(path, f"line {n}", "batch_size must be > 0, sparsity in [0, 1), "
                                     "steps_to_result > 0", "fix the row")
                rows.append(row)
    except FileNotFoundError:
        raise UsageError(path, "", "table not found", "give the path of a CSV file") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise UsageError(path, "", f"not a CSV table ({e})", "write it as comma-separated text") from None
    if not rows:
        raise UsageError(path, "", "the table has no rows", "add one row per study point (or trial)")
    keys = [(r["batch_size"], r["sparsity"], r.get("seed", 0), r.get("trial", 0)) for r in rows]
    if len(set(keys)) != len(keys):
        raise UsageError(path, "", "a (batch_size, sparsity, seed, trial) appears twice",
                         "one row per study point, seed and trial")
    return rows


def exit_code(results, strict=False) -> int:
    """1 when any claim FAILs (or, with strict, is INCONCLUSIVE); 0 otherwise."""
    bad = (FAIL, INCONCLUSIVE) if strict else (FAIL,)
    return 1 if any(r.status in bad for r in results) else 0


# --------------------------------------------------------------------------- reporting

_COLUMNS = ("figure", "panel", "claim", "status", "measured", "tolerance")


def format_table(results) -> str:
    """Fixed-width text table, one row per claim; any detail on an indented line below it."""
    rows = [[str(getattr(r, c)) for c in _COLUMNS] for r in results]
    widths = [max([len(c)] + [len(row[i]) for row in rows]) for i, c in enumerate(_COLUMNS)]
    line = lambda cells: "  ".join(cell.ljust(w) for cell, w in zip(cells, widths)).rstrip()  # noqa: E731
    out = [line([c.upper() for c in _COLUMNS]), line(["-" * w for w in widths])]
    for r, row in zip(results, rows):
        out.append(line(row))
        if r.paper:
            out.append("    paper: " + r.paper)
        if r.detail:
            out.append("    " + r.detail)
    counts = {s: sum(r.status == s for r in results) for s in VERDICTS}
    out.append(f"{counts[PASS]} passed, {counts[FAIL]} failed, {counts[INCONCLUSIVE]} inconclusive, "
               f"{counts[NOT_RUN]} not run")
    out.append("(intervals: 95 % percentile intervals over resampled evaluation steps, trials and seeds; "
               "see specs/README.md)")
    return "\n".join(out)


def _jsonable(x):
    """Make values strict-JSON safe: NaN -> null, inf -> "inf", numpy scalars -> Python."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, float) and math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def to_json(results) -> str:
    """The results as a JSON list of objects (strict JSON: no NaN or Infinity)."""
    return json.dumps([_jsonable(asdict(r)) for r in results], indent=2, allow_nan=False)


def to_junit(results) -> bytes:
    """JUnit XML: one <testsuite> per figure, one <testcase> per (panel, claim).

    FAIL is a <failure>, INCONCLUSIVE and NOT-RUN a <skipped> with the reason (never a pass), each with the measured value,
    the tolerance and the detail, so a CI system shows every claim as its own test.
    """
    import xml.etree.ElementTree as ET
    root = ET.Element("testsuites", name="repro verify")
    for fig in dict.fromkeys(r.figure for r in results):
        rs = [r for r in results if r.figure == fig]
        suite = ET.SubElement(root, "testsuite", name=fig, tests=str(len(rs)),
                              failures=str(sum(r.status == FAIL for r in rs)),
                              skipped=str(sum(r.status in (NOT_RUN, INCONCLUSIVE) for r in rs)), errors="0")
        for r in rs:
            case = ET.SubElement(suite, "testcase", classname=f"{fig}.panel_{r.panel}", name=r.claim)
            text = f"measured {r.measured}; tolerance {r.tolerance}" + (f"; {r.detail}" if r.detail else "")
            if r.status == FAIL:
                ET.SubElement(case, "failure", message=text).text = text
            elif r.status in (NOT_RUN, INCONCLUSIVE):
                ET.SubElement(case, "skipped", message=f"{r.status}: {text}")
            else:
                ET.SubElement(case, "system-out").text = text
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
