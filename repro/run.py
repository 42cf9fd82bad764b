"""Run a plan: every study point's trials race (repro.race); records are stored; results collected.

Each study point (plan.StudyPoint) is one search. Its trials advance together, evaluation by
evaluation, until the grid's `finishers` (k) have met the goal: the first evaluation where some
trial meets it is K*, the lowest such trial is the best, and once k have finished every other
trial stops at the k-th's step, or before it when it could only tie (`capped`). K* and the
best trial are exactly those of a one-after-another search with best-so-far capping; the k
best trials' own steps are what shows the search's resolution (repro.evidence).

Every finished trial is a record (store.TrialRecord) shared across figures and reruns: a point
first reads what its records already tell (repro.records.point_view), so a resumed, shared or
re-goaled point trains only the trials whose records cannot answer. The results file is
collected from the records (repro.records.collect_plan). Points are independent: with
`workers` > 1 they run in parallel processes, one whole point per worker (`execute`).
"""
import dataclasses
import io
import multiprocessing as mp
import os
import pathlib
import time

import numpy as np

from . import checkpoint as checkpoint_mod
from . import data as data_mod
from . import interrupt
from . import lease as lease_mod
from . import store as store_mod
from .errors import DataMissing, UsageError
from .plan import SNIP_VERSION, study_points
from .progress import Progress, RaceRound, Stage, TrialEvent, hms
from .race import race
from .records import collect_plan, point_records, point_view, stored_records

RACE_MEMORY = 1 << 30  # bytes of saved trial states one race may hold; more trials race in groups
BUSY = "busy"  # claim_point: another live run holds the point's lease
LEASE_POLL_S = 2.0  # seconds between two looks at a lease another run holds


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How a plan runs (none of it changes K* or the best trial)."""

    results_dir: str = "results"   # trial records, SNIP cache and results files live here
    capping: bool = True           # stop a trial once it can no longer beat the point's best
    early_exit: bool = True        # stop counting validation errors once the goal is missed
    race_group: int | None = None  # trials racing at once (None: as many as RACE_MEMORY holds)
    checkpoint_every: float | None = checkpoint_mod.CHECKPOINT_EVERY  # seconds of racing between
    #   race checkpoints of a point (0: every round, None: none); repro.checkpoint


class Workload:
    """Per-process engine, data order and SNIP score cache for one workload."""

    def __init__(self, panel, results_dir, replicas=1):
        from . import devices
        self.data = data_mod.load(panel.dataset)
        strategy = devices.mirrored(replicas) if replicas > 1 else None
        # repro.engine, or repro.engine_jax under KERAS_BACKEND=jax (repro.backend)
        self.engine = devices.engine_module().Engine(self.data, panel.model, panel.optimizer,
                                                     panel.schedule, strategy=strategy)
        self.trained_on = {**devices.trained_on(), **({"replicas": replicas} if replicas > 1 else {})}
        self.orders = {}  # {seed: DataOrder}: the figure's (or a replicate's) data order
        self.snip_dir = pathlib.Path(results_dir) / "cache" / "snip"
        self.snip_key = f"{panel.dataset}-{panel.model}-v{SNIP_VERSION}"
        self.masks = {}

    def order_for(self, seed):
        """The data order of figure seed `seed` (one engine serves every replicate seed)."""
        from .trial import DataOrder
        if seed not in self.orders:
            self.orders[seed] = DataOrder(len(self.data.y_train), seed)
        return self.orders[seed]

    def mask(self, seed, init, sparsity, progress=None):
        """SNIP mask for (seed, sparsity); scores computed once per seed and kept on disk.

        `progress(state, done, total)` ("start", "progress", "done") follows a score pass."""
        from . import pruning
        if sparsity == 0:
            return None
        if (seed, sparsity) not in self.masks:
            path = self.snip_dir / f"{self.snip_key}-seed{seed}.npz"
            if path.exists():
                with np.load(path) as z:
                    scores = [z[f"s{i}"] for i in range(len(z.files))]
            else:
                say = progress or (lambda *a: None)
                say("start", 0, len(self.data.y_train))
                scores = pruning.connection_sensitivity(
                    self.engine.model, init, self.data.x_train, self.data.y_train,
                    progress=lambda done, total: say("progress", done, total))
                say("done", len(self.data.y_train), len(self.data.y_train))
                buf = io.BytesIO()
                np.savez(buf, **{f"s{i}": s for i, s in enumerate(scores)})
                store_mod.atomic_write(path, buf.getvalue())
            self.masks[(seed, sparsity)] = pruning.masks_from_scores(scores, sparsity)
        return self.masks[(seed, sparsity)]


_WORKLOADS = {}  # per process: building an engine traces graphs, so keep them


def workload(panel, results_dir, replicas=1):
    """This process's Workload for the panel's (dataset, model, optimizer, schedule)."""
    key = (panel.dataset, panel.model, panel.optimizer, panel.schedule, replicas)
    if key not in _WORKLOADS:
        _WORKLOADS[key] = Workload(panel, results_dir, replicas)
    return _WORKLOADS[key]


# ------------------------------------------------------------------------ one point
def race_group(engine, memory=RACE_MEMORY):
    """How many trials of a point race at once: as many saved states as fit in `memory`."""
    return max(1, memory // max(1, engine.state_bytes()))


def _record(ident, run_id, result, goal, exit_goal, batch_size, cap, trained_on=None):
    """The stored record of a trial that left a race (`trained_on`: Workload.trained_on)."""
    cap = None if cap is None or result.status == "complete" else max(cap, result.steps)
    status = "capped" if result.status == "incomplete" and cap is not None else result.status
    return store_mod.TrialRecord(
        run_id=run_id, identity=ident, status=status, goal=goal, exit_goal=exit_goal, cap=cap,
        steps_to_result=result.steps_to_result, steps=result.steps,
        eval_steps=tuple(result.eval_steps), val_errors=tuple(result.val_errors),
        val_exact=tuple(result.val_exact), examples_evaluated=result.examples_evaluated,
        examples_trained=result.steps * batch_size, wall_time=result.wall_time,
        message=result.message, trained_on=trained_on)


def point_name(point):
    """The file name of a study point's lease and race checkpoint: readable, and unique by its
    trials' run ids (figures sharing a point share its lease and its checkpoint)."""
    ident = store_mod.run_id({"trials": point.trial_ids()})
    return (f"{point.panel.id}-s{point.sparsity:g}-B{point.batch_size}-seed{point.spec.seed}-"
            f"{ident[:12]}")


def point_label(point):
    return f"({point.panel.id}) B={point.batch_size} s={point.sparsity:g} seed={point.spec.seed}"


def run_point(point, options=RunOptions(), report=lambda event: None, replicas=1, log=print):
    """Search one study point as a race; `report(TrialEvent)` as each trial gets its record.

    Stored records are re-read first (`point_view`): a trial whose record answers the point's
    goal under the cap the race gives it is reused, and complete ones cap the race from its
    start. The others race in groups of `options.race_group` (default: `race_group`), in
    index order, each group capped by the finishers of everything before it. Every record is
    stored as its trial leaves the race, so a killed race resumes with the trials that have none;
    and every `options.checkpoint_every` seconds the live trials are checkpointed
    (repro.checkpoint), so a killed race resumes from its last checkpoint, bit for bit.
    `report` also sees a RaceRound after each evaluation round.
    Returns (K*, best trial), or None when no trial meets the goal."""
    point_race = _PointRace(point=point, options=options, report=report, log=log,
                            replicas=replicas)  # its records
    view, _ = point_race.view()
    w = _reported_workload(point, options.results_dir, replicas, report)
    size = options.race_group or race_group(w.engine)
    pending, n = point_race.race_order(pending=[i for i, rec in view.items() if rec is None],
                                       size=size)
    while pending:
        group, pending = pending[:n], pending[n:]
        point_race.race_group(group=group, w=w)
        n = size
    return point_race.report_stored()


class _PointRace:
    """One study point's race in this process: its trials' values, identities, run ids and
    records (each replaced as its trial leaves the race), its race checkpoint, and the trials
    this run trained. The identities and run ids are those of trials trained on `replicas`
    devices (on JAX a split batch is a run of its own: repro.backend.identity); the records are
    whatever layout's answer the most (records.stored_records), as the results read them."""

    def __init__(self, point, options, report, log, replicas=1):
        self.point, self.options, self.report, self.log = point, options, report, log
        self.store = store_mod.RunStore(options.results_dir)
        self.ckpt = checkpoint_mod.RaceCheckpoint(options.results_dir, point_name(point))
        self.saved = self.ckpt.load()  # (meta, states) of this point's killed race, or None
        self.values = point.trial_values()
        self.idents = [point.trial_identity(i, v, replicas) for i, v in enumerate(self.values)]
        self.run_ids = [store_mod.run_id(ident) for ident in self.idents]
        self.records = stored_records(point, options.results_dir)
        self.trained = set()

    def view(self):
        """`point_view` of the records as they stand: ({trial: record or None}, finished)."""
        return point_view(self.point, self.records, self.options.capping, self.options.early_exit)

    def race_order(self, pending, size):
        """(the trials `pending` in the order they race, the size of the first group): the live
        trials of a checkpoint first, as the group they were; a checkpoint with none of them
        pending is removed."""
        if self.saved is None:
            return pending, size
        first = [int(i) for i in self.saved[0]["live"] if int(i) in pending]
        if not first:
            self.ckpt.remove()
            self.saved = None
            return pending, size
        return first + [i for i in pending if i not in first], len(first)

    def race_group(self, group, w):
        """Race the trials of `group` that the records do not answer by now (the finishers may
        have improved since), from the checkpoint when it is of this race; each trial's record
        is stored as it leaves the race, and the checkpoint removed once all have left."""
        point = self.point
        view, finished = self.view()
        group = [i for i in group if view[i] is None]
        runs, targets, extents = self.start(group=group, w=w)
        meta = self.meta(group=group, targets=targets, extents=extents)
        steps = point.eval_steps
        if self.saved is not None:
            steps, finished = _restore(self.saved, meta, runs, steps, finished, self.ckpt, point,
                                       self.log)
            self.saved = None
        on_leave, on_round = self.callbacks(group=group, runs=runs, meta=meta, targets=targets,
                                            trained_on=w.trained_on)
        self.report(_race_start(point=point, group=group, finished=finished))
        race(runs, steps, point.max_steps, self.options.capping, finished, on_leave,
             goal=point.goal, extents=extents, on_round=on_round, finishers=point.finishers)
        self.ckpt.remove()  # every trial of the group has its record

    def start(self, group, w):
        """Start every trial of `group` on the workload `w`: ({trial: engine.TrialRun},
        {trial: (goal, exit goal)}, {trial: the extent its stored record gives it})."""
        from . import models
        point, runs, targets, extents = self.point, {}, {}, {}
        for i in group:
            old = self.records[i]
            targets[i] = _targets(point=point, old=old, early_exit=self.options.early_exit)
            if old is not None:
                extents[i] = old.cap  # trained at least as far as the record it replaces
            init = models.initial_weights(w.engine.model, point.spec.seed + i)
            runs[i] = w.engine.start_trial(
                order=w.order_for(point.spec.seed), batch_size=point.batch_size, init=init,
                mask=w.mask(point.spec.seed + i, init, point.sparsity,
                            progress=_snip_reporter(point, point.spec.seed + i, self.report)),
                hp=self.values[i],
                goal=targets[i][0], early_exit=self.options.early_exit, exit_goal=targets[i][1],
                keep_state=True)
        return runs, targets, extents

    def meta(self, group, targets, extents):
        """What the race of `group` is, as its checkpoint keeps it: a resumed race restores the
        checkpoint's trials only when this is the same."""
        point, options = self.point, self.options
        return {"point": point_label(point), "goal": point.goal, "capping": options.capping,
                "early_exit": options.early_exit, "max_steps": point.max_steps,
                "group": group, "trials": {str(i): {"run_id": self.run_ids[i],
                                                   "goal": targets[i][0],
                                                   "exit_goal": targets[i][1],
                                                   "extent": extents.get(i, "none")}
                                          for i in group}}

    def callbacks(self, group, runs, meta, targets, trained_on=None):
        """(on_leave, on_round) of the race of `group`: a trial leaving has its record stored
        and reported; after each round the live trials are checkpointed when
        `checkpoint_every` seconds have passed since the last save, and the round reported
        (`trained_on`: Workload.trained_on, what each record says trained it)."""
        point, left, last_save = self.point, set(), [time.monotonic()]

        def on_leave(i, result, cap):
            left.add(i)
            goal, exit_goal = targets[i]
            self.records[i] = _record(self.idents[i], self.run_ids[i], result, goal, exit_goal,
                                      point.batch_size, cap, trained_on=trained_on)
            self.store.put_trial(self.records[i])
            self.trained.add(i)
            rec = self.records[i]
            self.report(TrialEvent(point, i, rec.view(point.goal, cap) or rec, reused=False))

        def on_round(step, live, best):
            every = self.options.checkpoint_every
            if live and every is not None and time.monotonic() - last_save[0] >= every:
                self.ckpt.save({**meta, "step": step, "best": best,
                                "live": [i for i in group if i not in left]},
                               {i: runs[i] for i in group if i not in left})
                last_save[0] = time.monotonic()
            self.report(RaceRound(point, step, live, None if best is None else best[0]))

        return on_leave, on_round

    def report_stored(self):
        """Report every trial this run did not train as re-read, with the point's K*; returns
        (K*, best trial), or None when no trial meets the goal."""
        view, finished = self.view()
        best = finished[0] if finished else None
        for i in sorted(set(range(self.point.trials)) - self.trained):
            self.report(TrialEvent(self.point, i, view[i], reused=True,
                                   best=None if best is None else best[0]))
        return best


def _targets(point, old, early_exit):
    """(goal, exit goal) of a trial of `point` whose stored record is `old` (None: none).

    A record that cannot answer this goal is replaced by one that also answers what it did:
    trained to the tighter goal, at least as far as it ran, with its curve exact up to its
    looser goals (else two goals would retrain in turn)."""
    goal, loosest = point.goal, [point.goal, *point.panel.read_goals]
    if old is not None:
        goal = min(point.goal, old.goal if old.goal is not None else point.goal)
        loosest += [g for g in (old.goal, old.exit_goal) if g is not None]
    return goal, (max(loosest) if early_exit else None)


def _race_start(point, group, finished):
    """The Stage that says a group's race starts: its trials, their budget, the finishers it
    waits for and the stored ones that cap it."""
    return Stage(point, "race", "start",
                 f"racing trial{'s' if len(group) > 1 else ''} {_ranges(group)} of "
                 f"{point.trials}, up to {point.max_steps:,} steps each, until "
                 f"{point.finishers} reach the goal"
                 + ("" if not finished else f", capped by the stored finishers {[k for k, _ in finished]}"))


def _restore(saved, meta, runs, steps, finished, ckpt, point, log):
    """Put a checkpoint's trials back into `runs` (just started) when its race is this one;
    returns (the evaluation steps left, the race's finished (K, trial) pairs: the stored
    records' and the checkpoint's best). A checkpoint of another race (other
    goals, capping or trials) is removed and the group races from its start."""
    old, states = saved
    same = all(old.get(k) == meta[k] for k in ("goal", "capping", "early_exit", "max_steps")) \
        and all(old["trials"].get(str(i)) == meta["trials"][str(i)] for i in runs) \
        and all(i in states for i in runs)
    if not same:
        log(f"{point_label(point)}: {ckpt.path} is of another race (goal, capping, early exit or "
            "trials differ); racing from step 0")
        ckpt.remove()
        return steps, finished
    for i, run in runs.items():
        run.restore(*states[i])
    step = int(old["step"])
    log(f"{point_label(point)}: resuming {len(runs)} racing trials from the checkpoint at step "
        f"{step:,} ({ckpt.path})")
    was = None if old["best"] is None else tuple(int(x) for x in old["best"])
    if was is not None and all(i != was[1] for _, i in finished):
        finished = sorted([*finished, was])
    return [s for s in steps if s > step], finished


def claim_point(point, options=RunOptions(), report=lambda event: None, replicas=1, wait=True,
                log=print):
    """`run_point` under the point's lease (repro.lease), so that two runs on one results folder
    never race the same point at once. When another live run holds it: BUSY at once if not
    `wait`; else wait until it is given back (or its holder dies), then race, re-reading the
    records the holder stored."""
    lease = lease_mod.Lease(options.results_dir, point_name(point))
    told = False
    while not lease.acquire():
        if not wait:
            return BUSY
        if not told:
            owner = lease.holder() or {}
            log(f"{point_label(point)}: raced by another run (pid {owner.get('pid', '?')} on "
                f"{owner.get('host', '?')}, {lease.path}); waiting for its records")
            told = True
        time.sleep(LEASE_POLL_S)
    try:
        return run_point(point, options, report, replicas, log=log)
    finally:
        lease.release()


def _reported_workload(point, results_dir, replicas, report):
    """`workload`, with a Stage before and after when this process builds it (loads the data)."""
    panel = point.panel
    key = (panel.dataset, panel.model, panel.optimizer, panel.schedule, replicas)
    if key in _WORKLOADS:
        return _WORKLOADS[key]
    t0 = time.perf_counter()
    what = f"loading {panel.dataset} and building {panel.model}"
    report(Stage(point, "data", "start", what))
    w = workload(panel, results_dir, replicas)
    report(Stage(point, "data", "done", what, seconds=time.perf_counter() - t0))
    return w


def _snip_reporter(point, seed, report):
    """A Workload.mask progress callback that reports Stages of the SNIP pass of `seed`."""
    t0 = [time.perf_counter()]

    def say(state, done, total):
        if state == "start":
            t0[0] = time.perf_counter()
        text = (f"SNIP scores of trial seed {seed} (one pass over {total:,} training images)"
                if state == "start" else f"SNIP scores of trial seed {seed}")
        report(Stage(point, "snip", state, text, done, total, time.perf_counter() - t0[0]))
    return say


def _ranges(ints):
    """'0-3, 5' for [0, 1, 2, 3, 5]."""
    out, ints = [], sorted(ints)
    for i in ints:
        if out and i == out[-1][1] + 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in out)


# ------------------------------------------------------------------------ many points
def _worker_init(queue, counter, parent_pid):
    from . import devices
    interrupt.die_with_parent(parent_pid)  # no worker outlives the run, whatever ends it
    with counter.get_lock():
        index, counter.value = counter.value, counter.value + 1
    devices.pin_worker(index)  # with GPUs: one device per worker, each racing whole points
    devices.pin_threads()
    global _QUEUE
    _QUEUE = queue


def _run_in_worker(job):
    point, options, wait = job
    return claim_point(point, options, report=_QUEUE.put, wait=wait, log=_print_now)


def _print_now(line):
    print(line, flush=True)


def trains_here(workers, n_points):
    """Whether `execute` runs `n_points` study points in this process instead of a worker pool."""
    return workers <= 1 or n_points <= 1


def execute(points, options, workers=1, report=lambda event: None, log=print):
    """Run `points` (StudyPoints), here when `workers` <= 1, else one whole point per worker
    process at a time; `report` sees every TrialEvent in this process."""
    if trains_here(workers, len(points)):
        # Points another run races (repro.lease) wait until every other point is done.
        busy = [p for p in points if claim_point(p, options, report, wait=False, log=log) == BUSY]
        for point in busy:
            claim_point(point, options, report, wait=True, log=log)
        return
    ctx = mp.get_context("spawn")  # TensorFlow is not fork-safe
    queue, counter = ctx.Queue(), ctx.Value("i", 0)
    # Leaving this block any way (a worker's error, SIGINT/SIGTERM as interrupt.Interrupted)
    # terminates every worker: a race killed mid-round resumes from its checkpoint.
    with ctx.Pool(min(workers, len(points)), _worker_init, (queue, counter, os.getpid())) as pool:
        running = [(p, pool.apply_async(_run_in_worker, ((p, options, False),))) for p in points]
        while running or not queue.empty():
            try:
                report(queue.get(timeout=0.5))
            except Exception:  # queue.Empty
                pass
            for p, r in [(p, r) for p, r in running if r.ready()]:
                running.remove((p, r))
                if r.get() == BUSY:  # (re-raises a worker's error here) raced by another run:
                    running.append((p, pool.apply_async(_run_in_worker, ((p, options, True),))))


def costliest_first(points):
    """`points` in the order to start them: largest batch first (it trains the most examples
    per step), then the sparser, so the last points to finish are short ones."""
    return sorted(points, key=lambda p: (p.batch_size, p.sparsity, p.spec.seed), reverse=True)


def _placed(points, plan, max_device_batch):
    """(mirrored, the rest): points whose batch needs a MirroredStrategy, with its replicas."""
    from . import plan as plan_mod
    n_devices = plan_mod.visible_devices()
    mirrored, rest = [], []
    for p in points:
        try:
            kind, n = plan_mod.placement(p.batch_size, n_devices,
                                         max_device_batch or plan_mod.MAX_DEVICE_BATCH)
        except ValueError as e:
            raise UsageError(plan.spec.path, f"panel[{p.panel.id}].grid.{plan.grid_name}"
                             ".batch_sizes", str(e),
                             "run on more devices, or raise --max-device-batch") from None
        (mirrored.append((p, n)) if kind == "mirrored" else rest.append(p))
    return mirrored, rest


def run_plan(plan, options=RunOptions(), workers=1, log=print, max_device_batch=None, prior=None):
    """Run every study point of `plan`; returns (dataset, report dict).

    `prior(points, stored, workers)`: what to expect before any trial ends, for the ETA
    (repro.throughput.run_prior; study.SearchStudy.run passes it)."""
    missing = {}
    for panel_plan in plan.panels:
        try:
            data_mod.require(panel_plan.panel.dataset)  # fail fast, and say how to get it
        except DataMissing as e:
            missing[panel_plan.panel.id] = str(e)
            log(f"panel ({panel_plan.panel.id}) NOT RUN: {e}")
    points = [p for p in study_points(plan) if p.panel.id not in missing]
    if trains_here(workers, len(points)):  # compute as a worker does: one thread
        from . import backend, devices
        if not devices.pin_threads():
            log(f"warning: {'JAX' if backend.is_jax() else 'TensorFlow'} already runs here on more than 1 "
                "thread; trials run in this process may differ in their last bits from the same "
                "trials run by `python -m repro run` (one thread per trial)")
    stored = {(*p.key, k[3]) for p in points
              for k in point_records(p, options.results_dir, options.capping)}
    progress = Progress(points, workers, log, finished=stored, base_seed=plan.spec.seed)
    if stored:
        log(f"resuming: {len(stored)} of {progress.total} trials already stored in "
            f"{options.results_dir}/runs")
    if prior is not None and progress.done < progress.total:
        log(f"{progress.head()} {progress.total - progress.done} trials to train on {workers} "
            f"worker{'s' if workers > 1 else ''}; estimating how long (a throughput probe of this "
            "machine, unless one is stored)")
        try:
            progress.prior = prior(points, stored, workers)
        except Exception as e:  # an ETA is never a reason not to run
            log(f"warning: no ETA before the first trial ends ({type(e).__name__}: {e})")
        if progress.prior:
            log(f"{progress.head()} {progress.total - progress.done} trials to train on {workers} "
                f"worker{'s' if workers > 1 else ''}; ETA from the start: {progress.prior['text']}")
    mirrored, points = _placed(points, plan, max_device_batch)
    for point, replicas in mirrored:  # each trial on several devices: here, one at a time
        claim_point(point, options, progress, replicas=replicas, log=log)
    # The costliest points first, so the last ones to finish are short.
    execute(costliest_first(points), options, workers, progress, log=log)
    if progress.done < progress.total:  # never silently short: say what is missing
        log(f"warning: {progress.total - progress.done} of {progress.total} trials did not run; "
            "rerun the same command to run them")
    log(f"trained {progress.trained} trials ({hms(progress.trained_time)} of training), "
        f"reused {progress.done - progress.trained} stored trials, of {progress.total}; "
        f"trained {progress.steps_trained:,} steps ({progress.examples_trained:,} examples), "
        f"evaluated {progress.examples_evaluated:,} validation examples")
    ds = collect_plan(plan, options.results_dir, options.capping)
    ds.attrs["panels_not_run"] = "; ".join(f"{k}: {v}" for k, v in missing.items())
    return ds, {"missing": missing, "trials_trained": progress.trained,
                "trials_reused": progress.done - progress.trained,
                "steps_trained": progress.steps_trained, "steps_by_batch": progress.steps_by_batch,
                "examples_trained": progress.examples_trained,
                "examples_evaluated": progress.examples_evaluated,
                "train_seconds": progress.trained_time}
