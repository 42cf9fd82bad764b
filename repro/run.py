"""Run a plan: for every study point, a Sobol search whose trials train through the engine.

Finished trials are stored as records (shared across figures and reruns); the results file
is collected from them at the end. Best-so-far capping: K* is a minimum over trials, so once
a study point has a complete trial at step K, a later trial is stopped before K (it could only
tie, and ties go to the lower trial id). Capped trials are recorded as `capped`.
"""
import dataclasses
import pathlib
import time

import numpy as np

from . import data as data_mod
from . import store as store_mod
from .errors import DataMissing

SNIP_VERSION = 1  # bump if the score computation changes: old caches are then ignored


@dataclasses.dataclass
class Progress:
    """Counts trials over the whole plan and prints one line per trial with an ETA."""

    total: int
    log: object = print
    done: int = 0
    trained_time: float = 0.0
    trained: int = 0
    start: float = dataclasses.field(default_factory=time.perf_counter)

    def trial(self, text, seconds, reused):
        self.done += 1
        if not reused:
            self.trained += 1
            self.trained_time += seconds
        left = self.total - self.done
        eta = left * self.trained_time / self.trained if self.trained else 0.0
        self.log(f"[{self.done}/{self.total} trials, {_hms(time.perf_counter() - self.start)} "
                 f"elapsed, ETA {_hms(eta)}] {text}")


def _hms(seconds):
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def identity(panel, grid, spec, sparsity, batch_size, trial, values):
    """Everything that determines a trial's outcome (its run id is a hash of this)."""
    return {
        "dataset": panel.dataset, "model": panel.model, "optimizer": panel.optimizer,
        "schedule": panel.schedule, "sparsity": sparsity, "batch_size": batch_size,
        "trial": trial, "seed": spec.seed, "values": {k: float(v) for k, v in values.items()},
        "max_steps": grid.max_steps, "eval_every": grid.eval_every,
        "eval_per_octave": grid.eval_per_octave, "goal_error": panel.goal_error,
        "snip": SNIP_VERSION,
    }


class SnipCache:
    """SNIP scores per (dataset, model, seed) on disk; masks per sparsity derived on demand."""

    def __init__(self, root, engine, data, dataset, model):
        self.dir = pathlib.Path(root) / "cache" / "snip"
        self.engine, self.data, self.key = engine, data, f"{dataset}-{model}-v{SNIP_VERSION}"
        self.masks = {}

    def mask(self, seed, init, sparsity):
        from . import pruning
        if sparsity == 0:
            return None
        if (seed, sparsity) not in self.masks:
            path = self.dir / f"{self.key}-seed{seed}.npz"
            if path.exists():
                with np.load(path) as z:
                    scores = [z[f"s{i}"] for i in range(len(z.files))]
            else:
                scores = pruning.connection_sensitivity(
                    self.engine.model, init, self.data.x_train, self.data.y_train)
                import io
                buf = io.BytesIO()
                np.savez(buf, **{f"s{i}": s for i, s in enumerate(scores)})
                store_mod.atomic_write(path, buf.getvalue())
            self.masks[(seed, sparsity)] = pruning.masks_from_scores(scores, sparsity)
        return self.masks[(seed, sparsity)]


def run_plan(plan, results_dir="results", capping=True, log=print):
    """Run every study point of `plan`; returns (dataset, report dict)."""
    from . import engine as engine_mod
    from . import models, search

    results_dir = pathlib.Path(results_dir)
    store = store_mod.RunStore(results_dir)
    spec = plan.spec
    progress = Progress(sum(len(p.points) * p.grid.trials for p in plan.panels), log)
    records, missing = {}, {}
    for pp in plan.panels:
        panel, grid = pp.panel, pp.grid
        try:
            data = data_mod.load(panel.dataset)
        except DataMissing as e:
            missing[panel.id] = str(e)
            log(f"panel ({panel.id}) NOT RUN: {e}")
            progress.total -= len(pp.points) * grid.trials
            continue
        eng = None  # built lazily: a fully reused panel needs no TensorFlow graph
        order = engine_mod.DataOrder(len(data.y_train), spec.seed)
        for n_point, (s, b) in enumerate(pp.points, 1):
            best = {"k": None, "trial": None}

            def run_one(i, values, s=s, b=b, best=best, n_point=n_point):
                nonlocal eng
                ident = identity(panel, grid, spec, s, b, i, values)
                rid = store_mod.run_id(ident)
                cap = best["k"] - 1 if capping and best["k"] is not None else None
                cap = cap if cap is not None and cap < grid.max_steps else None
                old = store.get(rid)
                rec = store_mod.capped_view(old, cap) if old else None
                reused = rec is not None
                if not reused:
                    if eng is None:
                        eng = engine_mod.Engine(data, panel.model, panel.optimizer, panel.schedule)
                        snips = SnipCache(results_dir, eng, data, panel.dataset, panel.model)
                        eng.snips = snips
                    init = models.initial_weights(eng.model, spec.seed + i)
                    mask = eng.snips.mask(spec.seed + i, init, s)
                    limit = grid.max_steps if cap is None else cap
                    res = eng.run_trial(order=order, batch_size=b, init=init, mask=mask,
                                        hp=values, eval_steps=pp.eval_steps,
                                        goal=panel.goal_error, max_steps=limit)
                    status = res.status
                    if status == "incomplete" and cap is not None:
                        status = "capped"
                    rec = {"run_id": rid, "identity": ident, "values": ident["values"],
                           "status": status, "steps_to_result": res.steps_to_result,
                           "steps": res.steps, "eval_steps": res.eval_steps,
                           "val_errors": res.val_errors, "wall_time": res.wall_time,
                           "message": res.message, "cap": cap}
                    store.put(rid, rec)
                k = rec["steps_to_result"]
                if rec["status"] == "complete" and (best["k"] is None or k < best["k"]):
                    best["k"], best["trial"] = k, i
                hp = " ".join(f"{n[:2]}={v:.3g}" for n, v in values.items())
                kstr = f"K={k}" if k is not None else f"{rec['steps']} steps"
                progress.trial(
                    f"({panel.id}) point {n_point}/{len(pp.points)} B={b} s={s:g} trial {i}: "
                    f"{rec['status']} {kstr} [{hp}] {rec['wall_time']:.1f}s"
                    f"{' (stored)' if reused else ''} | K* so far {best['k']}",
                    rec["wall_time"], reused)
                return k if rec["status"] == "complete" else None

            oracle = search.SobolOracle(grid.search, grid.trials,
                                        scrambled=spec.sobol == "scrambled", seed=spec.sobol_seed)
            project = store_mod.run_id({"space": [str(d) for d in grid.search],
                                        "trials": grid.trials, "sobol": spec.sobol,
                                        "sobol_seed": spec.sobol_seed, "cap": capping,
                                        "id": identity(panel, grid, spec, s, b, 0, {})})
            tuner = search.StepsToResultTuner(
                oracle, run_one, directory=results_dir / "tuner",
                project_name=f"{panel.dataset}-{panel.model}-{panel.optimizer}-B{b}-s{s:g}-{project}")
            tuner.search(verbose=0)
            # A resumed search skips trials keras-tuner already ended: read those from the store.
            replay_best = None
            for i, values in enumerate(search.to_values(oracle.hyperparameters, p) for p in oracle.points):
                cap = replay_best - 1 if capping and replay_best is not None else None
                cap = cap if cap is not None and cap < grid.max_steps else None
                old = store.get(store_mod.run_id(identity(panel, grid, spec, s, b, i, values)))
                rec = store_mod.capped_view(old, cap) if old else None
                if rec is None:
                    continue
                records[(panel.id, s, b, i)] = rec
                if rec["status"] == "complete" and (replay_best is None or rec["steps_to_result"] < replay_best):
                    replay_best = rec["steps_to_result"]
    ds = store_mod.collect(spec, plan, records)
    ds.attrs["panels_not_run"] = "; ".join(f"{k}: {v}" for k, v in missing.items())
    return ds, {"missing": missing}
