"""Read stored trial records: what a study point's records already answer, and a plan's results.

Every finished trial is a record (store.TrialRecord) shared across figures and reruns. A study
point reads its records together (`point_view`): the complete ones, each read at its own cap,
rank by (K, trial) and give the point's K* and best trial; every other trial is then read under
the cap a race gives it (`race.cap_for` with the grid's `finishers`), exactly where a race stops
it. A record that cannot answer the point's goal under that cap reads as None: the trial must
train (repro.run races those). The results dataset of a plan (`collect_plan`) is built from the
records alone and trains nothing.

Importing this module does not import TensorFlow, nor the trainer (repro.run).
"""
import math

from . import backend
from . import store as store_mod
from .plan import replicate_seeds, study_points
from .race import cap_for


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
    """The stored record of every trial of `point` (None: not stored), in trial order.

    On JAX a trial trained with its batch split over r > 1 devices has a run id of its own
    (repro.backend.identity, `layouts`): of the records of one trial stored under its layouts,
    the one that answers the most is read (`_answers_most`), whatever devices read it."""
    store = store_mod.RunStore(results_dir)
    values = point.trial_values()
    out = []
    for i, v in enumerate(values):
        found = [rec for rec in (store.trial(store_mod.run_id(point.trial_identity(i, v, r)))
                                 for r in backend.layouts(point.batch_size)) if rec is not None]
        out.append(min(found, key=lambda rec: _answers_most(point, rec)) if found else None)
    return out


def _answers_most(point, record):
    """Sort key of a trial's records, best first: one that answers `point`'s goal at its own
    cap, then the tightest goal, then the most steps (a record that replaced another: it
    trained to a goal at least as tight, at least as far); ties keep layout order."""
    answers = record.view(point.goal, record.cap) is not None
    goal = record.goal if record.goal is not None else math.inf
    return (not answers, goal, -record.steps)


def point_records(point, results_dir, capping=True):
    """{(panel, sparsity, B, trial): record} of every trial the point's records answer."""
    view, _ = point_view(point, stored_records(point, results_dir), capping)
    pid = point.panel.id
    return {(pid, point.sparsity, point.batch_size, i): rec
            for i, rec in view.items() if rec is not None}


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
