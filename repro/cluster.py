"""Across machines: keras-tuner's distributed mode (a gRPC chief and workers) over a plan.

`python -m repro chief SPEC` serves one oracle for the whole plan; `python -m repro worker SPEC`
(one per machine or device, any number) asks it for trials, trains them and writes each trial's
record to the shared results folder, exactly as a single-process run would. The chief then
collects the results file from the records.

Trial t of the plan oracle is study point t // trials, Sobol index t % trials. The search is
the paper's: every trial runs to its own outcome (no best-so-far capping, which needs the
trials of a point in sequence), so the dataset equals `repro run --no-capping` of the same spec.

keras-tuner's oracle has no notion of a dead worker: a worker killed mid-trial would hold its
trial forever. Workers therefore report a heartbeat every few seconds; a trial whose worker has
been silent for LEASE seconds goes back to the queue for the next worker. Records are written
atomically and re-read, so a trial finished just before its worker died is not trained again.
"""
import os
import threading
import time

import keras_tuner
from keras_tuner.src.engine import trial as trial_module

from . import search, store as store_mod
from .errors import UsageError

LEASE = float(os.environ.get("REPRO_LEASE_S", "60"))
HEARTBEAT = "repro_heartbeat"


def require_one_seed(plan):
    """The plan oracle serves replicate 0's trials only: refuse a grid with `seeds` > 1 rather
    than leave its other replicates silently unrun."""
    for pp in plan.panels:
        if pp.seeds > 1:
            raise UsageError(plan.spec.path, f"panel[{pp.panel.id}].grid.{plan.grid_name}.seeds",
                             f"the distributed chief and workers run one seed, this grid asks for "
                             f"{pp.seeds}", "run it with `python -m repro run` (--workers N), or "
                             "set seeds = 1")


def tasks(plan):
    """[(panel plan, sparsity, batch size, trials)] in plan order."""
    return [(pp, s, b, pp.grid.trials) for pp in plan.panels for s, b in pp.points]


def total_trials(plan):
    return sum(t[3] for t in tasks(plan))


def locate(plan, index):
    """(panel plan, sparsity, batch size, Sobol index) of plan-wide trial `index`."""
    for pp, s, b, n in tasks(plan):
        if index < n:
            return pp, s, b, index
        index -= n
    raise IndexError(index)


class PlanOracle(keras_tuner.Oracle):
    """One oracle for every (study point, trial) of a plan; lost workers' trials are re-queued."""

    def __init__(self, plan, **kwargs):
        require_one_seed(plan)
        n = total_trials(plan)
        hp = keras_tuner.HyperParameters()
        hp.Int("task", 0, max(n - 1, 1))
        super().__init__(objective=keras_tuner.Objective(search.OBJECTIVE, direction="min"),
                         max_trials=n, hyperparameters=hp, max_consecutive_failed_trials=None,
                         **kwargs)
        self.beats = {}

    def populate_space(self, trial_id):
        return {"status": trial_module.TrialStatus.RUNNING, "values": {"task": int(trial_id)}}

    @keras_tuner.synchronized
    def update_trial(self, trial_id, metrics, step=0):
        if HEARTBEAT in metrics:  # liveness only: not a metric of the trial
            self.beats[trial_id] = time.monotonic()
            return self.trials[trial_id]
        return super().update_trial(trial_id, metrics, step)

    @keras_tuner.synchronized
    def create_trial(self, tuner_id):
        now = time.monotonic()
        for owner, trial in list(self.ongoing_trials.items()):
            if owner != tuner_id and now - self.beats.setdefault(trial.trial_id, now) > LEASE:
                print(f"repro chief: {owner} silent for {LEASE:g} s; trial {trial.trial_id} "
                      "goes back to the queue", flush=True)
                self.ongoing_trials.pop(owner)
                self.tuner_ids.discard(owner)
                self._retry_queue.append(trial.trial_id)
        exhausted = len(self.trials) >= self.max_trials and not self._retry_queue
        if exhausted and any(owner != tuner_id for owner in self.ongoing_trials):
            # Others are still training: wait, in case one dies and its trial comes back.
            self.tuner_ids.add(tuner_id)
            return trial_module.Trial(self.hyperparameters.copy(), trial_id="wait",
                                      status=trial_module.TrialStatus.IDLE)
        trial = super().create_trial(tuner_id)
        if trial.status == trial_module.TrialStatus.RUNNING:
            self.beats[trial.trial_id] = now
        elif trial.status == trial_module.TrialStatus.STOPPED:
            # Every trial has ended. keras-tuner's chief exits once no tuner id is left, but a
            # worker killed *between* trials holds no trial (no lease ends for it) and would
            # stay listed forever: forget every id that holds no trial. A live one asking again
            # is told STOPPED too.
            self.tuner_ids -= {t for t in self.tuner_ids if t not in self.ongoing_trials}
        return trial


class WorkerTuner(search.StepsToResultTuner):
    """Runs plan-wide trials: `run_fn(pp, sparsity, batch, index)`; beats while a trial trains."""

    def __init__(self, oracle, plan, run_fn, directory, project_name, overwrite=False):
        self.plan, self.run_fn, self._idle = plan, run_fn, False
        super().__init__(oracle, None, directory=directory, project_name=project_name,
                         overwrite=overwrite)

    def pre_create_trial(self):
        if self._idle:
            time.sleep(1.0)

    def run_trial(self, trial, *args, **kwargs):
        if trial.status == trial_module.TrialStatus.IDLE:
            return {search.OBJECTIVE: float("inf")}
        stop = threading.Event()

        def beat():
            while not stop.wait(LEASE / 4):
                try:
                    self.oracle.update_trial(trial.trial_id, {HEARTBEAT: 1.0})
                except Exception:  # the chief may be busy or gone: the lease decides
                    pass

        threading.Thread(target=beat, daemon=True).start()
        try:
            k = self.run_fn(*locate(self.plan, int(trial.hyperparameters.values["task"])))
        finally:
            stop.set()
        return {search.OBJECTIVE: float("inf") if k is None else float(k)}

    def search(self, *args, **kwargs):
        # keras-tuner's loop, remembering IDLE answers so the next request waits a moment
        original = self.oracle.create_trial

        def create_trial(tuner_id):
            trial = original(tuner_id)
            self._idle = trial.status == trial_module.TrialStatus.IDLE
            return trial

        self.oracle.create_trial = create_trial
        return super().search(*args, **kwargs)


def record_failure(results_dir, run_id, worker, exc):
    """Keep a failed trial's message and traceback in results/failures/<run id>.json.

    keras-tuner's trial protocol carries no message, so without this a worker's error would
    reach the chief as a bare FAILED status. The trial has no record, so a later
    `repro run` or worker trains it again.
    """
    import json
    import pathlib
    import traceback
    from .atomic import atomic_write
    path = pathlib.Path(results_dir) / "failures" / f"{run_id}.json"
    atomic_write(path, json.dumps({
        "run_id": run_id, "worker": worker, "message": f"{type(exc).__name__}: {exc}",
        "traceback": "".join(traceback.format_exception(exc))}, indent=1).encode())
    return path


def project(plan):
    """Name of the plan's distributed tuner project (shared by chief and workers)."""
    ident = {"figure": plan.spec.id, "grid": plan.grid_name, "spec": plan.spec.sha256,
             "panels": [p.panel.id for p in plan.panels]}
    return f"{plan.spec.id}-{plan.grid_name}-{store_mod.run_id(ident)}"
