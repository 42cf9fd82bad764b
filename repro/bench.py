"""`python -m repro bench`: a naive Keras harness and repro on the same study, side by side.

Sides (`--sides`, default all four):
  naive1  what a Keras user writes -- keras-tuner (the same Sobol trials) whose trials call
          `model.fit` over the same batches, a callback that classifies the whole validation
          split every evaluation step and stops at the goal, SNIP computed per trial, no
          capping, no early exit, one trial at a time. It keeps the paper's TF1 update rule (a
          small Keras optimizer) and runs on one thread with TensorFlow's deterministic
          kernels, as each of repro's trials does (either setting changes the last bits, see
          engine.TRIAL_THREADS), so that it trains bit for bit the networks repro trains.
  naive   the same harness as a user runs it: TensorFlow's default thread pools over the whole
          machine and its default (non-deterministic) kernels. Its K* and best trial may
          differ from repro's; the bench reports per point whether they match.
  repro   `run_plan` with its defaults into a fresh results folder.
  floor   the bare compiled training loop over exactly the steps repro trained, split over the
          same number of processes (it needs the repro side).
Each side runs in its own process tree; peak memory is the largest sum of resident memory over
that tree, sampled every 0.2 s. Per study point the bench compares K* and the best trial (the
lowest Sobol trial index among those reaching K*); the single-thread naive side must agree
with repro at every point, or `bench` reports it and exits 1. The speed and memory targets are printed
with the measured value and whether each is met; none is asserted.
"""
import dataclasses
import json
import math
import os
import pathlib
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

from .errors import UsageError


# ------------------------------------------------------------------------ the study
def study(spec_path, grid, panel, batch_sizes=None, sparsities=None, trials=None):
    """(spec, PanelPlan) for one panel, optionally narrowed to fewer points or trials."""
    from . import plan as plan_mod, spec as spec_mod
    sp = spec_mod.load_spec(spec_path)
    pp = plan_mod.compile_plan(sp, grid, [panel]).panels[0]
    g = pp.grid
    for name, values in (("batch_sizes", batch_sizes), ("sparsities", sparsities)):
        if values and not set(values) <= set(getattr(g, name)):
            raise UsageError(spec_path, f"--{name.replace('_', '-')}",
                             f"{sorted(set(values) - set(getattr(g, name)))} not in the {grid} grid",
                             f"choose from {list(getattr(g, name))}")
    g = dataclasses.replace(g, batch_sizes=tuple(batch_sizes or g.batch_sizes),
                            sparsities=tuple(sparsities or g.sparsities),
                            trials=trials or g.trials)
    points = tuple((s, b) for s in g.sparsities for b in g.batch_sizes)
    return sp, plan_mod.PanelPlan(pp.panel, g, points, pp.eval_steps)


# ------------------------------------------------------------------------ (i) naive side
def _tf1_optimizer(kind, masks):
    """A Keras optimizer with TF1 semantics (v <- m v + g; w <- w - lr v) and SNIP masks."""
    import keras

    class TF1(keras.optimizers.Optimizer):
        def __init__(self, learning_rate, momentum=0.0):
            super().__init__(learning_rate=learning_rate, name="tf1")
            self.momentum = momentum

        def build(self, variables):
            super().build(variables)
            self.v = [self.add_variable_from_reference(w, "velocity") for w in variables]

        def update_step(self, gradient, variable, learning_rate):
            i = self._get_variable_index(variable)
            g = gradient * masks[i]
            lr = keras.ops.cast(learning_rate, variable.dtype)
            if kind == "sgd":
                self.assign_sub(variable, lr * g)
                return
            v = self.v[i]
            self.assign(v, self.momentum * v + g)
            self.assign_sub(variable, lr * (g + self.momentum * v if kind == "nesterov" else v))

    return TF1


def point_key(s, b):
    """The JSON key of study point (sparsity s, batch size b), e.g. '0.9/256'."""
    return f"{s:g}/{b}"


def best_of(steps_by_trial):
    """{"k": K*, "best": trial} from {trial: steps-to-result or None (goal not reached)}.

    K* is the fewest steps over the trials that reached the goal; the best trial is the lowest
    trial index among those with K* (repro's tie rule). Both are None when no trial reached it."""
    reached = {int(t): int(k) for t, k in steps_by_trial.items() if k is not None}
    if not reached:
        return {"k": None, "best": None}
    k_star = min(reached.values())
    return {"k": k_star, "best": min(t for t, k in reached.items() if k == k_star)}


def naive_side(spec, pp, out, label="naive"):
    """Run the study the naive way; write per point K*, best trial and every trial's
    steps-to-result, and the counters, to `out` (JSON). Progress lines start with `label`."""
    import keras
    import keras_tuner
    from . import data as data_mod, engine, models, pruning, search

    panel, g = pp.panel, pp.grid
    if panel.schedule != "constant":
        raise UsageError(spec.path, f"panel[{panel.id}].schedule",
                         "the naive harness covers constant learning rates only", "bench another panel")
    data = data_mod.load(panel.dataset)
    order = engine.DataOrder(len(data.y_train), spec.seed)
    counters = {"steps_trained": 0, "examples_evaluated": 0, "trials_trained": 0}
    points, trials = {}, {}

    class Batches(keras.utils.PyDataset):
        def __init__(self, b, steps):
            super().__init__()
            self.b, self.steps = b, steps

        def __len__(self):
            return self.steps

        def __getitem__(self, i):
            idx = order.indices(i, i + 1, self.b)[0]
            return data.x_train[idx], data.y_train[idx]

    class EvaluateAndStop(keras.callbacks.Callback):
        def __init__(self, eval_steps, goal):
            super().__init__()
            self.eval_steps, self.goal, self.k, self.steps = set(eval_steps), goal, None, 0

        def on_train_batch_end(self, batch, logs=None):
            self.steps = batch + 1
            if self.steps in self.eval_steps:
                logits = self.model.predict(data.x_val, batch_size=1000, verbose=0)
                counters["examples_evaluated"] += len(data.y_val)
                if np.mean(np.argmax(logits, axis=1) != data.y_val) <= self.goal:
                    self.k = self.steps
                    self.model.stop_training = True

    for s, b in pp.points:
        budget = g.max_steps_for(b)
        steps_by_trial = {}

        class Tuner(keras_tuner.Tuner):
            def run_trial(self, trial, *args, **kwargs):
                hp = trial.hyperparameters.values
                lr = hp["learning_rate"]
                m = 1.0 - hp["one_minus_momentum"] if "one_minus_momentum" in hp else 0.0
                i = self.oracle.sobol_index(trial.trial_id)
                model = models.build(panel.model, data.x_train.shape[1:])
                init = models.initial_weights(model, spec.seed + i)
                mask = [np.ones_like(w) for w in init]
                if s > 0:
                    scores = pruning.connection_sensitivity(model, init, data.x_train, data.y_train)
                    mask = pruning.masks_from_scores(scores, s)
                for w, w0, m0 in zip(model.trainable_variables, init, mask):
                    w.assign(w0 * m0)
                model.compile(optimizer=_tf1_optimizer(panel.optimizer, mask)(lr, m),
                              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
                stop = EvaluateAndStop(pp.eval_steps, panel.goal_error)
                model.fit(Batches(b, budget), epochs=1, verbose=0, shuffle=False,
                          callbacks=[stop, keras.callbacks.TerminateOnNaN()])
                counters["steps_trained"] += stop.steps
                counters["trials_trained"] += 1
                steps_by_trial[i] = stop.k
                return {search.OBJECTIVE: math.inf if stop.k is None else float(stop.k)}

        oracle = search.SobolOracle(g.search, g.trials, scrambled=spec.sobol == "scrambled",
                                    seed=spec.sobol_seed)
        with tempfile.TemporaryDirectory() as tmp:
            tuner = Tuner(oracle=oracle, hypermodel=lambda hp: None, directory=tmp,
                          project_name="naive", overwrite=True)
            tuner.search(verbose=0)
        key = point_key(s, b)
        points[key], trials[key] = best_of(steps_by_trial), steps_by_trial
        print(f"{label}: s={s:g} B={b} K*={points[key]['k']} best trial={points[key]['best']}",
              flush=True)
    pathlib.Path(out).write_text(json.dumps({"points": points, "trials": trials, **counters}))


# ------------------------------------------------------------------------ (ii) repro side
def _point_value(var, s, b):
    """The value of a per-point results variable at (s, b) as an int; None where it is NaN or -1."""
    v = float(var.sel(sparsity=s, batch_size=b))
    return None if np.isnan(v) or v < 0 else int(v)


def repro_side(spec, pp, out, workers):
    """Run the study with repro's defaults in a fresh folder; write per point K* and best trial
    (the results' `steps_to_result` and `best_trial`), the steps the results read, and the run's
    counters."""
    from . import plan as plan_mod, run
    plan = plan_mod.Plan(spec, "bench", (pp,))
    with tempfile.TemporaryDirectory() as tmp:
        ds, report = run.run_plan(plan, run.RunOptions(results_dir=tmp), workers=workers)
    res = ds.sel(panel=pp.panel.id)
    def finished(s, b):
        st = res["status"].sel(sparsity=s, batch_size=b).values
        steps = res["steps"].sel(sparsity=s, batch_size=b).values
        return sorted([int(steps[t]), t] for t in range(st.size) if st[t] == 1)
    points = {point_key(s, b): {"k": _point_value(res["steps_to_result"], s, b),
                                "best": _point_value(res["best_trial"], s, b),
                                "finished": finished(s, b)}
              for s, b in pp.points}
    read = int(res["steps"].where(res["status"] > 0).sum())
    pathlib.Path(out).write_text(json.dumps({
        "points": points, "steps_in_results": read,
        "steps_by_batch": {int(b): int(n) for b, n in report["steps_by_batch"].items()},
        **{name: report[name] for name in
           ("steps_trained", "examples_evaluated", "trials_trained") if name in report}}))


# ------------------------------------------------------------------------ (iii) floor
def floor_side(spec, pp, steps_by_b, out):
    """Time the bare compiled training loop over `steps_by_b` {B: steps} (no evaluation)."""
    from . import data as data_mod, engine, models
    data = data_mod.load(pp.panel.dataset)
    eng = engine.Engine(data, pp.panel.model, pp.panel.optimizer, pp.panel.schedule)
    order = engine.DataOrder(len(data.y_train), spec.seed)
    hp = {"learning_rate": 1e-3, "momentum": 0.9}
    eng.reset(models.initial_weights(eng.model, spec.seed), None, hp)
    eng._train(order.indices(0, 1, 16))  # trace once, outside the timing
    t0 = time.perf_counter()
    for b, steps in steps_by_b.items():
        done = 0
        while done < steps:  # chunks as long as repro's between evaluations
            n = min(256, steps - done)
            eng._train(order.indices(done, done + n, int(b)))
            done += n
    pathlib.Path(out).write_text(json.dumps({"seconds": time.perf_counter() - t0}))


# ------------------------------------------------------------------------ driver
def _tree_rss(pid):
    """Resident bytes of `pid` and all its descendants (Linux /proc)."""
    children, total = {}, 0
    for p in pathlib.Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                stat = (p / "stat").read_text()
                ppid = int(stat[stat.rindex(")") + 2:].split()[1])
                children.setdefault(ppid, []).append(int(p.name))
            except (OSError, ValueError):
                pass
    stack = [pid]
    while stack:
        q = stack.pop()
        try:
            for line in open(f"/proc/{q}/status"):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
        stack += children.get(q, [])
    return total


def _side(args):
    """Run `python -m repro.bench _side ...` as a process tree; (seconds, peak bytes, output)."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    try:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "repro.bench", "_side", *args, out])
        peak = [0]

        def sample():
            while proc.poll() is None:
                peak[0] = max(peak[0], _tree_rss(proc.pid))
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        rc = proc.wait()
        seconds = time.perf_counter() - t0
        sampler.join()
        if rc != 0:
            raise RuntimeError(f"bench side {args[0]} failed with exit status {rc}")
        return seconds, peak[0], json.loads(pathlib.Path(out).read_text())
    finally:
        os.unlink(out)


# ------------------------------------------------------------------------ sides and targets
SIDES = ("naive1", "naive", "repro", "floor")
GIB = 2 ** 30
# The speed and memory targets: (name, what it measures, comparison, target).
TARGETS = (
    ("speed-up over naive1", "wall time, single-thread naive / repro", ">=", 8.0),
    ("speed-up over naive", "wall time, default-thread naive / repro", ">=", 4.0),
    ("overhead over floor", "wall time, repro / bare-loop floor over the same steps", "<=", 1.2),
    ("repro peak memory", "peak resident memory of repro's process tree, GiB", "<=", 4.0),
)


def parse_sides(text):
    """The sides named in `text` ('naive1,naive,repro,floor'), in the bench's order.

    UsageError for an empty list, an unknown name, or the floor without repro (the floor
    replays the steps repro trained)."""
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    unknown = sorted(set(names) - set(SIDES))
    if not names or unknown:
        raise UsageError("command line", "--sides",
                         f"unknown side(s) {unknown}" if unknown else "names no side",
                         f"a comma-separated subset of {','.join(SIDES)}")
    if "floor" in names and "repro" not in names:
        raise UsageError("command line", "--sides", "the floor times the steps repro trained",
                         "add repro, or drop floor")
    return tuple(n for n in SIDES if n in names)


def compare_points(reference, other):
    """{point: True/False} whether `other` has the same K* and best trial as `reference`."""
    def kb(p):
        return p["k"], p["best"]
    return {key: kb(other["points"][key]) == kb(ref) for key, ref in reference["points"].items()}


def racing_bound(repro, trials, eval_steps, finishers=1, budgets=None):
    """Racing's bound on the trial-steps of a study, summed over the points with a K*: the
    sequential capped search to `finishers` (k) finishers in its best run order. The k first
    finishers run to their own K; every other trial to the k-th's K (a lower index than the
    k-th's) or to the evaluation before it (a higher one); where fewer than k finish, the others
    run to the point's budget (`budgets`: point key -> steps). Diverging trials run less."""
    def before(k):
        return max((s for s in eval_steps if s < k), default=0)
    bound, with_k = 0, 0
    for key, p in repro["points"].items():
        done = sorted(tuple(x) for x in p.get("finished") or ()) or \
            ([(p["k"], p["best"])] if p["k"] is not None else [])
        if not done:
            continue
        with_k += 1
        top = done[:finishers]
        bound += sum(k for k, _ in top)
        if len(done) >= finishers:
            k_k, kth = top[-1]
            bound += sum(k_k if t < kth else before(k_k)
                         for t in range(trials) if t not in {i for _, i in top})
        else:
            bound += (trials - len(top)) * (budgets or {}).get(key, 0)
    return {"trials": trials, "finishers": finishers, "points_with_k": with_k,
            "points": len(repro["points"]), "bound": bound}


def ratios(sides):
    """Wall-time ratios and peak memory that the targets judge; None where a side did not run."""
    def ratio(a, b):
        return sides[a]["seconds"] / sides[b]["seconds"] if a in sides and b in sides else None
    return {"speed-up over naive1": ratio("naive1", "repro"),
            "speed-up over naive": ratio("naive", "repro"),
            "overhead over floor": ratio("repro", "floor"),
            "repro peak memory": sides["repro"]["peak_bytes"] / GIB if "repro" in sides else None}


def judge_targets(measured):
    """Each target of TARGETS with its measured value and whether it is met (None: not measured)."""
    out = []
    for name, what, op, target in TARGETS:
        value = measured[name]
        met = None if value is None else (value >= target if op == ">=" else value <= target)
        out.append({"name": name, "what": what, "target": f"{op} {target:g}", "measured": value,
                    "met": met})
    return out


# ------------------------------------------------------------------------ the report
def _show(point):
    return f"K*={point['k']} best={point['best']}"


def point_lines(sides):
    """One line per study point: repro's K* and best trial against each naive side's."""
    ref = sides.get("repro") or sides.get("naive1") or sides["naive"]
    lines = ["steps-to-result K* and best trial per study point:"]
    for key in ref["points"]:
        s, b = key.split("/")
        row = f"  s={s:>4} B={b:>5}"
        if "repro" in sides:
            row += f"  repro {_show(sides['repro']['points'][key])}"
        for name, differ in (("naive1", "DIFFERENT"), ("naive", "differs")):
            if name in sides:
                p = sides[name]["points"][key]
                same = "repro" in sides and (p["k"], p["best"]) == (sides["repro"]["points"][key]["k"],
                                                              sides["repro"]["points"][key]["best"])
                row += f" | {name} {_show(p)}" + ("" if "repro" not in sides else
                                                    " same" if same else f" {differ}")
        lines.append(row)
    return lines


SIDE_NAMES = {"naive1": "naive1 (one thread)", "naive": "naive (default threads)", "repro": "repro"}


def _seconds(sides, name):
    return f"{SIDE_NAMES[name]} {sides[name]['seconds']:.1f} s"


def _count(sides, name, field):
    return f"{name} {sides[name][field]:,}" if name in sides and field in sides[name] else f"{name} -"


def summary_lines(sides, measured, racing, workers):
    """Wall time, work counts, memory and the floor, one line each (skipped sides say so)."""
    naives = [n for n in ("naive1", "naive") if n in sides]
    shown = [n for n in ("naive1", "naive", "repro") if n in sides]
    wall = ", ".join(_seconds(sides, n) for n in shown)
    speed = [f"{n}/repro {measured['speed-up over ' + n]:.1f}x" for n in naives if "repro" in sides]
    lines = [f"wall time: {wall}" + (f"; ratios {', '.join(speed)}" if speed else ""),
             "trained steps: " + ", ".join(_count(sides, n, "steps_trained") for n in shown),
             "evaluated validation examples: "
             + ", ".join(_count(sides, n, "examples_evaluated") for n in shown),
             "peak resident memory: " + ", ".join(
                 f"{n} {sides[n]['peak_bytes'] / GIB:.2f} GiB" for n in shown)]
    if racing:
        rep = sides["repro"]
        lines.append(
            f"trial-steps: repro trained {rep['steps_trained']:,}; racing's bound (of n = "
            f"{racing['trials']} trials raced to {racing['finishers']} finisher(s): those run to "
            f"their own K, the rest to the last finisher's or the evaluation before it) summed "
            f"over the {racing['points_with_k']} of "
            f"{racing['points']} points with a K*: {racing['bound']:,}"
            f" ({'within' if rep['steps_trained'] <= racing['bound'] else 'over'} it); "
            f"the results read {rep['steps_in_results']:,}")
    if "floor" in sides:
        lines.append(f"bare training loop over repro's steps ({workers} processes): "
                     f"{sides['floor']['seconds']:.1f} s; repro's overhead over that floor: "
                     f"{measured['overhead over floor']:.2f}x")
    return lines


def target_lines(targets):
    """The targets, each with its measured value and met / missed / not measured."""
    lines = ["targets (reported, not asserted):"]
    for t in targets:
        unit = " GiB" if t["name"].endswith("memory") else "x"
        value = "not measured (a side was skipped)" if t["met"] is None else (
            f"measured {t['measured']:.2f}{unit}  {'met' if t['met'] else 'missed'}")
        lines.append(f"  {t['name']:<22} {t['target'] + unit:<9} {value}")
    return lines


def verdict_line(agree):
    """Whether the single-thread naive side and repro agree on K* and best trial everywhere."""
    if agree is None:
        return "identical K* and best trial (naive1 vs repro): not checked (a side was skipped)"
    return f"identical K* and best trial (naive1 vs repro): {'yes' if all(agree.values()) else 'NO'}"


# ------------------------------------------------------------------------ driver
def _floor(sel, steps_by_batch, workers):
    """The floor side: repro's trained steps dealt over `workers` processes, run at once; its
    time is the slowest share's, timed inside each process (start-up excluded)."""
    shares = _split(steps_by_batch, workers)
    seconds = []
    threads = [threading.Thread(target=lambda s=s: seconds.append(
        _side(["floor", sel, json.dumps(s)])[2]["seconds"])) for s in shares]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if len(seconds) != len(threads):
        raise RuntimeError("a floor process failed")
    return {"seconds": max(seconds, default=0.0), "processes": len(shares)}


def run_sides(sel, sides, workers, log):
    """Run each named side in its own process tree; {side: its output with seconds and peak_bytes}."""
    what = {"naive1": "(i) naive keras-tuner + model.fit harness, one trial at a time, one thread, "
                      "deterministic kernels",
            "naive": "(ii) the same naive harness with TensorFlow's default threads and kernels",
            "repro": f"(iii) repro with {workers} workers",
            "floor": "(iv) bare training loop over the steps repro trained"}
    out = {}
    for name in sides:
        log(f"bench: {what[name]} ...")
        if name == "floor":
            out[name] = _floor(sel, out["repro"]["steps_by_batch"], workers)
            continue
        seconds, peak, result = _side([name, sel] + ([str(workers)] if name == "repro" else []))
        out[name] = {**result, "seconds": seconds, "peak_bytes": peak}
    return out


def bench(spec_path, grid="reduced", panel="b", batch_sizes=None, sparsities=None, trials=None,
          workers=None, sides=SIDES, json_path=None, log=print):
    """Run the chosen sides on the same study; print the comparison and the targets,
    write it all to `json_path` (if given) and return it.

    The returned "same" is whether naive1 and repro agree on K* and best trial at every point
    (None when either did not run)."""
    from .atomic import atomic_write
    workers = workers or os.cpu_count() or 1
    sides = parse_sides(",".join(sides))
    spec, pp = study(spec_path, grid, panel, batch_sizes, sparsities, trials)
    selection = {"spec": str(spec_path), "grid": grid, "panel": panel,
                 "batch_sizes": list(pp.grid.batch_sizes),
                 "sparsities": list(pp.grid.sparsities), "trials": pp.grid.trials}
    log(f"bench: {spec.id} ({panel}) {grid} grid, B {list(pp.grid.batch_sizes)} x s "
        f"{list(pp.grid.sparsities)}, {pp.grid.trials} trials per point; sides {','.join(sides)}")
    ran = run_sides(json.dumps(selection), sides, workers, log)
    agree = {name: compare_points(ran["repro"], ran[name])
             for name in ("naive1", "naive") if name in ran and "repro" in ran}
    measured = ratios(ran)
    budgets = {point_key(s, b): pp.grid.max_steps_for(b) for s, b in pp.points}
    racing = racing_bound(ran["repro"], pp.grid.trials, pp.eval_steps, pp.grid.finishers,
                          budgets) if "repro" in ran else None
    targets = judge_targets(measured)
    lines = [*point_lines(ran), *summary_lines(ran, measured, racing, workers)]
    if "naive" in agree:
        lines.append(f"default-thread naive matches repro's K* and best trial at "
                     f"{sum(agree['naive'].values())} of {len(agree['naive'])} points")
    lines += [*target_lines(targets), verdict_line(agree.get("naive1"))]
    for line in lines:
        log(line)
    same = all(agree["naive1"].values()) if "naive1" in agree else None
    result = {"selection": selection, "workers": workers, "sides": ran, "agree": agree,
              "same": same, "measured": measured, "racing": racing, "targets": targets}
    if json_path:
        atomic_write(json_path, json.dumps(result, indent=1).encode())
    return result


def _split(steps_by_b, n):
    """Deal {B: steps} into n shares of about equal examples."""
    shares = [dict() for _ in range(n)]
    for b, steps in sorted(steps_by_b.items(), key=lambda kv: -int(kv[0]) * kv[1]):
        per = -(-steps // n)
        for i in range(n):
            take = min(per, steps - per * i) if steps > per * i else 0
            if take:
                shares[i][b] = take
    return [s for s in shares if s]


def _main(argv):
    side, sel, *rest = argv
    sel = json.loads(sel)
    if side in ("naive1", "floor"):
        # These sides compute as repro's workers do: one thread, deterministic kernels (the
        # Engine turns these on; naive1 never builds one, and either setting changes the bits).
        # The default-thread naive side keeps TensorFlow's defaults, as a user's script would;
        # the repro side is `run_plan` as `repro run` calls it (its workers pin themselves).
        import tensorflow as tf
        from . import engine
        engine.pin_threads()
        tf.config.experimental.enable_op_determinism()
    spec, pp = study(sel["spec"], sel["grid"], sel["panel"], sel["batch_sizes"], sel["sparsities"],
                     sel["trials"])
    if side in ("naive1", "naive"):
        naive_side(spec, pp, rest[0], label=side)
    elif side == "repro":
        repro_side(spec, pp, rest[1], int(rest[0]))
    elif side == "floor":
        floor_side(spec, pp, json.loads(rest[0]), rest[1])


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "_side":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _main(sys.argv[2:])
