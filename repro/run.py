"""Run a plan: for every study point, a Sobol search whose trials train through the engine.

Finished trials are stored as records (shared across figures and reruns); the results file
is collected from them at the end. Best-so-far capping: K* is a minimum over trials, so once
a study point has a complete trial at step K, a later trial is stopped before K (it could only
tie, and ties go to the lower trial id). Capped trials are recorded as `capped`.
Study points are independent, so `workers` > 1 runs them in parallel processes.
"""
import dataclasses
import io
import json
import multiprocessing as mp
import pathlib
import shutil
import time

import numpy as np

from . import ahead as ahead_mod
from . import data as data_mod
from . import store as store_mod
from .errors import DataMissing, UsageError
from .plan import REPLICATE_SEED_STRIDE, replicate_seeds, replicate_spec

SNIP_VERSION = 1  # bump if the score computation changes: old caches are then ignored


def identity(panel, grid, spec, sparsity, batch_size, trial, values):
    """Everything that determines a trial's training (its run id is a hash of this).

    Not the figure and not the goal: figures that ask for the same workload, study point,
    trial and metaparameters share one run, and its stored curve is re-read at each goal
    (store.goal_view); a goal the curve cannot answer trains the run further.
    """
    return {
        "dataset": panel.dataset, "model": panel.model, "optimizer": panel.optimizer,
        "schedule": panel.schedule, "sparsity": sparsity, "batch_size": batch_size,
        "trial": trial, "seed": spec.seed, "values": {k: float(v) for k, v in values.items()},
        "max_steps": grid.max_steps_for(batch_size), "eval_every": grid.eval_every,
        "eval_per_octave": grid.eval_per_octave, "snip": SNIP_VERSION,
    }


def cap_for(best, index, capping, max_steps):
    """Last step trial `index` may run to (None: no cap).

    `best` is (K, trial) of the best complete trial run so far. K* is a minimum over trials
    with ties going to the lower trial index, so a later trial can only matter by beating K,
    or by tying it with a lower index: it stops at K - 1, or at K if its index is lower.
    """
    if not capping or best is None:
        return None
    k, best_index = best
    cap = k if index < best_index else k - 1
    return None if cap >= max_steps else cap


class Workload:
    """Per-process engine, data order and SNIP score cache for one workload."""

    def __init__(self, panel, spec, results_dir, replicas=1):
        from . import devices, engine as engine_mod
        self.data = data_mod.load(panel.dataset)
        strategy = devices.mirrored(replicas) if replicas > 1 else None
        self.engine = engine_mod.Engine(self.data, panel.model, panel.optimizer, panel.schedule,
                                        strategy=strategy)
        self.orders = {}  # {seed: DataOrder}: the figure's (or a replicate's) data order
        self.snip_dir = pathlib.Path(results_dir) / "cache" / "snip"
        self.snip_key = f"{panel.dataset}-{panel.model}-v{SNIP_VERSION}"
        self.masks = {}

    def order_for(self, seed):
        """The data order of figure seed `seed` (one engine serves every replicate seed)."""
        from . import engine as engine_mod
        if seed not in self.orders:
            self.orders[seed] = engine_mod.DataOrder(len(self.data.y_train), seed)
        return self.orders[seed]

    def mask(self, seed, init, sparsity):
        """SNIP mask for (seed, sparsity); scores computed once per seed and kept on disk."""
        from . import pruning
        if sparsity == 0:
            return None
        if (seed, sparsity) not in self.masks:
            path = self.snip_dir / f"{self.snip_key}-seed{seed}.npz"
            if path.exists():
                with np.load(path) as z:
                    scores = [z[f"s{i}"] for i in range(len(z.files))]
            else:
                scores = pruning.connection_sensitivity(
                    self.engine.model, init, self.data.x_train, self.data.y_train)
                buf = io.BytesIO()
                np.savez(buf, **{f"s{i}": s for i, s in enumerate(scores)})
                store_mod.atomic_write(path, buf.getvalue())
            self.masks[(seed, sparsity)] = pruning.masks_from_scores(scores, sparsity)
        return self.masks[(seed, sparsity)]


_WORKLOADS = {}  # per process: building an engine traces graphs, so keep them


def workload(panel, spec, results_dir, replicas=1):
    """This process's Workload for the panel's (dataset, model, optimizer, schedule); its data
    order for a seed is `order_for(spec.seed)` (replicate seeds share the engine)."""
    key = (panel.dataset, panel.model, panel.optimizer, panel.schedule, replicas)
    if key not in _WORKLOADS:
        _WORKLOADS[key] = Workload(panel, spec, results_dir, replicas)
    return _WORKLOADS[key]


def point_project(spec, pp, sparsity, batch_size, capping):
    """Id of one study point's search (its keras-tuner project and run order)."""
    return store_mod.run_id({"space": [str(d) for d in pp.grid.search], "trials": pp.grid.trials,
                             "sobol": spec.sobol, "sobol_seed": spec.sobol_seed, "capping": capping,
                             "point": identity(pp.panel, pp.grid, spec, sparsity, batch_size, 0, {})})


def _sobol(spec, pp):
    from . import search
    hp = search.hyperparameters(pp.grid.search)
    points = search.sobol_points(len(pp.grid.search), pp.grid.trials,
                                 spec.sobol == "scrambled", spec.sobol_seed)
    return points, [search.to_values(hp, p) for p in points]


def _order_path(spec, pp, sparsity, batch_size, results_dir, capping):
    return (pathlib.Path(results_dir) / "orders" /
            f"{point_project(spec, pp, sparsity, batch_size, capping)}.json")


def run_order(spec, pp, sparsity, batch_size, results_dir, capping, reorder=True, anchor=None):
    """The order this study point's trials run in (Sobol indices), fixed on first use.

    With `reorder` and an `anchor` ({"sparsity", "batch_size", "trial"}: a trial of a
    neighbouring point, chosen by `anchor_for`), trials nearest to it in the unit cube run
    first, so that best-so-far capping bites sooner. If that first trial misses the goal, the
    rest are re-sorted once by their distance to the neighbour's best trial (`reanchor`). The
    set of trials never changes, only their order. The order is written before the first
    trial and re-read on resume (a stored order wins over `anchor`), so an interrupted run
    replays exactly the same caps.
    """
    path = _order_path(spec, pp, sparsity, batch_size, results_dir, capping)
    if path.exists():
        return json.loads(path.read_text())["order"]
    points, _ = _sobol(spec, pp)
    order = list(range(len(points)))
    if not (reorder and capping):
        anchor = None
    if anchor is not None:
        d = np.linalg.norm(points - points[anchor["trial"]], axis=1)
        order = sorted(order, key=lambda t: (d[t], t))
    store_mod.atomic_write(path, json.dumps({"order": order, "anchor": anchor}).encode())
    return order


def reanchor(spec, pp, sparsity, batch_size, results_dir, capping, best):
    """Keep the first trial of the stored run order, sort the rest by distance to `best` (the
    anchor point's best trial, {"sparsity", "batch_size", "trial"}), store and return it.

    The first complete trial of a neighbour is known early (so searches overlap) but need not
    be its best (measured: Momentum, 90 %, B = 256's first complete trial took 858 steps, its
    best 390; anchored on the first, B = 1024 ran 5 trials to the full budget before the one
    that reached the goal). Once the first trial here has missed, the neighbour's best is the
    better guide. Done at most once per point, so a resumed run replays it."""
    path = _order_path(spec, pp, sparsity, batch_size, results_dir, capping)
    doc = json.loads(path.read_text())
    if "reanchor" not in doc:
        doc.update(order=reanchored(spec, pp, doc["order"], best), reanchor=best)
        store_mod.atomic_write(path, json.dumps(doc).encode())
    return doc["order"]


def reanchored(spec, pp, order, best):
    """`order` with its first trial kept and the rest sorted by distance to trial `best`."""
    points, _ = _sobol(spec, pp)
    d = np.linalg.norm(points - points[best["trial"]], axis=1)
    return order[:1] + sorted(order[1:], key=lambda t: (d[t], t))


def needs_reanchor(spec, pp, sparsity, batch_size, results_dir, capping):
    """True when this point's run order is anchored, not yet re-anchored, and its first trial
    alone is stored and missed the goal: the rest of its order waits for the anchor point's
    best. (An order that already ran past its first trial is kept as it is.)"""
    path = _order_path(spec, pp, sparsity, batch_size, results_dir, capping)
    doc = json.loads(path.read_text())
    if doc.get("anchor") is None or "reanchor" in doc:
        return False
    recs, _ = _walk(spec, pp, sparsity, batch_size, results_dir, capping, doc["order"], 2)
    return len(recs) == 1 and next(iter(recs.values()))["status"] != "complete"


def best_trial(spec, pp, sparsity, batch_size, results_dir, capping):
    """The best trial of a finished study point as an anchor dict (None: none complete)."""
    _, best = _walk(spec, pp, sparsity, batch_size, results_dir, capping)
    return None if best is None else {"sparsity": sparsity, "batch_size": batch_size,
                                      "trial": best[1]}


def first_complete(spec, pp, sparsity, batch_size, results_dir, capping):
    """The first trial, in run order, that reached the goal at a study point (None: none yet).

    Trials of a point run one after another in run order, so once this exists it never
    changes, however many trials have run since: it is what a neighbour anchors on.
    """
    path = _order_path(spec, pp, sparsity, batch_size, results_dir, capping)
    if not path.exists():  # not started in this folder
        return None
    recs, _ = _walk(spec, pp, sparsity, batch_size, results_dir, capping)  # in run order
    return next((key[3] for key, rec in recs.items() if rec["status"] == "complete"), None)


def _walk(spec, pp, sparsity, batch_size, results_dir, capping, order=None, upto=None):
    """Stored records of a study point in run order, as the capped search saw them.

    Returns ({(panel, sparsity, B, trial): record}, best) over the first `upto` trials of the
    run order, where best = (K*, trial) so far (None: none complete). Stops at the first trial
    with no usable record: later ones were capped by a best that may include it.
    """
    store = store_mod.RunStore(results_dir)
    _, values = _sobol(spec, pp)
    if order is None:
        path = _order_path(spec, pp, sparsity, batch_size, results_dir, capping)
        doc = json.loads(path.read_text()) if path.exists() else {}
        order = doc.get("order", list(range(pp.grid.trials)))
        if doc.get("race"):  # raced (race_point): the best at this goal first, then index order
            order = race_order(pp, [store.get(_trial_id(spec, pp, sparsity, batch_size, i, values[i]))
                                    for i in range(pp.grid.trials)])
    out, best = {}, None
    for i in order[:upto]:
        old = store.get(_trial_id(spec, pp, sparsity, batch_size, i, values[i]))
        rec = store_mod.goal_view(old, pp.panel.goal_error,
                                  cap_for(best, i, capping, pp.grid.max_steps_for(batch_size))) \
            if old else None
        if rec is None:
            break
        out[(pp.panel.id, sparsity, batch_size, i)] = rec
        k = rec["steps_to_result"] if rec["status"] == "complete" else None
        if k is not None and (best is None or (k, i) < best):
            best = (k, i)
    return out, best


def stored_best(pp, records, early_exit=True):
    """(K, trial) of the best complete trial that stored `records` (one per trial index, None:
    not stored) show at the panel's goal, each read at its own cap; None if none is complete."""
    best = None
    for i, old in enumerate(records):
        rec = store_mod.goal_view(old, pp.panel.goal_error, old.get("cap")) if old else None
        if rec is not None and not early_exit and not all(rec.get("val_exact", [True])):
            rec = None
        if rec is not None and rec["status"] == "complete" and \
                (best is None or (rec["steps_to_result"], i) < best):
            best = (rec["steps_to_result"], i)
    return best


def race_order(pp, records):
    """A raced point's run order: its best trial (`stored_best`) first, the rest by index.
    Read in this order, each trial's cap (`cap_for`) is the one the race gave it."""
    best = stored_best(pp, records)
    return ([best[1]] if best else []) + [i for i in range(pp.grid.trials) if not best or i != best[1]]


def _trial_id(spec, pp, sparsity, batch_size, i, values):
    """Run id of trial i at a study point (`values`: its metaparameters)."""
    return store_mod.run_id(identity(pp.panel, pp.grid, spec, sparsity, batch_size, i, values))


def _event(spec, pp, sparsity, batch_size, i, values, rec, reused, **more):
    """The progress event of one finished trial (see Progress); `more`: best, ahead. `seed`:
    the (replicate's) figure seed, so replicates of one trial count apart."""
    return {"seed": spec.seed, "panel": pp.panel.id, "sparsity": sparsity, "batch_size": batch_size,
            "trial": i,
            "values": values, "status": rec["status"], "steps": rec["steps"],
            "k": rec["steps_to_result"] if rec["status"] == "complete" else None,
            "wall_time": rec["wall_time"], "reused": reused,
            "examples_trained": rec.get("examples_trained", 0),
            "examples_evaluated": rec.get("examples_evaluated", 0), **more}


def train_or_reuse(spec, pp, sparsity, batch_size, i, values, results_dir, cap=None,
                   early_exit=True, replicas=1, cap_now=None):
    """The record of trial i at a study point: re-read if stored and usable, else trained and
    stored (atomically) now. Returns (record, reused). `cap_now()`: a cap that may tighten
    while the trial trains (a trial run ahead of its search: repro.ahead); the record keeps
    the tightest it ran under."""
    from . import models
    panel, grid = pp.panel, pp.grid
    store = store_mod.RunStore(results_dir)
    ident = identity(panel, grid, spec, sparsity, batch_size, i, values)
    rid = store_mod.run_id(ident)
    old = store.get(rid)
    rec = store_mod.goal_view(old, panel.goal_error, cap) if old else None
    if rec is not None and not early_exit and not all(rec.get("val_exact", [True])):
        rec = None  # exact curves were asked for; this record has lower bounds
    if rec is not None:
        return rec, True
    # Train to this goal, counting errors (early exit) up to the loosest goal the run must
    # answer: the panel's read_goals. A stored record that cannot answer is replaced by one
    # that answers what it did too: trained to the tighter goal, with the larger cap.
    goal, train_cap, loosest = panel.goal_error, cap, [panel.goal_error, *panel.read_goals]
    if old:
        old_goal = store_mod.record_goal(old)
        old_goal = goal if old_goal is None else old_goal
        goal = min(goal, old_goal)
        loosest += [old_goal, old.get("exit_goal") or old_goal]
        train_cap = None if cap is None or old.get("cap") is None else max(cap, old["cap"])
    exit_goal = max(loosest) if early_exit else None
    tightest = [train_cap]  # the cap the trial ran under: fixed, or the last cap_now() it saw

    def poll():
        c = cap_now()
        if c is not None and (tightest[0] is None or c < tightest[0]):
            tightest[0] = c
        return tightest[0]

    w = workload(panel, spec, results_dir, replicas)
    init = models.initial_weights(w.engine.model, spec.seed + i)
    res = w.engine.run_trial(
        order=w.order_for(spec.seed), batch_size=batch_size, init=init,
        mask=w.mask(spec.seed + i, init, sparsity), hp=values,
        eval_steps=pp.eval_steps, goal=goal, early_exit=early_exit, exit_goal=exit_goal,
        max_steps=grid.max_steps_for(batch_size) if train_cap is None else train_cap,
        cap_now=poll if cap_now is not None and not old else None)
    train_cap = tightest[0]
    if train_cap is not None:  # a cap that arrived one interval late: the record reaches past it
        train_cap = max(train_cap, res.steps)
    rec = _record(rid, ident, res, goal, exit_goal, batch_size, train_cap)
    store.put(rid, rec)
    return store_mod.goal_view(rec, panel.goal_error, cap if cap_now is None else train_cap), False


def _record(rid, ident, res, goal, exit_goal, batch_size, cap):
    """The stored record of a trained trial (docs/results-format.md, "Trial records")."""
    status = "capped" if res.status == "incomplete" and cap is not None else res.status
    return {"run_id": rid, "identity": ident, "values": ident["values"], "status": status,
            "goal": goal, "exit_goal": exit_goal,
            "steps_to_result": res.steps_to_result, "steps": res.steps,
            "eval_steps": res.eval_steps, "val_errors": res.val_errors,
            "val_exact": res.val_exact, "examples_evaluated": res.examples_evaluated,
            "examples_trained": res.steps * batch_size,
            "wall_time": res.wall_time, "message": res.message, "cap": cap}


def run_point(spec, pp, sparsity, batch_size, results_dir, capping, report, early_exit=True,
              reorder=True, replicas=1, anchor=None, best=None, claims=False):
    """Search one study point with keras-tuner; `report(event dict)` after every trial.

    `anchor`: the neighbour's trial its run order starts from (see `run_order`). If that
    first trial misses the goal, the rest of the order is re-sorted around the neighbour's
    `best` trial; without `best` (the neighbour still runs) the search stops after its first
    trial and returns "reanchor": call again with `best` once the neighbour has finished.
    With `claims`, each trial is claimed before it trains, and one that another worker is
    training ahead of the search (repro.ahead) is waited for and re-read, not trained twice.
    Returns None when the search is done."""
    from . import search
    panel, grid = pp.panel, pp.grid
    order = run_order(spec, pp, sparsity, batch_size, results_dir, capping, reorder, anchor)

    def run_one(i, values):
        # The best so far comes from the records of every trial before this one in the run
        # order, so a resumed search caps exactly as an uninterrupted one.
        _, best = _walk(spec, pp, sparsity, batch_size, results_dir, capping, order,
                        order.index(i))
        cap = cap_for(best, i, capping, grid.max_steps_for(batch_size))
        rid = _trial_id(spec, pp, sparsity, batch_size, i, values)
        while claims and not ahead_mod.claim(results_dir, rid):
            ahead_mod.wait_for(results_dir, rid)  # trained ahead by another worker: re-read it
        try:
            rec, reused = train_or_reuse(spec, pp, sparsity, batch_size, i, values, results_dir,
                                         cap, early_exit, replicas)
        finally:
            if claims:
                ahead_mod.release(results_dir, rid)
        k = rec["steps_to_result"] if rec["status"] == "complete" else None
        if k is not None and (best is None or (k, i) < best):
            best = (k, i)
        report(_event(spec, pp, sparsity, batch_size, i, values, rec, reused,
                      best=None if best is None else best[0]))
        return k

    point = (spec, pp, sparsity, batch_size, results_dir, capping)
    doc = json.loads(_order_path(*point).read_text())
    if doc.get("anchor") is not None and "reanchor" not in doc and len(order) > 1:
        if not _walk(*point, order, 1)[0]:  # the first trial (the tuner re-reads its record)
            _, values = _sobol(spec, pp)
            run_one(order[0], values[order[0]])
        if needs_reanchor(*point):
            if best is None:
                return "reanchor"
            order = reanchor(*point, best)

    directory = pathlib.Path(results_dir) / "tuner"
    project = point_project(spec, pp, sparsity, batch_size, capping)
    # The tuner's project is one search at one goal (keras-tuner keeps its own trial states);
    # the run order and the trial records are shared by every goal.
    name = (f"{panel.dataset}-{panel.model}-{panel.optimizer}-B{batch_size}-s{sparsity:g}"
            f"-goal{panel.goal_error:g}-{project}")

    def tuner():
        oracle = search.SobolOracle(grid.search, grid.trials, scrambled=spec.sobol == "scrambled",
                                    seed=spec.sobol_seed, order=order)
        return search.StepsToResultTuner(oracle, run_one, directory=directory, project_name=name)

    try:
        t = tuner()
    except Exception as e:  # keras-tuner's own files are not written atomically: a kill can cut one
        # Nothing is lost: every finished trial is a record, and the search re-reads them.
        print(f"repro: tuner state {directory / name} unreadable ({type(e).__name__}: {e}); "
              "rebuilding it from the stored trials", flush=True)
        shutil.rmtree(directory / name, ignore_errors=True)
        t = tuner()
    t.search(verbose=0)
    return None


RACE_MEMORY = 1 << 30  # bytes of saved trial states one race may hold; more trials race in groups


def race_group(engine, memory=RACE_MEMORY):
    """How many trials of a point race at once: as many saved states as fit in `memory`."""
    return max(1, memory // max(1, engine.state_bytes()))


def race_point(spec, pp, sparsity, batch_size, results_dir, capping, report, early_exit=True,
               replicas=1, group=None):
    """Search one study point as a race (repro.race); `report(event dict)` after every trial.

    Stored records are re-read, not retrained: a trial whose record answers the point's goal at
    the cap the race gives it is reused (shared runs, other goals, a resumed race), and complete
    ones cap the race from its start. The other trials race in groups of `group` (default:
    `race_group`), in index order, each group capped by the best of everything before it.
    Every trial's record is stored as it leaves the race, so a killed race resumes with the
    trials that have none. Finally the point's run order is stored with the best trial first:
    read in that order, the records give the sequential capped search's caps (`_walk`)."""
    from . import models, race as race_mod
    panel, grid, goal = pp.panel, pp.grid, pp.panel.goal_error
    store, max_steps = store_mod.RunStore(results_dir), grid.max_steps_for(batch_size)
    _, values = _sobol(spec, pp)
    n = grid.trials
    idents = [identity(panel, grid, spec, sparsity, batch_size, i, values[i]) for i in range(n)]
    rids = [store_mod.run_id(ident) for ident in idents]
    olds = [store.get(rid) for rid in rids]

    def view(i, cap):
        """Trial i's record as the search sees it under `cap` (None: it must train)."""
        rec = store_mod.goal_view(olds[i], goal, cap) if olds[i] else None
        if rec is not None and not early_exit and not all(rec.get("val_exact", [True])):
            return None  # exact curves were asked for; this record has lower bounds
        return rec

    def usable(i, best):
        return view(i, cap_for(best, i, capping, max_steps)) is not None

    best, trained = stored_best(pp, olds, early_exit), set()  # what the records already tell
    w = workload(panel, spec, results_dir, replicas)
    pending = [i for i in range(n) if not usable(i, best)]
    size = group or race_group(w.engine)
    while pending:
        chunk, pending = pending[:size], pending[size:]
        chunk = [i for i in chunk if not usable(i, best)]  # the best may have improved since
        exit_goals = {}
        runs = {}
        for i in chunk:
            loosest = [goal, *panel.read_goals]
            if olds[i]:  # keep the curve exact up to what the record it replaces answered
                old_goal = store_mod.record_goal(olds[i])
                loosest += [g for g in (old_goal, olds[i].get("exit_goal")) if g is not None]
            exit_goals[i] = max(loosest) if early_exit else None
            init = models.initial_weights(w.engine.model, spec.seed + i)
            runs[i] = w.engine.start_trial(
                order=w.order_for(spec.seed), batch_size=batch_size, init=init,
                mask=w.mask(spec.seed + i, init, sparsity), hp=values[i], goal=goal,
                early_exit=early_exit, exit_goal=exit_goals[i], keep_state=True)

        def store_one(i, res, cap):
            cap = None if cap is None or res.status == "complete" else max(cap, res.steps)
            olds[i] = _record(rids[i], idents[i], res, goal, exit_goals[i], batch_size, cap)
            store.put(rids[i], olds[i])
            trained.add(i)
            report(_event(spec, pp, sparsity, batch_size, i, values[i], olds[i], False, best=None))

        _, best = race_mod.race(runs, pp.eval_steps, max_steps, capping, best, store_one)
        del runs
    for i in range(n):
        if i not in trained:
            report(_event(spec, pp, sparsity, batch_size, i, values[i],
                          view(i, cap_for(best, i, capping, max_steps)), True,
                          best=None if best is None else best[0]))
    point = (spec, pp, sparsity, batch_size, results_dir, capping)
    if trained or len(replay_point(*point)) < n:  # else a stored order reads every record as is
        doc = {"order": race_order(pp, olds), "anchor": None, "race": True}
        store_mod.atomic_write(_order_path(*point), json.dumps(doc).encode())
    return None


def run_ids(plan):
    """{run id: (panel, sparsity, B, trial, seed)} of every trial `plan` asks for, every
    replicate seed's too. Figures that share workload, study point, trial, seed and search space
    share ids: one run, computed once."""
    out = {}
    for pp in plan.panels:
        _, values = _sobol(plan.spec, pp)
        for r in range(pp.seeds):
            spec = replicate_spec(plan.spec, r)
            for s, b in pp.points:
                for i in range(pp.grid.trials):
                    rid = _trial_id(spec, pp, s, b, i, values[i])
                    out.setdefault(rid, (pp.panel.id, s, b, i, spec.seed))
    return out


def shared_runs(plans):
    """Across figures: {"unique_runs", "trials_asked", per figure {"runs", "new_runs",
    "shared_with": {figure: n}}}; `new_runs` counts runs no earlier figure (in order) asks for."""
    # A smoothness plan (repro.smoothness_run.SmoothPlan) lists its own run ids.
    ids = {p.spec.id: set(p.run_ids() if hasattr(p, "run_ids") else run_ids(p)) for p in plans}
    seen, per = set(), {}
    for fig, mine in ids.items():
        per[fig] = {"runs": len(mine), "new_runs": len(mine - seen),
                    "shared_with": {o: len(mine & other) for o, other in ids.items()
                                    if o != fig and mine & other}}
        seen |= mine
    return {"unique_runs": len(seen), "trials_asked": sum(len(v) for v in ids.values()),
            "figures": per}


def replay_point(spec, pp, sparsity, batch_size, results_dir, capping):
    """The records of one study point, in run order, as the capped search saw them."""
    return _walk(spec, pp, sparsity, batch_size, results_dir, capping)[0]


@dataclasses.dataclass
class Progress:
    """Counts trials over the whole plan and prints one line per trial with an ETA."""

    total: int
    workers: int = 1
    log: object = print
    done: int = 0
    trained: int = 0
    trained_time: float = 0.0
    steps_trained: int = 0
    examples_trained: int = 0
    examples_evaluated: int = 0
    steps_by_batch: dict = dataclasses.field(default_factory=dict)  # {B: steps trained here}
    start: float = dataclasses.field(default_factory=time.perf_counter)
    finished: set = dataclasses.field(default_factory=set)  # (seed, panel, s, B, trial) done or stored
    base_seed: int = 0  # the figure's seed: a trial of another replicate's search says which

    def __call__(self, e):
        key = (e.get("seed", self.base_seed), e["panel"], e["sparsity"], e["batch_size"], e["trial"])
        if e["reused"] and key in self.finished:
            return  # already counted (stored before this run, or reported once already)
        self.finished.add(key)
        self.done = len(self.finished)
        if not e["reused"]:
            self.trained += 1
            self.trained_time += e["wall_time"]
            self.steps_trained += e["steps"]
            self.examples_trained += e["examples_trained"]
            self.examples_evaluated += e["examples_evaluated"]
            b = e["batch_size"]
            self.steps_by_batch[b] = self.steps_by_batch.get(b, 0) + e["steps"]
        per_trial = self.trained_time / self.trained if self.trained else 0.0
        eta = (self.total - self.done) * per_trial / self.workers
        hp = " ".join(f"{n}={v:.3g}" for n, v in e["values"].items())
        result = f"K={e['k']}" if e["k"] is not None else f"{e['steps']} steps"
        r = (e.get("seed", self.base_seed) - self.base_seed) // REPLICATE_SEED_STRIDE
        replicate = f"replicate {r} " if r else ""
        self.log(f"[{self.done}/{self.total} trials | {_hms(time.perf_counter() - self.start)} "
                 f"| ETA {_hms(eta)}] {replicate}({e['panel']}) B={e['batch_size']} s={e['sparsity']:g} "
                 f"trial {e['trial']}: {e['status']} {result} ({hp}) {e['wall_time']:.1f}s"
                 f"{' stored' if e['reused'] else ''}{_ahead_note(e)} | K* so far "
                 f"{'-' if 'ahead' in e else e['best']}")


def _ahead_note(e):
    if "ahead" not in e:
        return ""
    return " ahead of its search" + ("" if e["ahead"] is None else f", capped at {e['ahead']}")


def _hms(seconds):
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def _worker_init(queue, counter):
    from . import devices, engine
    with counter.get_lock():
        index, counter.value = counter.value, counter.value + 1
    devices.pin_worker(index)  # with GPUs: one device per worker, one trial per device
    engine.pin_threads()
    global _QUEUE
    _QUEUE = queue


def _worker_point(args):
    *args, early_exit, reorder, anchor, best = args
    return run_point(*args, report=_QUEUE.put, early_exit=early_exit, reorder=reorder,
                     anchor=anchor, best=best, claims=True)


def _worker_ahead(args):
    """Train one trial ahead of its point's search (see repro.ahead); nothing if it is claimed."""
    spec, pp, sparsity, batch_size, results_dir, capping, i, cap, early_exit = args
    point = (spec, pp, sparsity, batch_size, results_dir, capping)
    _, values = _sobol(spec, pp)
    rid = _trial_id(spec, pp, sparsity, batch_size, i, values[i])
    if not ahead_mod.claim(results_dir, rid):
        return
    try:  # the cap tightens as trials before it in run order finish meanwhile
        rec, reused = train_or_reuse(*point[:4], i, values[i], results_dir, cap, early_exit,
                                     cap_now=ahead_mod.cap_watch(*point, i, cap))
    finally:
        ahead_mod.release(results_dir, rid)
    _QUEUE.put(_event(spec, pp, sparsity, batch_size, i, values[i], rec, reused, best=None,
                      ahead=rec.get("cap")))


def _worker_race(args):
    *args, early_exit, group = args
    return race_point(*args, report=_QUEUE.put, early_exit=early_exit, group=group)


def _race_plan(mirrored, tasks, replicas, workers, progress, early_exit, group):
    """Race every point: mirrored ones here, the rest in `workers` processes (one point each)."""
    for t in mirrored + (tasks if workers <= 1 else []):
        race_point(*t, report=progress, early_exit=early_exit, group=group,
                   replicas=replicas[t[3]][1] if t in mirrored else 1)
    if workers <= 1 or not tasks:
        return
    ctx = mp.get_context("spawn")  # TensorFlow is not fork-safe
    queue, counter = ctx.Queue(), ctx.Value("i", 0)
    with ctx.Pool(workers, _worker_init, (queue, counter)) as pool:
        running = [pool.apply_async(_worker_race, (t + (early_exit, group),)) for t in tasks]
        while running or not queue.empty():
            try:
                progress(queue.get(timeout=0.5))
            except Exception:  # queue.Empty
                pass
            for r in [r for r in running if r.ready()]:
                running.remove(r)
                r.get()  # re-raises a worker's error here


def anchor_candidates(tasks):
    """For each task (spec, pp, sparsity, B, ...), the tasks its run order may anchor on, in
    order of preference (indices into `tasks`): the same sparsity at the next smaller batch
    size (the best learning rate moves little between them), then the panel's first sparsity
    at the same batch size. Points outside `tasks` are not waited for. Acyclic: a point only
    looks at smaller batch sizes, or from a later sparsity to the first. Replicate searches
    (tasks whose specs differ in seed) never anchor on one another."""
    index = {_task_key(t): i for i, t in enumerate(tasks)}
    out = []
    for t in tasks:
        _, pp, s, b, *_ = t
        seed = _task_key(t)[0]
        bs, ss = list(pp.grid.batch_sizes), list(pp.grid.sparsities)
        j = bs.index(b)
        keys = ([(seed, pp.panel.id, s, bs[j - 1])] if j > 0 else []) + \
               ([(seed, pp.panel.id, ss[0], b)] if s != ss[0] else [])
        out.append([index[k] for k in keys if k in index])
    return out


def _task_key(task):
    """(seed, panel id, sparsity, B) of a task (spec, pp, sparsity, B, ...): one study point of
    one replicate's search. (A spec-less task, as in scheduling tests, has seed None.)"""
    spec, pp, s, b, *_ = task
    return (getattr(spec, "seed", None), pp.panel.id, s, b)


def anchor_for(i, tasks, candidates, done, first):
    """Whether task i may start, and the anchor of its run order: (ready, anchor or None).

    Pipelined, yet independent of timing: task i anchors on the first complete trial (in run
    order) of its first candidate that has one; it waits while a candidate it would try is
    still running without one, and skips a candidate that finished with none. So a point
    starts as soon as its neighbour's first trial reaches the goal, not when the neighbour's
    whole search ends, and the anchor is the same on every run, whatever the worker count.
    `first(j)` is task j's first complete trial (None: none yet).
    """
    if not candidates[i]:
        return True, None
    for j in candidates[i]:
        k = first(j)
        if k is not None:
            _, pp, s, b, *_ = tasks[j]
            return True, {"sparsity": s, "batch_size": b, "trial": k}
        if j not in done:
            return False, None
    return True, None


def next_ready(todo, tasks, candidates, done, first):
    """(index, anchor) of the first task of `todo` that may start; None if none may."""
    for i in todo:
        ready, anchor = anchor_for(i, tasks, candidates, done, first)
        if ready:
            return i, anchor
    return None


def run_plan(plan, results_dir="results", capping=True, workers=1, log=print, early_exit=True,
             reorder=True, max_device_batch=None, race=False, race_group=None):
    """Run every study point of `plan`; returns (dataset, {"missing": {panel: message}}).

    With `race`, each point runs as a race (`race_point`, trials per group: `race_group`)."""
    spec, results_dir = plan.spec, str(results_dir)
    from . import engine
    if workers <= 1 and not engine.pin_threads():  # trials run in this process
        log(f"warning: TensorFlow already runs here on more than {engine.TRIAL_THREADS} thread; "
            "trials run in this process may differ in their last bits from the same trials run by "
            "`python -m repro run` (one thread per trial)")
    tasks, missing = [], {}
    for pp in plan.panels:
        try:
            data_mod.require(pp.panel.dataset)  # fail fast, and say how to get it
        except DataMissing as e:
            missing[pp.panel.id] = str(e)
            log(f"panel ({pp.panel.id}) NOT RUN: {e}")
            continue
        # Replicate r (the grid's `seeds`) is the whole search again under the figure seed
        # seed + r * REPLICATE_SEED_STRIDE: its own run ids, run orders, anchors and caps.
        tasks += [(replicate_spec(spec, r), pp, s, b, results_dir, capping)
                  for r in range(pp.seeds) for s, b in pp.points]
    # finished by an earlier, stopped run
    stored = {(t[0].seed, *k) for t in tasks for k in replay_point(*t)}
    progress = Progress(sum(t[1].grid.trials for t in tasks), workers, log, finished=stored,
                        done=len(stored), base_seed=spec.seed)
    if stored:
        log(f"resuming: {len(stored)} of {progress.total} trials already stored in {results_dir}/runs")
    # Smaller batches first, so that a point's run order can start from a complete trial of the
    # point at the next smaller batch size (the best learning rate moves little between them),
    # and best-so-far capping bites from its first trial at the costly large batches. (Largest
    # first balanced the workers a little better but left the costliest points without an
    # anchor: measured on Figure 1, Momentum at B = 1024, 90 %, ran 5 of 6 trials to the full
    # budget.) At each batch size dense goes first: the smallest sparse points anchor on it.
    # Replicates of a point run side by side (they never anchor on one another).
    tasks.sort(key=lambda t: (t[3], t[2], t[0].seed))
    # Placement: a batch too large for one device runs each trial on a MirroredStrategy, in
    # this process (it needs several devices); every other point goes to the workers.
    from . import plan as plan_mod
    n_devices = plan_mod.visible_devices()
    replicas = {}
    for t in tasks:
        try:
            replicas[t[3]] = plan_mod.placement(t[3], n_devices, max_device_batch or plan_mod.MAX_DEVICE_BATCH)
        except ValueError as e:
            raise UsageError(spec.path, f"panel[{t[1].panel.id}].grid.{plan.grid_name}.batch_sizes", str(e),
                             "run on more devices, or raise --max-device-batch") from None
    mirrored = [t for t in tasks if replicas[t[3]][0] == "mirrored"]
    tasks = [t for t in tasks if replicas[t[3]][0] != "mirrored"]
    if race:  # points race one per worker; no run orders or anchors to wait for
        _race_plan(mirrored, tasks, replicas, workers, progress, early_exit, race_group)
        mirrored, tasks = [], []
    kw = {"early_exit": early_exit, "reorder": reorder}
    for group in (mirrored, tasks):
        candidates = anchor_candidates(group)
        first = lambda j, g=group: first_complete(*g[j])  # noqa: E731 (read from the records)
        index = {_task_key(t): i for i, t in enumerate(group)}

        def anchor_point(i, g=group, index=index):
            """(task index or None, best trial so far) of the point task i's run order anchors on."""
            spec_, pp, *_, rdir, cap = g[i]
            a = json.loads(_order_path(*g[i]).read_text())["anchor"]
            return (index.get((spec_.seed, pp.panel.id, a["sparsity"], a["batch_size"])),
                    best_trial(spec_, pp, a["sparsity"], a["batch_size"], rdir, cap))

        todo, done = list(range(len(group))), set()

        def settled_best(i, g=group, done=done):
            """The best trial of the point task i's order is anchored on, once that point has
            finished (what `reanchor` would sort around); None if not anchored or still running."""
            path = _order_path(*g[i])
            doc = json.loads(path.read_text()) if path.exists() else {}
            if doc.get("anchor") is None or "reanchor" in doc:  # its order cannot change
                return None
            j, best = anchor_point(i)
            return best if j is None or j in done else None
        if group is mirrored or workers <= 1 or not group:
            while todo:  # serial: a point's anchor point has always finished before it starts
                i, anchor = next_ready(todo, group, candidates, done, first)
                todo.remove(i)
                rep = replicas[group[i][3]][1] if group is mirrored else 1
                if run_point(*group[i], report=progress, anchor=anchor, **kw, replicas=rep):
                    run_point(*group[i], report=progress, best=anchor_point(i)[1], **kw,
                              replicas=rep)
                done.add(i)
            continue
        ctx = mp.get_context("spawn")  # TensorFlow is not fork-safe
        queue = ctx.Queue()
        counter = ctx.Value("i", 0)
        with ctx.Pool(workers, _worker_init, (queue, counter), maxtasksperchild=None) as pool:
            running, parked, changed = {}, {}, True
            ahead = {}  # (task index, trial) -> result of a trial trained ahead of its search
            while todo or running or parked or ahead or not queue.empty():
                # A point starts once the neighbour it anchors on has a trial that reached the
                # goal (see anchor_for): the searches of neighbouring batch sizes overlap, so the
                # workers stay busy, and the anchors do not depend on worker timing. A point
                # whose first trial missed is parked until that neighbour has finished.
                while changed and len(running) < workers:
                    back = next((i for i, j in parked.items() if j is None or j in done), None)
                    if back is not None:
                        best = anchor_point(back)[1]  # its anchor point has finished
                        parked.pop(back)
                        running[back] = pool.apply_async(
                            _worker_point, (group[back] + (early_exit, reorder, None, best),))
                        continue
                    nxt = next_ready(todo, group, candidates, done, first) if todo else None
                    if nxt is None:
                        break
                    i, anchor = nxt
                    todo.remove(i)
                    running[i] = pool.apply_async(
                        _worker_point, (group[i] + (early_exit, reorder, anchor, None),))
                # A worker that no point may use yet trains a trial ahead of a running search
                # (repro.ahead): the one with the most trials still to run, so the last points
                # do not run their trials one by one while the other workers wait.
                while changed and len(running) + len(ahead) < workers:
                    offers = []
                    for i in running:
                        skip = {t for (j, t) in ahead if j == i}
                        nxt = ahead_mod.next_trial(*group[i], skip=skip, best=settled_best(i))
                        if nxt is not None:
                            left = group[i][1].grid.trials - len(replay_point(*group[i]))
                            offers.append((-left, i, nxt))
                    if not offers:
                        break
                    _, i, (trial, cap) = min(offers)
                    ahead[(i, trial)] = pool.apply_async(
                        _worker_ahead, (group[i] + (trial, cap, early_exit),))
                changed = False
                try:
                    progress(queue.get(timeout=0.5))
                    changed = True  # a trial ended: a neighbour may now have its anchor
                except Exception:  # queue.Empty
                    pass
                for key in [key for key, r in ahead.items() if r.ready()]:
                    ahead.pop(key).get()  # re-raises a worker's error here
                    changed = True
                for i in [i for i, r in running.items() if r.ready()]:
                    if running.pop(i).get():  # re-raises a worker's error here
                        parked[i] = anchor_point(i)[0]  # "reanchor": wait for the anchor point
                    else:
                        done.add(i)
                    changed = True
    if progress.done < progress.total:  # never silently short: say what is missing
        log(f"warning: {progress.total - progress.done} of {progress.total} trials did not run; "
            "rerun the same command to run them")
    log(f"trained {progress.trained} trials ({_hms(progress.trained_time)} of training), "
        f"reused {progress.done - progress.trained} stored trials, of {progress.total}; "
        f"trained {progress.steps_trained:,} steps ({progress.examples_trained:,} examples), "
        f"evaluated {progress.examples_evaluated:,} validation examples")
    ds = collect_plan(plan, results_dir, capping)
    ds.attrs["panels_not_run"] = "; ".join(f"{k}: {v}" for k, v in missing.items())
    return ds, {"missing": missing, "trials_trained": progress.trained,
                "trials_reused": progress.done - progress.trained,
                "steps_trained": progress.steps_trained, "steps_by_batch": progress.steps_by_batch,
                "examples_trained": progress.examples_trained,
                "examples_evaluated": progress.examples_evaluated, "train_seconds": progress.trained_time}


def collect_plan(plan, results_dir="results", capping=True):
    """The results dataset of `plan` from the stored trial records alone (trains nothing).

    Study points or trials with no record yet are `not_run`. Every replicate search of a grid
    with `seeds` is read into the by-seed variables; the others are replicate 0's.
    """
    by_seed = {}
    for r, seed in enumerate(replicate_seeds(plan)):
        spec, records = replicate_spec(plan.spec, r), {}
        for pp in plan.panels:
            if r < pp.seeds:  # a panel with fewer seeds: its other replicates are not run
                for s, b in pp.points:
                    records.update(replay_point(spec, pp, s, b, str(results_dir), capping))
        by_seed[seed] = records
    ds = store_mod.collect(plan.spec, plan, by_seed[plan.spec.seed], by_seed=by_seed)
    ds.attrs["capping"] = int(capping)
    return ds
