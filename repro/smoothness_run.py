"""Smoothness runs (Figures 4 and 6, Appendix C): one training run per (panel, sparsity) at
the grid's fixed metaparameters, measured every `lipschitz_every` steps.

At each measured step k the run takes its ordinary step k -> k+1, and on a separate copy of
the network (so the trajectory is exactly the unmeasured one) repro records over the
measurement split (the training split, or its first `gradient_examples`):
- L(w_k), Appendix C's local Lipschitz estimate along d = w_{k+1} - w_k, for k > 0 (the
  authors' code first measures after `interval` steps; at initialisation L is tens of times
  its value anywhere later, measured: ~100 vs 2-8 for Simple-CNN at lr 0.1, so including it
  would make the average a measure of the random initialisation);
- f(w_k), the training loss (Figure 6), and |grad f(w_k)|^2;
- B_simple = tr(Sigma) / |G|^2 by McCandlish et al.'s two-batch estimator (noise_batch_sizes);
and once, at initialisation, beta = mean ||g_i - G||^2 over `variance_examples` single-example
gradients (the variance bound at B = 1 of Prop. 4.1) and Delta = 2 (f(w_1) - f_inf) with
f_inf = 0, cross-entropy's infimum.

A finished run is one JSON record in results/runs (shared by Figures 4 and 6, which read the
same runs); a killed study resumes at the first unfinished run.
"""
import math
import multiprocessing as mp
import os
import time

import numpy as np
import xarray as xr

from . import data as data_mod, store as store_mod
from .errors import DataMissing

VERSION = 2  # bump when the measurement changes, so stored records are not reused


def identity(spec, panel, grid, sparsity):
    """Everything that determines a smoothness run's outcome (not the figure that asks)."""
    return {"kind": "smoothness", "v": VERSION, "dataset": panel.dataset, "model": panel.model,
            "optimizer": panel.optimizer, "schedule": panel.schedule, "sparsity": sparsity,
            "seed": spec.seed, "batch_size": grid.batch_size, "learning_rate": grid.learning_rate,
            "momentum": grid.momentum, "steps": grid.steps, "lipschitz_every": grid.lipschitz_every,
            "gradient_examples": grid.gradient_examples,
            "noise_batch_sizes": list(grid.noise_batch_sizes), "noise_draws": grid.noise_draws,
            "variance_examples": grid.variance_examples}


def measure_run(spec, panel, grid, sparsity, results_dir="results"):
    """Train one run and measure it (module docstring); returns its record."""
    from . import models, run as run_mod, smoothness  # TensorFlow: only where runs are measured
    t0 = time.perf_counter()
    work = run_mod.workload(panel, results_dir)   # engine, data order, SNIP cache
    eng, data = work.engine, work.data
    init = models.initial_weights(eng.model, spec.seed)
    mask = work.mask(spec.seed, init, sparsity)
    eng.reset(init, mask, {"learning_rate": grid.learning_rate, "momentum": grid.momentum})
    n = grid.gradient_examples or len(data.y_train)
    x, y = data.x_train[:n], data.y_train[:n]
    probe = smoothness.MaskedLoss(models.build(panel.model, data.x_train.shape[1:]), mask)
    rng = np.random.default_rng([spec.seed, 4])  # noise-scale batches: same for every sparsity
    small, big = grid.noise_batch_sizes

    def batches(batch_size):
        picks = [rng.choice(len(data.y_train), batch_size, replace=False)
                 for _ in range(grid.noise_draws)]
        return [(data.x_train[i], data.y_train[i]) for i in picks]

    done = 0

    def advance(to):
        """Train up to step `to`; the weights there, or None if the run diverged."""
        nonlocal done
        if to > done:
            ran, finite, weights_finite = eng.train_steps(work.order_for(spec.seed), done, to,
                                                          grid.batch_size)
            done += ran
            if not (finite and weights_finite):
                return None
        return [v.numpy() for v in eng.weights]

    record = {"identity": identity(spec, panel, grid, sparsity), "status": "complete", "message": "",
              "step": [], "lipschitz": [], "train_loss": [], "grad_sq_norm": [], "noise_scale": [],
              "trace_sigma": []}
    for k in grid.measure_steps():
        w_k = advance(k)
        w_next = w_k and advance(k + 1)
        if not w_next:
            break
        loss, gradient = probe.mean(w_k, x, y)
        lip = math.nan if k == 0 else \
            smoothness.local_lipschitz(lambda w: probe.mean(w, x, y)[1], w_k, w_next, g0=gradient)[0]
        b_simple, _, trace = smoothness.simple_noise_scale(
            probe.mean_sq_norm(w_k, batches(small)), small, probe.mean_sq_norm(w_k, batches(big)), big)
        if k == 0:
            record["beta"] = probe.per_example_variance(w_k, x[:grid.variance_examples],
                                                        y[:grid.variance_examples], gradient)
            record["delta"] = 2.0 * loss  # f_inf = 0
        for name, v in (("step", k), ("lipschitz", lip), ("train_loss", loss),
                        ("grad_sq_norm", smoothness.norm(gradient) ** 2), ("noise_scale", b_simple),
                        ("trace_sigma", trace)):
            record[name].append(v)
    else:
        w_end = advance(grid.steps)
        if w_end:
            record["final_loss"] = probe.mean(w_end, x, y)[0]
    if "final_loss" not in record:
        record["status"], record["message"] = "infeasible", f"non-finite loss or weights by step {done}"
    record["steps"], record["wall_time"] = done, time.perf_counter() - t0
    return _finite(record)


def _finite(record):
    """JSON has no NaN/inf: store them as None."""
    fix = lambda v: None if isinstance(v, float) and not math.isfinite(v) else v  # noqa: E731
    return {k: ([fix(x) for x in v] if isinstance(v, list) else fix(v)) for k, v in record.items()}


# --------------------------------------------------------------------------- a whole study

def tasks_of(spec, grid_name, panels=None):
    """[(panel, grid, sparsity)] of the spec's grid, panels restricted to the ids in `panels`."""
    out = []
    for p in spec.panels:
        if panels and p.id not in panels:
            continue
        if grid_name not in p.grids:
            from .errors import UsageError
            raise UsageError(spec.path, f"panel[{p.id}].grid.{grid_name}", "no such grid",
                             f"use one of: {', '.join(p.grids)}")
        out += [(p, p.grids[grid_name], s) for s in p.grids[grid_name].sparsities]
    return out


def _worker_init(parent_pid):
    from . import engine, interrupt
    interrupt.die_with_parent(parent_pid)  # no worker outlives the run (repro.interrupt)
    engine.pin_threads()  # same bits whatever --workers is (see engine.TRIAL_THREADS)


def _measure_and_store(args):
    spec, panel, grid, s, results_dir, rid = args
    record = measure_run(spec, panel, grid, s, results_dir)
    store_mod.RunStore(results_dir).put(rid, record)  # atomic: a killed run leaves nothing
    return rid, record


def run_study(spec, grid_name="reduced", results_dir="results", workers=1, panels=None, log=print):
    """Measure every (panel, sparsity) not stored yet, then return the collected dataset."""
    runs, tasks = store_mod.RunStore(results_dir), tasks_of(spec, grid_name, panels)
    by_id, missing = {p.id: p for p, _, _ in tasks}, {}  # missing: panel id -> DataMissing
    for p in by_id.values():
        try:
            data_mod.require(p.dataset)
        except DataMissing as e:
            log(f"panel ({p.id}) NOT RUN: {e}")
            missing[p.id] = e
    if missing and len(missing) == len(by_id):
        raise next(iter(missing.values()))  # no panel can run here: say how to get the data
    todo = []
    for p, g, s in tasks:
        rid = store_mod.run_id(identity(spec, p, g, s))
        if p.id not in missing and runs.get(rid) is None:
            todo.append((spec, p, g, s, str(results_dir), rid))
    runnable, total = sum(p.id not in missing for p, _, _ in tasks), len(todo)
    if total:
        log(f"{spec.id}: {total} smoothness run(s) to measure ({runnable - total} stored)")
    t0, finished = time.perf_counter(), 0

    def report(rec, task):
        nonlocal finished
        finished += 1
        lips = [v for v in rec["lipschitz"] if v is not None]  # none at step 0
        per = (time.perf_counter() - t0) / finished
        log(f"[{finished}/{total} runs | ETA {max(0.0, (total - finished) * per / max(1, workers)):.0f}s] "
            f"({task[1].id}) s={task[3]:g}: {rec['status']}, mean L {np.mean(lips) if lips else math.nan:.3g} "
            f"over {len(lips)} measurements, {rec['wall_time']:.0f}s")

    if workers <= 1 or total <= 1:
        from . import engine
        if not engine.pin_threads():
            log(f"warning: TensorFlow already runs here on more than {engine.TRIAL_THREADS} thread; "
                "runs measured in this process may differ in their last bits")
        for t in todo:
            report(_measure_and_store(t)[1], t)
    else:
        ctx = mp.get_context("spawn")  # TensorFlow is not fork-safe
        with ctx.Pool(min(workers, total), _worker_init, (os.getpid(),)) as pool:
            by_id = {t[-1]: t for t in todo}
            for rid, rec in pool.imap_unordered(_measure_and_store, todo):
                report(rec, by_id[rid])
    ds = collect(spec, grid_name, results_dir, panels)
    ds.attrs["panels_not_run"] = "; ".join(f"{k}: {v}" for k, v in missing.items())
    return ds


PER_STEP = ("lipschitz", "train_loss", "grad_sq_norm", "noise_scale", "trace_sigma")
PER_RUN = ("beta", "delta", "final_loss", "wall_time", "steps")


def collect(spec, grid_name="reduced", results_dir="results", panels=None):
    """The smoothness dataset from the stored records alone (trains nothing); runs not stored
    yet are NaN with status 'not_run'."""
    tasks = tasks_of(spec, grid_name, panels)
    pids = list(dict.fromkeys(p.id for p, _, _ in tasks))
    sparsities = sorted({s for _, _, s in tasks})
    steps = sorted({k for _, g, _ in tasks for k in g.measure_steps()})
    shape2, shape3 = (len(pids), len(sparsities)), (len(pids), len(sparsities), len(steps))
    per_step = {n: np.full(shape3, np.nan) for n in PER_STEP}
    per_run = {n: np.full(shape2, np.nan) for n in PER_RUN}
    status = np.full(shape2, "not_run", dtype=object)
    runs = store_mod.RunStore(results_dir)
    for p, g, s in tasks:
        rec = runs.get(store_mod.run_id(identity(spec, p, g, s)))
        if rec is None:
            continue
        i, j = pids.index(p.id), sparsities.index(s)
        status[i, j] = rec["status"]
        for n in PER_RUN:
            per_run[n][i, j] = np.nan if rec.get(n) is None else rec[n]
        for k, *vals in zip(rec["step"], *(rec[n] for n in PER_STEP)):
            for n, v in zip(PER_STEP, vals):
                per_step[n][i, j, steps.index(k)] = np.nan if v is None else v
    dims2, dims3 = ("panel", "sparsity"), ("panel", "sparsity", "step")
    units = {"lipschitz": "local Lipschitz constant of grad f along the step (Appendix C)",
             "train_loss": "mean cross-entropy over the measurement split",
             "grad_sq_norm": "|grad f|^2 over the measurement split",
             "noise_scale": "B_simple = tr(Sigma)/|G|^2, two-batch estimator (McCandlish et al. 2018)",
             "trace_sigma": "tr(Sigma), per-example gradient covariance trace, two-batch estimator",
             "beta": "gradient variance at B = 1 at initialisation: mean ||g_i - G||^2",
             "delta": "2 (f(w_1) - f_inf), f_inf = 0",
             "final_loss": "training loss after the last step", "wall_time": "seconds",
             "steps": "training steps run"}
    ds = xr.Dataset(
        {**{n: (dims3, v, {"long_name": units[n]}) for n, v in per_step.items()},
         **{n: (dims2, v, {"long_name": units[n]}) for n, v in per_run.items()},
         "status": (dims2, status.astype(str))},
        coords={"panel": pids, "sparsity": sparsities, "step": steps,
                "dataset": ("panel", [spec.panel(pid).dataset for pid in pids]),
                "model": ("panel", [spec.panel(pid).model for pid in pids]),
                "optimizer": ("panel", [spec.panel(pid).optimizer for pid in pids])})
    ds.attrs.update(store_mod.provenance(spec))
    ds.attrs.update(grid=grid_name, kind="smoothness",
                    description="Smoothness runs (Lee et al., ICLR 2021, Fig. 4/6, App. C); "
                                "layout: docs/results-format.md in repro")
    return ds


# --------------------------------------------------------------------------- plan and report

class SmoothPlan:
    """A smoothness spec's grid, as `repro plan` lists it beside the searches."""

    def __init__(self, spec, grid_name="reduced", panels=None):
        self.spec, self.grid_name, self.tasks = spec, grid_name, tasks_of(spec, grid_name, panels)

    def run_ids(self):
        return [store_mod.run_id(identity(self.spec, p, g, s)) for p, g, s in self.tasks]


def describe(plan):
    """JSON-ready description (what `repro plan --json` prints for a smoothness figure)."""
    panels = {}
    for p, g, _ in plan.tasks:
        n = len(g.measure_steps())
        panels[p.id] = {
            "id": p.id, "title": p.title, "dataset": p.dataset, "model": p.model,
            "optimizer": p.optimizer, "sparsities": list(g.sparsities), "batch_size": g.batch_size,
            "learning_rate": g.learning_rate, "momentum": g.momentum, "steps": g.steps,
            "lipschitz_every": g.lipschitz_every, "measurements_per_run": n,
            "gradient_examples": g.gradient_examples or "whole training split",
            # 1 gradient at w_k and one per gamma (none at step 0), each over the measurement split
            "split_gradients_per_run": n * 11 - 10, "noise_batch_sizes": list(g.noise_batch_sizes),
            "noise_draws": g.noise_draws, "variance_examples": g.variance_examples, "why": g.why}
    return {"figure": plan.spec.id, "spec": str(plan.spec.path), "grid": plan.grid_name,
            "kind": "smoothness", "panels": list(panels.values()),
            # each run counts as one trial where `repro plan` counts runs shared across figures
            "totals": {"runs": len(plan.tasks), "trials": len(plan.tasks), "steps": sum(g.steps for _, g, _ in plan.tasks),
                       "split_gradients": sum(len(g.measure_steps()) * 11 - 10 for _, g, _ in plan.tasks)}}


def format_description(description):
    """Text form of `describe` for `repro plan`."""
    totals = description["totals"]
    lines = [f"{description['figure']} ({description['grid']} grid, smoothness): {totals['runs']} runs, "
             f"{totals['steps']:,} training steps, {totals['split_gradients']:,} gradients "
             "over the measurement split"]
    for p in description["panels"]:
        lines.append(f"  ({p['id']}) {p['dataset']} / {p['model']} / {p['optimizer']}: s {p['sparsities']}, "
                     f"B {p['batch_size']}, lr {p['learning_rate']:g}"
                     + (f", momentum {p['momentum']:g}" if p["momentum"] else "")
                     + f", {p['steps']} steps, L every {p['lipschitz_every']} "
                     f"({p['measurements_per_run'] - 1} per run) over {p['gradient_examples']} examples")
    return "\n".join(lines)


def summary(ds):
    """Per (panel, sparsity): status, mean L, beta, Delta, B_simple at init and mean."""
    lines = [f"{'panel':5s} {'s':>4s} {'status':10s} {'mean L':>8s} {'beta':>9s} {'Delta':>7s} "
             f"{'B_simple@0':>10s} {'mean B_simple':>13s} {'final loss':>10s}"]
    for p in ds.panel.values:
        for s in ds.sparsity.values:
            r = ds.sel(panel=p, sparsity=s)
            if str(r["status"].values) == "not_run":
                continue
            lines.append(f"{str(p):5s} {s:4g} {str(r['status'].values):10s} "
                         f"{float(r['lipschitz'].mean()):8.3g} {float(r['beta']):9.4g} "
                         f"{float(r['delta']):7.3f} {float(r['noise_scale'].isel(step=0)):10.4g} "
                         f"{float(r['noise_scale'].mean()):13.4g} {float(r['final_loss']):10.4f}")
    return "\n".join(lines)
