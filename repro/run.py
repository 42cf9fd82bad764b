"""Run a plan: every study point's trials race (repro.race); records are stored; results collected.

Each study point (plan.StudyPoint) is one search. Its trials advance together, evaluation by
evaluation, until the grid's `finishers` (k) have met the goal: the first evaluation where some
trial meets it is K*, the lowest such trial is the best, and once k have finished every other
trial stops at the k-th's step, or before it when it could only tie (`capped`). K* and the
best trial are exactly those of a one-after-another search with best-so-far capping; the k
best trials' own steps are what shows the search's resolution (repro.evidence).

Every finished trial is a record (store.TrialRecord) shared across figures and reruns: a point
first reads what its records already tell (`point_view`), so a resumed, shared or re-goaled
point trains only the trials whose records cannot answer. The results file is collected from
the records. Points are independent: with `workers` > 1 they run in parallel processes, one
whole point per worker (`execute`).
"""
import collections
import dataclasses
import io
import math
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
from .plan import REPLICATE_SEED_STRIDE, SNIP_VERSION, replicate_seeds, study_points
from .race import cap_for, race

RACE_MEMORY = 1 << 30  # bytes of saved trial states one race may hold; more trials race in groups
CHECKPOINT_EVERY = 300.0  # default seconds of racing between two checkpoints of a point's race
BUSY = "busy"  # claim_point: another live run holds the point's lease
LEASE_POLL_S = 2.0  # seconds between two looks at a lease another run holds


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How a plan runs (none of it changes K* or the best trial)."""

    results_dir: str = "results"   # trial records, SNIP cache and results files live here
    capping: bool = True           # stop a trial once it can no longer beat the point's best
    early_exit: bool = True        # stop counting validation errors once the goal is missed
    race_group: int | None = None  # trials racing at once (None: as many as RACE_MEMORY holds)
    checkpoint_every: float | None = CHECKPOINT_EVERY  # seconds of racing between race
    #   checkpoints of a point (0: every round, None: none); repro.checkpoint


@dataclasses.dataclass(frozen=True)
class TrialEvent:
    """One trial of a point has its record: trained now, or re-read (`reused`)."""

    point: object             # plan.StudyPoint
    trial: int                # Sobol index
    record: store_mod.TrialRecord  # as the point's search reads it (its goal and cap)
    reused: bool              # read from the store, not trained by this run
    best: int | None = None   # the point's K* once known (None: not yet, or none)


@dataclasses.dataclass(frozen=True)
class RaceRound:
    """A point's race finished an evaluation round (for progress lines between trial events)."""

    point: object             # plan.StudyPoint
    step: int                 # the evaluation step every live trial has now reached
    live: int                 # trials still racing
    best: int | None          # K* so far (None: no trial has met the goal yet)


@dataclasses.dataclass(frozen=True)
class Stage:
    """Work of a point outside its trials' steps, for progress lines from the first second:
    loading the data (and building the engine), a SNIP score pass, a race starting."""

    point: object             # plan.StudyPoint
    kind: str                 # "data" | "snip" | "race"
    state: str                # "start" | "progress" | "done"
    text: str                 # what, in words ("loading cifar10", "SNIP scores of seed 3", ...)
    done: int = 0             # "progress": examples done, of
    total: int = 0            # ... this many
    seconds: float = 0.0      # "progress" and "done": seconds since it started


def stage_line(e):
    """One progress line's text for a Stage (without the [done/total | elapsed | ETA] head)."""
    seed, pid, s, b = e.point.key
    where = f"({pid}) B={b} s={s:g}"
    if e.state == "start":
        return f"{where}: {e.text}"
    if e.state == "progress":
        return (f"{where}: {e.text}: {e.done:,} of {e.total:,} images "
                f"({e.done / max(e.total, 1):.0%}), {_hms(e.seconds)}")
    return f"{where}: {e.text} done in {_hms(e.seconds)}"


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


# ------------------------------------------------------------------------ a point's records
def usable(record, point, cap, early_exit=True):
    """`record` as `point`'s search reads it under `cap` (None: it cannot tell; train it)."""
    rec = record.view(point.goal, cap) if record is not None else None
    if rec is not None and not early_exit and not rec.exact:
        return None  # exact curves were asked for; this record has lower bounds
    return rec


def stored_finishers(point, records, early_exit=True):
    """(K, trial) of every complete trial among stored `records` (one per trial, None: not
    stored), each read at its own cap, sorted: the first is the point's K* and best trial."""
    finished = []
    for i, record in enumerate(records):
        rec = usable(record, point, record.cap if record else None, early_exit)
        if rec is not None and rec.k is not None:
            finished.append((rec.k, i))
    return sorted(finished)


def point_view(point, records, capping=True, early_exit=True):
    """({trial: record as the search reads it, or None where it must train}, finished).

    finished = the sorted (K, trial) of the stored complete trials (the first: K* and the best
    trial); each trial is read under the cap they give it (`race.cap_for` with the grid's
    `finishers`), exactly as a race stops it."""
    finished = stored_finishers(point, records, early_exit)
    return {i: usable(r, point, cap_for(finished, i, capping, point.max_steps, point.finishers),
                      early_exit)
            for i, r in enumerate(records)}, finished


def stored_records(point, results_dir):
    """The stored record of every trial of `point` (None: not stored), in trial order."""
    store = store_mod.RunStore(results_dir)
    return [store.trial(run_id) for run_id in point.trial_ids()]


def point_records(point, results_dir, capping=True):
    """{(panel, sparsity, B, trial): record} of every trial the point's records answer."""
    view, _ = point_view(point, stored_records(point, results_dir), capping)
    pid = point.panel.id
    return {(pid, point.sparsity, point.batch_size, i): rec
            for i, rec in view.items() if rec is not None}


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
    from . import models
    panel = point.panel
    store = store_mod.RunStore(options.results_dir)
    ckpt = checkpoint_mod.RaceCheckpoint(options.results_dir, point_name(point))
    saved = ckpt.load()
    values = point.trial_values()
    idents = [point.trial_identity(i, v) for i, v in enumerate(values)]
    run_ids_of = [store_mod.run_id(ident) for ident in idents]
    records = [store.trial(run_id) for run_id in run_ids_of]
    view, finished = point_view(point, records, options.capping, options.early_exit)
    w = _reported_workload(point, options.results_dir, replicas, report)
    size = options.race_group or race_group(w.engine)
    pending, trained = [i for i, rec in view.items() if rec is None], set()
    if saved is not None:  # its live trials race first, as the group they were
        first = [int(i) for i in saved[0]["live"] if int(i) in pending]
        pending = first + [i for i in pending if i not in first]
        size_now = len(first)
        if not first:
            ckpt.remove()
            saved = None
    while pending:
        n = size_now if saved is not None else size
        group, pending = pending[:n], pending[n:]
        view, finished = point_view(point, records, options.capping, options.early_exit)
        group = [i for i in group if view[i] is None]  # the finishers may have improved since
        goals, exit_goals, extents, runs = {}, {}, {}, {}
        for i in group:
            goals[i], loosest, old = point.goal, [point.goal, *panel.read_goals], records[i]
            if old is not None:
                # A record that cannot answer this goal is replaced by one that also answers
                # what it did: trained to the tighter goal, at least as far as it ran, with its
                # curve exact up to its looser goals (else two goals would retrain in turn).
                goals[i] = min(point.goal, old.goal if old.goal is not None else point.goal)
                loosest += [g for g in (old.goal, old.exit_goal) if g is not None]
                extents[i] = old.cap
            exit_goals[i] = max(loosest) if options.early_exit else None
            init = models.initial_weights(w.engine.model, point.spec.seed + i)
            runs[i] = w.engine.start_trial(
                order=w.order_for(point.spec.seed), batch_size=point.batch_size, init=init,
                mask=w.mask(point.spec.seed + i, init, point.sparsity,
                            progress=_snip_reporter(point, point.spec.seed + i, report)),
                hp=values[i],
                goal=goals[i], early_exit=options.early_exit, exit_goal=exit_goals[i],
                keep_state=True)
        meta = {"point": point_label(point), "goal": point.goal, "capping": options.capping,
                "early_exit": options.early_exit, "max_steps": point.max_steps,
                "group": group, "trials": {str(i): {"run_id": run_ids_of[i], "goal": goals[i],
                                                   "exit_goal": exit_goals[i],
                                                   "extent": extents.get(i, "none")}
                                          for i in group}}
        steps = point.eval_steps
        if saved is not None:
            steps, finished = _restore(saved, meta, runs, steps, finished, ckpt, point, log)
            saved = None
        left, last_save = set(), [time.monotonic()]

        def store_one(i, result, cap):
            left.add(i)
            records[i] = _record(idents[i], run_ids_of[i], result, goals[i], exit_goals[i],
                                 point.batch_size, cap, trained_on=w.trained_on)
            store.put_trial(records[i])
            trained.add(i)
            report(TrialEvent(point, i, records[i].view(point.goal, cap) or records[i],
                              reused=False))

        def round_done(step, live, best):
            every = options.checkpoint_every
            if live and every is not None and time.monotonic() - last_save[0] >= every:
                ckpt.save({**meta, "step": step, "best": best,
                           "live": [i for i in group if i not in left]},
                          {i: runs[i] for i in group if i not in left})
                last_save[0] = time.monotonic()
            report(RaceRound(point, step, live, None if best is None else best[0]))

        report(Stage(point, "race", "start",
                     f"racing trial{'s' if len(group) > 1 else ''} {_ranges(group)} of "
                     f"{point.trials}, up to {point.max_steps:,} steps each, until "
                     f"{point.finishers} reach the goal"
                     + ("" if not finished else f", capped by the stored finishers {[k for k, _ in finished]}")))
        race(runs, steps, point.max_steps, options.capping, finished, store_one, goal=point.goal,
             extents=extents, on_round=round_done, finishers=point.finishers)
        ckpt.remove()  # every trial of the group has its record
        del runs
    view, finished = point_view(point, records, options.capping, options.early_exit)
    best = finished[0] if finished else None
    for i in sorted(set(range(point.trials)) - trained):
        report(TrialEvent(point, i, view[i], reused=True, best=None if best is None else best[0]))
    return best


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


@dataclasses.dataclass
class Progress:
    """Counts trials over the whole plan and prints one line per trial with an ETA, and a line
    as each data load, SNIP pass and race starts (a SNIP pass also every `every_stage` seconds).

    The ETA holds from the start when `prior` is given (repro.throughput.run_prior: the
    throughput probe's step times over repro.cost's steps per trial, an upper bound when there
    are no stored results to predict K* from): a point whose trials have not been timed here
    takes its prior, scaled by how the trials timed so far compare with theirs."""

    points: list  # the plan's StudyPoints: their trials are what there is to do
    workers: int = 1
    log: object = print
    trained: int = 0
    trained_time: float = 0.0
    steps_trained: int = 0
    examples_trained: int = 0
    examples_evaluated: int = 0
    steps_by_batch: dict = dataclasses.field(default_factory=dict)  # {B: steps trained here}
    start: float = dataclasses.field(default_factory=time.perf_counter)
    finished: set = dataclasses.field(default_factory=set)  # (seed, panel, s, B, trial) done or stored
    base_seed: int = 0  # the figure's seed: a trial of another replicate's search says which
    seconds: dict = dataclasses.field(default_factory=dict)  # {(panel, s, B): [seconds, trials]} trained here
    prior: dict | None = None  # repro.throughput.run_prior: {"trial_s": {point key: s}, "bound",
                               # "snip_s": {(dataset, model): s}, "snip_passes": n}; None: none
    prior_spent: float = 0.0   # the prior's seconds of the trials trained so far
    snip_done: int = 0         # SNIP passes finished in this run
    snip_measured: dict = dataclasses.field(default_factory=dict)  # {(dataset, model): seconds}

    every: float = 30.0  # seconds between race-progress lines of one point
    every_stage: float = 10.0  # seconds between progress lines of one SNIP pass
    last_round: dict = dataclasses.field(default_factory=dict)  # point key -> time of its last line

    @property
    def total(self):
        return sum(p.trials for p in self.points)

    @property
    def done(self):
        return len(self.finished)

    def head(self, now=None):
        """'[done/total trials | elapsed | ETA ...]', the start of every progress line."""
        now = time.perf_counter() if now is None else now
        return f"[{self.done}/{self.total} trials | {_hms(now - self.start)} | ETA {self.eta()}]"

    def __call__(self, e):
        if isinstance(e, RaceRound):
            return self.race_round(e)
        if isinstance(e, Stage):
            return self.stage(e)
        key = (*e.point.key, e.trial)
        if e.reused and key in self.finished:
            return  # already counted (stored before this run, or reported once already)
        self.finished.add(key)
        rec = e.record
        if not e.reused:
            self.trained += 1
            self.trained_time += rec.wall_time
            self.prior_spent += self._prior_trial(e.point) or 0.0
            self.steps_trained += rec.steps
            self.examples_trained += rec.examples_trained
            self.examples_evaluated += max(rec.examples_evaluated, 0)
            b = e.point.batch_size
            self.steps_by_batch[b] = self.steps_by_batch.get(b, 0) + rec.steps
            spent = self.seconds.setdefault(e.point.key[1:], [0.0, 0])
            spent[0], spent[1] = spent[0] + rec.wall_time, spent[1] + 1
        hp = " ".join(f"{n}={v:.3g}" for n, v in rec.values.items())
        result = f"K={rec.k}" if rec.k is not None else f"{rec.steps} steps"
        seed, pid, s, b = e.point.key
        r = (seed - self.base_seed) // REPLICATE_SEED_STRIDE
        replicate = f"replicate {r} " if r else ""
        best = "" if e.best is None else f" | K* {e.best}"
        self.log(f"{self.head()} {replicate}({pid}) B={b} s={s:g} trial {e.trial}: "
                 f"{rec.status} {result} ({hp}) {rec.wall_time:.1f}s"
                 f"{' stored' if e.reused else ''}{best}")

    def stage(self, e):
        """A line as a data load, SNIP pass or race starts and as a load or pass ends; a SNIP
        pass's progress every `every_stage` seconds."""
        now = time.perf_counter()
        key = ("stage", e.point.key, e.kind)
        if e.state == "progress":
            if e.done >= e.total or now - self.last_round.setdefault(key, now) < self.every_stage:
                return  # the last chunk: its "done" line follows at once
        self.last_round[key] = now
        if e.kind == "snip" and e.state == "done":
            self.snip_done += 1
            self.snip_measured[(e.point.panel.dataset, e.point.panel.model)] = e.seconds
        seed, *_ = e.point.key
        r = (seed - self.base_seed) // REPLICATE_SEED_STRIDE
        self.log(f"{self.head(now)} {f'replicate {r} ' if r else ''}{stage_line(e)}")

    def race_round(self, e):
        """A line every `every` seconds per racing point: where its race is, and the ETA."""
        now = time.perf_counter()
        if now - self.last_round.setdefault(e.point.key, now) < self.every:
            return
        self.last_round[e.point.key] = now
        seed, pid, s, b = e.point.key
        r = (seed - self.base_seed) // REPLICATE_SEED_STRIDE
        self.log(f"{self.head(now)} "
                 f"{f'replicate {r} ' if r else ''}({pid}) B={b} s={s:g} racing: {e.live} trials "
                 f"at step {e.step:,} of {e.point.max_steps:,}"
                 + ("" if e.best is None else f", K* {e.best}"))

    def _prior_trial(self, point):
        return (self.prior or {}).get("trial_s", {}).get(point.key)

    def trial_seconds(self, point):
        """Expected seconds of one of `point`'s trials: the mean of those trained here at the
        same panel, sparsity and B; else from the nearest B trained at that panel and
        sparsity (K*(B) x B does not fall as B grows, and K* does not grow with B, so a trial
        at B' costs at most that at B >= B', and at most B'/B times it for B' > B); else the
        prior's (scaled by the trials trained so far: their seconds over their prior's); else
        the mean over every trial trained so far (None: nothing to go by yet)."""
        _, pid, s, b = point.key
        same = {key[2]: sec / n for key, (sec, n) in self.seconds.items() if key[:2] == (pid, s)}
        if same:
            near = min(same, key=lambda x: (abs(math.log(x / b)), -x))
            return same[near] * (b / near if b > near else 1.0)
        prior = self._prior_trial(point)
        if prior is not None:
            return prior * (self.trained_time / self.prior_spent if self.prior_spent > 0 else 1.0)
        return self.trained_time / self.trained if self.trained else None

    def snip_seconds_left(self):
        """SNIP passes still to come (the prior's count less those done) at their measured (else
        predicted) seconds, over the workers."""
        if not self.prior or not self.prior.get("snip_passes"):
            return 0.0
        left = max(0, self.prior["snip_passes"] - self.snip_done)
        each = {**self.prior.get("snip_s", {}), **self.snip_measured}
        return left * (max(each.values()) if each else 0.0) / self.workers

    def eta(self):
        """Time left: every trial not done yet at its point's `trial_seconds`, plus the SNIP
        passes to come, over the workers. '<=' while it is the prior's upper bound alone."""
        left, done = 0.0, collections.Counter(key[:4] for key in self.finished)
        for p in self.points:
            todo = p.trials - done[p.key]
            if todo:
                each = self.trial_seconds(p)
                if each is None:
                    return "?"
                left += todo * each
        bound = bool(self.prior and self.prior.get("bound")) and not self.trained
        return ("<=" if bound else "") + _hms(left / self.workers + self.snip_seconds_left())


def _hms(seconds):
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


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
    log(f"trained {progress.trained} trials ({_hms(progress.trained_time)} of training), "
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


def collect_plan(plan, results_dir="results", capping=True):
    """The results dataset of `plan` from the stored trial records alone (trains nothing).

    Study points or trials with no record yet are `not_run`. Every replicate search of a grid
    with `seeds` is read into the by-seed variables; the others are replicate 0's.
    """
    by_seed = {seed: {} for seed in replicate_seeds(plan)}
    for point in study_points(plan):
        by_seed[point.spec.seed].update(point_records(point, str(results_dir), capping))
    ds = store_mod.collect(plan.spec, plan, by_seed[plan.spec.seed], by_seed=by_seed)
    ds.attrs["capping"] = int(capping)
    return ds


def run_ids(plan):
    """{run id: (panel, sparsity, B, trial, seed)} of every trial `plan` asks for, every
    replicate seed's too. Figures that share workload, study point, trial, seed and search space
    share ids: one run, computed once."""
    out = {}
    for p in study_points(plan):
        for i, run_id in enumerate(p.trial_ids()):
            out.setdefault(run_id, (p.panel.id, p.sparsity, p.batch_size, i, p.spec.seed))
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
