"""Across machines: keras-tuner's distributed mode (a gRPC chief and workers) over a plan.

`serve` (`python -m repro chief SPEC`) holds one oracle for the whole plan; `work`
(`python -m repro worker SPEC`, one per machine or device, any number) asks it for study points
and races each whole point with `run.run_point`, exactly as `repro run` does: the point's trials
advance together, best-so-far capping stops the ones that can no longer win, and every record
goes to the shared results folder as its trial leaves the race. The chief then collects the
results file from the records, with the spec's capping, so the dataset equals `repro run` of
the same spec.

One oracle trial is one attempt at one study point of `plan.study_points(plan)` (its value
`point` is the point's index there); the chief's terms, the plan's name and whether to cap, are
fixed values of the search space, which every worker reads before it races anything.

keras-tuner's oracle has no notion of a dead worker: a worker killed mid-point would hold its
point forever. Workers therefore report a heartbeat every few seconds; when a worker has been
silent for LEASE seconds, its trial ends as FAILED and its point goes back to the queue, to be
served again as a new trial. The stored records make that resume exact: whoever races the point
next re-reads the records of the trials that left the race before the kill (never trains them
again) and races only the rest.
"""
import collections
import dataclasses
import json
import os
import pathlib
import threading
import time
import traceback

import keras_tuner
from keras_tuner.engine import base_tuner
from keras_tuner.engine.trial import TrialStatus

from . import plan as plan_mod
from . import run as run_mod
from . import store as store_mod
from .errors import UsageError
from .search import OBJECTIVE  # here a study point's K*

LEASE = float(os.environ.get("REPRO_LEASE_S", "60"))  # seconds of silence before a point returns
HEARTBEAT = "repro_heartbeat"  # the metric name a worker beats with (liveness, not a result)
IDLE_WAIT = 1.0  # seconds a worker waits before asking again when every point is taken
ROUND_LINE_S = 30.0  # seconds between a worker's race-progress lines


def project(plan):
    """Name of the plan's distributed tuner project (shared by chief and workers)."""
    ident = {"figure": plan.spec.id, "grid": plan.grid_name, "spec": plan.spec.sha256,
             "panels": [p.panel.id for p in plan.panels]}
    return f"{plan.spec.id}-{plan.grid_name}-{store_mod.run_id(ident)}"


def objective():
    """What an oracle trial reports: the point's K*, lower is better."""
    return keras_tuner.Objective(OBJECTIVE, direction="min")


def chief_terms(plan, capping):
    """The search space the chief serves: a point index, with the plan and capping fixed."""
    hp = keras_tuner.HyperParameters()
    hp.Int("point", 0, max(len(plan_mod.study_points(plan)) - 1, 1))
    hp.Fixed("plan", project(plan))
    hp.Fixed("capping", bool(capping))
    return hp


def connect_env(ip, port, tuner_id):
    """keras-tuner's distributed mode is configured through these three variables."""
    os.environ.update(KERASTUNER_TUNER_ID=tuner_id, KERASTUNER_ORACLE_IP=ip,
                      KERASTUNER_ORACLE_PORT=str(port))


# ------------------------------------------------------------------------ the chief
class PlanOracle(keras_tuner.Oracle):
    """Serves every study point of a plan once to completion; a silent worker's point is
    served again (`lease_s`). Answers IDLE while every point is taken but some still race, and
    STOPPED once none is left."""

    def __init__(self, plan, capping=True, lease_s=LEASE, log=print):
        self.points = plan_mod.study_points(plan)
        super().__init__(objective=objective(), max_trials=None,
                         hyperparameters=chief_terms(plan, capping),
                         # A failed point is a result to report, never a reason to stop serving.
                         max_consecutive_failed_trials=None)
        order = {id(p): i for i, p in enumerate(self.points)}  # costliest first, as `repro run`
        self.pending = collections.deque(order[id(p)] for p in run_mod.costliest_first(self.points))
        self.lease_s, self.log = lease_s, log
        self.beats = {}            # {trial id: time of the last sign of life}
        self.tuner_ids_seen = set()

    def populate_space(self, trial_id):
        if self.pending:
            return {"status": TrialStatus.RUNNING, "values": {"point": self.pending.popleft()}}
        if self.ongoing_trials:  # others still race: ask again, one of them may die
            return {"status": TrialStatus.IDLE}
        return {"status": TrialStatus.STOPPED}

    @keras_tuner.synchronized
    def update_trial(self, trial_id, metrics, step=0):
        if HEARTBEAT in metrics:
            self.beats[trial_id] = time.monotonic()
            return self.trials[trial_id]
        return super().update_trial(trial_id, metrics, step)

    @keras_tuner.synchronized
    def create_trial(self, tuner_id):
        self.tuner_ids_seen.add(tuner_id)
        self.requeue_silent_points(asking=tuner_id)
        trial = super().create_trial(tuner_id)
        if trial.status == TrialStatus.RUNNING:
            self.beats[trial.trial_id] = time.monotonic()
        elif trial.status == TrialStatus.STOPPED:
            self.release_tuner_ids(stopped=tuner_id)
        return trial

    def requeue_silent_points(self, asking):
        """End the trial of every worker silent for longer than the lease as FAILED, and put
        its point first in the queue."""
        now = time.monotonic()
        for owner, trial in list(self.ongoing_trials.items()):
            if owner == asking or now - self.beats.get(trial.trial_id, now) <= self.lease_s:
                continue
            index = trial.hyperparameters.values["point"]
            self.log(f"repro chief: {owner} silent for {self.lease_s:g} s; "
                     f"{point_label(self.points[index])} (trial {trial.trial_id}) "
                     "goes back to the queue")
            trial.status = TrialStatus.FAILED
            trial.message = f"{owner} stopped sending heartbeats"
            self.end_trial(trial)
            self.pending.appendleft(index)

    def release_tuner_ids(self, stopped):
        """Tell every other worker seen so far that the search is over.

        keras-tuner's chief exits only once every tuner id it knows has been told STOPPED,
        and it forgets an id only then. A worker killed between points holds no trial (no
        lease ends for it) and never asks again, so the chief asks on its behalf: every id
        holds no trial once the search is over, and is answered STOPPED. A live worker asking
        afterwards is told STOPPED too."""
        for tuner_id in sorted(self.tuner_ids_seen - {stopped}):
            super().create_trial(tuner_id)

    def failed_points(self):
        """Study points whose every trial failed (a worker's error, not a lost lease)."""
        done = {t.hyperparameters.values["point"] for t in self.trials.values()
                if t.status == TrialStatus.COMPLETED}
        return [self.points[i] for i in sorted({t.hyperparameters.values["point"]
                                                for t in self.trials.values()} - done)]


def serve(plan, *, results_dir, capping, ip, port, log=print):
    """Serve `plan`'s study points to workers on ip:port until every one has been raced, then
    return the results dataset collected from the stored records with `capping`.

    Blocks until the last point ends. A restarted chief starts its queue afresh: points whose
    records are stored are re-read by the workers, not trained again."""
    from . import records
    connect_env(ip, port, "chief")
    oracle = PlanOracle(plan, capping=capping, log=log)
    chief = base_tuner.BaseTuner(oracle, directory=str(pathlib.Path(results_dir) / "tuner"),
                                 project_name=project(plan), overwrite=True)
    chief.search(verbose=0)  # keras-tuner's gRPC server, until every worker is told STOPPED
    for point in oracle.failed_points():
        log(f"warning: {point_label(point)} failed on its worker (see {results_dir}/failures); "
            "start a worker or `repro run` again to race it")
    return records.collect_plan(plan, results_dir=results_dir, capping=capping)


# ------------------------------------------------------------------------ a worker
class PointTuner(base_tuner.BaseTuner):
    """A worker: races each study point the chief serves with `race_point(point, capping=)`
    (returns K* or None), with the chief's capping, and beats while it does."""

    def __init__(self, plan, race_point, directory, project_name):
        self.plan, self.points = plan, plan_mod.study_points(plan)
        self.race_point, self.capping, self.asked_in_vain = race_point, None, False
        super().__init__(keras_tuner.Oracle(objective=objective()), directory=directory,
                         project_name=project_name, overwrite=True)

    def on_search_begin(self):
        self.capping = accept_terms(self.plan, self.oracle.get_space())

    def pre_create_trial(self):
        if self.asked_in_vain:  # every point is taken: wait before asking again
            time.sleep(IDLE_WAIT)
        self.asked_in_vain = True  # until on_trial_begin says a point came

    def on_trial_begin(self, trial):
        self.asked_in_vain = False

    def run_trial(self, trial, *args, **kwargs):
        stop = threading.Event()
        threading.Thread(target=self.beat, args=(trial.trial_id, stop), daemon=True).start()
        try:
            k = self.race_point(self.points[trial.hyperparameters.values["point"]],
                                capping=self.capping)
        finally:
            stop.set()
        return {OBJECTIVE: float("inf") if k is None else float(k)}

    def beat(self, trial_id, stop):
        while not stop.wait(LEASE / 4):
            try:
                self.oracle.update_trial(trial_id, {HEARTBEAT: 1.0})
            except Exception:  # the chief may be busy or gone: its lease decides
                pass


def accept_terms(plan, space):
    """The chief's capping, after checking that it serves this worker's plan."""
    served, mine = space.values.get("plan"), project(plan)
    if served != mine:
        raise UsageError(plan.spec.path, None,
                         f"the chief serves plan {served}, this worker compiled {mine}",
                         "give the worker the chief's spec, --grid and --panel")
    return bool(space.values["capping"])


def require_data(plan):
    """Fail before asking for a point when a panel's dataset is not on this machine."""
    from . import data as data_mod
    for panel_plan in plan.panels:
        data_mod.require(panel_plan.panel.dataset)


def work(plan, options, tuner_id, *, ip, port, threads=1, log=print):
    """Race the study points the chief on ip:port serves until none is left.

    Each point is `run.claim_point(point, options, report)` (run_point under the point's
    lease, so a `repro run` on the same folder never races it at the same time) with the
    chief's capping in place of `options.capping`; `log` gets a line as a point starts and one per trial event
    (`event_line`). A point that raises is reported to the chief as FAILED and its error kept
    (`record_failure`); the worker goes on with the next point."""
    from . import engine, progress, run
    require_data(plan)
    engine.pin_threads(threads)
    connect_env(ip, port, tuner_id)

    last_round = [time.monotonic()]

    def report(event):
        """A line per trial event; a race-progress line at most every ROUND_LINE_S seconds."""
        if isinstance(event, progress.TrialEvent):
            log(event_line(tuner_id, event))
        elif isinstance(event, progress.Stage):  # data load, SNIP pass, race start
            if event.state != "progress" or time.monotonic() - last_round[0] >= ROUND_LINE_S:
                last_round[0] = time.monotonic()
                log(f"{tuner_id}: {progress.stage_line(event)}")
        elif time.monotonic() - last_round[0] >= ROUND_LINE_S:
            last_round[0] = time.monotonic()
            log(f"{tuner_id}: {point_label(event.point)} racing: {event.live} trials at step "
                f"{event.step:,} of {event.point.max_steps:,}"
                + ("" if event.best is None else f", K* {event.best}"))

    def race_point(point, capping):
        log(f"{tuner_id}: racing {point_label(point)}, {point.trials} trials")
        try:
            best = run.claim_point(point, dataclasses.replace(options, capping=capping),
                                   report=report, wait=True, log=log)
        except Exception as e:
            path = record_failure(options.results_dir, point_name(point), tuner_id, e)
            log(f"{tuner_id}: {point_label(point)} failed: {type(e).__name__}: {e} "
                f"(kept in {path})")
            raise keras_tuner.errors.FailedTrialError(str(e)) from e
        return None if best is None else best[0]

    folder = pathlib.Path(options.results_dir) / "tuner" / tuner_id
    PointTuner(plan, race_point, directory=str(folder), project_name=project(plan)).search()


# ------------------------------------------------------------------------ names and lines
def point_label(point):
    """`(a) B=32 s=0.5 seed=5`: panel, batch size, sparsity and the search's figure seed."""
    return (f"({point.panel.id}) B={point.batch_size} s={point.sparsity:g} "
            f"seed={point.spec.seed}")


def point_name(point):
    """A file name for a study point: panel, sparsity, batch size and figure seed."""
    return f"{point.panel.id}-s{point.sparsity:g}-B{point.batch_size}-seed{point.spec.seed}"


def event_line(tuner_id, event):
    """One worker line per trial event: point, trial, status, K or steps, wall time, 'stored'."""
    rec = event.record
    result = f"K={rec.k}" if rec.k is not None else f"{rec.steps} steps"
    return (f"{tuner_id}: {point_label(event.point)} trial {event.trial}: {rec.status} {result} "
            f"{rec.wall_time:.1f}s{' stored' if event.reused else ''}")


def record_failure(results_dir, name, worker, exc):
    """Keep a failed point's message and traceback in results/failures/<name>.json.

    keras-tuner's trial protocol carries no message, so without this a worker's error would
    reach the chief as a bare FAILED status. The point's trials that had left the race are
    stored; a later worker or `repro run` races the rest."""
    from .atomic import atomic_write
    path = pathlib.Path(results_dir) / "failures" / f"{name}.json"
    atomic_write(path, json.dumps({
        "name": name, "worker": worker, "message": f"{type(exc).__name__}: {exc}",
        "traceback": "".join(traceback.format_exception(exc))}, indent=1).encode())
    return path
