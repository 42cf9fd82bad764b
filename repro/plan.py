"""Compile a spec's grid into a plan: study points, evaluation schedule and cost bounds."""
import dataclasses

from . import spec as spec_mod
from .datasets import INPUT_SHAPES
from .errors import UsageError

# Replicate r of a grid with `seeds` > 1 runs the whole search again as if the figure's seed
# were seed + r * REPLICATE_SEED_STRIDE. Trial i initialises with seed + i and the data order is
# seeded by seed (StudyPoint.trial_identity, run.Workload), so replicates never share an initialisation
# seed while a search has fewer than 2**20 trials, and each has its own data order. Replicate 0
# is the figure's own seed: exactly the run made without `seeds` (same run ids, records, orders).
# Replicate r > 0 also searches other points: the Sobol sequence scrambled with its own seed, so
# that replicates sample the search (its resolution) instead of repeating its points.
REPLICATE_SEED_STRIDE = 2 ** 20
SNIP_VERSION = 1  # part of every trial's identity: bump if repro.pruning's scores change


def replicate_spec(spec, r):
    """`spec` as replicate `r` (0-based) of its searches sees it: seed + r * REPLICATE_SEED_STRIDE,
    and for r > 0 a scrambled Sobol sequence seeded with sobol_seed + r (its own trial points)."""
    if r == 0:
        return spec
    return dataclasses.replace(spec, seed=spec.seed + r * REPLICATE_SEED_STRIDE, sobol="scrambled",
                               sobol_seed=(spec.sobol_seed + r) % (spec_mod.MAX_SOBOL_SEED + 1))


def replicate_seeds(plan):
    """The figure seed of every replicate any panel of `plan` runs, replicate 0 first."""
    n = max((p.seeds for p in plan.panels), default=1)
    return tuple(plan.spec.seed + r * REPLICATE_SEED_STRIDE for r in range(n))


@dataclasses.dataclass(frozen=True)
class PanelPlan:
    """One panel's share of a plan: its grid, study points and evaluation steps."""

    panel: object          # spec.Panel
    grid: object           # spec.Grid
    points: tuple          # ((sparsity, batch_size), ...): sparsities, then batch sizes
    eval_steps: tuple      # evaluation schedule, identical for every trial of the panel

    @property
    def seeds(self):
        """Replicate searches of every study point (the grid's `seeds`, 1 without it)."""
        return getattr(self.grid, "seeds", 1)

    @property
    def trials_total(self):
        """Trials the panel asks for: points x trials x seeds."""
        return len(self.points) * self.grid.trials * self.seeds

    @property
    def evaluations_at_most(self):
        return self.trials_total * len(self.eval_steps)

    @property
    def steps_at_most(self):
        return self.seeds * self.grid.trials * sum(self.grid.max_steps_for(b) for _, b in self.points)


@dataclasses.dataclass(frozen=True)
class Plan:
    spec: object
    grid_name: str
    panels: tuple


@dataclasses.dataclass(frozen=True)
class StudyPoint:
    """One search: every trial of one (sparsity, batch size) of a panel, under one figure seed.

    A replicate search (the grid's `seeds`) is the same point with `spec` carrying its own
    seed (`replicate_spec`); the trials' run ids, initialisations and data order follow it."""

    spec: object           # spec.Spec (a replicate's: its seed is this search's figure seed)
    panel_plan: PanelPlan  # the panel's grid, search space and evaluation steps
    sparsity: float        # fraction of weights SNIP prunes before training
    batch_size: int        # examples per training step

    @property
    def panel(self):
        """The spec's panel (workload, goal error)."""
        return self.panel_plan.panel

    @property
    def grid(self):
        return self.panel_plan.grid

    @property
    def eval_steps(self):
        """Where every trial of the point is evaluated."""
        return self.panel_plan.eval_steps

    @property
    def trials(self):
        return self.grid.trials

    @property
    def finishers(self):
        """Trials the point's race brings to the goal (the grid's `finishers`)."""
        return self.grid.finishers

    @property
    def goal(self):
        """The validation error a trial must reach."""
        return self.panel.goal_error

    @property
    def max_steps(self):
        """A trial's step budget at this batch size."""
        return self.grid.max_steps_for(self.batch_size)

    @property
    def key(self):
        """(figure seed, panel id, sparsity, batch size): the point's name in events and tests."""
        return (self.spec.seed, self.panel.id, self.sparsity, self.batch_size)

    def trial_values(self):
        """Metaparameters of every trial, in Sobol order (trial i takes Sobol point i)."""
        from . import search
        return search.first_points(self.grid.search, self.trials,
                                   scrambled=self.spec.sobol == "scrambled", seed=self.spec.sobol_seed)

    def trial_identity(self, trial, values, replicas=1):
        """Everything that determines trial `trial`'s training (its run id is a hash of this).

        Not the figure and not the goal: figures that ask for the same workload, study point,
        trial and metaparameters share one run, and its stored curve is re-read at each goal
        (store.TrialRecord.view); a goal the curve cannot answer trains the run further.
        A JAX trial's identity names its engine (repro.backend.identity): its own run; and,
        trained with its batch split over `replicas` > 1 devices, that count (other bits)."""
        from . import backend
        panel, grid = self.panel, self.grid
        return {
            "dataset": panel.dataset, "model": panel.model, "optimizer": panel.optimizer,
            "schedule": panel.schedule, "sparsity": self.sparsity, "batch_size": self.batch_size,
            "trial": trial, "seed": self.spec.seed,
            "values": {k: float(v) for k, v in values.items()},
            "max_steps": self.max_steps, "eval_every": grid.eval_every,
            "eval_per_octave": grid.eval_per_octave, "snip": SNIP_VERSION,
            **backend.identity(replicas),  # nothing on TensorFlow; the JAX engine's own runs
        }

    def trial_ids(self, replicas=1):
        """Run id of every trial, in trial order (trained on `replicas` devices)."""
        from .store import run_id
        return [run_id(self.trial_identity(i, v, replicas))
                for i, v in enumerate(self.trial_values())]


def study_points(plan):
    """Every search `plan` asks for: each panel's points, once per replicate seed."""
    return [StudyPoint(replicate_spec(plan.spec, r), panel_plan, s, b)
            for panel_plan in plan.panels for r in range(panel_plan.seeds) for s, b in panel_plan.points]


def run_ids(plan):
    """{run id: (panel, sparsity, B, trial, seed)} of every trial `plan` asks for, every
    replicate seed's too. Figures that share workload, study point, trial, seed and search space
    share ids: one run, computed once."""
    out = {}
    for p in study_points(plan):
        for i, run_id in enumerate(p.trial_ids()):
            out.setdefault(run_id, (p.panel.id, p.sparsity, p.batch_size, i, p.spec.seed))
    return out


def shared_runs(plans):
    """Across figures: {"unique_runs", "trials_asked", per figure {"runs", "new_runs",
    "shared_with": {figure: n}}}; `new_runs` counts runs no earlier figure (in order) asks for."""
    # A smoothness plan (repro.smoothness_run.SmoothPlan) lists its own run ids.
    ids = {p.spec.id: set(p.run_ids() if hasattr(p, "run_ids") else run_ids(p)) for p in plans}
    seen, per = set(), {}
    for fig, mine in ids.items():
        per[fig] = {"runs": len(mine), "new_runs": len(mine - seen),
                    "shared_with": {o: len(mine & other) for o, other in ids.items()
                                    if o != fig and mine & other}}
        seen |= mine
    return {"unique_runs": len(seen), "trials_asked": sum(len(v) for v in ids.values()),
            "figures": per}


def compile_plan(spec, grid_name="reduced", panels=None, goal=None):
    """The plan for `grid_name` of `spec`, optionally restricted to panel ids `panels`.

    `goal` replaces every panel's goal error: the same runs, read (or trained) at that goal.
    """
    if goal is not None and not 0.0 < goal < 1.0:
        raise UsageError(spec.path, "--goal", f"must lie in (0, 1), got {goal}",
                         "e.g. --goal 0.14 for 14 % validation error")
    chosen = []
    for p in spec.panels:
        if panels and p.id not in panels:
            continue
        if goal is not None:
            p = dataclasses.replace(p, goal_error=goal,
                                    read_goals=tuple(g for g in p.read_goals if g > goal))
        if grid_name not in p.grids:
            raise UsageError(spec.path, f"panel[{p.id}].grid.{grid_name}",
                             f"no grid named '{grid_name}'",
                             f"use one of: {', '.join(p.grids)}")
        g = p.grids[grid_name]
        points = tuple((s, b) for s in g.sparsities for b in g.batch_sizes)
        chosen.append(PanelPlan(p, g, points, tuple(spec_mod.eval_steps(g))))
    if panels:
        unknown = sorted(set(panels) - {p.panel.id for p in chosen})
        if unknown:
            raise UsageError(spec.path, "panel", f"unknown panel(s) {', '.join(unknown)}",
                             f"known: {', '.join(p.id for p in spec.panels)}")
    check_results_size(spec, grid_name, chosen)
    return Plan(spec, grid_name, tuple(chosen))


def check_results_size(spec, grid_name, panels):
    """The collected results (repro.store.collect) hold panels x sparsities x batch sizes x
    trials x evaluations over the union of the panels' grids: refuse more than
    spec.MAX_STORED_ERRORS before anything is trained (each grid alone is checked by load_spec)."""
    if not panels:
        return
    n = (len(panels) * len({s for p in panels for s in p.grid.sparsities})
         * len({b for p in panels for b in p.grid.batch_sizes})
         * max(p.grid.trials for p in panels) * max(len(p.eval_steps) for p in panels))
    if n > spec_mod.MAX_STORED_ERRORS:
        raise UsageError(spec.path, f"panel[*].grid.{grid_name}",
                         f"the panels' {grid_name} grids together need a results array of {n:,} "
                         f"validation errors, more than {spec_mod.MAX_STORED_ERRORS:,} (about 5 GiB)",
                         "give the panels the same batch sizes and sparsities, fewer trials, or "
                         "run them with --panel one at a time")


MAX_DEVICE_BATCH = 8192  # Simple-CNN / ResNet-8 examples one device trains at once (default)


def placement(batch_size, devices, max_device_batch=MAX_DEVICE_BATCH):
    """How a study point uses `devices` accelerators (or 1 for the CPU).

    ("trials", n): the batch fits on one device, so n study points race in parallel, one per
    device (each point's trials take turns on it).
    ("mirrored", r): it does not; each trial runs on a MirroredStrategy of r replicas, the
    fewest that divide B and fit. The global batch is B either way, so K* means the same.
    With a single device there is nothing to split over: ("trials", 1).
    """
    if batch_size <= max_device_batch or devices == 1:
        return ("trials", devices)  # a single device runs whatever B its memory holds
    for r in range(2, devices + 1):
        if batch_size % r == 0 and batch_size // r <= max_device_batch:
            return ("mirrored", r)
    raise ValueError(f"B = {batch_size} does not fit on {devices} device(s) of at most "
                     f"{max_device_batch} examples each")


def visible_devices(runtime=True):
    """How many devices trials can use: GPUs, or 1 for the CPU (see repro.devices).

    runtime=False tells it without starting TensorFlow (devices.device_count_without_runtime),
    for `repro plan`, which only describes the placement."""
    from . import devices
    return len(devices.logical_devices()) if runtime else devices.device_count_without_runtime()


def describe_placement(plan, devices, max_device_batch=MAX_DEVICE_BATCH):
    """{panel: {batch_size: text}} for `repro plan`."""
    out = {}
    for p in plan.panels:
        row = {}
        for b in p.grid.batch_sizes:
            try:
                kind, n = placement(b, devices, max_device_batch)
                row[b] = (f"{n} point(s) racing in parallel, one per device" if kind == "trials"
                          else f"each trial split over {n} devices, data parallel ({b // n} examples per device)")
            except ValueError as e:
                row[b] = f"cannot run here: {e}"
        out[p.panel.id] = row
    return out


def describe(plan, with_parameters=True):
    """JSON-ready description of a plan (what `repro plan --json` prints)."""
    out = {"figure": plan.spec.id, "spec": str(plan.spec.path), "grid": plan.grid_name,
           "panels": [], "models": {}}
    for p in plan.panels:
        pn, g = p.panel, p.grid
        out["panels"].append({
            "id": pn.id, "title": pn.title, "dataset": pn.dataset, "model": pn.model,
            "optimizer": pn.optimizer, "schedule": pn.schedule, "goal_error": pn.goal_error,
            "batch_sizes": list(g.batch_sizes), "sparsities": list(g.sparsities),
            "study_points": [{"sparsity": s, "batch_size": b} for s, b in p.points],
            "trials": g.trials, "seeds": p.seeds, "max_steps": g.max_steps, "max_examples": g.max_examples,
            "eval_every": g.eval_every,
            "eval_per_octave": g.eval_per_octave, "evaluations_per_trial_at_most": len(p.eval_steps),
            "search": {d.name: {"min": d.min, "max": d.max, "scale": d.scale} for d in g.search},
            # Appendix B arithmetic: points x trials x evaluations (or steps) per trial, x seeds.
            "evaluations_at_most": p.evaluations_at_most, "steps_at_most": p.steps_at_most,
            "why": g.why,
        })
        if with_parameters and pn.model not in out["models"]:
            from . import parameters  # closed form: `repro plan` never imports TensorFlow
            out["models"][pn.model] = {
                "parameters": parameters.parameter_count(pn.model, INPUT_SHAPES[pn.dataset])}
    out["totals"] = {
        "study_points": sum(len(p.points) for p in plan.panels),
        "trials": sum(p.trials_total for p in plan.panels),
        "evaluations_at_most": sum(p.evaluations_at_most for p in plan.panels),
        "steps_at_most": sum(p.steps_at_most for p in plan.panels),
    }
    return out


def describe_workers():
    """How `repro run` spreads study points over this machine (printed by `repro plan`)."""
    import os
    from . import devices
    gpus = devices.gpu_count_without_runtime()
    if gpus:
        return (f"workers: one per GPU ({gpus}), each pinned to its own device; each worker races "
                "whole study points, a point's trials taking turns on its device")
    return (f"workers: one per core ({os.cpu_count() or 1}), one TensorFlow thread each; each "
            "worker races whole study points, a point's trials taking turns on its core")
