"""Racing: a study point's trials advance together, so K* comes out with the fewest trial-steps.

All live trials take turns on one engine (each keeps its own saved state, so each computes bit
for bit as if it ran alone: engine.TrialRun) and advance evaluation by evaluation, in index
order. At the first evaluation s where some trial meets the goal, K* = s and the best trial is
the lowest index among those that met it; `cap_for` then stops every other trial (`capped`):
the lower-indexed ones at s, the higher-indexed ones, which could only tie, at their last
evaluation before s, without training to s. This is the K* and best trial of the sequential
capped search, whatever its run order, and the steps the best run order would train: the
trials up to the best run to K*, the rest to the evaluation before it. Diverging trials
leave as `infeasible` without stopping the race; with capping off each trial runs to its own
outcome; if nobody meets the goal, everyone runs to the budget.

`best` = (K, trial) from trials raced or stored before (an earlier group of the same point)
caps this race from its first evaluation, exactly as it caps a sequential search.
"""
import time


def cap_for(best, index, capping, max_steps):
    """Last step trial `index` may run to (None: no cap).

    `best` is (K, trial) of the best complete trial so far. K* is a minimum over trials with
    ties going to the lower trial index, so another trial can only matter by beating K, or by
    tying it with a lower index: it stops at K - 1, or at K if its index is lower (the best
    trial itself runs to K).
    """
    if not capping or best is None:
        return None
    k, best_index = best
    cap = k if index <= best_index else k - 1
    return None if cap >= max_steps else cap


def race(runs, eval_steps, max_steps, capping, best=None, on_leave=None, goal=None, extents=None,
         on_round=None):
    """Advance `runs` ({trial index: engine.TrialRun made with keep_state=True}) together.

    `goal`: the error that wins the race (default: each run's own goal). A run may train to a
    tighter goal of its own (a stored record it replaces answered that one), and `extents`
    ({trial: step or None}) keeps such a trial going at least that far (None: to its own end)
    whatever the cap, so its new record still answers all the old one did.
    `on_leave(i, result, cap)` is called as each trial leaves the race (`cap`: the last step
    the race let it run to, None if uncapped), `on_round(step, live trials, best)` after each
    evaluation round; returns ({i: (result, cap)}, best)."""
    live, clock, out, extents = dict(sorted(runs.items())), {i: 0.0 for i in runs}, {}, extents or {}

    def cap(i):
        c = cap_for(best, i, capping, max_steps)
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
        for i, run in live.items():  # one round: each live trial, in index order, trains to s
            if past_cap(i, s):          # and is evaluated there, unless a lower trial just won
                continue                # at s: i stops at its last evaluation (leaves next round)
            t0 = time.perf_counter()
            run.advance(s)
            clock[i] += time.perf_counter() - t0
            if met(run, s) and (best is None or (s, i) < best):
                best = (s, i)
        for i in [i for i, run in live.items() if run.finished]:  # complete or infeasible
            leave(i, None)
        if on_round is not None:
            on_round(s, len(live), best)
    for i in list(live):  # ran every evaluation up to the budget without meeting the goal
        leave(i, cap(i))
    return out, best
