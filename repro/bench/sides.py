"""The sides of the bench that repro computes, each run in its own process by
`python -m repro.bench _side SIDE SELECTION ... OUT` (`run_side`), which writes its output to
OUT as JSON: the study the bench runs, repro's side and the bare training loop (the floor).
The naive sides are repro.bench.naive.
"""
import dataclasses
import json
import pathlib
import tempfile
import time

import numpy as np

from ..errors import UsageError
from .compare import point_key


def study(spec_path, grid, panel, batch_sizes=None, sparsities=None, trials=None):
    """(spec, PanelPlan) for one panel, optionally narrowed to fewer points or trials."""
    from .. import plan as plan_mod, spec as spec_mod
    spec = spec_mod.load_spec(spec_path)
    panel_plan = plan_mod.compile_plan(spec, grid, [panel]).panels[0]
    narrowed = panel_plan.grid
    for name, values in (("batch_sizes", batch_sizes), ("sparsities", sparsities)):
        if values and not set(values) <= set(getattr(narrowed, name)):
            raise UsageError(spec_path, f"--{name.replace('_', '-')}",
                             f"{sorted(set(values) - set(getattr(narrowed, name)))} not in the {grid} grid",
                             f"choose from {list(getattr(narrowed, name))}")
    narrowed = dataclasses.replace(narrowed, batch_sizes=tuple(batch_sizes or narrowed.batch_sizes),
                                   sparsities=tuple(sparsities or narrowed.sparsities),
                                   trials=trials or narrowed.trials)
    points = tuple((s, b) for s in narrowed.sparsities for b in narrowed.batch_sizes)
    return spec, plan_mod.PanelPlan(panel_plan.panel, narrowed, points, panel_plan.eval_steps)


# ------------------------------------------------------------------------ repro's side
def _point_value(var, sparsity, batch_size):
    """The value of a per-point results variable at a study point as an int; None where it is
    NaN or -1."""
    value = float(var.sel(sparsity=sparsity, batch_size=batch_size))
    return None if np.isnan(value) or value < 0 else int(value)


def _finished(results, sparsity, batch_size):
    """[[steps, trial], ...] of the trials of a study point that met the goal, fewest steps first."""
    status = results["status"].sel(sparsity=sparsity, batch_size=batch_size).values
    steps = results["steps"].sel(sparsity=sparsity, batch_size=batch_size).values
    return sorted([int(steps[t]), t] for t in range(status.size) if status[t] == 1)


def repro_side(spec, panel_plan, out, workers):
    """Run the study with repro's defaults in a fresh folder; write per point K* and best trial
    (the results' `steps_to_result` and `best_trial`), the steps the results read, and the run's
    counters."""
    from .. import plan as plan_mod, run
    plan = plan_mod.Plan(spec, "bench", (panel_plan,))
    with tempfile.TemporaryDirectory() as tmp:
        ds, report = run.run_plan(plan, run.RunOptions(results_dir=tmp), workers=workers)
    results = ds.sel(panel=panel_plan.panel.id)
    points = {point_key(s, b): {"k": _point_value(results["steps_to_result"], s, b),
                                "best": _point_value(results["best_trial"], s, b),
                                "finished": _finished(results, sparsity=s, batch_size=b)}
              for s, b in panel_plan.points}
    read = int(results["steps"].where(results["status"] > 0).sum())
    pathlib.Path(out).write_text(json.dumps({
        "points": points, "steps_in_results": read,
        "steps_by_batch": {int(b): int(n) for b, n in report["steps_by_batch"].items()},
        **{name: report[name] for name in
           ("steps_trained", "examples_evaluated", "trials_trained") if name in report}}))


# ------------------------------------------------------------------------ the floor
def floor_side(spec, panel_plan, steps_by_batch, out):
    """Time the bare compiled training loop over `steps_by_batch` {B: steps} (no evaluation)."""
    from .. import data as data_mod, engine, models
    panel = panel_plan.panel
    data = data_mod.load(panel.dataset)
    eng = engine.Engine(data, panel.model, panel.optimizer, panel.schedule)
    order = engine.DataOrder(len(data.y_train), spec.seed)
    hp = {"learning_rate": 1e-3, "momentum": 0.9}
    eng.reset(models.initial_weights(eng.model, spec.seed), None, hp)
    eng._train(order.indices(0, 1, 16))  # trace once, outside the timing
    t0 = time.perf_counter()
    for b, steps in steps_by_batch.items():
        done = 0
        while done < steps:  # chunks as long as repro's between evaluations
            n = min(256, steps - done)
            eng._train(order.indices(done, done + n, int(b)))
            done += n
    pathlib.Path(out).write_text(json.dumps({"seconds": time.perf_counter() - t0}))


# ------------------------------------------------------------------------ one side, in this process
def run_side(argv):
    """`SIDE SELECTION [ARGS...] OUT`: run one side on the study SELECTION (JSON: spec, grid,
    panel, batch_sizes, sparsities, trials) and write its output to OUT; repro's ARGS are its
    worker count, the floor's its {B: steps} share (JSON)."""
    side, selection, *rest = argv
    selection = json.loads(selection)
    if side in ("naive1", "floor"):
        # These sides compute as repro's workers do: one thread, deterministic kernels (the
        # Engine turns these on; naive1 never builds one, and either setting changes the bits).
        # The default-thread naive side keeps TensorFlow's defaults, as a user's script would;
        # the repro side is `run_plan` as `repro run` calls it (its workers pin themselves).
        import tensorflow as tf
        from .. import engine
        engine.pin_threads()
        tf.config.experimental.enable_op_determinism()
    spec, panel_plan = study(selection["spec"], selection["grid"], selection["panel"],
                             selection["batch_sizes"], selection["sparsities"], selection["trials"])
    if side in ("naive1", "naive"):
        from .naive import naive_side
        naive_side(spec, panel_plan, rest[0], label=side)
    elif side == "repro":
        repro_side(spec, panel_plan, rest[1], int(rest[0]))
    elif side == "floor":
        floor_side(spec, panel_plan, json.loads(rest[0]), rest[1])
