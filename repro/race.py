"""Racing: a study point's trials advance together, so K* comes out with n x K* trial-steps.

All live trials take turns on one engine (each keeps its own saved state, so each computes bit
for bit as if it ran alone: engine.TrialRun) and advance evaluation by evaluation. At the first
evaluation s where some trial meets the goal, K* = s and the best trial is the lowest index
among those that met it; `run.cap_for` then stops every other trial there (`capped`). This is
the K* and best trial of the sequential capped search, whatever its run order. Diverging trials
leave as `infeasible` without stopping the race; with capping off each trial runs to its own
outcome; if nobody meets the goal, everyone runs to the budget.

`best` = (K, trial) from trials raced or stored before (an earlier group of the same point)
caps this race from its first evaluation, exactly as it caps a sequential search.
"""
import time

from .run import cap_for


def race(runs, eval_steps, max_steps, capping, best=None, on_leave=None):
    """Advance `runs` ({trial index: engine.TrialRun made with keep_state=True}) together.

    `on_leave(i, result, cap)` is called as each trial leaves the race (`cap`: the last step
    the race let it run to, None if uncapped); returns ({i: (result, cap)}, best)."""
    live, clock, out = dict(sorted(runs.items())), {i: 0.0 for i in runs}, {}

    def leave(i, cap):
        out[i] = (live.pop(i).result(wall_time=clock[i]), cap)
        if on_leave is not None:
            on_leave(i, *out[i])

    for s in [s for s in eval_steps if s <= max_steps]:
        for i in list(live):  # a trial that can no longer win (or tie with a lower index) stops
            cap = cap_for(best, i, capping, max_steps)
            if cap is not None and s > cap:
                leave(i, cap)
        if not live:
            break
        for i, run in live.items():  # one round: every live trial trains to s and is evaluated
            t0 = time.perf_counter()
            run.advance(s)
            clock[i] += time.perf_counter() - t0
        met = [i for i, run in live.items() if run.status == "complete"]
        if met and (best is None or (s, met[0]) < best):
            best = (s, met[0])  # ties go to the lowest trial index
        for i in [i for i, run in live.items() if run.finished]:  # complete or infeasible
            leave(i, None)
    for i in list(live):  # ran every evaluation up to the budget without meeting the goal
        leave(i, cap_for(best, i, capping, max_steps))
    return out, best
