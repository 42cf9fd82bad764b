"""Running the claims: on a results dataset (per panel, the claims its spec names) or on a K*
table, each claim's check applied to the panel's :class:`~repro.claims.context.PanelContext`
with its golden tolerance, and its Verdict turned into a ClaimResult. A panel or claim with no
data gives NOT-RUN with the command that would produce them."""
import dataclasses

import numpy as np

from .. import analysis, evidence, fmt
from ..errors import UsageError

from . import control
from .base import FAIL, INCONCLUSIVE, NOT_RUN, ClaimResult, NotRun, Reads, Verdict
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
    hint = "run: " + fmt.run_command(ds.attrs.get("spec_path", f"specs/{figure_id}.toml"),
                                     grid=ds.attrs.get("grid", "reduced"), panel=panel_id,
                                     goal=ds.attrs.get("goal") or None)
    if "dataset" in ds and "panel" in ds.coords and panel_id in list(ds["panel"].values):
        name = str(ds["dataset"].sel(panel=panel_id).values)
        hint += f" (if its data is missing: python -m repro data fetch {name})"
    if unreached:
        hint = f"measured: no trial reached the goal at {unreached}; " + hint
    return hint


class SearchResults:
    """How the claims read a search's results file: K* per (panel, sparsity, batch size) and
    every trial, resampled once per panel (repro.evidence) for all its claims."""

    holds = Reads.KSTAR.results_kind  # what a claim must read to be checked on it

    def missing_reason(self, ds, figure_id, panel_id):
        """Why the panel cannot be checked at all (no measured K*), or None."""
        if not bool(analysis.steps_to_result(ds, panel_id).notnull().any()):
            return f"panel {panel_id} has no measured K* (not run, or no trial reached the goal); " + \
                run_hint(ds, figure_id, panel_id)
        return None

    def context(self, ds, panel_id, results_dir):
        """The panel's evidence, point estimate and replicates."""
        return PanelContext(evidence.from_dataset(ds, panel_id), ds=ds, panel=panel_id,
                            results_dir=results_dir)

    def settle(self, ctx, verdict):
        """A verdict on data with no measured uncertainty is INCONCLUSIVE (context.no_uncertainty)."""
        return no_uncertainty(ctx, verdict)


class SmoothnessResults:
    """How the claims read a smoothness results file: one measured run per (panel, sparsity),
    each claim resampling its runs' measured steps itself."""

    holds = Reads.SMOOTHNESS.results_kind

    def missing_reason(self, ds, figure_id, panel_id):
        """Why the panel cannot be checked at all (no finished run), or None."""
        if not smooth_sparsities(ds, panel_id):
            return f"panel {panel_id} has no finished smoothness run; " + run_hint(ds, figure_id, panel_id)
        return None

    def context(self, ds, panel_id, results_dir):
        """The dataset and panel alone: there is no K* evidence to resample."""
        return PanelContext(None, ds=ds, panel=panel_id, results_dir=results_dir)

    def settle(self, ctx, verdict):
        """The verdict as the check gave it (its intervals come from the measured steps)."""
        return verdict


# The reading of each kind of results file; which one a spec's file needs is for repro.study
# to say (its `claim_reading`), so that nothing here asks a results file what kind it is.
SEARCH_RESULTS, SMOOTHNESS_RESULTS = SearchResults(), SmoothnessResults()


def _panel_missing_reason(ds, figure_id, panel_id, reading):
    """Why a panel cannot be checked at all, or None if `reading` finds data for it."""
    if "panel" not in ds.coords or panel_id not in list(ds["panel"].values):
        return f"panel {panel_id} is not in the results; " + run_hint(ds, figure_id, panel_id)
    return reading.missing_reason(ds, figure_id, panel_id)


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


def check_one(ds, figure_id, panel_id, claim, golden, results_dir=None, ctx=None, *,
              reading=SEARCH_RESULTS) -> ClaimResult:
    """Check a single claim on a panel that has some data `reading` reads (SEARCH_RESULTS: a
    search's K*; SMOOTHNESS_RESULTS: smoothness runs); `results_dir` holds the results a claim
    with a `reference` reads."""
    registered = REGISTRY.get(claim)
    if registered is None:
        return not_run(figure_id, panel_id, claim, f"claim {claim!r} is not implemented in repro.claims")
    tol = tolerance_for(golden, panel_id, claim)
    if tol is None:
        return not_run(figure_id, panel_id, claim,
                       f"no tolerance for {claim!r}; add a [{claim}] table to golden/{figure_id}.toml")
    if registered.reads.results_kind != reading.holds:
        return not_run(figure_id, panel_id, claim, f"claim {claim!r} reads {registered.reads.results_kind}"
                       f"; figure {figure_id} has none")
    if ctx is None:
        ctx = reading.context(ds, panel_id, results_dir)
    ctx.reset()
    try:
        with control.recording() as decisions:
            verdict = registered.check(ctx, tol)
    except NotRun as why:
        return not_run(figure_id, panel_id, claim, f"{why}; " + run_hint(ds, figure_id, panel_id))
    return _result(figure_id, panel_id, claim, tol, reading.settle(ctx, verdict), ctx, decisions)


def check_panel(ds, figure_id, panel_id, claims, golden, results_dir=None, *,
                reading=SEARCH_RESULTS) -> list:
    """Check the named claims on one panel, read as `reading` says (one context for all of
    them); a panel with no data gives NOT-RUN for each."""
    missing = _panel_missing_reason(ds, figure_id, panel_id, reading)
    if missing:
        return [not_run(figure_id, panel_id, c, missing) for c in claims]
    ctx = reading.context(ds, panel_id, results_dir)
    return [check_one(ds, figure_id, panel_id, c, golden, results_dir=results_dir, ctx=ctx, reading=reading)
            for c in claims]


def verify_dataset(ds, figure_id, panels, golden, results_dir=None, *, reading=SEARCH_RESULTS) -> list:
    """Check every panel's claims: ``panels`` maps panel id -> list of claim names (from the spec);
    `reading` is how the dataset's kind of results is read (repro.study's `claim_reading`);
    claims with a golden `reference` read other figures' results from `results_dir`."""
    results = []
    for panel_id, claims in panels.items():
        results.extend(check_panel(ds, figure_id, panel_id, claims, golden, results_dir=results_dir,
                                   reading=reading))
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
