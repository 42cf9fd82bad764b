"""One interface over the two kinds of study a spec describes.

A search study (most figures) finds K*, the steps to reach the goal error, at every study point
by racing Sobol trials (repro.plan, repro.run). A smoothness study (the spec kinds in
spec.SMOOTHNESS_KINDS: Figures 4 and 6) trains one run per (panel, sparsity) at fixed
metaparameters and measures it along the way (repro.smoothness_run). `load_study` picks the
kind from the spec, so the command line plans, runs, collects, plots and fits either kind
through `Study` alone.

`study_kind` is the one place that reads which kind a spec is. What differs between the kinds
before any plan is compiled (how `verify` reads a spec's stored results and which claims they
answer, what the report counts and shows for them) is a class attribute or class method of
the two kinds, so verify, the report and `repro fits` ask the kind instead of the spec.

Importing this module does not import TensorFlow: only describing a search (its models'
parameter counts, the visible devices) and training do.
"""
from __future__ import annotations

import dataclasses
import pathlib
import typing

import xarray as xr

from . import checkpoint as checkpoint_mod, fmt, plan as plan_mod, records, smoothness_run, spec as spec_mod, store


@dataclasses.dataclass(frozen=True)
class EstimateRequest:
    """What `repro plan --estimate` measures a search's costs and wall time from."""

    results_dir: str = "results"  # stored results of this grid (else the reduced one) to measure
    devices: int = 8              # devices like this machine's to give the wall time on
    run_probe: bool = True        # time this device when no cached throughput answers


@typing.runtime_checkable
class Study(typing.Protocol):
    """What the command line does with a spec's study, whatever its kind."""

    spec: spec_mod.Spec

    @property
    def grid_name(self) -> str:
        """The spec grid the study runs."""

    @property
    def figure_kind(self) -> str:
        """How its figure is drawn (a repro.figures kind: the spec's `figure.kind`)."""

    @property
    def has_k_star_fits(self) -> bool:
        """Whether its results hold K*(B) to fit K* = c1/B + c2 to (Prop. 4.1): K* tables and
        fits on the report, rows of `repro fits`."""

    stored_unit: str  # what its results store, counted: "trials" or "runs"
    results_note: str  # what the report says of its results in place of K* tables ("" none)

    @classmethod
    def claim_reading(cls):
        """How the claims read its results file (repro.claims.SEARCH_RESULTS or SMOOTHNESS_RESULTS)."""

    @classmethod
    def stored_results(cls, spec, *, grid_name="reduced", results_dir="results",
                       goal=None) -> "StoredResults":
        """What `verify` checks for `spec`: its results file (or, for a search with `goal`, the
        stored runs re-read at that goal), or why there is none."""

    @classmethod
    def stored_counts(cls, ds: xr.Dataset, spec, grid_name: str) -> dict:
        """{panel id: (stored, asked for)} trials (or runs) of `ds`, per panel with the grid."""

    def run_command(self, *, results_dir, panel=None) -> str:
        """The `python -m repro run` that trains what it lacks (repro.fmt.run_command)."""

    def describe(self, *, max_device_batch: int = plan_mod.MAX_DEVICE_BATCH,
                 estimate: EstimateRequest | None = None) -> dict:
        """JSON-ready description: what `repro plan --json` prints for it."""

    def format_description(self, description: dict) -> str:
        """The text `repro plan` prints for `description` (from `describe`, with the "runs"
        it shares with other figures where the command listed several)."""

    def run_ids(self) -> list[str]:
        """Run id of every trial or run it asks for (figures sharing ids share the runs)."""

    def results_path(self, results_dir) -> pathlib.Path:
        """The results file `run` and `collect` write for it under `results_dir`."""

    def run(self, *, results_dir, workers: int = 1, capping: bool = True,
            early_exit: bool = True, race_group: int | None = None,
            max_device_batch: int | None = None, checkpoint_every: float | None = 300.0,
            log=print) -> xr.Dataset:
        """Train what no stored record answers yet; the results dataset from the records."""

    def collect(self, *, results_dir, capping: bool = True) -> xr.Dataset:
        """The results dataset from the stored records alone (trains nothing)."""

    def summary(self, ds: xr.Dataset) -> str:
        """The table `repro run` prints after writing `ds`."""

    def describe_collected(self, ds: xr.Dataset) -> str:
        """How much of the study the collected `ds` holds ("from N stored ..."), for `collect`."""

    def stored_panels(self, ds: xr.Dataset) -> list[str]:
        """Panels of `ds` with at least one stored trial (or run), in `ds`'s order."""

    def fits(self, ds: xr.Dataset) -> dict:
        """{panel: analysis.fits} for the figure's fitted curves; {} without K*(B)."""


def study_kind(spec) -> type:
    """SearchStudy or SmoothnessStudy: the kind of study `spec` describes. The one place that
    reads the spec's kind (spec.SMOOTHNESS_KINDS): ask the class it returns what differs."""
    return SmoothnessStudy if spec.kind in spec_mod.SMOOTHNESS_KINDS else SearchStudy


def load_study(spec, *, grid_name="reduced", panels=None, goal=None) -> Study:
    """The study of `spec`'s grid `grid_name`, restricted to panel ids `panels` (None: all).

    `goal` replaces a search's goal errors (the same runs read at that goal); a smoothness
    study has no goal and ignores it. An unknown grid or panel is a UsageError."""
    return study_kind(spec).load(spec, grid_name=grid_name, panels=panels, goal=goal)


@dataclasses.dataclass(frozen=True)
class StoredResults:
    """What `verify` checks for a spec (`Study.stored_results`): a dataset, or why there is none."""

    dataset: xr.Dataset | None
    missing: str = ""     # no dataset: why, and the command that writes it
    unanswered: str = ""  # a search re-read at a goal: the trials it lacks, and the command


# Attributes of a `run` (docs/results-format.md) the results file keeps from the dataset it returned.
RUN_ATTRS = ("trials_trained", "trials_reused", "run_wall_seconds")


@dataclasses.dataclass(frozen=True)
class WrittenResults:
    """A results file `write_results` wrote: every panel of the grid, stored or not."""

    path: pathlib.Path
    dataset: xr.Dataset
    not_run: dict  # {panel id: why nothing is stored} of the panels with no stored trial

    def panels_text(self) -> str:
        """' (panels a, b stored; c not run)' when some panel is not run, else ''."""
        if not self.not_run:
            return ""
        held = [p for p in map(str, self.dataset["panel"].values) if p not in self.not_run]
        stored = f"panel{'' if len(held) == 1 else 's'} {', '.join(held)} stored" if held else \
            "no panel stored"
        return f" ({stored}; {', '.join(self.not_run)} not run)"


def results_study(spec, *, grid_name="reduced", goal=None) -> Study:
    """The study a results file is collected for: every panel of `spec` with the grid
    `grid_name` (a UsageError, as `load_study`'s, when none has it or together they exceed the
    size a results file may have: `run` asks for it before training a subset of the panels)."""
    panels = tuple(p.id for p in spec.panels if grid_name in p.grids)
    return load_study(spec, grid_name=grid_name, panels=panels or None, goal=goal)


def write_results(spec, *, grid_name="reduced", results_dir="results", goal=None, capping=True,
                  run=None) -> WrittenResults:
    """Collect every panel of `spec`'s grid `grid_name` from the records stored under
    `results_dir` and write the study's results file atomically.

    `run`, `collect` and `chief` all write the file through this, so it always holds every
    panel whose trials are stored, however the study was run (one `--panel` at a time, on
    several machines): a run of one panel never drops what earlier runs wrote. Panels with
    nothing stored are in the file as not run (no K*), and its `panels_not_run` attribute says
    why for each (its data missing here, else the command that runs it). `run`: the dataset a
    `Study.run` returned: its run attributes (RUN_ATTRS) are kept. `goal` and `capping` as
    for `load_study` and `Study.collect`. Trains nothing."""
    from . import data as data_mod
    from .errors import DataMissing
    study = results_study(spec, grid_name=grid_name, goal=goal)
    ds = study.collect(results_dir=results_dir, capping=capping)
    stored = set(study.stored_panels(ds))
    not_run = {}
    for pid in map(str, ds["panel"].values):
        if pid in stored:
            continue
        try:
            data_mod.require(spec.panel(pid).dataset)
            not_run[pid] = f"no trial stored; run: {study.run_command(results_dir=results_dir, panel=pid)}"
        except DataMissing as e:
            not_run[pid] = str(e)
    ds.attrs["panels_not_run"] = "; ".join(f"{k}: {v}" for k, v in not_run.items())
    if run is not None:
        ds.attrs.update({k: run.attrs[k] for k in RUN_ATTRS if k in run.attrs})
    path = study.results_path(results_dir)
    store.write_dataset(ds, path)
    return WrittenResults(path, ds, not_run)


# ------------------------------------------------------------------------------ searches

class _FromSpec:
    """What both kinds read off their spec and plan (the figure kind, the grid, the command
    that runs it) and how both find their results file and count what it stores."""

    @property
    def figure_kind(self):
        """The spec's `figure.kind`."""
        return self.spec.kind

    @property
    def grid_name(self):
        """The spec grid the plan (or runs) came from."""
        return self.plan.grid_name

    def run_command(self, *, results_dir, panel=None):
        """`python -m repro run` of this grid (and goal), into `results_dir`, of `panel` (None: all)."""
        return fmt.run_command(self.spec.path, grid=self.grid_name, panel=panel,
                               results_dir=results_dir, goal=self.goal)

    @classmethod
    def stored_results(cls, spec, *, grid_name="reduced", results_dir="results", goal=None):
        """The spec's results file (store.open_results: one that is not current is a
        UsageError), or, where it does not exist, why and the command that writes it."""
        path = spec_mod.results_path(results_dir, spec, grid_name)
        if not path.exists():
            command = fmt.run_command(spec.path, grid=grid_name, results_dir=results_dir)
            return StoredResults(None, missing=f"no results file {path}; run: {command}")
        return StoredResults(store.open_results(path, spec, grid_name))

    @classmethod
    def stored_counts(cls, ds, spec, grid_name):
        """{panel id: (stored, asked for)} of every panel of `spec` with the grid `grid_name`
        (a panel missing from `ds` stores none)."""
        held = [str(pid) for pid in ds["panel"].values]
        return {p.id: (cls.stored_in_panel(ds, p.id) if p.id in held else 0,
                       cls.asked_by_grid(p.grids[grid_name]))
                for p in spec.panels if grid_name in p.grids}


@dataclasses.dataclass(frozen=True)
class SearchStudy(_FromSpec):
    """A steps-to-result search: every study point's trials race to the goal (repro.run)."""

    spec: spec_mod.Spec
    plan: plan_mod.Plan
    goal: float | None = None  # read every panel at this goal instead of its goal_error

    has_k_star_fits = True
    stored_unit = "trials"
    results_note = ""

    @classmethod
    def load(cls, spec, *, grid_name="reduced", panels=None, goal=None):
        """The search of `grid_name` (plan.compile_plan), read at `goal` where one is given."""
        return cls(spec=spec, plan=plan_mod.compile_plan(spec, grid_name, panels, goal=goal), goal=goal)

    @staticmethod
    def claim_reading():
        """repro.claims.SEARCH_RESULTS: K* and every trial, resampled per panel."""
        from . import claims
        return claims.SEARCH_RESULTS

    @classmethod
    def stored_results(cls, spec, *, grid_name="reduced", results_dir="results", goal=None):
        """The results file; with `goal`, the stored runs re-read at that goal instead (nothing
        is trained or written), saying how many trials that leaves unanswered."""
        if goal is None:
            return super().stored_results(spec, grid_name=grid_name, results_dir=results_dir)
        study = cls.load(spec, grid_name=grid_name, goal=goal)
        ds = study.collect(results_dir=results_dir)
        asked = sum(len(p.points) * p.grid.trials for p in study.plan.panels)
        unknown = asked - int((ds["status"] > 0).sum())
        return StoredResults(ds, unanswered="" if not unknown else (
            f"{spec.id}: {unknown} trials not stored or not answerable at goal {goal:g} by the "
            f"stored curves; run: {study.run_command(results_dir=results_dir)}"))

    @staticmethod
    def stored_in_panel(ds, panel_id):
        """Trials of the panel that ran (status > 0), over every study point."""
        return int((ds["status"].sel(panel=panel_id) > 0).sum())

    @staticmethod
    def asked_by_grid(grid):
        """Trials a panel's grid asks for: batch sizes x sparsities x trials."""
        return len(grid.batch_sizes) * len(grid.sparsities) * grid.trials

    def describe(self, *, max_device_batch=plan_mod.MAX_DEVICE_BATCH, estimate=None):
        """plan.describe with the placement on this machine's devices and, with `estimate`,
        the predicted costs (repro.cost) and wall time (repro.throughput)."""
        d = plan_mod.describe(self.plan)
        d["placement"] = placement_description(self.plan, max_device_batch=max_device_batch)
        if estimate is not None:
            from . import throughput
            d["estimate"] = measured_estimate(self.plan, results_dir=estimate.results_dir)
            d["wall_time"] = throughput.estimate_wall_time(
                self.plan, d["estimate"], estimate.results_dir, estimate.devices, max_device_batch,
                run_probe=estimate.run_probe)
        return d

    def format_description(self, description):
        """Estimates and wall time first, then totals, shared runs, panels, models, placement."""
        d = description
        lines = [line for row in d.get("estimate", []) for line in estimate_lines(row)]
        if "wall_time" in d:
            from . import throughput
            lines += throughput.format_wall_time(d["wall_time"])
        lines.append(f"{d['figure']} ({d['grid']} grid): {d['totals']['study_points']} study points, "
                     f"{d['totals']['trials']} trials, at most {d['totals']['evaluations_at_most']:,} "
                     f"evaluations and {d['totals']['steps_at_most']:,} steps")
        lines += sharing_lines(d)
        lines += [panel_line(p) for p in d["panels"]]
        lines += [f"  model {m}: {v['parameters']:,} parameters" for m, v in d["models"].items()]
        lines += placement_lines(d["placement"])
        return "\n".join(lines)

    def run_ids(self):
        """Every trial's run id, every replicate seed's too (plan.run_ids)."""
        return list(plan_mod.run_ids(self.plan))

    def results_path(self, results_dir):
        """results/<figure>[.<grid>][.goal<G>].nc (spec.results_path)."""
        return spec_mod.results_path(results_dir, self.spec, self.grid_name, self.goal)

    def run(self, *, results_dir, workers=1, capping=True, early_exit=True, race_group=None,
            max_device_batch=None, checkpoint_every=checkpoint_mod.CHECKPOINT_EVERY, log=print):
        """run.run_plan; trials are capped where both `capping` and the spec allow it. The
        dataset's attributes say the goal it was read at and how many trials were trained and
        reused."""
        from . import run as run_mod  # the trainer: only a run imports it
        options = run_mod.RunOptions(results_dir=results_dir, capping=self.spec.capping and capping,
                                     early_exit=early_exit, race_group=race_group,
                                     checkpoint_every=checkpoint_every)

        def prior(points, stored, workers):  # the ETA before any trial ends
            from . import throughput
            rows = measured_estimate(self.plan, results_dir=results_dir)
            trials = sum(p.trials for p in points) - len(stored)
            return throughput.run_prior(self.plan, rows, results_dir, points, stored, workers,
                                        run_probe=trials >= throughput.PROBE_MIN_TRIALS)

        ds, report = run_mod.run_plan(self.plan, options, workers=workers,
                                      max_device_batch=max_device_batch, log=log, prior=prior)
        self.mark_goal(ds)
        ds.attrs.update(trials_trained=report["trials_trained"], trials_reused=report["trials_reused"])
        return ds

    def collect(self, *, results_dir, capping=True):
        """records.collect_plan, capped where both `capping` and the spec allow it."""
        ds = records.collect_plan(self.plan, results_dir, capping=self.spec.capping and capping)
        self.mark_goal(ds)
        return ds

    def mark_goal(self, ds):
        """Record in `ds` the goal its trials were read at, when not the panels' own."""
        if self.goal is not None:
            ds.attrs["goal"] = self.goal

    def summary(self, ds):
        """K* per (panel, sparsity) and batch size."""
        return ds["steps_to_result"].to_dataframe().unstack("batch_size").to_string()

    def describe_collected(self, ds):
        """Trials stored, and how many are not run yet (or not answerable at the goal)."""
        n = int((ds["status_by_seed"] > 0).sum())
        total = sum(p.trials_total for p in self.plan.panels)
        return (f"from {n} stored trials ({total - n} of {total} not run yet"
                + ("" if self.goal is None else
                   f", or not answerable at goal {self.goal:g} by the stored curves") + ")")

    def stored_panels(self, ds):
        """Panels with a stored trial in some replicate search (`status_by_seed` > 0)."""
        return [p for p in map(str, ds["panel"].values)
                if bool((ds["status_by_seed"].sel(panel=p) > 0).any())]

    @classmethod
    def fits(cls, ds):
        """Prop. 4.1 fits of every panel in `ds` (analysis.fits)."""
        from . import analysis
        return {p: analysis.fits(ds, p) for p in map(str, ds.panel.values)}


def placement_description(plan, *, max_device_batch):
    """How `repro run` would place `plan`'s study points on this machine's devices."""
    n = plan_mod.visible_devices(runtime=False)  # `repro plan` imports no TensorFlow
    return {"devices": n, "max_device_batch": max_device_batch,
            "panels": plan_mod.describe_placement(plan, n, max_device_batch),
            "workers": plan_mod.describe_workers()}


def measured_estimate(plan, *, results_dir):
    """repro.cost.estimate with measurements from the plan's stored results (its own grid's,
    else the reduced grid's; none: upper bounds only)."""
    from . import cost
    ds = None
    for grid in dict.fromkeys([plan.grid_name, "reduced"]):
        path = spec_mod.results_path(results_dir, plan.spec, grid)
        if path.exists():
            ds = store.open_results(path, plan.spec, grid)
            break
    return cost.estimate(plan, ds)


def estimate_lines(row):
    """`repro plan --estimate` lines for one panel's cost estimate."""
    src = row["measured_from"]
    lines = [f"estimate ({row['panel']}): " + (
        f"from the {src['grid']} grid's results (p = {src['p']:.2f} of trials reach the goal, "
        f"completing trials take {src['kbar_over_kstar']:.2f} x K*, early exit reads "
        f"{src['q']:.0%} of a failing evaluation"
        + ("" if src["space_share"] == 1 else
           f"; they searched {src['space_share']:.0%} of this search space, trials outside "
           f"taken to fail: p = {src['p'] * src['space_share']:.2f}")
        + ")" if src else
        "no results to measure from: upper bound only (run the reduced grid first)")]
    for kind in ("at_most", "naive", "repro"):
        if kind in row:
            r = row[kind]
            lines.append(f"  {kind:8s} {r['steps']:>15,} steps {r['evaluations']:>12,} evaluations "
                         f"{r['examples_evaluated']:>16,} validation examples")
    return lines


def panel_line(p):
    """One panel of a search's description: workload, goal, grid and trial budget."""
    return (f"  ({p['id']}) {p['dataset']} / {p['model']} / {p['optimizer']} / {p['schedule']}, "
            f"goal {p['goal_error']}: B {p['batch_sizes']} x s {p['sparsities']}, "
            f"{p['trials']} trials"
            + (f" x {p['seeds']} seeds (replicate searches)" if p.get("seeds", 1) > 1 else "")
            + f", max {p['max_steps']} steps, "
            f"{p['evaluations_per_trial_at_most']} evaluations per trial at most")


def placement_lines(pl):
    """The placement of a search's description: per panel, batch sizes grouped by placement."""
    lines = [f"  placement on {pl['devices']} device(s), at most {pl['max_device_batch']} "
             "examples per device:"]
    for pid, rows in pl["panels"].items():
        batch_sizes_by_text = {}
        for b, text in rows.items():
            batch_sizes_by_text.setdefault(text, []).append(b)
        lines.append(f"    ({pid}) " + "; ".join(f"B {bs}: {text}"
                                                  for text, bs in batch_sizes_by_text.items()))
    lines.append(f"    {pl['workers']}")
    return lines


def sharing_lines(d):
    """The line saying how many of a figure's runs figures listed before it already ask for
    (none when the description has no "runs": a single figure)."""
    if "runs" not in d:
        return []
    r = d["runs"]
    return [f"  runs: {r['new_runs']} not asked for by a figure listed before it"
            + "".join(f"; {n} shared with {o}" for o, n in r["shared_with"].items())]


# ------------------------------------------------------------------------------ smoothness

@dataclasses.dataclass(frozen=True)
class SmoothnessStudy(_FromSpec):
    """Measured training runs, one per (panel, sparsity) (repro.smoothness_run)."""

    spec: spec_mod.Spec
    plan: smoothness_run.SmoothPlan
    panels: tuple | None = None  # panel ids it is restricted to (None: all)

    has_k_star_fits = False  # no K*(B): `repro verify` checks its c1 decomposition instead
    stored_unit = "runs"
    results_note = ("Smoothness runs (one training run per panel and sparsity at fixed "
                    "metaparameters): no K* table; the claims above read the measured L, Delta, "
                    "beta and loss.")
    goal = None  # measured runs are read whole: there is no goal to read them at

    @classmethod
    def load(cls, spec, *, grid_name="reduced", panels=None, goal=None):
        """The runs of `grid_name` (smoothness_run.SmoothPlan); `goal` is ignored."""
        panels = tuple(spec.panel(pid).id for pid in panels) if panels else None  # known ids only
        return cls(spec=spec, plan=smoothness_run.SmoothPlan(spec, grid_name, panels), panels=panels)

    @staticmethod
    def claim_reading():
        """repro.claims.SMOOTHNESS_RESULTS: the measured runs."""
        from . import claims
        return claims.SMOOTHNESS_RESULTS

    @staticmethod
    def stored_in_panel(ds, panel_id):
        """Runs of the panel that are stored (status other than 'not_run')."""
        return int((ds["status"].sel(panel=panel_id) != "not_run").sum())

    @staticmethod
    def asked_by_grid(grid):
        """Runs a panel's grid asks for: one per sparsity."""
        return len(grid.sparsities)

    def describe(self, *, max_device_batch=plan_mod.MAX_DEVICE_BATCH, estimate=None):
        """smoothness_run.describe (runs are not placed or estimated: both keywords are ignored)."""
        return smoothness_run.describe(self.plan)

    def format_description(self, description):
        """smoothness_run.format_description, then the runs it shares with other figures."""
        return "\n".join([smoothness_run.format_description(description),
                          *sharing_lines(description)])

    def run_ids(self):
        """Every run's id (smoothness_run.SmoothPlan.run_ids)."""
        return self.plan.run_ids()

    def results_path(self, results_dir):
        """results/<figure>[.<grid>].nc (spec.results_path): there is no goal to read at."""
        return spec_mod.results_path(results_dir, self.spec, self.grid_name)

    def run(self, *, results_dir, workers=1, capping=True, early_exit=True, race_group=None,
            max_device_batch=None, checkpoint_every=None, log=print):
        """smoothness_run.run_study over `workers` processes; the search options (capping,
        early exit, race groups, device batch, race checkpoints) do not apply to measured runs and are ignored."""
        return smoothness_run.run_study(self.spec, self.grid_name, results_dir, workers,
                                        self.panels, log=log)

    def collect(self, *, results_dir, capping=True):
        """smoothness_run.collect (nothing is capped: `capping` is ignored)."""
        return smoothness_run.collect(self.spec, self.grid_name, results_dir, self.panels)

    def summary(self, ds):
        """smoothness_run.summary: L, beta, Delta and B_simple per (panel, sparsity)."""
        return smoothness_run.summary(ds)

    def describe_collected(self, ds):
        """Runs stored, of all the study asks for."""
        return f"from {int((ds['status'] != 'not_run').sum())} stored runs of {ds['status'].size}"

    def stored_panels(self, ds):
        """Panels with a stored run (status other than 'not_run')."""
        return [p for p in map(str, ds["panel"].values)
                if bool((ds["status"].sel(panel=p) != "not_run").any())]

    @classmethod
    def fits(cls, ds):
        """No K*(B) to fit: {}."""
        return {}
