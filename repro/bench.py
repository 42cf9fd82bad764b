"""`python -m repro bench`: a naive Keras harness and repro on the same study, side by side.

(i) naive: what a Keras user writes -- keras-tuner (the same Sobol trials) whose trials call
    `model.fit` over the same batches, a callback that classifies the whole validation split
    every evaluation step and stops at the goal, SNIP computed per trial, no capping, no early
    exit, one trial at a time. It keeps the paper's TF1 update rule (a small Keras optimizer)
    and runs on one thread with TensorFlow's deterministic kernels, as each of repro's trials
    does (either setting changes the last bits, see engine.TRIAL_THREADS), so that both sides
    train bit for bit the same network.
(ii) repro: `run_plan` with its defaults (capping, run order, early exit, parallel workers)
    into a fresh results folder.
(iii) floor: the bare compiled training loop over exactly the steps repro trained, split over
    the same number of processes.
Each side runs in its own process tree; peak memory is the largest sum of resident memory over
that tree, sampled every 0.2 s. The bench asserts identical steps-to-result per study point.
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


def naive_side(spec, pp, out):
    """Run the study the naive way; write {point: K*} and counters to `out` (JSON)."""
    import keras
    import keras_tuner
    from . import data as data_mod, engine, models, pruning, search

    panel, g = pp.panel, pp.grid
    if panel.schedule != "constant":
        raise UsageError(spec.path, f"panel[{panel.id}].schedule",
                         "the naive harness covers constant learning rates only", "bench another panel")
    data = data_mod.load(panel.dataset)
    order = engine.DataOrder(len(data.y_train), spec.seed)
    counters = {"steps_trained": 0, "examples_evaluated": 0, "trials": 0}
    results = {}

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

        class Tuner(keras_tuner.Tuner):
            def run_trial(self, trial, *args, **kwargs):
                hp = trial.hyperparameters.values
                lr = hp["learning_rate"]
                m = 1.0 - hp["one_minus_momentum"] if "one_minus_momentum" in hp else 0.0
                i = int(trial.trial_id)
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
                counters["trials"] += 1
                return {search.OBJECTIVE: math.inf if stop.k is None else float(stop.k)}

        oracle = search.SobolOracle(g.search, g.trials, scrambled=spec.sobol == "scrambled",
                                    seed=spec.sobol_seed)
        with tempfile.TemporaryDirectory() as tmp:
            tuner = Tuner(oracle=oracle, hypermodel=lambda hp: None, directory=tmp,
                          project_name="naive", overwrite=True)
            tuner.search(verbose=0)
            ks = [t.score for t in tuner.oracle.trials.values()]
        finite = [k for k in ks if k is not None and math.isfinite(k)]
        results[f"{s:g}/{b}"] = min(finite) if finite else None
        print(f"naive: s={s:g} B={b} K*={results[f'{s:g}/{b}']}", flush=True)
    pathlib.Path(out).write_text(json.dumps({"k": results, **counters}))


# ------------------------------------------------------------------------ (ii) repro side
def repro_side(spec, pp, out, workers):
    """Run the study with repro's defaults in a fresh folder; write K* and counters."""
    from . import plan as plan_mod, run
    plan = plan_mod.Plan(spec, "bench", (pp,))
    with tempfile.TemporaryDirectory() as tmp:
        ds, report = run.run_plan(plan, tmp, workers=workers)
    k = ds["steps_to_result"].sel(panel=pp.panel.id)
    steps = ds["steps"].sel(panel=pp.panel.id).where(ds["status"].sel(panel=pp.panel.id) > 0)
    results = {f"{s:g}/{b}": (None if np.isnan(float(k.sel(sparsity=s, batch_size=b)))
                              else float(k.sel(sparsity=s, batch_size=b))) for s, b in pp.points}
    # The floor trains what repro trained, including the steps of trials run ahead of their
    # search past the cap the search then cut them to (repro.ahead); the results need fewer.
    needed = {int(b): int(steps.sel(batch_size=b).sum()) for b in pp.grid.batch_sizes}
    trained = {int(b): int(n) for b, n in report["steps_by_batch"].items()}
    pathlib.Path(out).write_text(json.dumps({
        "k": results, **{k: v for k, v in report.items() if k not in ("missing", "steps_by_batch")},
        "steps_by_batch": trained, "steps_in_results": sum(needed.values())}))


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
    result = json.loads(pathlib.Path(out).read_text())
    os.unlink(out)
    return seconds, peak[0], result


def bench(spec_path, grid="reduced", panel="b", batch_sizes=None, sparsities=None, trials=None,
          workers=None, log=print):
    """Run naive, repro and the floor on the same study; print and return the comparison."""
    workers = workers or os.cpu_count() or 1
    spec, pp = study(spec_path, grid, panel, batch_sizes, sparsities, trials)
    sel = json.dumps({"spec": str(spec_path), "grid": grid, "panel": panel,
                      "batch_sizes": list(pp.grid.batch_sizes),
                      "sparsities": list(pp.grid.sparsities), "trials": pp.grid.trials})
    log(f"bench: {spec.id} ({panel}) {grid} grid, B {list(pp.grid.batch_sizes)} x s "
        f"{list(pp.grid.sparsities)}, {pp.grid.trials} trials per point")
    log("bench: (i) naive keras-tuner + model.fit harness, one trial at a time on one thread ...")
    t_naive, m_naive, naive = _side(["naive", sel])
    log(f"bench: (ii) repro with {workers} workers ...")
    t_repro, m_repro, rep = _side(["repro", sel, str(workers)])
    log("bench: (iii) bare training loop over the steps repro trained ...")
    share = _split(rep["steps_by_batch"], workers)
    floor_seconds = []
    floors = [threading.Thread(target=lambda s=s: floor_seconds.append(_side(
        ["floor", sel, json.dumps(s)])[2]["seconds"]))
        for s in share]
    for t in floors:
        t.start()
    for t in floors:
        t.join()
    if len(floor_seconds) != len(floors):
        raise RuntimeError("a floor process failed")
    t_floor = max(floor_seconds)  # timed inside each process: start-up excluded

    rows, same = [], True
    for key in naive["k"]:
        a, b = naive["k"][key], rep["k"][key]
        same &= a == b
        rows.append(f"  s={key.split('/')[0]:>4} B={key.split('/')[1]:>5}  naive K*={a}  repro K*={b}  "
                    f"{'same' if a == b else 'DIFFERENT'}")
    gib = 2 ** 30
    lines = ["steps-to-result per study point:", *rows,
             f"wall time: naive {t_naive:.1f} s, repro {t_repro:.1f} s, ratio {t_naive / t_repro:.1f}x",
             f"trained steps: naive {naive['steps_trained']:,}, repro {rep['steps_trained']:,} "
             f"(its results read {rep['steps_in_results']:,}"
             + ("" if rep["steps_in_results"] == rep["steps_trained"] else
                ": the rest ran ahead of a search, past the cap it then cut them to") + ")",
             f"evaluated validation examples: naive {naive['examples_evaluated']:,}, "
             f"repro {rep['examples_evaluated']:,}",
             f"peak resident memory: naive {m_naive / gib:.2f} GiB, repro {m_repro / gib:.2f} GiB",
             f"bare training loop over repro's steps ({workers} processes): {t_floor:.1f} s; "
             f"repro's overhead over that floor: {t_repro / t_floor:.2f}x",
             f"identical steps-to-result: {'yes' if same else 'NO'}"]
    for line in lines:
        log(line)
    return {"same": same, "naive_seconds": t_naive, "repro_seconds": t_repro,
            "floor_seconds": t_floor, "naive": naive, "repro": rep,
            "peak_bytes": {"naive": m_naive, "repro": m_repro}}


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
    import tensorflow as tf
    from . import engine
    # Every side computes as repro's workers do: one thread, deterministic kernels (the Engine
    # turns these on; the naive side never builds one, and either setting changes the bits).
    engine.pin_threads()
    tf.config.experimental.enable_op_determinism()
    spec, pp = study(sel["spec"], sel["grid"], sel["panel"], sel["batch_sizes"], sel["sparsities"],
                     sel["trials"])
    if side == "naive":
        naive_side(spec, pp, rest[0])
    elif side == "repro":
        repro_side(spec, pp, rest[1], int(rest[0]))
    elif side == "floor":
        floor_side(spec, pp, json.loads(rest[0]), rest[1])


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "_side":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _main(sys.argv[2:])
