"""Cost model: steps and evaluations a plan needs, at most, naively, and as repro races them.

Three numbers per panel (Appendix B counts evaluations; we also count steps and examples):
- at most: every trial runs its whole budget, evaluated every time (the paper's arithmetic);
- naive: every trial stops at its own goal, nothing else (a keras-tuner + model.fit harness);
- repro: the point's trials race (repro.race) until k of them (the grid's `finishers`) meet
  the goal: the others stop at the k-th's step K_k; if fewer than k do, the rest run the
  budget. Early exit reads part of a failing evaluation.

A study point is modelled from K* (its steps-to-result), the share p of trials that reach the
goal, the mean steps K_bar of those that do, and the share q of a failing evaluation's
examples that early exit still reads. A trial that completes runs K_bar steps; one that does
not runs the budget S. Trials reach the goal independently, so some trial of n does with
probability 1 - (1 - p)^n. These inputs come from measurements when there are any: the stored
results of the same spec (any grid), K* extrapolated to new batch sizes with the Prop. 4.1 fit
K* = c1/B + c2 of the nearest measured sparsity (with too few points for a fit: the nearest
measured curve, linear scaling below it, flat above it). Without measurements only the upper
bound is given. A reduced grid usually searches a narrower space than the paper's: p is then
scaled by the share of the target space the measured ranges cover (`coverage`), i.e. trials
outside the measured ranges are taken never to reach the goal -- a pessimistic p, which
makes both predictions an overestimate, the naive one more so.

Racing caps every trial but the winners, and a capped trial's own outcome is unknown, so p and
K_bar are measured over the trials that ran to their own outcome (the winners, the diverged,
and those of points no trial completed). Results raced with capping thus give an optimistic p
and K_bar = K*: the naive prediction is then a lower bound. Results run with capping off
(`--no-capping`) measure both without that bias. K_k / K* (how far the k-th finisher is from
the best) is measured on points where k trials finished; results raced with fewer finishers
do not show it, and KTH_OVER_KSTAR is assumed (and said so).
"""
import math

import numpy as np

from . import analysis, spec as spec_mod
from .data import validation_size


KTH_OVER_KSTAR = 1.5  # K_k / K* assumed where no stored point had k finishers


def _evals_until(eval_steps, steps):
    return sum(1 for s in eval_steps if s <= steps)


def _width(lo, hi, scale):
    """Length of [lo, hi] on the axis a search dimension is uniform in."""
    if scale == "log":
        return math.log(hi) - math.log(lo)
    if scale == "reverse_log":  # 1 - value is log-uniform
        return math.log(1 - lo) - math.log(1 - hi)
    return hi - lo


def coverage(ds, panel_id, space):
    """Share of the search space `space` (spec.Dim tuple) that the ranges searched in `ds`
    cover: the product over dimensions of overlap / width on each dimension's own scale.
    A dimension the results do not record counts as covered."""
    if ds is None or "search_min" not in ds:
        return 1.0
    share = 1.0
    hps = [str(h) for h in ds["hp"].values]
    for dim in space:
        if dim.name not in hps:
            continue
        lo = float(ds["search_min"].sel(panel=panel_id, hp=dim.name))
        hi = float(ds["search_max"].sel(panel=panel_id, hp=dim.name))
        if not (math.isfinite(lo) and math.isfinite(hi)):
            continue
        overlap_lo, overlap_hi = max(lo, dim.min), min(hi, dim.max)
        share *= 0.0 if overlap_hi <= overlap_lo else \
            _width(overlap_lo, overlap_hi, dim.scale) / _width(dim.min, dim.max, dim.scale)
    return share


def measurements(ds, panel_id):
    """Per-panel inputs measured on a results dataset: fits per sparsity, p, K_bar/K*, q."""
    sub = ds.sel(panel=panel_id)
    status, steps = sub["status"].values, sub["steps"].values
    k = analysis.steps_to_result(ds, panel_id)
    ran = status > 0
    complete = status == 1
    if not ran.any() or not np.isfinite(k.values).any():
        return None
    kstar = k.values[:, :, None] * np.ones(status.shape)  # (sparsity, B, trial)
    ratio = steps[complete] / kstar[complete]
    q = 1.0
    if "examples_evaluated" in sub and "eval_step" in sub:
        n_val = validation_size(str(sub["dataset"].values))
        ev = sub["examples_evaluated"].values
        evals = np.array([[[_evals_until(sub["eval_step"].sel(batch_size=b).values, st)
                            for st in row] for row, b in zip(plane, sub.batch_size.values)]
                          for plane in steps])
        ok = ran & (ev >= 0) & (evals > 0)
        if ok.any() and n_val:
            q = float(ev[ok].sum() / (evals[ok].sum() * n_val))
    # trials not capped tell whether a trial reaches the goal on its own
    own = ran & (status != 4)
    kth = {}  # k -> mean K_k / K* over points where k trials finished
    for k_idx in range(1, status.shape[2]):
        ratios = [np.sort(st[c])[k_idx] / np.sort(st[c])[0]
                  for st, c in zip(steps.reshape(-1, steps.shape[2]), complete.reshape(-1, complete.shape[2]))
                  if c.sum() > k_idx]
        if ratios:
            kth[k_idx + 1] = float(np.mean(ratios))
    return {"fits": analysis.fits(ds, panel_id), "p": float(complete.sum() / max(own.sum(), 1)),
            "kbar_over_kstar": float(np.mean(ratio)) if ratio.size else 2.0, "q": min(q, 1.0),
            "kth_over_kstar": kth,
            "measured_k": {(float(s), int(b)): float(k.sel(sparsity=s, batch_size=b))
                           for s in k.sparsity.values for b in k.batch_size.values
                           if np.isfinite(float(k.sel(sparsity=s, batch_size=b)))}}


def predicted_k(measured, sparsity, batch_size):
    """K* at a study point: measured if it was, else the Prop. 4.1 fit of the nearest sparsity."""
    if (sparsity, batch_size) in measured["measured_k"]:
        return measured["measured_k"][(sparsity, batch_size)]
    usable = {s: f for s, f in measured["fits"].items() if math.isfinite(f["c1"])}
    if usable:
        s = min(usable, key=lambda x: abs(x - sparsity))
        return usable[s]["c1"] / batch_size + usable[s]["c2"]
    # Too few points for a fit: the nearest sparsity's measured curve, extended by linear
    # scaling below its smallest B and flat (a plateau) above its largest.
    if not measured["measured_k"]:
        return math.nan
    s = min({s for s, _ in measured["measured_k"]}, key=lambda x: abs(x - sparsity))
    curve = sorted((b, k) for (s2, b), k in measured["measured_k"].items() if s2 == s)
    (b0, k0), (b1, k1) = curve[0], curve[-1]
    if batch_size <= b0:
        return k0 * b0 / batch_size
    if batch_size >= b1:
        return k1
    return float(np.exp(np.interp(math.log(batch_size), [math.log(b) for b, _ in curve],
                                  [math.log(k) for _, k in curve])))  # a power law between points


def _point_costs(grid, eval_steps, sparsity, batch_size, n_val, measured, space_share):
    """{at_most[, naive, repro]} x {steps, evaluations, examples_evaluated} of one study point,
    one replicate (see estimate_panel)."""
    budget = grid.max_steps_for(batch_size)
    n_ev_max = _evals_until(eval_steps, budget)
    out = {"at_most": {"steps": grid.trials * budget, "evaluations": grid.trials * n_ev_max,
                       "examples_evaluated": grid.trials * n_ev_max * n_val}}
    if measured is None:
        return out
    k = predicted_k(measured, sparsity, batch_size)
    if not math.isfinite(k):
        k = budget  # no trial expected to finish: every trial runs its budget
    p = measured["p"] * space_share if math.isfinite(k) and k < budget else 0.0
    kbar = min(budget, k * measured["kbar_over_kstar"])
    per_trial = p * kbar + (1 - p) * budget
    evals_per_trial = p * _evals_until(eval_steps, kbar) + (1 - p) * n_ev_max
    naive_steps, naive_evals = grid.trials * per_trial, grid.trials * evals_per_trial
    n, finishers = grid.trials, getattr(grid, "finishers", 1)
    r_k = 1.0 if finishers <= 1 else measured.get("kth_over_kstar", {}).get(finishers, KTH_OVER_KSTAR)
    k_k = min(budget, k * r_k)
    # j of n trials reach the goal (binomial): with j >= k every trial stops by K_k; with fewer,
    # those j stop at their own goal (K_bar on average) and the rest run the budget (repro.race)
    repro_steps = repro_evals = some = 0.0
    for j in range(n + 1):
        pj = math.comb(n, j) * p ** j * (1 - p) ** (n - j)
        if j >= finishers:
            repro_steps += pj * n * k_k
            repro_evals += pj * n * _evals_until(eval_steps, k_k)
        else:
            repro_steps += pj * (j * kbar + (n - j) * budget)
            repro_evals += pj * (j * _evals_until(eval_steps, kbar) + (n - j) * n_ev_max)
        some += pj if j >= 1 else 0.0
    # the evaluation where the winner meets the goal is read in full; every other one misses
    # the goal, and early exit reads q of it
    hits = some
    out["naive"] = {"steps": naive_steps, "evaluations": naive_evals,
                    "examples_evaluated": naive_evals * n_val}
    out["repro"] = {"steps": repro_steps, "evaluations": repro_evals,
                    "examples_evaluated": (hits + (repro_evals - hits) * measured["q"]) * n_val}
    return out


def estimate_by_batch(panel_plan, n_val, measured=None, space_share=1.0):
    """{batch_size: {at_most[, naive, repro]: {steps, evaluations, examples_evaluated}}}: the
    panel's costs split by batch size (unrounded; replicate seeds included), which is what wall
    time needs, since a step's time depends on B (repro.throughput)."""
    grid = panel_plan.grid
    eval_steps, seeds = spec_mod.eval_steps(grid), getattr(grid, "seeds", 1)
    out = {}
    for s, b in panel_plan.points:
        row = out.setdefault(int(b), {})
        for kind, costs in _point_costs(grid, eval_steps, s, b, n_val, measured, space_share).items():
            acc = row.setdefault(kind, {"steps": 0.0, "evaluations": 0.0, "examples_evaluated": 0.0})
            for name, v in costs.items():
                acc[name] += v * seeds
    return out


def estimate_panel(panel_plan, n_val, measured=None, space_share=1.0):
    """{at_most, naive, repro} x {steps, evaluations, examples_evaluated} for one panel.

    `space_share`: the share of this panel's search space the measurements covered; the
    measured p is scaled by it (trials outside are taken to fail). Replicate searches (the
    grid's `seeds`) cost the same again each, as far as this model can tell (measured from
    replicate 0)."""
    kinds = ("at_most",) if measured is None else ("at_most", "naive", "repro")
    out = {k: {"steps": 0.0, "evaluations": 0.0, "examples_evaluated": 0.0} for k in kinds}
    for row in estimate_by_batch(panel_plan, n_val, measured, space_share).values():
        for k in kinds:
            for name, v in row[k].items():
                out[k][name] += v
    return {k: {n: int(round(v)) for n, v in costs.items()} for k, costs in out.items()}


def estimate(plan, ds=None):
    """Cost estimate of every panel of `plan`, using measurements from `ds` where it has them."""
    rows = []
    for panel_plan in plan.panels:
        panel_id, measured, share = panel_plan.panel.id, None, 1.0
        if ds is not None and panel_id in list(ds.panel.values):
            measured = measurements(ds, panel_id)
            share = coverage(ds, panel_id, panel_plan.grid.search)
        n_val = validation_size(panel_plan.panel.dataset)
        rows.append({"panel": panel_id, "measured_from": None if measured is None else
                     {"grid": ds.attrs.get("grid"), "p": measured["p"], "q": measured["q"],
                      "kbar_over_kstar": measured["kbar_over_kstar"], "space_share": share},
                     **estimate_panel(panel_plan, n_val, measured, share),
                     "by_batch": estimate_by_batch(panel_plan, n_val, measured, share)})
    return rows
