"""Racing: a study point's trials advance together, so K* comes out with the fewest trial-steps.

All live trials take turns on one engine (each keeps its own saved state, so each computes bit
for bit as if it ran alone: engine.TrialRun) and advance evaluation by evaluation, in index
order. The race goes on until `finishers` trials (k) have met the goal: ranking finished
trials by (step, index), the first is the best trial and its step K*; once k have finished at
steps up to s_k, `cap_for` stops every other trial (`capped`): the lower-indexed ones than the
k-th at s_k, the higher-indexed ones, which could only tie, at their last evaluation before
s_k, without training to it. With k = 1 this is the K* and best trial of the sequential capped
search, whatever its run order, with the steps of its best run order. With k >= 2 the K* and
best trial are the same (the race only runs longer), and the k best trials are known exactly:
the search's own resolution (repro.evidence, the half-budget table) needs them. Diverging
trials leave as `infeasible` without stopping the race; with capping off each trial runs to
its own outcome; if fewer than k meet the goal, the rest run to the budget.

`finished` = (K, trial) pairs from trials raced or stored before (an earlier group of the same
point) cap this race from its first evaluation, exactly as they cap a sequential search.

An engine that advances many trials in one call (repro.engine_jax: a vmapped step over trial
slots) computes each round's trials together first (`_prefetch`); each trial then takes its
own result in its turn, and a trial a lower one's win stops in that round never takes it. A
trial's numbers do not depend on the others in the call, so the race is the same as above.
"""
import time


def cap_for(finished, index, capping, max_steps, finishers=1):
    """Last step trial `index` may run to (None: no cap).

    `finished` holds (K, trial) of the complete trials so far. Trials rank by (K, index), so
    once `finishers` (k) have finished, another trial can only matter by beating the k-th
    (K, trial), or by tying its K with a lower index: it stops at K - 1, or at K if its index
    is lower (the k-th trial itself runs to K).
    """
    if not capping or not finished or len(finished) < finishers:
        return None
    k, kth_index = sorted(finished)[finishers - 1]
    cap = k if index <= kth_index else k - 1
    return None if cap >= max_steps else cap


def race(runs, eval_steps, max_steps, capping, finished=(), on_leave=None, goal=None, extents=None,
         on_round=None, finishers=1):
    """Advance `runs` ({trial index: engine.TrialRun made with keep_state=True}) together.

    `goal`: the error that wins the race (default: each run's own goal). A run may train to a
    tighter goal of its own (a stored record it replaces answered that one), and `extents`
    ({trial: step or None}) keeps such a trial going at least that far (None: to its own end)
    whatever the cap, so its new record still answers all the old one did.
    `on_leave(i, result, cap)` is called as each trial leaves the race (`cap`: the last step
    the race let it run to, None if uncapped), `on_round(step, live trials, best)` after each
    evaluation round (best: (K*, trial) so far, or None); returns ({i: (result, cap)}, finished),
    `finished` sorted by (K, trial)."""
    live, clock, out, extents = dict(sorted(runs.items())), {i: 0.0 for i in runs}, {}, extents or {}
    finished = sorted(finished)

    def cap(i):
        c = cap_for(finished, i, capping, max_steps, finishers)
        if i in extents and c is not None:
            c = None if extents[i] is None else max(c, extents[i])
        return c

    def past_cap(i, s):
        """Whether trial i may not train to s: it can no longer win, or tie with a lower index."""
        c = cap(i)
        return c is not None and s > c

    def met(run, s):
        """Whether `run` met the race's goal at its evaluation at step s."""
        if goal is None:
            return run.status == "complete"
        at, err, exact = run.curve[-1] if run.curve else (None, None, False)
        return at == s and exact and err <= goal

    def leave(i, cap):
        out[i] = (live.pop(i).result(wall_time=clock[i]), cap)
        if on_leave is not None:
            on_leave(i, *out[i])

    for s in [s for s in eval_steps if s <= max_steps]:
        for i in [i for i in live if past_cap(i, s)]:  # stops at its cap
            leave(i, cap(i))
        if not live:
            break
        _prefetch(live, s, past_cap, clock)
        for i, run in live.items():  # one round: each live trial, in index order, trains to s
            if past_cap(i, s):          # and is evaluated there, unless a lower trial just won
                continue                # at s: i stops at its last evaluation (leaves next round)
            t0 = time.perf_counter()
            run.advance(s)
            clock[i] += time.perf_counter() - t0
            if met(run, s) and all(j != i for _, j in finished):
                finished.append((s, i))
                finished.sort()
        for i in [i for i, run in live.items() if run.finished]:  # complete or infeasible
            leave(i, None)
        if on_round is not None:
            on_round(s, len(live), finished[0] if finished else None)
    for i in list(live):  # ran every evaluation up to the budget without meeting the goal
        leave(i, cap(i))
    return out, finished


def _prefetch(live, s, past_cap, clock):
    """Let an engine with `prefetch` (repro.engine_jax) train and evaluate at s, in one go, every
    live trial that may reach s; the seconds it takes are shared evenly among them (`clock`).
    Engines without it (repro.engine) advance each trial in its turn."""
    ahead = [i for i in live if not past_cap(i, s)]
    prefetch = getattr(getattr(live[ahead[0]], "engine", None), "prefetch", None) if ahead else None
    if prefetch is None:
        return
    t0 = time.perf_counter()
    prefetch([live[i] for i in ahead], s)
    share = (time.perf_counter() - t0) / len(ahead)
    for i in ahead:
        clock[i] += share
