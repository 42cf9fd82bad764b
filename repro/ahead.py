"""Trials run ahead of their search on workers that would otherwise sit idle, with the same results.

A study point's trials run one after another in run order, each capped by the best trial
before it (`run.cap_for`). Near the end of a plan few points are left, and a worker has nothing
to do. It may then train a trial further down a running point's order, capped by the best of
the trials before it that are already *stored*. That best can only be worse than (or equal to)
the best the search will see when it gets there, since the search sees those trials and maybe
more, so the cap is never tighter; training is deterministic, so when the search reaches the
trial, `store.capped_view` cuts the stored record to the search's own cap (a longer run answers
any shorter cap). Records, K* and statuses read the same as a run in order; only the extra steps
trained past the search's cap are spent, on a worker that had nothing else to do.

A trial being trained has a claim file (`<results>/claims/<run id>`, holding the claimer's pid
and start time), so the search waits for a trial run ahead of it instead of training it a
second time. A claim whose process is gone (a killed run) is ignored.
"""
import json
import os
import pathlib
import time

from . import store as store_mod


def _claim_path(results_dir, rid):
    return pathlib.Path(results_dir) / "claims" / rid


def _started(pid):
    """When process `pid` started (clock ticks since boot; "" where /proc cannot tell), so that
    a claim is not mistaken for live when a later process happens to get a dead claimer's pid."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2:].split()[19]
    except (OSError, ValueError, IndexError):
        return ""


def _alive(path):
    """True if the claim at `path` belongs to a running process on this machine."""
    try:
        pid, *started = path.read_text().split()
        os.kill(int(pid), 0)
    except (OSError, ValueError):  # gone, unreadable, or the process is dead
        return False
    return not started or started[0] == _started(pid)


def claim(results_dir, rid, pid=None):
    """Claim run `rid` for process `pid` (default: this one). False if a live process holds it."""
    path = _claim_path(results_dir, rid)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            if _alive(path):
                return False
            path.unlink(missing_ok=True)  # left by a killed run
            continue
        with os.fdopen(fd, "w") as f:
            pid = pid or os.getpid()
            f.write(f"{pid} {_started(pid)}\n")
        return True
    return False


def release(results_dir, rid):
    """Drop the claim on run `rid`."""
    _claim_path(results_dir, rid).unlink(missing_ok=True)


def held(results_dir, rid):
    """True while a live process holds a claim on run `rid`."""
    path = _claim_path(results_dir, rid)
    return path.exists() and _alive(path)


def wait_for(results_dir, rid, poll=0.2):
    """Block while another live process trains run `rid`."""
    while held(results_dir, rid):
        time.sleep(poll)


def next_trial(spec, pp, sparsity, batch_size, results_dir, capping, skip=()):
    """(trial, cap) a spare worker may train ahead of this point's search; None if none.

    The search itself holds the first trial of the run order with no stored record, so the
    candidate is the next unstored, unclaimed trial after it. Its cap comes from the stored
    trials before it in run order. None while the order may still change (an anchored order
    whose first trial has not reached the goal may be re-sorted: `run.reanchor`), and, with
    capping, while no trial before it is complete: uncapped, a trial run ahead could outlast
    by far the capped run the search would make, and the search would wait for it.
    Trials in `skip` (already handed out) are passed over.
    """
    from . import run
    path = run._order_path(spec, pp, sparsity, batch_size, results_dir, capping)
    if not path.exists():
        return None
    doc = json.loads(path.read_text())
    order = doc["order"]
    store = store_mod.RunStore(results_dir)
    _, values = run._sobol(spec, pp)
    ids = [run._trial_id(spec, pp, sparsity, batch_size, i, values[i]) for i in order]
    records = [store.get(rid) for rid in ids]
    outcome = []  # per trial in run order: K if its stored record reached the goal, else None
    for rec in records:
        view = store_mod.goal_view(rec, pp.panel.goal_error, rec.get("cap")) if rec else None
        outcome.append(view["steps_to_result"] if view and view["status"] == "complete" else None)
    if doc.get("anchor") is not None and "reanchor" not in doc and outcome[0] is None:
        return None
    unstored = [n for n, rec in enumerate(records) if rec is None]
    for n in unstored[1:]:
        if order[n] in skip or held(results_dir, ids[n]):
            continue
        before = [(k, order[m]) for m, k in enumerate(outcome[:n]) if k is not None]
        if capping and not before:
            return None
        cap = run.cap_for(min(before) if before else None, order[n], capping,
                          pp.grid.max_steps_for(batch_size))
        return order[n], cap
    return None
