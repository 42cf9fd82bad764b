"""Running the claims: on a results dataset (per panel, the claims its spec names) or on a K*
table, each claim's check applied to the panel's :class:`~repro.claims.context.PanelContext`
with its golden tolerance, and its Verdict turned into a ClaimResult. A panel or claim with no
data gives NOT-RUN with the command that would produce them."""
import dataclasses

import numpy as np

from .. import analysis, evidence
from ..errors import UsageError

from . import control
from .base import FAIL, INCONCLUSIVE, NOT_RUN, ClaimResult, NotRun, Verdict
from .context import PanelContext, no_uncertainty
from .golden import tolerance_for
from .registry import REGISTRY, TABLE_CLAIMS
from .smoothness import smooth_sparsities
from .text import fmt_s


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
                points.append(f"B={int(b)} s={fmt_s(s)} ({n} trials)")
    return ", ".join(points), missing


def run_hint(ds, figure_id, panel_id):
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
        return f"panel {panel_id} is not in the results; " + run_hint(ds, figure_id, panel_id)
    if ds.attrs.get("kind") == "smoothness":
        return None if smooth_sparsities(ds, panel_id) else \
            f"panel {panel_id} has no finished smoothness run; " + run_hint(ds, figure_id, panel_id)
    if not bool(analysis.steps_to_result(ds, panel_id).notnull().any()):
        return f"panel {panel_id} has no measured K* (not run, or no trial reached the goal); " + \
            run_hint(ds, figure_id, panel_id)
    return None


def _limits(ctx):
    """What the claim's statistics read that limits them, as detail text."""
    out = []
    if ctx.notes["coarse"] :
        out.append(f"search too coarse at {ctx.point_text(ctx.notes['coarse'])}: every losing trial "
                   "was capped at the winner's step, so nothing shows how far a larger search would "
                   "move K* there; race those points with finishers >= 2 (the default)")
    if ctx.notes["edge"]:
        out.append(f"best trial at the edge of the searched effective learning rates at "
                   f"{ctx.point_text(ctx.notes['edge'])}: the optimum may lie outside the search box")
    if ctx.notes["censored"]:
        out.append(f"K* above the step budget (used as a bound) at {ctx.point_text(ctx.notes['censored'])}")
    return out


def _result(figure_id, panel_id, claim, tol, v: Verdict, ctx, decisions=()) -> ClaimResult:
    """A check's Verdict as a ClaimResult, with the tolerance, paper number, uncertainty, the
    decisions it made (for the figure's error control) and what would decide it."""
    values = {**v.values, "tolerance": {key: x for key, x in tol.items() if key not in ("source", "why")},
              "uncertainty": ctx.uncertainty() if ctx is not None and ctx.ev is not None else "",
              "decisions": [{"status": d.status, "p_value": d.p_value} for d in decisions]}
    detail = v.detail
    if ctx is not None and ctx.ev is not None:
        extra = [t for t in _limits(ctx) if t.split(":")[0] not in detail]
        detail = "; ".join([d for d in (detail, *extra) if d])
        if v.status == INCONCLUSIVE:
            values["needs"] = [dataclasses.asdict(r) for r in ctx.requests]
    return ClaimResult(figure_id, str(panel_id), claim, v.status, v.measured, v.tolerance,
                       detail=detail, values=values, paper=v.paper, source=tol.get("source", ""))


def check_one(ds, figure_id, panel_id, claim, golden, results_dir=None, ctx=None) -> ClaimResult:
    """Check a single claim on a panel that has some measured K* (or smoothness runs);
    `results_dir` holds the results a claim with a `reference` reads."""
    registered = REGISTRY.get(claim)
    if registered is None:
        return not_run(figure_id, panel_id, claim, f"claim {claim!r} is not implemented in repro.claims")
    tol = tolerance_for(golden, panel_id, claim)
    if tol is None:
        return not_run(figure_id, panel_id, claim,
                       f"no tolerance for {claim!r}; add a [{claim}] table to golden/{figure_id}.toml")
    smooth = ds.attrs.get("kind") == "smoothness"
    if smooth != registered.smoothness:
        return not_run(figure_id, panel_id, claim, f"claim {claim!r} reads {registered.reads.results_kind}"
                       f"; figure {figure_id} has none")
    if ctx is None:
        ev = None if smooth else evidence.from_dataset(ds, panel_id)
        ctx = PanelContext(ev, ds=ds, panel=panel_id, results_dir=results_dir)
    ctx.reset()
    try:
        with control.recording() as decisions:
            verdict = registered.check(ctx, tol)
    except NotRun as why:
        return not_run(figure_id, panel_id, claim, f"{why}; " + run_hint(ds, figure_id, panel_id))
    if not smooth:
        verdict = no_uncertainty(ctx, verdict)
    return _result(figure_id, panel_id, claim, tol, verdict, ctx, decisions)


def check_panel(ds, figure_id, panel_id, claims, golden, results_dir=None) -> list:
    """Check the named claims on one panel; a panel with no data gives NOT-RUN for each."""
    missing = _panel_missing_reason(ds, figure_id, panel_id)
    if missing:
        return [not_run(figure_id, panel_id, c, missing) for c in claims]
    ctx = None
    if ds.attrs.get("kind") != "smoothness":  # one set of replicates for all the panel's claims
        ctx = PanelContext(evidence.from_dataset(ds, panel_id), ds=ds, panel=panel_id, results_dir=results_dir)
    return [check_one(ds, figure_id, panel_id, c, golden, results_dir=results_dir, ctx=ctx) for c in claims]


def verify_dataset(ds, figure_id, panels, golden, results_dir=None) -> list:
    """Check every panel's claims: ``panels`` maps panel id -> list of claim names (from the spec);
    claims with a golden `reference` read other figures' results from `results_dir`."""
    results = []
    for panel_id, claims in panels.items():
        results.extend(check_panel(ds, figure_id, panel_id, claims, golden, results_dir=results_dir))
    return control.control_figure(results)


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
        out.append(_check_kstar(ctx, figure, panel, claim, tol))
    return control.control_figure(out)


def check_evidence(panels, claims, golden, *, figure="simulated") -> list:
    """The named K*(B) claims on {panel id: repro.evidence.Evidence} (one figure, with its
    error control): what verify does on a results file, for evidence built another way."""
    out = []
    for panel_id, ev in panels.items():
        ctx = PanelContext(ev, panel=panel_id)
        for claim in claims:
            out.append(_check_kstar(ctx, figure, panel_id, claim, tolerance_for(golden, panel_id, claim)))
    return control.control_figure(out)


def _check_kstar(ctx, figure, panel_id, claim, tol) -> ClaimResult:
    """One K*(B) claim on a context built from a table or from Evidence: its result, with the
    decisions it made recorded (NOT-RUN, with the reason, when its data are absent)."""
    ctx.reset()
    try:
        with control.recording() as decisions:
            verdict = no_uncertainty(ctx, REGISTRY[claim].check(ctx, tol))
    except NotRun as why:
        return not_run(figure, panel_id, claim, str(why))
    return _result(figure, panel_id, claim, tol, verdict, ctx, decisions)


def exit_code(results, strict=False) -> int:
    """1 when any claim FAILs (or, with strict, is INCONCLUSIVE); 0 otherwise."""
    bad = (FAIL, INCONCLUSIVE) if strict else (FAIL,)
    return 1 if any(r.status in bad for r in results) else 0
