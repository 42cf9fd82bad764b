"""Wall time of a plan: a throughput probe of this machine's device, cached, and the arithmetic
that turns `repro.cost`'s steps and evaluations into hours.

The probe (`probe`) times repro's own training loop (`repro.engine.Engine.train_steps`) and a
whole validation pass (`Engine.validation_error`) of a panel's model, on synthetic data of the
panel's input shape (a step costs the same whatever the pixels are), in a fresh process with
one TensorFlow thread, as `repro run`'s workers train. It measures a subset of the batch sizes
(`probe_batches`: about every 4x) and `step_seconds` interpolates between them. Results are
cached per host and device kind in `results/cache/throughput-<host>-<device>.json`, keyed by
model, input shape (MNIST and Fashion-MNIST share one), batch size and trials per race, and
re-used until the TensorFlow version changes.

`wall_hours` is a pure function: seconds = sum over batch sizes of steps x step time(B) plus
validation examples read x time per example, spread over the parallel workers (see ASSUMPTIONS).
"""
import json
import os
import pathlib
import re
import socket
import time

from . import plan as plan_mod
from .datasets import INPUT_SHAPES
from .atomic import atomic_write

PROBE_VERSION = 2
TRIALS_PER_RACE = 2      # the probe times a race: this many trials taking turns on one engine
TARGET_S = 1.0           # seconds of timed training per probed batch size
MAX_PROBE_STEPS = 300    # ... or this many steps, whichever comes first
MAX_STEP_S = 1.0         # larger batch sizes whose step would take longer are extrapolated
PROBE_TRAIN_EXAMPLES = 8192

ASSUMPTIONS = (
    "step time measured by a probe of repro's training loop (one thread per worker, as `repro run`) "
    "at the batch sizes marked *, linear in B between them, constant below the smallest and "
    "proportional to B above the largest; a validation pass costs the same per example at every "
    "step (early exit reads fewer examples: counted by the estimate); sparse networks are dense "
    "tensors with masks, so a step costs the same at every sparsity; workers scale perfectly "
    "(no start-up or data loading); a batch above --max-device-batch "
    "runs on the fewest replicas that hold it, each replica at the step time of its share; "
    "a point's trials race on one worker, taking turns (each trial's state saved and loaded "
    f"between chunks), timed as a race of {TRIALS_PER_RACE} trials; 'repro' includes the capping and early-exit "
    "savings the step/evaluation estimate predicts, 'at most' is every trial's whole budget")


# ------------------------------------------------------------------------ arithmetic (pure)
def step_seconds(steps_s, batch_size):
    """Seconds per training step at `batch_size` from {probed B: seconds per step}."""
    probed = sorted((int(b), float(s)) for b, s in steps_s.items())
    if not probed:
        raise ValueError("no probed batch sizes")
    b = batch_size
    if b <= probed[0][0]:
        return probed[0][1]  # below the smallest: a step's fixed cost dominates (an overestimate)
    if b >= probed[-1][0]:
        return probed[-1][1] * b / probed[-1][0]  # above the largest: per-example cost constant
    for (b0, s0), (b1, s1) in zip(probed, probed[1:]):
        if b0 <= b <= b1:
            return s0 + (s1 - s0) * (b - b0) / (b1 - b0)


def wall_hours(by_batch, table, workers, devices=1, max_device_batch=plan_mod.MAX_DEVICE_BATCH):
    """{kind: hours} of one panel on `workers` parallel workers.

    by_batch: {B: {kind: {"steps": n, "examples_evaluated": n, ...}}} (repro.cost.estimate_by_batch);
    table: {"step_s": {B: seconds per step}, "val_example_s": seconds per validation example};
    devices: accelerators trials can be placed on (repro.plan.placement): a batch above
    `max_device_batch` runs each trial on r of them at the step time of B / r, holding r workers.
    Seconds = sum over B of (steps x step time + examples x time per example) x workers held,
    divided by `workers` (perfect scaling)."""
    out = {}
    for b, kinds in by_batch.items():
        kind, n = plan_mod.placement(int(b), devices, max_device_batch)
        held = n if kind == "mirrored" else 1
        per_step = step_seconds(table["step_s"], int(b) // held)
        for kind_name, work in kinds.items():
            seconds = (work["steps"] * per_step + work["examples_evaluated"] * table["val_example_s"]) * held
            out[kind_name] = out.get(kind_name, 0.0) + seconds / workers / 3600
    return out


# ------------------------------------------------------------------------ the probe and its cache
def probe_batches(batch_sizes):
    """The batch sizes the probe times: the smallest, then each at least 4x the last, and the
    largest (others are interpolated)."""
    sizes = sorted({int(b) for b in batch_sizes})
    chosen = sizes[:1]
    for b in sizes[1:]:
        if b >= 4 * chosen[-1]:
            chosen.append(b)
    if sizes and chosen[-1] != sizes[-1]:
        chosen.append(sizes[-1])
    return chosen


def cache_path(results_dir, kind, host=None):
    host = re.sub(r"[^A-Za-z0-9.-]+", "-", host or socket.gethostname()) or "host"
    return pathlib.Path(results_dir) / "cache" / f"throughput-{host}-{kind}.json"


def shape_key(dataset):
    """The input shape a step's cost depends on, as text: '28x28x1' for MNIST and Fashion-MNIST."""
    return "x".join(map(str, INPUT_SHAPES[dataset]))


def entry_key(model, dataset, batch_size=None, race=TRIALS_PER_RACE):
    return f"{model}/{shape_key(dataset)}/" + ("eval" if batch_size is None else f"B={int(batch_size)}/race={race}")


def read_cache(path, tf_version):
    """The cached entries, or {} when there is none, it is unreadable, or another TensorFlow made it."""
    try:
        doc = json.loads(pathlib.Path(path).read_text())
    except (OSError, ValueError):
        return {}
    if doc.get("version") != PROBE_VERSION or doc.get("tensorflow") != tf_version:
        return {}
    return dict(doc.get("entries", {}))


def write_cache(path, tf_version, kind, entries):
    """Write the cache atomically (a reader sees the old file or the new one, never half)."""
    doc = {"version": PROBE_VERSION, "tensorflow": tf_version, "device": kind,
           "host": socket.gethostname(), "entries": dict(sorted(entries.items()))}
    atomic_write(path, (json.dumps(doc, indent=1) + "\n").encode())


def _synthetic(dataset, n_train=PROBE_TRAIN_EXAMPLES):
    """Random images of the dataset's shape, 10 classes, a validation split of its real size."""
    import types
    import numpy as np
    from .data import validation_size
    shape = INPUT_SHAPES[dataset]
    n_val = validation_size(dataset)
    rng = np.random.default_rng(0)
    return types.SimpleNamespace(
        x_train=rng.normal(size=(n_train, *shape)).astype(np.float32),
        y_train=rng.integers(0, 10, n_train).astype(np.int32),
        x_val=rng.normal(size=(n_val, *shape)).astype(np.float32),
        y_val=rng.integers(0, 10, n_val).astype(np.int32))


def _time_steps(eng, order, batch_size, clock=time.perf_counter, race=TRIALS_PER_RACE):
    """(seconds per trial-step, trial-steps timed) at `batch_size` of a race of `race` trials
    taking turns on `eng` as repro.race runs them: each chunk, every trial loads its state,
    trains the chunk and saves its state. One warm-up step, then doubling chunks until TARGET_S
    seconds or MAX_PROBE_STEPS trial-steps, or a single trial-step over MAX_STEP_S."""
    pos = eng.train_steps(order, 0, 1, batch_size)[0]  # warm-up (first call traces the loop)
    states = [eng.save_state() for _ in range(race)]
    total_s, total_steps, chunk = 0.0, 0, 1
    while total_s < TARGET_S and total_steps < MAX_PROBE_STEPS:
        t0 = clock()
        ran = 0
        for i in range(race):
            eng.load_state(states[i])
            ran = eng.train_steps(order, pos, pos + chunk, batch_size)[0]
            states[i] = eng.save_state()
            total_steps += ran
        total_s += clock() - t0
        pos += ran
        if ran < chunk or total_s / max(total_steps, 1) > MAX_STEP_S:
            break  # a non-finite loss ended the chunk, or one step already takes long enough
        chunk = max(1, min(2 * chunk, (MAX_PROBE_STEPS - total_steps) // race))
    return total_s / max(total_steps, 1), total_steps


def probe(jobs, threads=1):
    """Measure {entry_key: entry} for `jobs` = [(model, dataset, [batch sizes])] on this device.

    Batch sizes are timed smallest first; one whose step would take over MAX_STEP_S (at the
    last one's time per example) is left to extrapolation (`step_seconds`), as are all above it.
    Runs in the calling process: see `probe_in_subprocess`. On the JAX engine: `probe_jax`."""
    from . import backend
    if backend.is_jax():
        return probe_jax(jobs, threads)
    from . import engine, models
    engine.pin_threads(threads)
    out = {}
    for model, dataset, batches in jobs:
        data = _synthetic(dataset)
        eng = engine.Engine(data, model, "momentum", "constant")
        eng.reset(models.initial_weights(eng.model, 0), None, {"learning_rate": 1e-3, "momentum": 0.9})
        order = engine.DataOrder(len(data.y_train), 0)
        last = None
        for b in sorted(batches):
            if last is not None and last[1] * b / last[0] > MAX_STEP_S:
                break
            s, n = _time_steps(eng, order, b)
            out[entry_key(model, dataset, b)] = {"step_s": s, "steps_timed": n}
            last = (b, s)
        eng.validation_error()  # warm-up: traces the evaluation
        t0 = time.perf_counter()
        passes = 2
        for _ in range(passes):
            eng.validation_error()
        per_pass = (time.perf_counter() - t0) / passes
        out[entry_key(model, dataset)] = {"val_example_s": per_pass / eng.n_val, "n_val": eng.n_val,
                                          "pass_s": per_pass}
    return out


def probe_jax(jobs, threads=1):
    """`probe` on the JAX engine (repro.engine_jax): a race's trials advance `slots` at a time
    in one vmapped call, so a trial-step costs a call's time over the trials in it; likewise a
    validation pass. Times a chunk of steps as a race runs them (after a call that compiles)."""
    from . import devices, engine_jax
    from .trial import DataOrder
    devices.pin_threads(threads)
    out = {}
    for model, dataset, batches in jobs:
        data = _synthetic(dataset)
        eng = engine_jax.Engine(data, model, "momentum", "constant")
        order = DataOrder(len(data.y_train), 0)
        last = None
        for b in sorted(batches):
            if last is not None and last[1] * b / last[0] > MAX_STEP_S:
                break
            steps = engine_jax.CHUNK_STEPS
            s = eng.time_steps(order, b, steps) / (steps * eng.slots)
            out[entry_key(model, dataset, b)] = {"step_s": s, "steps_timed": steps * eng.slots}
            last = (b, s)
        per_pass = eng.time_evaluation() / eng.slots
        out[entry_key(model, dataset)] = {"val_example_s": per_pass / eng.n_val, "n_val": eng.n_val,
                                          "pass_s": per_pass}
    return out


def engine_version():
    """The engine the probe times, as its cache records it: TensorFlow's version, or 'jax X'."""
    from . import backend
    if backend.is_jax():
        import jax
        return f"jax {jax.__version__}"
    import tensorflow as tf
    return tf.__version__


def _probe_child(args):
    jobs, threads = args
    return probe(jobs, threads)


def probe_in_subprocess(jobs, threads=1):
    """`probe` in a fresh process: its own TensorFlow, pinned to `threads` threads as the workers
    are, and its memory (a large batch on the CPU takes GiBs) freed when it ends."""
    import multiprocessing as mp
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(_probe_child, ((jobs, threads),))


def tables(plan, results_dir, run_probe=True, prober=probe_in_subprocess):
    """{(model, dataset): {"step_s": {B: s}, "val_example_s": s}} for the plan's panels, from the
    cache, probing (and caching) what is missing when `run_probe`; plus where it came from."""
    from . import backend, devices
    kind = devices.device_kind() + ("-jax" if backend.is_jax() else "")  # each engine its cache
    version = engine_version()
    path = cache_path(results_dir, kind)
    entries = read_cache(path, version)
    wanted, dataset_of = {}, {}  # (model, input shape) -> batch sizes; -> a dataset of that shape
    for pp in plan.panels:
        key = (pp.panel.model, shape_key(pp.panel.dataset))
        wanted.setdefault(key, set()).update(pp.grid.batch_sizes)
        dataset_of.setdefault(key, pp.panel.dataset)
    jobs = []
    for key, batch_sizes in wanted.items():
        model, dataset = key[0], dataset_of[key]
        cached = {b: entries[entry_key(model, dataset, b)]["step_s"] for b in probe_batches(batch_sizes)
                  if entry_key(model, dataset, b) in entries}
        # a B whose step the largest cached one below it says takes over MAX_STEP_S is extrapolated
        missing = []
        for b in probe_batches(batch_sizes):
            below = [c for c in cached if c < b]
            if b not in cached and not (below and cached[max(below)] * b / max(below) > MAX_STEP_S):
                missing.append(b)
        if missing or entry_key(model, dataset) not in entries:
            jobs.append((model, dataset, missing))
    probed_now = bool(jobs) and run_probe
    if probed_now:
        t0 = time.perf_counter()
        entries.update(prober(jobs))
        write_cache(path, version, kind, entries)
        probe_s = time.perf_counter() - t0
    out = {}
    for model, shape in wanted:
        steps = {int(k.split("B=")[1].split("/")[0]): v["step_s"] for k, v in entries.items()
                 if k.startswith(f"{model}/{shape}/B=") and k.endswith(f"/race={TRIALS_PER_RACE}")}
        evaluation = entries.get(f"{model}/{shape}/eval")
        if steps and evaluation:
            out[(model, shape)] = {"step_s": steps, "val_example_s": evaluation["val_example_s"],
                                   "pass_s": evaluation.get("pass_s"), "n_val": evaluation.get("n_val")}
    return out, {"cache": str(path), "device": kind, "tensorflow": version,
                 "probed_now": probed_now, "probe_seconds": round(probe_s, 1) if probed_now else None,
                 "missing": [f"{m}/{d}" for m, d, _ in jobs] if not run_probe else []}


def estimate_wall_time(plan, rows, results_dir, n_devices=8, max_device_batch=plan_mod.MAX_DEVICE_BATCH,
                       run_probe=True, prober=probe_in_subprocess):
    """Hours per panel and in total, on one worker, on this machine and on `n_devices` devices
    like this one. `rows`: repro.cost.estimate(plan, ...) (with `by_batch`)."""
    from . import devices
    found, source = tables(plan, results_dir, run_probe, prober)
    gpus = devices.gpu_count()
    here = gpus or os.cpu_count() or 1
    # (name, parallel workers, devices trials can be placed on)
    setups = [("1 worker", 1, 1), (f"this machine ({here} {'GPU' if gpus else 'worker'}s)", here, gpus or 1),
              (f"{n_devices} {'GPU' if gpus else 'worker'}s like this one", n_devices,
               n_devices if gpus else 1)]
    panels, totals = [], {}
    for pp, row in zip(plan.panels, rows):
        table = found.get((pp.panel.model, shape_key(pp.panel.dataset)))
        if table is None:
            panels.append({"panel": pp.panel.id, "hours": None})
            continue
        hours = {}
        for name, workers, devs in setups:
            try:
                hours[name] = wall_hours(row["by_batch"], table, workers, devs, max_device_batch)
            except ValueError as e:  # a batch that fits on none of the devices
                hours[name] = {"error": str(e)}
            for k, v in hours[name].items():
                if k != "error":
                    totals.setdefault(name, {}).setdefault(k, 0.0)
                    totals[name][k] += v
        panels.append({"panel": pp.panel.id, "model": pp.panel.model, "dataset": pp.panel.dataset,
                       "hours": hours})
    complete = all(p["hours"] is not None for p in panels)
    return {"source": source, "setups": [s[0] for s in setups], "panels": panels,
            "totals": totals if complete else None, "assumptions": ASSUMPTIONS,
            "probe": {f"{m}/{d}": {"step_ms": {b: round(1000 * s, 3) for b, s in sorted(t["step_s"].items())},
                                   "val_pass_s": t["pass_s"], "n_val": t["n_val"]}
                      for (m, d), t in found.items()}}


def _hours_text(hours):
    """{kind: hours} as 'kind 1.5 h  kind 3.0 d', or the error that left them unknown."""
    if "error" in hours:
        return hours["error"]
    return "  ".join(f"{k} {_format_hours(v)}" for k, v in hours.items())


def _format_hours(hours):
    if hours >= 48:
        return f"{hours / 24:,.1f} d"
    return f"{hours:,.1f} h" if hours >= 1 else f"{hours * 60:.1f} min"


def format_wall_time(wall):
    """Lines for `repro plan --estimate` (`wall`: estimate_wall_time's)."""
    src = wall["source"]
    engine = src["tensorflow"] if src["tensorflow"].startswith("jax") else f"TensorFlow {src['tensorflow']}"
    lines = [f"wall time on {src['device']} ({engine}; probe "
             + (f"run now, {src['probe_seconds']} s" if src["probed_now"] else "read from the cache")
             + f": {src['cache']}):"]
    for key, p in wall["probe"].items():
        lines.append(f"  probe {key}: ms per step " + ", ".join(f"B={b}* {ms:g}" for b, ms in p["step_ms"].items())
                     + f"; validation pass ({p['n_val']} examples) {p['val_pass_s']:.3f} s")
    for p in wall["panels"]:
        if p["hours"] is None:
            lines.append(f"  ({p['panel']}) no throughput measured (run without --no-probe)")
            continue
        for name, hours in p["hours"].items():
            lines.append(f"  ({p['panel']}) {name:34s} {_hours_text(hours)}")
    if wall["totals"]:
        for name, hours in wall["totals"].items():
            lines.append(f"  all panels {name:28s} {_hours_text(hours)}")
    lines.append(f"  assumptions: {wall['assumptions']}")
    return lines


# ------------------------------------------------------------------------ `repro run`'s ETA
PROBE_MIN_TRIALS = 16  # `repro run` probes (about 20 s) for its ETA when it trains this many trials
SNIP_PASS_FACTOR = 3.0  # a SNIP pass reads each training image forward and backward: ~3 forwards


def run_prior(plan, rows, results_dir, points, stored, workers, run_probe=True,
              prober=probe_in_subprocess):
    """What `repro run` expects before any trial ends (progress.Progress's `prior`), or None when no
    throughput is known for any panel: {"trial_s": {point key: seconds of one trial}, "bound":
    True when it is the at-most budget (no stored results to predict K* from), "snip_s":
    {(dataset, model): seconds of one SNIP pass}, "snip_passes": passes to come over the run,
    "text": where it came from}.

    A trial's seconds are repro.cost's steps and validation examples at its batch size (`rows`:
    repro.cost.estimate(plan, ...), its `repro` prediction, else `at_most`) over that batch
    size's trials, at the probe's times. A SNIP pass reads the training split forward and
    backward (SNIP_PASS_FACTOR validation passes per validation-split's worth of images); each
    worker that races sparse points of a workload computes each trial seed's scores once
    unless results/cache/snip holds them. `points` and `stored` ({(*point key, trial)}): what
    the run trains."""
    from . import data as data_mod
    from .plan import SNIP_VERSION
    found, source = tables(plan, results_dir, run_probe=run_probe, prober=prober)
    trial_s, snip_s, bound, passes = {}, {}, False, 0
    for pp, row in zip(plan.panels, rows):
        table = found.get((pp.panel.model, shape_key(pp.panel.dataset)))
        if table is None:
            continue
        kind = "repro" if all("repro" in k for k in row["by_batch"].values()) else "at_most"
        bound = bound or kind == "at_most"
        n_at_b = len(pp.grid.sparsities) * pp.grid.trials * pp.seeds  # by_batch sums these
        per_b = {int(b): (k[kind]["steps"] * step_seconds(table["step_s"], int(b))
                          + k[kind]["examples_evaluated"] * table["val_example_s"]) / n_at_b
                 for b, k in row["by_batch"].items()}
        mine = [p for p in points if p.panel_plan is pp]
        trial_s.update({p.key: per_b[p.batch_size] for p in mine})
        if table.get("pass_s") and table.get("n_val"):
            n_val = table["n_val"]
            n_train = n_val * (1 - data_mod.VAL_FRACTION) / data_mod.VAL_FRACTION
            snip_s[(pp.panel.dataset, pp.panel.model)] = SNIP_PASS_FACTOR * table["pass_s"] * n_train / n_val
    by_workload = {}
    for p in points:
        todo = [i for i in range(p.trials) if (*p.key, i) not in stored]
        if p.sparsity and todo:
            workload = by_workload.setdefault((p.panel.dataset, p.panel.model), [set(), 0])
            workload[0].update(p.spec.seed + i for i in todo)
            workload[1] += 1
    for (dataset, model), (seeds, n_points) in by_workload.items():
        snip = pathlib.Path(results_dir) / "cache" / "snip"
        seeds = {s for s in seeds if not (snip / f"{dataset}-{model}-v{SNIP_VERSION}-seed{s}.npz").exists()}
        passes += len(seeds) * min(workers, n_points)
    if not trial_s:
        return None
    how = ("probe run now" if source["probed_now"] else "probe read from " + source["cache"])
    text = (f"{how}; steps per trial from " + ("the cost model's at-most budget (no stored "
            "results of this figure to predict K* from yet): an upper bound" if bound else
            "the cost model and this figure's stored results") + ", refined as trials finish")
    return {"trial_s": trial_s, "bound": bound, "snip_s": snip_s, "snip_passes": passes, "text": text}
