"""Trials run ahead of their search on workers that would otherwise sit idle, with the same results.

A study point's trials run one after another in run order, each capped by the best trial
before it (`run.cap_for`). Near the end of a plan few points are left, and a worker has nothing
to do. It may then train a trial further down a running point's order, capped by the best of
the trials before it that are already *stored*, re-read as more of them are stored while it
trains (`cap_watch`): the cap only tightens. That best can only be worse than (or equal to)
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


def _stored(spec, pp, sparsity, batch_size, results_dir, capping):
    """(order document, {trial: run id}, store, outcome(trial): K if its stored record reached
    the goal, else None)."""
    from . import run
    doc = json.loads(run._order_path(spec, pp, sparsity, batch_size, results_dir,
                                     capping).read_text())
    store = store_mod.RunStore(results_dir)
    _, values = run._sobol(spec, pp)
    tid = {i: run._trial_id(spec, pp, sparsity, batch_size, i, values[i]) for i in doc["order"]}

    def outcome(trial):
        rec = store.get(tid[trial])
        view = store_mod.goal_view(rec, pp.panel.goal_error, rec.get("cap")) if rec else None
        return view["steps_to_result"] if view and view["status"] == "complete" else None
    return doc, tid, store, outcome


def _final(doc, head_outcome):
    """False while the run order may still be re-sorted (`run.reanchor`): it is anchored, not
    re-anchored yet, and its first trial has not reached the goal (or not finished)."""
    return doc.get("anchor") is None or "reanchor" in doc or head_outcome is not None


def _cap(pp, batch_size, capping, order, outcomes, n):
    """Cap of the trial at position n of `order` from the stored outcomes before it."""
    from . import run
    before = [(k, order[m]) for m, k in enumerate(outcomes[:n]) if k is not None]
    return run.cap_for(min(before) if before else None, order[n], capping,
                       pp.grid.max_steps_for(batch_size))


def next_trial(spec, pp, sparsity, batch_size, results_dir, capping, skip=(), best=None):
    """(trial, cap) a spare worker may train ahead of this point's search; None if none.

    The search itself holds the first trial of the run order with no stored record, so the
    candidate is the next unstored, unclaimed trial after it. Its cap comes from the stored
    trials before it in run order, and tightens while it trains as more of them finish
    (`cap_watch`): uncapped at first, it stops as soon as the search's trial before it reaches
    the goal. While the order may still be re-sorted (its anchored first trial runs, see
    `run.reanchor`), the candidate is the trial that comes second if that first trial misses
    (sorted around `best`, the anchor point's best trial, once it is known), uncapped: only
    the first trial is before it in every order the point may end with. None once that first
    trial has missed (the search waits to re-sort). Trials in `skip` (already handed out) are
    passed over.
    """
    from . import run
    if not run._order_path(spec, pp, sparsity, batch_size, results_dir, capping).exists():
        return None
    doc, tid, store, outcome = _stored(spec, pp, sparsity, batch_size, results_dir, capping)
    order = doc["order"]
    free = [t for t in order if not store.path(tid[t]).exists()]  # free[0]: the search's own
    if not _final(doc, outcome(order[0])):
        if free[:1] != order[:1]:
            return None
        later = run.reanchored(spec, pp, order, best) if best else order
        return next(((t, None) for t in later[1:] if t in free and t not in skip
                     and not held(results_dir, tid[t])), None)
    outcomes = [outcome(t) for t in order]
    for t in free[1:]:
        if t in skip or held(results_dir, tid[t]):
            continue
        return t, _cap(pp, batch_size, capping, order, outcomes, order.index(t))
    return None


def cap_watch(spec, pp, sparsity, batch_size, results_dir, capping, trial, cap):
    """cap_now() for `trial` trained ahead: its cap from the trials before it in run order that
    are stored by now (starting from `cap`; none while the order may still be re-sorted). Cheap
    to poll: a record is read only when it has just appeared. Never tighter than the search's
    own cap for it (the search sees these records and maybe more), so its record answers the
    search exactly."""
    from . import run
    path = run._order_path(spec, pp, sparsity, batch_size, results_dir, capping)
    doc, tid, store, outcome = _stored(spec, pp, sparsity, batch_size, results_dir, capping)
    state = {"order": doc["order"], "final": _final(doc, outcome(doc["order"][0])),
             "outcomes": {}, "cap": cap}

    def cap_now():
        order = state["order"]
        if not state["final"]:  # only the first trial is sure to come before this one
            if not store.path(tid[order[0]]).exists():
                return state["cap"]
            doc = json.loads(path.read_text())  # first trial stored: final once it hit or re-sorted
            if not _final(doc, outcome(order[0])):
                return state["cap"]
            state.update(order=doc["order"], final=True)
            order = doc["order"]
        n = order.index(trial)
        new = [t for t in order[:n] if t not in state["outcomes"] and store.path(tid[t]).exists()]
        if new:  # more records can only lower the cap (train_or_reuse keeps the tightest)
            state["outcomes"].update((t, outcome(t)) for t in new)
            state["cap"] = _cap(pp, batch_size, capping, order,
                                [state["outcomes"].get(t) for t in order], n)
        return state["cap"]
    return cap_now
