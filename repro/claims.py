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
import tomllib
from dataclasses import asdict, dataclass, field

import numpy as np

from repro import analysis
from repro.errors import UsageError

PASS, FAIL, NOT_RUN = "PASS", "FAIL", "NOT-RUN"


@dataclass
class ClaimResult:
    """The outcome of one claim on one panel."""

    figure: str
    panel: str
    claim: str
    status: str  # "PASS" | "FAIL" | "NOT-RUN"
    measured: str  # human readable measured value(s)
    tolerance: str  # human readable tolerance
    detail: str = ""  # NOT-RUN: why, and the command that fixes it; else optional extra line
    values: dict = field(default_factory=dict)  # machine-readable numbers for --json


# --------------------------------------------------------------------------- golden file

_NUMBER = (int, float)

# claim -> {key: (types, required)}; `source` and `why` are required for every claim.
GOLDEN_SCHEMA = {
    "linear_scaling": {"points": (int, True), "slope_min": (_NUMBER, True), "slope_max": (_NUMBER, True)},
    "plateau": {"points": (int, True), "slope_min": (_NUMBER, True)},
    "sparse_slower": {"min_ratio": (_NUMBER, True), "strict": (bool, False), "paper_band": (list, False)},
    "sparse_c1_larger": {"min_ratio": (_NUMBER, True), "strict": (bool, False), "paper_value": (_NUMBER, False)},
}


def _type_name(types):
    """Human name of an accepted type (or tuple of types)."""
    if types is _NUMBER:
        return "a number"
    return {int: "an integer", bool: "true or false", list: "a list", str: "a string"}[types]


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
    band = entry.get("paper_band")
    if band is not None and (len(band) != 2 or not all(_is_type(v, _NUMBER) for v in band)):
        raise UsageError(path, f"{key}.paper_band", "must be a list of two numbers", "write paper_band = [low, high]")


def load_golden(path) -> dict:
    """Read and validate a golden TOML file; returns its tables as a plain dict.

    Top-level tables are claims (``[linear_scaling]`` ...); ``[panel.<id>.<claim>]`` tables
    override keys for one panel. Raises UsageError naming the file and key on any problem.
    """
    try:
        with open(path, "rb") as fh:
            golden = tomllib.load(fh)
    except FileNotFoundError:
        raise UsageError(path, "", "golden file not found", "create it; see golden/README.md") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(path, "", f"not valid TOML: {exc}", "fix the syntax") from None
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


def _check_linear_scaling(k, sparsities, tol):
    """Slope over the smallest B within [slope_min, slope_max] for every sparsity."""
    lo, hi = tol["slope_min"], tol["slope_max"]
    tolerance = f"slope in [{lo:g}, {hi:g}] over the {tol['points']} smallest B"
    slopes = _slope_claim(k, sparsities, tol, largest=False)
    ok = all(lo <= d["slope"] <= hi for d in slopes.values())
    measured = ", ".join(f"{_fmt(d['slope'])} (s={s})" for s, d in slopes.items())
    return ok, "slope " + measured, tolerance, {"slopes": slopes}


def _check_plateau(k, sparsities, tol):
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


def _check_sparse_slower(k, sparsities, tol):
    """K*(s_max)/K*(0) above min_ratio at every B where both are measured."""
    s0, s_max = _dense_and_sparsest(sparsities)
    dense, sparse = k.sel(sparsity=s0), k.sel(sparsity=s_max)
    both = dense.notnull() & sparse.notnull()
    if not bool(both.any()):
        raise _NotRun(f"no batch size has a measured K* at both s=0 and s={_fmt_s(s_max)}")
    ratios = {int(b): float(sparse.sel(batch_size=b) / dense.sel(batch_size=b))
              for b in k["batch_size"].values[both.values]}
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


def _check_sparse_c1_larger(k, sparsities, tol):
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


CLAIMS = {
    "linear_scaling": _check_linear_scaling,
    "plateau": _check_plateau,
    "sparse_slower": _check_sparse_slower,
    "sparse_c1_larger": _check_sparse_c1_larger,
}


# --------------------------------------------------------------------------- running claims

def not_run(figure_id, panel_id, claim, why, tolerance=""):
    """A NOT-RUN result."""
    return ClaimResult(figure_id, str(panel_id), claim, NOT_RUN, "-", tolerance or "-", why)


def _run_hint(ds, figure_id, panel_id):
    """What to run to get results for a panel (mentions fetching its dataset when known)."""
    grid = ds.attrs.get("grid", "reduced")
    hint = f"run: python -m repro run {ds.attrs.get('spec_path', f'specs/{figure_id}.toml')}" + \
        ("" if grid == "reduced" else f" --grid {grid}") + f" --panel {panel_id}"
    if "dataset" in ds and "panel" in ds.coords and panel_id in list(ds["panel"].values):
        name = str(ds["dataset"].sel(panel=panel_id).values)
        hint += f" (if its data is missing: python -m repro data fetch {name})"
    return hint


def _panel_missing_reason(ds, figure_id, panel_id):
    """Why a panel cannot be checked at all, or None if it has some K*."""
    if "panel" not in ds.coords or panel_id not in list(ds["panel"].values):
        return f"panel {panel_id} is not in the results; " + _run_hint(ds, figure_id, panel_id)
    if not bool(analysis.steps_to_result(ds, panel_id).notnull().any()):
        return f"panel {panel_id} has no measured K* (not run, or no trial reached the goal); " + \
            _run_hint(ds, figure_id, panel_id)
    return None


def check_one(ds, figure_id, panel_id, claim, golden) -> ClaimResult:
    """Check a single claim on a panel that has some measured K*."""
    if claim not in CLAIMS:
        return not_run(figure_id, panel_id, claim, f"claim {claim!r} is not implemented in repro.claims")
    tol = tolerance_for(golden, panel_id, claim)
    if tol is None:
        return not_run(figure_id, panel_id, claim,
                        f"no tolerance for {claim!r}; add a [{claim}] table to golden/{figure_id}.toml")
    k = analysis.steps_to_result(ds, panel_id)
    sparsities = _panel_sparsities(ds, panel_id, k)
    try:
        ok, measured, tolerance, values = CLAIMS[claim](k, sparsities, tol)
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


def check_panel(ds, figure_id, panel_id, claims, golden) -> list:
    """Check the named claims on one panel; a panel with no data gives NOT-RUN for each."""
    missing = _panel_missing_reason(ds, figure_id, panel_id)
    if missing:
        return [not_run(figure_id, panel_id, c, missing) for c in claims]
    return [check_one(ds, figure_id, panel_id, c, golden) for c in claims]


def verify_dataset(ds, figure_id, panels, golden) -> list:
    """Check every panel's claims: ``panels`` maps panel id -> list of claim names (from the spec)."""
    results = []
    for panel_id, claims in panels.items():
        results.extend(check_panel(ds, figure_id, panel_id, claims, golden))
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
