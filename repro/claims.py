"""Named claim checks on a results dataset, with tolerances from a golden TOML file.

A golden file (``golden/<figure>.toml``, described in ``golden/README.md``) has one table per
claim holding its tolerance numbers plus ``source`` (where in the paper the number comes from)
and ``why`` (why the tolerance is that wide). ``[panel.<id>.<claim>]`` tables override keys of
a claim for one panel.

Every claim gives PASS, FAIL or NOT-RUN. NOT-RUN (missing panel, missing sparsity or batch
sizes, no tolerance, claim not implemented) never counts as a pass or a failure; its
``detail`` says why and what to run.
"""
import difflib

import json
import math
import pathlib
import tomllib
from dataclasses import asdict, dataclass, field

import numpy as np

from repro import analysis
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
    "linear_scaling": {"points": (int, True), "slope_min": (_NUMBER, True), "slope_max": (_NUMBER, True)},
    "plateau": {"points": (int, True), "slope_min": (_NUMBER, True)},
    "sparse_slower": {"min_ratio": (_NUMBER, True), "strict": (bool, False), "paper_band": (list, False)},
    "sparse_c1_larger": {"min_ratio": (_NUMBER, True), "strict": (bool, False), "paper_value": (_NUMBER, False)},
    "diminishing_returns": {"min_flattening": (_NUMBER, True)},
    "sparse_ratio_band": {"band": (list, True)},
    "sparse_critical_batch_no_smaller": {"factor": (_NUMBER, True), "min_ratio": (_NUMBER, True)},
    "c1_increasing_with_sparsity": {"min_ratio": (_NUMBER, True), "strict": (bool, False)},
    "best_lr_nondecreasing": {"max_drop": (_NUMBER, True)},
    "momentum_beats_sgd": {"reference_panel": (str, True), "min_kstar_ratio": (_NUMBER, True),
                           "min_b_crit_ratio": (_NUMBER, True)},
    "best_inside_range": {"edge_fraction": (_NUMBER, True)},
    "feasible_lr_range_shrinks": {"max_ratio": (_NUMBER, True)},
    "lipschitz_increasing": {"min_ratio": (_NUMBER, True), "strict": (bool, False),
                             "monotone": (bool, False), "paper_values": (list, False)},
    "c1_decomposition": {"min_predicted_ratio": (_NUMBER, True), "reference": (str, False),
                         "paper_ratios": (dict, False)},
    "noise_scale_vs_critical_batch": {"max_factor": (_NUMBER, True), "reference": (str, True)},
    "sparse_loss_higher": {"min_ratio": (_NUMBER, True), "strict": (bool, False)},
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
    known = {"source", "why", "not_shown_on", "not_shown_why", *GOLDEN_SCHEMA.get(claim, {})}
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
    if "points" in entry and entry["points"] < 2:
        raise UsageError(path, f"{key}.points", "must be >= 2 (a slope needs two points)", "use points = 2 or more")
    if claim == "linear_scaling" and "slope_min" in entry and "slope_max" in entry:
        if entry["slope_min"] > entry["slope_max"]:
            raise UsageError(path, f"{key}.slope_min", "is larger than slope_max", "swap them")
    shown = entry.get("not_shown_on")
    if shown is not None and not (isinstance(shown, list) and all(isinstance(g, str) for g in shown)):
        raise UsageError(path, f"{key}.not_shown_on", "must be a list of grid names", 'write not_shown_on = ["reduced"]')
    if shown and not isinstance(entry.get("not_shown_why"), str):
        raise UsageError(path, f"{key}.not_shown_why", "missing: say why the grid cannot show the claim, with the measured numbers",
                         'add not_shown_why = "..."')
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
        return "inf"
    return f"{x:.{digits}f}"


def _panel_sparsities(ds, panel_id, k):
    """Sparsities that belong to the panel: any measured K*, or any trial run (status != 0)."""
    measured = k.notnull().any("batch_size").values
    ran = np.zeros_like(measured)
    if "status" in ds:
        st = ds["status"].sel(panel=panel_id).transpose("sparsity", "batch_size", "trial")
        ran = (st.fillna(0) != 0).any(("batch_size", "trial")).values
    return [float(s) for s, keep in zip(k["sparsity"].values, measured | ran) if keep]


def _measured_curve(k, s):
    """(B, K*) arrays of the measured points at sparsity s, sorted by B."""
    row = k.sel(sparsity=s)
    b = row["batch_size"].values.astype(float)
    v = row.values.astype(float)
    keep = np.isfinite(v)
    order = np.argsort(b[keep])
    return b[keep][order], v[keep][order]


class _NotRun(Exception):
    """Raised inside a claim check when the data cannot decide it."""


# --------------------------------------------------------------------------- claims

def _slope_claim(k, sparsities, tol, largest):
    """Per-sparsity log2-log2 slope over the `points` smallest (or largest) measured B."""
    n = tol["points"]
    slopes, short = {}, []
    for s in sparsities:
        b, v = _measured_curve(k, s)
        if b.size < n:
            short.append(f"s={_fmt_s(s)} has {b.size} measured batch sizes")
            continue
        b, v = (b[-n:], v[-n:]) if largest else (b[:n], v[:n])
        slopes[_fmt_s(s)] = {"slope": analysis.loglog_slope(b, v), "batch_sizes": [int(x) for x in b]}
    if short:
        raise _NotRun(f"needs {n} batch sizes with a measured K* per sparsity; " + "; ".join(short))
    return slopes


def _check_linear_scaling(k, sparsities, tol, **_):
    """Slope over the smallest B within [slope_min, slope_max] for every sparsity."""
    lo, hi = tol["slope_min"], tol["slope_max"]
    tolerance = f"slope in [{lo:g}, {hi:g}] over the {tol['points']} smallest B"
    slopes = _slope_claim(k, sparsities, tol, largest=False)
    ok = all(lo <= d["slope"] <= hi for d in slopes.values())
    measured = ", ".join(f"{_fmt(d['slope'])} (s={s})" for s, d in slopes.items())
    return ok, "slope " + measured, tolerance, {"slopes": slopes}


def _check_plateau(k, sparsities, tol, **_):
    """Slope over the largest B at least slope_min for every sparsity."""
    lo = tol["slope_min"]
    tolerance = f"slope >= {lo:g} over the {tol['points']} largest B"
    slopes = _slope_claim(k, sparsities, tol, largest=True)
    ok = all(d["slope"] >= lo for d in slopes.values())
    measured = ", ".join(f"{_fmt(d['slope'])} (s={s})" for s, d in slopes.items())
    return ok, "slope " + measured, tolerance, {"slopes": slopes}


def _dense_and_sparsest(sparsities):
    """(0.0, s_max) from the panel's sparsities, or _NotRun."""
    if 0.0 not in sparsities:
        raise _NotRun("needs the dense network (s=0) in the data")
    s_max = max(sparsities)
    if s_max <= 0.0:
        raise _NotRun("needs a sparsity above 0 in the data")
    return 0.0, s_max


def _ratio_ok(ratio, tol):
    """ratio > min_ratio when strict, else ratio >= min_ratio."""
    return ratio > tol["min_ratio"] if tol.get("strict", False) else ratio >= tol["min_ratio"]


def _ratio_text(tol):
    """'> 1' or '>= 1.2'."""
    return f"{'>' if tol.get('strict', False) else '>='} {tol['min_ratio']:g}"


def _sparse_ratios(k, sparsities):
    """(s_max, {B: K*(s_max)/K*(0)}) over the batch sizes where both are measured."""
    s0, s_max = _dense_and_sparsest(sparsities)
    dense, sparse = k.sel(sparsity=s0), k.sel(sparsity=s_max)
    both = dense.notnull() & sparse.notnull()
    if not bool(both.any()):
        raise _NotRun(f"no batch size has a measured K* at both s=0 and s={_fmt_s(s_max)}")
    return s_max, {int(b): float(sparse.sel(batch_size=b) / dense.sel(batch_size=b))
                   for b in k["batch_size"].values[both.values]}


def _check_sparse_slower(k, sparsities, tol, **_):
    """K*(s_max)/K*(0) above min_ratio at every B where both are measured."""
    s_max, ratios = _sparse_ratios(k, sparsities)
    ok = all(_ratio_ok(r, tol) for r in ratios.values())
    tolerance = f"K*(s={_fmt_s(s_max)})/K*(s=0) {_ratio_text(tol)} at every B"
    if "paper_band" in tol:
        tolerance += f" (paper: {tol['paper_band'][0]:g}-{tol['paper_band'][1]:g})"
    b_min = min(ratios, key=ratios.get)
    measured = f"ratio {_fmt(min(ratios.values()))}..{_fmt(max(ratios.values()))} (min at B={b_min})"
    bad = [b for b, r in ratios.items() if not _ratio_ok(r, tol)]
    if bad:
        measured += "; too low at B=" + ",".join(str(b) for b in bad)
    values = {"s_max": s_max, "ratios": {str(b): r for b, r in ratios.items()},
              "detail": "ratio per B: " + ", ".join(f"{b}:{_fmt(r)}" for b, r in ratios.items())}
    return ok, measured, tolerance, values


def _check_sparse_c1_larger(k, sparsities, tol, **_):
    """c1 of the Prop. 4.1 fit at s_max over c1 at s=0 above min_ratio."""
    s0, s_max = _dense_and_sparsest(sparsities)
    b = k["batch_size"].values
    fit0 = analysis.fit_prop41(b, k.sel(sparsity=s0).values)
    fit1 = analysis.fit_prop41(b, k.sel(sparsity=s_max).values)
    for s, f in ((s0, fit0), (s_max, fit1)):
        if math.isnan(f["c1"]):
            raise _NotRun(f"the fit needs {analysis.MIN_FIT_POINTS} measured batch sizes; "
                          f"s={_fmt_s(s)} has {f['n_points']}")
    ratio = fit1["c1"] / fit0["c1"] if fit0["c1"] > 0 else math.inf
    tolerance = f"c1(s={_fmt_s(s_max)})/c1(s=0) {_ratio_text(tol)}"
    if "paper_value" in tol:
        tolerance += f" (paper App. C: ~{tol['paper_value']:g})"
    measured = f"ratio {_fmt(ratio)} (c1 {fit1['c1']:.4g} vs {fit0['c1']:.4g})"
    values = {"s_max": s_max, "ratio": ratio, "fit_dense": fit0, "fit_sparse": fit1}
    return _ratio_ok(ratio, tol), measured, tolerance, values


def _check_diminishing_returns(k, sparsities, tol, **_):
    """The curve bends: slope over the 2 largest B exceeds slope over the 2 smallest by min_flattening."""
    need = tol["min_flattening"]
    bends = {}
    for s in sparsities:
        b, v = _measured_curve(k, s)
        if b.size < 3:
            raise _NotRun(f"needs 3 batch sizes with a measured K* per sparsity; s={_fmt_s(s)} has {b.size}")
        small, large = analysis.loglog_slope(b[:2], v[:2]), analysis.loglog_slope(b[-2:], v[-2:])
        bends[_fmt_s(s)] = {"small_b_slope": small, "large_b_slope": large, "flattening": large - small}
    ok = all(d["flattening"] >= need for d in bends.values())
    measured = ", ".join(f"{_fmt(d['small_b_slope'])} -> {_fmt(d['large_b_slope'])} (s={s})"
                         for s, d in bends.items())
    return ok, "slope " + measured, f"large-B slope - small-B slope >= {need:g}", {"bends": bends}


def _check_sparse_ratio_band(k, sparsities, tol, **_):
    """K*(s_max)/K*(0) inside the paper's band at every B where both are measured."""
    lo, hi = tol["band"]
    s_max, ratios = _sparse_ratios(k, sparsities)
    ok = all(lo <= r <= hi for r in ratios.values())
    measured = "ratio " + ", ".join(f"{_fmt(r)} (B={b})" for b, r in ratios.items())
    return ok, measured, f"K*(s={_fmt_s(s_max)})/K*(s=0) in [{lo:g}, {hi:g}] at every B", \
        {"s_max": s_max, "ratios": {str(b): r for b, r in ratios.items()}}


def _check_sparse_critical_batch_no_smaller(k, sparsities, tol, **_):
    """Critical batch size (where K* leaves linear scaling by `factor`) of s_max >= dense's x min_ratio.

    On normalised curves (K* / K* at the smallest B), as in the paper's third column. A curve
    that never leaves linear scaling on the grid has its critical batch beyond the largest B.
    """
    s0, s_max = _dense_and_sparsest(sparsities)
    crit = {}
    for s in (s0, s_max):
        b, v = _measured_curve(k, s)
        if b.size < 2:
            raise _NotRun(f"needs 2 measured batch sizes at s={_fmt_s(s)}")
        c = analysis.critical_batch_direct(b, v, tol["factor"])
        crit[s] = c if math.isfinite(c) else math.inf
    ratio = crit[s_max] / crit[s0] if math.isfinite(crit[s0]) else (1.0 if math.isinf(crit[s_max]) else 0.0)
    ok = ratio >= tol["min_ratio"]
    show = lambda c: "beyond the grid" if math.isinf(c) else f"{c:g}"  # noqa: E731
    measured = f"B_crit {show(crit[s_max])} (s={_fmt_s(s_max)}) vs {show(crit[s0])} (s=0)"
    return ok, measured, (f"B_crit(s={_fmt_s(s_max)}) >= {tol['min_ratio']:g} x B_crit(s=0), "
                          f"B_crit = first B with K* > {tol['factor']:g} x linear scaling"), \
        {"b_crit": {_fmt_s(s): c for s, c in crit.items()}, "ratio": ratio}


def _check_c1_increasing_with_sparsity(k, sparsities, tol, **_):
    """c1 of the Prop. 4.1 fit rises from each sparsity to the next by at least min_ratio."""
    if len(sparsities) < 2:
        raise _NotRun("needs at least two sparsities")
    b = k["batch_size"].values
    c1 = {}
    for s in sorted(sparsities):
        f = analysis.fit_prop41(b, k.sel(sparsity=s).values)
        if math.isnan(f["c1"]):
            raise _NotRun(f"the fit needs {analysis.MIN_FIT_POINTS} measured batch sizes; "
                          f"s={_fmt_s(s)} has {f['n_points']}")
        c1[s] = f["c1"]
    ss = sorted(c1)
    steps = [c1[b_] / c1[a] if c1[a] > 0 else math.inf for a, b_ in zip(ss, ss[1:])]
    ok = all(_ratio_ok(r, tol) for r in steps)
    measured = "c1 " + " < ".join(f"{c1[s]:.4g} (s={_fmt_s(s)})" for s in ss)
    return ok, measured, f"c1(next sparsity)/c1 {_ratio_text(tol)} for each step", \
        {"c1": {_fmt_s(s): v for s, v in c1.items()}, "ratios": steps}


def _check_best_lr_nondecreasing(k, sparsities, tol, ds=None, panel=None, **_):
    """The best trial's learning rate does not fall as B grows (Fig. 3), up to a factor max_drop."""
    if ds is None or "learning_rate" not in ds or "best_trial" not in ds:
        raise _NotRun("needs per-trial learning rates and best trials in the results")
    drops, lrs = [], {}
    for s in sparsities:
        best = ds["best_trial"].sel(panel=panel, sparsity=s)
        row = {}
        for b in best["batch_size"].values:
            t = int(best.sel(batch_size=b))
            if t >= 0:
                row[int(b)] = float(ds["learning_rate"].sel(panel=panel, sparsity=s, batch_size=b, trial=t))
        if len(row) < 2:
            raise _NotRun(f"needs 2 batch sizes with a best trial at s={_fmt_s(s)}")
        bs = sorted(row)
        drops += [row[a] / row[b_] for a, b_ in zip(bs, bs[1:])]
        lrs[_fmt_s(s)] = row
    worst = max(drops)
    measured = "; ".join(f"s={s}: " + ", ".join(f"{v:.3g}" for _, v in sorted(r.items()))
                         for s, r in lrs.items())
    return worst <= tol["max_drop"], "best lr " + measured, \
        f"best lr at the next B >= best lr / {tol['max_drop']:g}", {"best_lr": lrs, "worst_drop": worst}


# --------------------------------------------------------------------------- across panels, searches

def _fitted_b_crit(k, s):
    """B_crit = c1/c2 of the Prop. 4.1 fit of one K*(B) row, or _NotRun."""
    f = analysis.fit_prop41(k["batch_size"].values, k.sel(sparsity=s).values)
    if math.isnan(f["c1"]) or not f["c2"] > 0:
        raise _NotRun(f"the Prop. 4.1 fit at s={_fmt_s(s)} has no finite B_crit ({f['n_points']} points)")
    return f["c1"] / f["c2"]


def _check_momentum_beats_sgd(k, sparsities, tol, ds=None, panel=None, **_):
    """Fig. 2: this (momentum) panel has lower K* at the largest common B and a larger fitted
    B_crit than the SGD `reference_panel`, at every sparsity both measured."""
    ref = str(tol["reference_panel"])
    if ds is None or ref not in [str(p) for p in ds.panel.values]:
        raise _NotRun(f"reference panel {ref!r} is not in the results")
    k_ref = analysis.steps_to_result(ds, ref)
    rows, ok = [], True
    for s in sparsities:
        if s not in k_ref["sparsity"].values:
            continue
        mine, theirs = _measured_curve(k, s), _measured_curve(k_ref, s)
        common = sorted(set(mine[0]) & set(theirs[0]))
        if not common:
            continue
        b = int(common[-1])
        ratio = float(k_ref.sel(sparsity=s, batch_size=b) / k.sel(sparsity=s, batch_size=b))
        crit = _fitted_b_crit(k, s) / _fitted_b_crit(k_ref, s)
        ok &= ratio >= tol["min_kstar_ratio"] and crit >= tol["min_b_crit_ratio"]
        rows.append((s, b, ratio, crit))
    if not rows:
        raise _NotRun(f"no sparsity with K* measured on both this panel and panel {ref}")
    measured = "; ".join(f"s={_fmt_s(s)}: K*({ref})/K* {r:.2f} at B={b}, B_crit x{c:.2f}" for s, b, r, c in rows)
    return ok, measured, (f"K*({ref})/K* >= {tol['min_kstar_ratio']:g} at the largest B and "
                          f"B_crit/B_crit({ref}) >= {tol['min_b_crit_ratio']:g}"), \
        {"rows": [{"sparsity": s, "batch_size": b, "kstar_ratio": r, "b_crit_ratio": c} for s, b, r, c in rows]}


def _unit(value, lo, hi, scale):
    """Position of `value` in [lo, hi] on the search's own scale (0 = lo, 1 = hi)."""
    if scale == "log":
        return math.log(value / lo) / math.log(hi / lo)
    if scale == "reverse_log":
        return math.log((1 - value) / (1 - lo)) / math.log((1 - hi) / (1 - lo))
    return (value - lo) / (hi - lo)


def _check_best_inside_range(k, sparsities, tol, ds=None, panel=None, **_):
    """Fig. 3: every best trial's metaparameters lie inside the searched range, more than
    edge_fraction of it (on the search's scale) from either end."""
    if ds is None or "search_min" not in ds:
        raise _NotRun("the results lack the search ranges (rebuild them: python -m repro collect SPEC)")
    edge, worst, at_edge, n = tol["edge_fraction"], 0.5, [], 0
    for s in sparsities:
        for b in k["batch_size"].values:
            t = int(ds["best_trial"].sel(panel=panel, sparsity=s, batch_size=b))
            if t < 0:
                continue
            n += 1
            for hp in ds["hp"].values:
                lo = float(ds["search_min"].sel(panel=panel, hp=hp))
                if math.isnan(lo) or str(hp) not in ds:
                    continue
                hi = float(ds["search_max"].sel(panel=panel, hp=hp))
                v = float(ds[str(hp)].sel(panel=panel, sparsity=s, batch_size=b, trial=t))
                u = _unit(v, lo, hi, str(ds["search_scale"].sel(panel=panel, hp=hp).values))
                worst = min(worst, u, 1 - u)
                if min(u, 1 - u) <= edge:
                    at_edge.append(f"{hp}={v:.3g} at s={_fmt_s(s)} B={int(b)}")
    if not n:
        raise _NotRun("no study point has a best trial")
    measured = f"{n} best trials, closest to an edge {worst:.2f} of the range" + \
        (f" ({'; '.join(at_edge)})" if at_edge else "")
    return not at_edge, measured, f"every best trial > {edge:g} of the range from its ends", \
        {"points": n, "closest_to_edge": worst, "at_edge": at_edge}


def _check_feasible_lr_range_shrinks(k, sparsities, tol, ds=None, panel=None, **_):
    """Fig. 5: the learning rates that reach the goal span fewer decades at s_max than dense,
    at every batch size: width(s_max) <= max_ratio x width(0)."""
    s0, s_max = _dense_and_sparsest(sparsities)
    if ds is None or "learning_rate" not in ds:
        raise _NotRun("needs per-trial learning rates")
    rows, ok = [], True
    for b in k["batch_size"].values:
        widths = {}
        for s in (s0, s_max):
            st = ds["status"].sel(panel=panel, sparsity=s, batch_size=b)
            if not bool((st > 0).all()):
                break  # every trial must have run: a landscape shows them all
            lr = ds["learning_rate"].sel(panel=panel, sparsity=s, batch_size=b).values[st.values == 1]
            widths[s] = (math.log10(lr.max() / lr.min()), float(lr.min()), float(lr.max())) if len(lr) else None
        if len(widths) < 2 or widths[s0] is None:
            continue
        w0 = widths[s0][0]
        ws = widths[s_max][0] if widths[s_max] else 0.0
        ok &= ws <= tol["max_ratio"] * w0 + 1e-12
        rows.append((int(b), widths[s0], widths[s_max]))
    if not rows:
        raise _NotRun("needs a batch size where every trial ran at s=0 and s_max and some dense trial completed")
    show = lambda w: "none" if w is None else f"{w[1]:.3g}..{w[2]:.3g} ({w[0]:.2f} decades)"  # noqa: E731
    measured = "; ".join(f"B={b}: s=0 {show(a)}, s={_fmt_s(s_max)} {show(c)}" for b, a, c in rows)
    return ok, "goal-reaching lr " + measured, \
        f"width(s={_fmt_s(s_max)}) <= {tol['max_ratio']:g} x width(s=0), in decades of learning rate", \
        {"rows": [{"batch_size": b, "dense": a, "sparse": c} for b, a, c in rows]}


# --------------------------------------------------------------------------- smoothness runs

def _smooth_sparsities(ds, panel):
    return [float(s) for s in ds.sparsity.values
            if str(ds["status"].sel(panel=panel, sparsity=s).values) == "complete"]


def _mean_l(ds, panel, s):
    return float(ds["lipschitz"].sel(panel=panel, sparsity=s).mean(skipna=True))


def _check_lipschitz_increasing(k, sparsities, tol, ds=None, panel=None, **_):
    """Fig. 4: the average local Lipschitz constant over training grows with sparsity:
    L(s_max)/L(0) above min_ratio (and, with monotone, every step between sparsities)."""
    s0, s_max = _dense_and_sparsest(sparsities)
    ss = sorted(sparsities)
    lip = {s: _mean_l(ds, panel, s) for s in ss}
    steps = [lip[b] / lip[a] for a, b in zip(ss, ss[1:])]
    ratio = lip[s_max] / lip[s0]
    ok = _ratio_ok(ratio, tol) and (not tol.get("monotone") or all(_ratio_ok(r, tol) for r in steps))
    measured = "mean L " + ", ".join(f"{lip[s]:.3g} (s={_fmt_s(s)})" for s in ss) + f"; ratio {ratio:.2f}"
    paper = tol.get("paper_values")
    detail = f"paper (s = 0/0.5/0.7/0.9): {' / '.join(map(str, paper))}" if paper else ""
    return ok, measured, f"L(s={_fmt_s(s_max)})/L(0) {_ratio_text(tol)}" + \
        (" at every step in sparsity" if tol.get("monotone") else ""), \
        {"mean_lipschitz": {_fmt_s(s): v for s, v in lip.items()}, "ratio": ratio, "detail": detail}


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


def _check_c1_decomposition(k, sparsities, tol, ds=None, panel=None, results_dir=None, **_):
    """App. C: c1 = Delta L beta / (mu^2 eps^2); the ratios of Delta, beta and mean L between
    s_max and dense predict the c1 ratio. Passes when the predicted ratio is at least
    min_predicted_ratio and L's ratio is the largest factor (smoothness drives it). The fitted c1
    ratio of the `reference` study is shown beside it when its results exist."""
    s0, s_max = _dense_and_sparsest(sparsities)
    r = {}
    for name in ("delta", "beta"):
        r[name] = float(ds[name].sel(panel=panel, sparsity=s_max) / ds[name].sel(panel=panel, sparsity=s0))
    r["lipschitz"] = _mean_l(ds, panel, s_max) / _mean_l(ds, panel, s0)
    predicted = r["delta"] * r["beta"] * r["lipschitz"]
    fitted = math.nan
    try:
        ref_ds, ref_panel = _reference(tol, results_dir)
        kr = analysis.steps_to_result(ref_ds, ref_panel)
        f0 = analysis.fit_prop41(kr["batch_size"].values, kr.sel(sparsity=s0).values)
        fs = analysis.fit_prop41(kr["batch_size"].values, kr.sel(sparsity=s_max).values)
        fitted = fs["c1"] / f0["c1"]
    except (_NotRun, KeyError) as why:
        fitted_note = f"fitted c1 ratio not available: {why}"
    else:
        fitted_note = f"fitted c1 ratio of {tol['reference']}: {fitted:.2f}"
    ok = predicted >= tol["min_predicted_ratio"] and r["lipschitz"] >= max(r["delta"], r["beta"])
    measured = (f"Delta x{r['delta']:.2f}, beta x{r['beta']:.2f}, L x{r['lipschitz']:.2f} -> "
                f"predicted c1 x{predicted:.2f}; {fitted_note}")
    paper = tol.get("paper_ratios")
    detail = ("paper: " + ", ".join(f"{a} x{b}" for a, b in paper.items())) if paper else ""
    return ok, measured, (f"predicted c1(s={_fmt_s(s_max)})/c1(0) >= {tol['min_predicted_ratio']:g} "
                          "and L's ratio the largest factor"), \
        {"ratios": r, "predicted_c1_ratio": predicted, "fitted_c1_ratio": fitted, "detail": detail}


def _check_noise_scale_vs_critical_batch(k, sparsities, tol, ds=None, panel=None, results_dir=None, **_):
    """McCandlish et al. (2018): the simple noise scale B_simple (mean over the measured steps)
    predicts the critical batch size; compare with the fitted B_crit = c1/c2 of the
    `reference` study, within a factor max_factor either way, at each sparsity both have."""
    ref_ds, ref_panel = _reference(tol, results_dir)
    kr = analysis.steps_to_result(ref_ds, ref_panel)
    rows = []
    for s in sparsities:
        if s not in kr["sparsity"].values:
            continue
        b_simple = float(ds["noise_scale"].sel(panel=panel, sparsity=s).mean(skipna=True))
        rows.append((s, b_simple, _fitted_b_crit(kr, s)))
    if not rows:
        raise _NotRun(f"no sparsity measured here and in {tol['reference']}")
    f = tol["max_factor"]
    ok = all(1 / f <= c / b <= f for _, b, c in rows)
    measured = "; ".join(f"s={_fmt_s(s)}: B_simple {b:.3g} vs B_crit {c:.3g} (x{c / b:.2f})" for s, b, c in rows)
    return ok, measured, f"B_crit({tol['reference']}) / B_simple within [1/{f:g}, {f:g}]", \
        {"rows": [{"sparsity": s, "b_simple": b, "b_crit": c} for s, b, c in rows]}


def _check_sparse_loss_higher(k, sparsities, tol, ds=None, panel=None, **_):
    """Fig. 6: the sparsest network ends its run at a higher training loss than the dense one."""
    s0, s_max = _dense_and_sparsest(sparsities)
    loss = {s: float(ds["final_loss"].sel(panel=panel, sparsity=s)) for s in sorted(sparsities)}
    ratio = loss[s_max] / loss[s0]
    measured = "final training loss " + ", ".join(f"{v:.4f} (s={_fmt_s(s)})" for s, v in loss.items())
    return _ratio_ok(ratio, tol), measured + f"; ratio {ratio:.2f}", \
        f"f(s={_fmt_s(s_max)})/f(0) {_ratio_text(tol)} after the run", {"final_loss": {_fmt_s(s): v for s, v in loss.items()}}


CLAIMS = {
    "linear_scaling": _check_linear_scaling,
    "plateau": _check_plateau,
    "sparse_slower": _check_sparse_slower,
    "sparse_c1_larger": _check_sparse_c1_larger,
    "diminishing_returns": _check_diminishing_returns,
    "sparse_ratio_band": _check_sparse_ratio_band,
    "sparse_critical_batch_no_smaller": _check_sparse_critical_batch_no_smaller,
    "c1_increasing_with_sparsity": _check_c1_increasing_with_sparsity,
    "best_lr_nondecreasing": _check_best_lr_nondecreasing,
    "momentum_beats_sgd": _check_momentum_beats_sgd,
    "best_inside_range": _check_best_inside_range,
    "feasible_lr_range_shrinks": _check_feasible_lr_range_shrinks,
    "lipschitz_increasing": _check_lipschitz_increasing,
    "c1_decomposition": _check_c1_decomposition,
    "noise_scale_vs_critical_batch": _check_noise_scale_vs_critical_batch,
    "sparse_loss_higher": _check_sparse_loss_higher,
}
SMOOTHNESS_CLAIMS = ("lipschitz_increasing", "c1_decomposition", "noise_scale_vs_critical_batch",
                     "sparse_loss_higher")


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


def check_one(ds, figure_id, panel_id, claim, golden, results_dir=None) -> ClaimResult:
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
    k = None if smooth else analysis.steps_to_result(ds, panel_id)
    sparsities = _smooth_sparsities(ds, panel_id) if smooth else _panel_sparsities(ds, panel_id, k)
    try:
        ok, measured, tolerance, values = CLAIMS[claim](k, sparsities, tol, ds=ds, panel=panel_id,
                                                         results_dir=results_dir)
    except _NotRun as why:
        return not_run(figure_id, panel_id, claim, f"{why}; " + _run_hint(ds, figure_id, panel_id))
    detail = values.pop("detail", "")
    values = {**values, "tolerance": {key: v for key, v in tol.items() if key not in ("source", "why")}}
    grid = ds.attrs.get("grid", "")
    if grid in tol.get("not_shown_on", []):
        # Golden records that this grid cannot show the claim: report the measurement, never PASS.
        why = (f"golden: the {grid} grid cannot show this claim ({tol.get('not_shown_why', 'see golden')}); "
               f"measured check would be {PASS if ok else FAIL}")
        return ClaimResult(figure_id, str(panel_id), claim, NOT_RUN, measured, tolerance,
                           detail=why, values=values)
    return ClaimResult(figure_id, str(panel_id), claim, PASS if ok else FAIL, measured, tolerance,
                       detail=detail, values=values)


def check_panel(ds, figure_id, panel_id, claims, golden, results_dir=None) -> list:
    """Check the named claims on one panel; a panel with no data gives NOT-RUN for each."""
    missing = _panel_missing_reason(ds, figure_id, panel_id)
    if missing:
        return [not_run(figure_id, panel_id, c, missing) for c in claims]
    return [check_one(ds, figure_id, panel_id, c, golden, results_dir) for c in claims]


def verify_dataset(ds, figure_id, panels, golden, results_dir=None) -> list:
    """Check every panel's claims: ``panels`` maps panel id -> list of claim names (from the spec);
    claims with a golden `reference` read other figures' results from `results_dir`."""
    results = []
    for panel_id, claims in panels.items():
        results.extend(check_panel(ds, figure_id, panel_id, claims, golden, results_dir))
    return results


def exit_code(results) -> int:
    """0 when every claim is PASS or NOT-RUN, 1 when any FAILs."""
    return 1 if any(r.status == FAIL for r in results) else 0


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
        if r.detail:
            out.append("    " + r.detail)
    counts = {s: sum(r.status == s for r in results) for s in (PASS, FAIL, NOT_RUN)}
    out.append(f"{counts[PASS]} passed, {counts[FAIL]} failed, {counts[NOT_RUN]} not run")
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

    FAIL is a <failure>, NOT-RUN a <skipped> (never a pass), each with the measured value,
    the tolerance and the detail, so a CI system shows every claim as its own test.
    """
    import xml.etree.ElementTree as ET
    root = ET.Element("testsuites", name="repro verify")
    for fig in dict.fromkeys(r.figure for r in results):
        rs = [r for r in results if r.figure == fig]
        suite = ET.SubElement(root, "testsuite", name=fig, tests=str(len(rs)),
                              failures=str(sum(r.status == FAIL for r in rs)),
                              skipped=str(sum(r.status == NOT_RUN for r in rs)), errors="0")
        for r in rs:
            case = ET.SubElement(suite, "testcase", classname=f"{fig}.panel_{r.panel}", name=r.claim)
            text = f"measured {r.measured}; tolerance {r.tolerance}" + (f"; {r.detail}" if r.detail else "")
            if r.status == FAIL:
                ET.SubElement(case, "failure", message=text).text = text
            elif r.status == NOT_RUN:
                ET.SubElement(case, "skipped", message=text)
            else:
                ET.SubElement(case, "system-out").text = text
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
