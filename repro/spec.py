"""Figure specs: parse and validate a TOML file into frozen dataclasses.

Every problem a user can fix raises one :class:`repro.errors.UsageError` naming the file, the
dotted key (``panel[a].grid.reduced.sparsities[2]``; a panel without a usable id is named by its
1-based position, ``panel[#2]``) and the fix. This module never writes anything.
The format is documented in ``specs/README.md``.
"""

from __future__ import annotations

import hashlib
import math
import pathlib
import re
import tomllib
from dataclasses import dataclass

from repro.datasets import DATASETS  # the datasets repro.data can load
from repro import toml_values as tv
from repro.errors import UsageError

MODELS = ("simple_cnn", "resnet8")  # repro.models builds these
OPTIMIZERS = ("sgd", "momentum", "nesterov")  # repro.optim applies these (TF1 semantics)
SCHEDULES = ("constant", "linear_decay")
SCALES = ("linear", "log", "reverse_log")
CLAIMS = ("linear_scaling", "plateau", "sparse_slower", "sparse_c1_larger", "diminishing_returns",
          "sparse_ratio_band", "sparse_critical_batch_no_smaller", "c1_increasing_with_sparsity",
          "best_lr_nondecreasing", "momentum_beats_sgd",
          "feasible_lr_range_shrinks", "lipschitz_increasing", "c1_decomposition",
          "noise_scale_vs_critical_batch", "sparse_loss_higher")
# How a figure is drawn (repro.figures): K*(B) grids, optimisers on shared axes, every trial
# of a search at its metaparameters, or the sparse/dense K* ratio against B.
# Smoothness figures (4, 6) are not searches: one training run per (panel, sparsity) at fixed
# metaparameters, measured along the way (repro.smoothness_run); they plot L or the loss.
SMOOTHNESS_KINDS = ("lipschitz", "training_loss")
FIGURE_KINDS = ("data_parallelism", "optimizer_comparison", "landscape", "sparse_ratio") + SMOOTHNESS_KINDS
SOBOL_MODES = ("unscrambled", "scrambled")

DIMS = ("learning_rate", "momentum", "decay_steps", "end_factor")
DEFAULT_SCALES = {"learning_rate": "log", "momentum": "reverse_log",
                  "decay_steps": "linear", "end_factor": "log"}
INTEGER_DIMS = ("decay_steps",)

FIGURE_KEYS = ("id", "title", "kind", "seed", "sobol", "sobol_seed", "capping")
PANEL_KEYS = ("id", "title", "dataset", "model", "optimizer", "schedule", "goal_error",
              "read_goals", "claims", "search", "grid")
GRID_KEYS = ("batch_sizes", "sparsities", "trials", "max_steps", "max_examples", "eval_every",
             "eval_per_octave", "why", "search", "seeds", "finishers")
DEFAULT_FINISHERS = 2  # trials a race brings to the goal: K* and the search's resolution (repro.race)
MAX_SEEDS = 16  # replicate searches per grid (`seeds`): each is a whole search again
DIM_KEYS = ("min", "max", "scale")
SMOOTH_PANEL_KEYS = ("id", "title", "dataset", "model", "optimizer", "schedule", "claims", "grid")
SMOOTH_GRID_KEYS = ("sparsities", "batch_size", "learning_rate", "momentum", "steps",
                    "lipschitz_every", "gradient_examples", "noise_batch_sizes", "noise_draws",
                    "variance_examples", "why", "seeds")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

# ---------------------------------------------------------------- size limits
# What a spec may ask for, from what the code and a machine can do (specs/README.md, "Limits").
# Each is checked before anything proportional to it is computed, so a spec asking for more is
# one UsageError, at once, and never a long loop or a huge allocation.
MAX_SPEC_BYTES = 1 << 20        # a spec file is read whole; the real ones are under 20 KiB
MAX_NAME = 64                   # ids and grid names become file names: results/<id>.<grid>.nc
# Training examples per dataset after the 10 % validation split (repro.data): a batch can hold
# at most the whole training split (a larger one would repeat examples within a step).
TRAIN_EXAMPLES = {"mnist": 54_000, "fashion_mnist": 54_000, "cifar10": 45_000}
MAX_TRIALS = 1 << 16            # Sobol points per study point (scipy's generator, keras-tuner's
                                # per-trial folders and the results' trial axis; the paper: 100)
MAX_STEPS = 10 ** 8             # step budget: 1,000 x the paper's largest (100,000); step
                                # counts stay exact in float64 K* and below 2**31
MAX_EVALUATIONS = 100_000       # evaluations per trial (the schedule is a list; paper: <= 6,250)
MAX_SPEC_EVALUATIONS = 500_000  # all the grids' schedules together (validation and plan build
                                # them; figure-12, the largest spec, has 22 grids and 137,500)
MAX_GRID_TRIALS = 1 << 20       # study points x trials in one grid: one record file per trial
MAX_STORED_ERRORS = 1 << 30     # study points x trials x evaluations: the results arrays
                                # (5 bytes per validation error, about 5 GiB at the limit)
MAX_EXAMPLES = MAX_STEPS * max(TRAIN_EXAMPLES.values())  # max_examples: no trial can use more
MAX_SEED = 1 << 30              # trial i seeds TensorFlow's stateless draws with seed + i (int32)
MAX_SOBOL_SEED = (1 << 32) - 1  # a 32-bit seed for scipy's scrambled Sobol generator
MAX_NOISE_EXAMPLES = 1 << 18    # noise_draws x (both noise batches) held in memory at once


@dataclass(frozen=True)
class Dim:
    """One metaparameter search dimension."""

    name: str
    min: float
    max: float
    scale: str
    integer: bool

    def value(self, p: float) -> float | int:
        """Map a unit-interval coordinate p to a value (p=0 gives min, except reverse_log: max).

        log: min*(max/min)**p; linear: min+(max-min)*p; reverse_log: 1-(1-max)*((1-min)/(1-max))**p.
        Integer dimensions use keras-tuner's buckets (the search maps through its hp.Int):
        floor of the same formula with max + 1 as the upper end, clipped to max.
        """
        lo, hi = self.min, self.max + (1 if self.integer else 0)
        if self.scale == "log":
            v = lo * (hi / lo) ** p
        elif self.scale == "reverse_log":
            v = 1.0 - (1.0 - hi) * ((1.0 - lo) / (1.0 - hi)) ** p
        else:
            v = lo + (hi - lo) * p
        return min(int(math.floor(v)), int(self.max)) if self.integer else v


@dataclass(frozen=True)
class Grid:
    """A study grid: batch sizes x sparsities x trials, with its budget and search space."""

    name: str
    batch_sizes: tuple[int, ...]
    sparsities: tuple[float, ...]
    trials: int
    max_steps: int
    eval_every: int
    eval_per_octave: int
    search: tuple[Dim, ...]
    why: str = ""
    max_examples: int = 0           # 0: no limit; else a point's budget is min(max_steps, max_examples // B)
    seeds: int = 1                  # replicate searches (repro.plan.replicate_spec: other seeds)
    finishers: int = DEFAULT_FINISHERS  # a point races until this many trials reach the goal

    def max_steps_for(self, batch_size: int) -> int:
        """Step budget of a trial at `batch_size` (at least eval_every)."""
        if not self.max_examples:
            return self.max_steps
        return max(self.eval_every, min(self.max_steps, self.max_examples // batch_size))


@dataclass(frozen=True)
class SmoothGrid:
    """A smoothness grid: one run per sparsity at fixed metaparameters, measured every
    `lipschitz_every` steps (Appendix C). gradient_examples = 0: the whole training split."""

    name: str
    sparsities: tuple[float, ...]
    batch_size: int
    learning_rate: float
    momentum: float
    steps: int
    lipschitz_every: int
    gradient_examples: int
    noise_batch_sizes: tuple[int, int]
    noise_draws: int
    variance_examples: int
    why: str = ""

    def measure_steps(self) -> list[int]:
        """Steps at which the run is measured: 0 (initialisation: loss, beta, B_simple; no L)
        and every `lipschitz_every` steps after it, below `steps` (L(w_k) needs the step
        k -> k+1). As the authors' code, which first measures L after `interval` iterations."""
        return list(range(0, self.steps, self.lipschitz_every))


@dataclass(frozen=True)
class Panel:
    """One panel of a figure: a workload, its goal error, claims and grids."""

    id: str
    title: str
    dataset: str
    model: str
    optimizer: str
    schedule: str
    goal_error: float
    claims: tuple[str, ...]
    grids: dict[str, Grid]
    read_goals: tuple[float, ...] = ()  # looser goals the stored curves must also answer


@dataclass(frozen=True)
class Spec:
    """A validated figure spec."""

    path: pathlib.Path
    sha256: str
    id: str
    title: str
    kind: str
    seed: int
    sobol: str
    sobol_seed: int
    panels: tuple[Panel, ...]
    capping: bool = True  # best-so-far capping of trials (off: every trial runs to its own outcome)

    def panel(self, id: str) -> Panel:
        """The panel with this id; UsageError (not KeyError) if there is none."""
        for p in self.panels:
            if p.id == id:
                return p
        known = [p.id for p in self.panels]
        raise UsageError(self.path, f"panel[{id}]", "no such panel in this spec",
                         tv.choose(id, known))


# ---------------------------------------------------------------- helpers


def _name(ctx, v, key):
    tv.str_value(ctx, v, key)
    if len(v) > MAX_NAME:
        ctx.fail(key, f"is {len(v):,} characters long, more than {MAX_NAME} (names become file "
                 f"names)", f"use a name of at most {MAX_NAME} characters")
    if not _NAME.match(v):
        ctx.fail(key, f"'{v}' is not a valid name",
                 "use letters, digits, '_', '-', '.', starting with a letter or digit")
    return v


# ---------------------------------------------------------------- parsing


def _dim(ctx, name, v, key):
    if name not in DIMS:
        ctx.fail(key, "unknown search dimension", tv.choose(name, DIMS))
    tv.table(ctx, v, key)
    tv.check_keys(ctx, v, DIM_KEYS, key)
    integer = name in INTEGER_DIMS
    num = ((lambda x, k: tv.int_value(ctx, x, k, hi=MAX_STEPS, limit="the step budget limit"))
           if integer else (lambda x, k: tv.float_value(ctx, x, k)))
    lo = num(tv.require(ctx, v, "min", key), f"{key}.min")
    hi = num(tv.require(ctx, v, "max", key), f"{key}.max")
    scale = tv.str_value(ctx, v.get("scale", DEFAULT_SCALES[name]), f"{key}.scale", SCALES)
    if lo >= hi:
        ctx.fail(f"{key}.min", f"min ({lo}) must be < max ({hi})", "swap or widen the bounds")
    if scale == "log" and lo <= 0:
        ctx.fail(f"{key}.min", f"log scale needs min > 0, got {lo}", "use a positive min")
    if scale == "reverse_log" and hi >= 1:
        ctx.fail(f"{key}.max", f"reverse_log scale needs max < 1, got {hi}",
                 "use a max below 1: 1 - value is log-uniform")
    if name == "learning_rate" and lo <= 0:
        ctx.fail(f"{key}.min", f"learning rate must be > 0, got {lo}", "use a positive min")
    if name == "momentum" and (lo < 0 or hi >= 1):
        ctx.fail(key, f"momentum must lie in [0, 1), got [{lo}, {hi}]", "use bounds in [0, 1)")
    if name == "decay_steps" and lo < 1:
        ctx.fail(f"{key}.min", f"decay_steps must be >= 1, got {lo}", "use a min >= 1")
    if name == "end_factor" and (lo <= 0 or hi > 1):
        ctx.fail(key, f"end_factor must lie in (0, 1], got [{lo}, {hi}]", "use bounds in (0, 1]")
    return Dim(name=name, min=lo, max=hi, scale=scale, integer=integer)


def _search(ctx, v, key):
    tv.table(ctx, v, key)
    return {name: _dim(ctx, name, d, f"{key}.{name}") for name, d in v.items()}


def _check_dims(ctx, dims, optimizer, schedule, key):
    need = {"learning_rate"}
    if optimizer in ("momentum", "nesterov"):
        need.add("momentum")
    if schedule == "linear_decay":
        need |= {"decay_steps", "end_factor"}
    for name in DIMS:
        if name in need and name not in dims:
            why = {"learning_rate": "every workload",
                   "momentum": f"optimizer '{optimizer}'",
                   }.get(name, f"schedule '{schedule}'")
            ctx.fail(f"{key}.{name}", f"missing search dimension, required for {why}",
                     f"add {name} = {{ min = ..., max = ..., scale = ... }}")
        if name in dims and name not in need:
            why = f"optimizer '{optimizer}'" if name == "momentum" else f"schedule '{schedule}'"
            ctx.fail(f"{key}.{name}", f"search dimension not used by {why}", f"remove {name}")


def _batch_size(ctx, x, k, dataset):
    """A batch size: 1 .. the dataset's training split."""
    return tv.int_value(ctx, x, k, lo=1, hi=TRAIN_EXAMPLES[dataset],
                limit=f"the {dataset} training split: a batch cannot hold more examples")


def _steps(ctx, x, k):
    return tv.int_value(ctx, x, k, lo=1, hi=MAX_STEPS, limit="1,000 x the paper's largest step budget")


def _grid(ctx, name, v, panel_search, optimizer, schedule, key, dataset):
    _name(ctx, name, key)
    tv.table(ctx, v, key)
    tv.check_keys(ctx, v, GRID_KEYS, key)
    req = lambda k: tv.require(ctx, v, k, key)  # noqa: E731
    batch_sizes = tv.list_value(ctx, req("batch_sizes"), f"{key}.batch_sizes",
                        lambda x, k: _batch_size(ctx, x, k, dataset))
    sparsities = tv.list_value(ctx, req("sparsities"), f"{key}.sparsities", lambda x, k: _sparsity(ctx, x, k))
    trials = tv.int_value(ctx, req("trials"), f"{key}.trials", lo=1, hi=MAX_TRIALS,
                  limit="Sobol trials per study point")
    max_steps = _steps(ctx, req("max_steps"), f"{key}.max_steps")
    eval_every = tv.int_value(ctx, req("eval_every"), f"{key}.eval_every", lo=1)
    if eval_every > max_steps:
        ctx.fail(f"{key}.eval_every", f"must be <= max_steps ({max_steps}), got {tv.show_int(eval_every)}",
                 "evaluate at least once within the step budget")
    per_octave = tv.int_value(ctx, v.get("eval_per_octave", 0), f"{key}.eval_per_octave", lo=0,
                      hi=MAX_EVALUATIONS, limit="the evaluations-per-trial limit")
    n_eval = eval_count(max_steps, eval_every, per_octave,
                        cap=min(MAX_EVALUATIONS, ctx.evaluations_left))
    if n_eval > MAX_EVALUATIONS:
        ctx.fail(f"{key}.eval_every", f"gives more than {MAX_EVALUATIONS:,} evaluations per trial "
                 f"(max_steps {max_steps:,} / eval_every {eval_every:,}"
                 f"{'' if per_octave == 0 else f', {per_octave} per octave'})",
                 f"raise eval_every to at least {-(-max_steps // MAX_EVALUATIONS):,}, lower "
                 "max_steps, or set eval_per_octave for a geometric schedule")
    ctx.spend_evaluations(n_eval, f"{key}.eval_every")
    points = len(batch_sizes) * len(sparsities)
    if points * trials > MAX_GRID_TRIALS:
        ctx.fail(f"{key}.trials", f"{points} study points x {trials:,} trials = "
                 f"{points * trials:,} trials, more than {MAX_GRID_TRIALS:,} in one grid "
                 "(one record file each)", "ask for fewer trials, batch sizes or sparsities")
    if points * trials * n_eval > MAX_STORED_ERRORS:
        ctx.fail(f"{key}.trials", f"{points} study points x {trials:,} trials x {n_eval:,} "
                 f"evaluations = {points * trials * n_eval:,} validation errors, more than "
                 f"{MAX_STORED_ERRORS:,} in the results arrays (about 5 GiB)",
                 "ask for fewer trials or study points, or a larger eval_every")
    max_examples = tv.int_value(ctx, v.get("max_examples", 0), f"{key}.max_examples", lo=0,
                        hi=MAX_EXAMPLES, limit="the step budget limit x the largest training split")
    why = tv.str_value(ctx, v.get("why", ""), f"{key}.why")
    seeds = _seeds(ctx, v, key)
    finishers = tv.int_value(ctx, v.get("finishers", min(DEFAULT_FINISHERS, trials)), f"{key}.finishers",
                     lo=1, hi=trials, limit="the grid's trials")
    dims = dict(panel_search)
    for dim_name, dim in _search(ctx, v.get("search", {}), f"{key}.search").items():
        if dim_name not in panel_search:  # the panel's search already has every needed dim
            _check_dims(ctx, {**panel_search, dim_name: dim}, optimizer, schedule,
                        f"{key}.search")
        dims[dim_name] = dim
    search = tuple(dims[n] for n in DIMS if n in dims)
    return Grid(name=name, batch_sizes=batch_sizes, sparsities=sparsities, trials=trials,
                max_steps=max_steps, eval_every=eval_every, eval_per_octave=per_octave,
                max_examples=max_examples, seeds=seeds, finishers=finishers,
                search=search, why=why)


def _seeds(ctx, v, key):
    """A grid's `seeds`: how many times the whole search runs, each with other seeds."""
    n = tv.int_value(ctx, v.get("seeds", 1), f"{key}.seeds", lo=1)
    if n > MAX_SEEDS:
        ctx.fail(f"{key}.seeds", f"must be <= {MAX_SEEDS}, got {n}",
                 f"use at most {MAX_SEEDS} replicate searches")
    return n


def _panel_id(ctx, i, v, seen, known):
    """A [[panel]] table's unique id and its key for messages, ``panel[<id>]``."""
    key = f"panel[#{i + 1}]"
    if not isinstance(v, dict):
        ctx.fail(key, f"must be a table, got {tv.type_name(v)}", "write each panel as [[panel]]")
    pid = _name(ctx, tv.require(ctx, v, "id", key), f"{key}.id")
    if pid in seen:
        ctx.fail(f"{key}.id", f"duplicate panel id '{pid}'", "give every panel a unique id")
    seen.add(pid)
    key = f"panel[{pid}]"
    tv.check_keys(ctx, v, known, key)
    return pid, key


def _panel(ctx, i, v, seen):
    pid, key = _panel_id(ctx, i, v, seen, PANEL_KEYS)
    req = lambda k: tv.require(ctx, v, k, key)  # noqa: E731
    title = tv.str_value(ctx, v.get("title", ""), f"{key}.title")
    dataset = tv.str_value(ctx, req("dataset"), f"{key}.dataset", DATASETS)
    model = tv.str_value(ctx, req("model"), f"{key}.model", MODELS)
    optimizer = tv.str_value(ctx, req("optimizer"), f"{key}.optimizer", OPTIMIZERS)
    schedule = tv.str_value(ctx, req("schedule"), f"{key}.schedule", SCHEDULES)
    goal = tv.float_value(ctx, req("goal_error"), f"{key}.goal_error")
    if not 0.0 < goal < 1.0:
        ctx.fail(f"{key}.goal_error", f"must lie in the open interval (0, 1), got {goal}",
                 "e.g. 0.02 for 2 % validation error")
    def looser(x, k):
        g = tv.float_value(ctx, x, k)
        if not goal < g < 1.0:
            ctx.fail(k, f"a read goal must lie in (goal_error, 1) = ({goal}, 1), got {x}",
                     "list only looser goals: the runs stop at goal_error, so tighter ones "
                     "need their own panel")
        return g

    read_goals = tv.list_value(ctx, v.get("read_goals", []), f"{key}.read_goals", looser, nonempty=False)
    claims = tv.list_value(ctx, v.get("claims", []), f"{key}.claims",
                   lambda x, k: tv.str_value(ctx, x, k, CLAIMS), nonempty=False)
    search = _search(ctx, req("search"), f"{key}.search")
    _check_dims(ctx, search, optimizer, schedule, f"{key}.search")
    grids_raw = tv.table(ctx, req("grid"), f"{key}.grid")
    if "full" not in grids_raw:
        ctx.fail(f"{key}.grid.full", "missing the 'full' grid, the paper's own grid",
                 f"add [panel.grid.full] to panel '{pid}'")
    grids = {name: _grid(ctx, name, g, search, optimizer, schedule, f"{key}.grid.{name}", dataset)
             for name, g in grids_raw.items()}
    return Panel(id=pid, title=title, dataset=dataset, model=model, optimizer=optimizer,
                 schedule=schedule, goal_error=goal, claims=claims, grids=grids,
                 read_goals=read_goals)


def _sparsity(ctx, x, k):
    s = tv.float_value(ctx, x, k)
    if not 0.0 <= s < 1.0:
        ctx.fail(k, f"sparsity must lie in [0, 1), got {x}", "e.g. 0.9 for 90 % sparse")
    return s


def _smooth_grid(ctx, name, v, optimizer, key, dataset):
    _name(ctx, name, key)
    tv.table(ctx, v, key)
    tv.check_keys(ctx, v, SMOOTH_GRID_KEYS, key)
    req = lambda k: tv.require(ctx, v, k, key)  # noqa: E731
    sparsities = tv.list_value(ctx, req("sparsities"), f"{key}.sparsities", lambda x, k: _sparsity(ctx, x, k))
    lr = tv.float_value(ctx, req("learning_rate"), f"{key}.learning_rate")
    if lr <= 0:
        ctx.fail(f"{key}.learning_rate", f"must be > 0, got {lr}", "e.g. 0.1")
    momentum = tv.float_value(ctx, v.get("momentum", 0.0), f"{key}.momentum")
    if optimizer == "sgd" and momentum != 0.0:
        ctx.fail(f"{key}.momentum", "plain SGD has no momentum", "remove the key or use optimizer = \"momentum\"")
    if not 0.0 <= momentum < 1.0:
        ctx.fail(f"{key}.momentum", f"must lie in [0, 1), got {momentum}", "e.g. 0.9")
    steps = _steps(ctx, req("steps"), f"{key}.steps")
    every = tv.int_value(ctx, req("lipschitz_every"), f"{key}.lipschitz_every", lo=1)
    if every > steps:
        ctx.fail(f"{key}.lipschitz_every", f"must be <= steps ({steps}), got {tv.show_int(every)}",
                 "measure at least once within the run")
    if -(-steps // every) > MAX_EVALUATIONS:  # len(measure_steps())
        ctx.fail(f"{key}.lipschitz_every", f"gives more than {MAX_EVALUATIONS:,} measurements per "
                 f"run (steps {steps:,} / lipschitz_every {every:,})",
                 f"raise lipschitz_every to at least {-(-steps // MAX_EVALUATIONS):,} or lower steps")
    ctx.spend_evaluations(-(-steps // every), f"{key}.lipschitz_every")
    split = TRAIN_EXAMPLES[dataset]
    noise = tv.list_value(ctx, v.get("noise_batch_sizes", [32, 1024]), f"{key}.noise_batch_sizes",
                  lambda x, k: _batch_size(ctx, x, k, dataset))
    if len(noise) != 2:
        ctx.fail(f"{key}.noise_batch_sizes", f"must list exactly two batch sizes, got {len(noise)}",
                 "e.g. noise_batch_sizes = [32, 1024] (small, big)")
    small, big = noise
    draws = tv.int_value(ctx, v.get("noise_draws", 8), f"{key}.noise_draws", lo=1)
    if draws * (small + big) > MAX_NOISE_EXAMPLES:
        ctx.fail(f"{key}.noise_draws", f"{tv.show_int(draws)} draws x ({small} + {big}) examples is more "
                 f"than {MAX_NOISE_EXAMPLES:,} examples held in memory at once",
                 f"use at most {MAX_NOISE_EXAMPLES // (small + big):,} draws or smaller noise batches")
    if _seeds(ctx, v, key) > 1:
        ctx.fail(f"{key}.seeds", "replicate seeds are not supported by smoothness figures "
                 "(one measured run per sparsity, not a search)", "remove the key or set seeds = 1")
    return SmoothGrid(
        name=name, sparsities=sparsities,
        batch_size=_batch_size(ctx, req("batch_size"), f"{key}.batch_size", dataset),
        learning_rate=lr, momentum=momentum, steps=steps, lipschitz_every=every,
        gradient_examples=tv.int_value(ctx, v.get("gradient_examples", 0), f"{key}.gradient_examples", lo=0,
                               hi=split, limit=f"the {dataset} training split; 0 = all of it"),
        noise_batch_sizes=(small, big),
        noise_draws=draws,
        variance_examples=tv.int_value(ctx, v.get("variance_examples", 1000), f"{key}.variance_examples",
                               lo=2, hi=split, limit=f"the {dataset} training split"),
        why=tv.str_value(ctx, v.get("why", ""), f"{key}.why"))


def _smooth_panel(ctx, i, v, seen):
    pid, key = _panel_id(ctx, i, v, seen, SMOOTH_PANEL_KEYS)
    req = lambda k: tv.require(ctx, v, k, key)  # noqa: E731
    optimizer = tv.str_value(ctx, req("optimizer"), f"{key}.optimizer", OPTIMIZERS)
    schedule = tv.str_value(ctx, v.get("schedule", "constant"), f"{key}.schedule", ("constant",))
    dataset = tv.str_value(ctx, req("dataset"), f"{key}.dataset", DATASETS)
    grids_raw = tv.table(ctx, req("grid"), f"{key}.grid")
    if "full" not in grids_raw:
        ctx.fail(f"{key}.grid.full", "missing the 'full' grid, the paper's own grid",
                 f"add [panel.grid.full] to panel '{pid}'")
    return Panel(id=pid, title=tv.str_value(ctx, v.get("title", ""), f"{key}.title"),
                 dataset=dataset,
                 model=tv.str_value(ctx, req("model"), f"{key}.model", MODELS),
                 optimizer=optimizer, schedule=schedule, goal_error=math.nan,
                 claims=tv.list_value(ctx, v.get("claims", []), f"{key}.claims",
                              lambda x, k: tv.str_value(ctx, x, k, CLAIMS), nonempty=False),
                 grids={name: _smooth_grid(ctx, name, g, optimizer, f"{key}.grid.{name}", dataset)
                        for name, g in grids_raw.items()})


def load_spec(path) -> Spec:
    """Read, parse and validate one spec file; raise UsageError on any problem."""
    path = pathlib.Path(path)
    ctx = tv.Ctx(path, evaluations=MAX_SPEC_EVALUATIONS)
    try:
        with path.open("rb") as f:  # never more than the limit into memory
            raw = f.read(MAX_SPEC_BYTES + 1)
    except OSError as e:
        ctx.fail(None, f"cannot read spec: {e.strerror or e}", "check the path")
    if len(raw) > MAX_SPEC_BYTES:
        ctx.fail(None, f"the spec file is larger than {MAX_SPEC_BYTES:,} bytes (1 MiB)",
                 "a figure spec is a few KiB: point at the right file")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        ctx.fail(None, "not UTF-8 text", "save the spec as UTF-8")
    except tomllib.TOMLDecodeError as e:
        ctx.fail(None, f"TOML syntax error: {' '.join(str(e).split())}",
                 "fix the TOML syntax at that line and column")
    except ValueError:  # an integer of more than 4,300 digits (Python's conversion limit)
        ctx.fail(None, "TOML value out of range: an integer of more than 4,300 digits",
                 "write integers of at most 19 digits (TOML's 64-bit range)")
    tv.check_keys(ctx, data, ("figure", "panel"), "")
    if "figure" not in data:
        ctx.fail("figure", "missing required table", "add a [figure] table with at least id")
    fig = tv.table(ctx, data["figure"], "figure")
    tv.check_keys(ctx, fig, FIGURE_KEYS, "figure")
    fid = _name(ctx, tv.require(ctx, fig, "id", "figure"), "figure.id")
    title = tv.str_value(ctx, fig.get("title", ""), "figure.title")
    kind = tv.str_value(ctx, fig.get("kind", "data_parallelism"), "figure.kind", FIGURE_KINDS)
    seed = tv.int_value(ctx, fig.get("seed", 0), "figure.seed", lo=0, hi=MAX_SEED,
                limit="seed + trial must stay a 31-bit TensorFlow seed")
    sobol = tv.str_value(ctx, fig.get("sobol", "unscrambled"), "figure.sobol", SOBOL_MODES)
    sobol_seed = tv.int_value(ctx, fig.get("sobol_seed", 0), "figure.sobol_seed", lo=0, hi=MAX_SOBOL_SEED,
                      limit="a 32-bit seed")
    capping = fig.get("capping", kind not in ("landscape",) + SMOOTHNESS_KINDS)
    if not isinstance(capping, bool):
        ctx.fail("figure.capping", f"must be true or false, got {tv.type_name(capping)}",
                 "write capping = false to run every trial to its own outcome")
    if capping and kind == "landscape":
        ctx.fail("figure.capping", "a landscape figure shows every trial's own outcome, which "
                 "best-so-far capping would cut short", "remove the key (landscapes default to false)")
    panels_raw = data.get("panel")
    if not panels_raw:
        ctx.fail("panel", "missing: a spec needs at least one panel", "add a [[panel]] table")
    if not isinstance(panels_raw, list):
        ctx.fail("panel", "must be an array of tables", "write [[panel]], not [panel]")
    seen: set[str] = set()
    parse = _smooth_panel if kind in SMOOTHNESS_KINDS else _panel
    panels = tuple(parse(ctx, i, p, seen) for i, p in enumerate(panels_raw))
    return Spec(path=path, sha256=hashlib.sha256(raw).hexdigest(), id=fid, title=title,
                kind=kind, seed=seed, sobol=sobol, sobol_seed=sobol_seed, panels=panels,
                capping=capping)


def load_specs(path_or_dir) -> list[Spec]:
    """Load one spec file, or every ``*.toml`` directly in a folder (in natural name order)."""
    p = pathlib.Path(path_or_dir)
    if p.is_dir():
        # Natural order: figure-2 before figure-10.
        files = sorted((f for f in p.glob("*.toml") if f.is_file()),
                       key=lambda f: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", f.name)])
        if not files:
            raise UsageError(p, None, "no *.toml spec files in this folder",
                             "point at a spec file or a folder of specs")
        return [load_spec(f) for f in files]
    return [load_spec(p)]


def is_name(text: str) -> bool:
    """True when `text` may be an id or a grid name: at most MAX_NAME characters of letters,
    digits, '_', '-' and '.', starting with a letter or digit (names become file names)."""
    return len(text) <= MAX_NAME and bool(_NAME.match(text))


def results_path(results_dir, spec: Spec, grid: str, goal: float | None = None) -> pathlib.Path:
    """results/<figure>.nc for the reduced grid, results/<figure>.<grid>.nc otherwise;
    .goal<G> before .nc when the runs are read at goal G instead of the spec's goals."""
    suffix = ("" if grid == "reduced" else f".{grid}") + ("" if goal is None else f".goal{goal:g}")
    return pathlib.Path(results_dir) / f"{spec.id}{suffix}.nc"


def eval_steps(grid: Grid, max_steps: int | None = None) -> list[int]:
    """The steps at which a trial on this grid is evaluated, all <= max_steps.

    eval_per_octave == 0: every eval_every steps (the paper). n > 0: geometric, starting at
    eval_every, s' = max(s + eval_every, ceil(s * 2 ** (1 / n))) -- every eval_every steps
    while that is finer, then about n evaluations per doubling of the step count.
    """
    limit = grid.max_steps if max_steps is None else max_steps
    every, n = grid.eval_every, grid.eval_per_octave
    if eval_count(limit, every, n) > MAX_EVALUATIONS:  # load_spec refuses such a grid
        raise ValueError(f"more than {MAX_EVALUATIONS} evaluations up to step {limit} "
                         f"(eval_every {every}, eval_per_octave {n})")
    steps, s = [], every
    while s <= limit:
        steps.append(s)
        s = s + every if n == 0 else max(s + every, math.ceil(s * 2 ** (1 / n)))
    return steps


def eval_count(max_steps: int, eval_every: int, per_octave: int = 0,
               cap: int = MAX_EVALUATIONS) -> int:
    """len(eval_steps) for this schedule, or cap + 1 if it is longer: bounded work (at most
    cap + 1 iterations, none for the fixed schedule) however large max_steps is."""
    if per_octave == 0:
        return min(max_steps // eval_every, cap + 1)
    count, s = 0, eval_every
    # While s * 2 ** (1 / n) < s + eval_every the schedule is every eval_every steps: skip
    # over that stretch at once (it ends near s = eval_every / (2 ** (1 / n) - 1)).
    ratio = 2 ** (1 / per_octave)
    if ratio > 1.0:
        fixed_until = min(max_steps, int(eval_every / (ratio - 1.0)) - 2 * eval_every)
        if fixed_until > s:
            jump = (fixed_until - s) // eval_every
            if jump > cap:
                return cap + 1
            count, s = jump, s + jump * eval_every
    while s <= max_steps and count <= cap:
        count += 1
        s = max(s + eval_every, math.ceil(s * 2 ** (1 / per_octave)))
    return count
