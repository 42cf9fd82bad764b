"""Trial records (one JSON file per finished trial) and the collected xarray/netCDF dataset.

Records are the source of truth: each is written atomically before the next trial starts, so
a killed run loses at most the trial in flight. `results/<figure>.nc` is rebuilt from them.
Layout of the netCDF file: docs/results-format.md.
"""
import dataclasses
import datetime
import hashlib
import json
import pathlib
import subprocess
import tempfile
from importlib import metadata

import numpy as np
import xarray as xr

from . import __version__
from .atomic import atomic_path, atomic_write  # noqa: F401 (atomic_write re-exported)
from .errors import UsageError

STATUS = {"not_run": 0, "complete": 1, "incomplete": 2, "infeasible": 3, "capped": 4}
HP_NAMES = ("learning_rate", "momentum", "decay_steps", "end_factor")
PACKAGES = ("tensorflow-cpu", "tensorflow", "keras", "keras-tuner", "numpy", "scipy", "xarray",
            "netCDF4", "matplotlib")


def check_writable(folder):
    """Create `folder` if needed and prove it takes files, before any training starts."""
    folder = pathlib.Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise UsageError(folder, None, f"results folder is not writable ({e.strerror})",
                         "pass --results DIR with a folder you can write to") from None


def run_id(identity):
    """Stable id of a run from everything that determines its outcome."""
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


class RunStore:
    """Finished runs as results/runs/<id[:2]>/<id>.json, shared by every figure.

    `trial`/`put_trial` read and write a search trial's record (TrialRecord); `get`/`put` the
    raw JSON of any run (the smoothness studies keep their own fields)."""

    def __init__(self, root):
        self.root = pathlib.Path(root) / "runs"

    def path(self, record_id):
        return self.root / record_id[:2] / f"{record_id}.json"

    def get(self, record_id):
        """The stored JSON of run `record_id`, or None if it has not finished."""
        p = self.path(record_id)
        if not p.exists():
            return None
        try:
            return json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UsageError(p, None, f"corrupt trial record ({e})",
                             "delete the file; the trial will be re-run") from None

    def put(self, record_id, record):
        atomic_write(self.path(record_id), json.dumps(record, indent=1).encode())

    def trial(self, record_id):
        """The TrialRecord of search trial `record_id`, or None if it has not finished."""
        stored = self.get(record_id)
        if stored is None:
            return None
        try:
            return TrialRecord.from_json(stored)
        except (KeyError, TypeError, ValueError) as e:
            raise UsageError(self.path(record_id), None, f"not a trial record ({type(e).__name__}: {e})",
                             "delete the file; the trial will be re-run") from None

    def put_trial(self, record):
        self.put(record.run_id, record.to_json())


@dataclasses.dataclass(frozen=True)
class TrialRecord:
    """One finished search trial, as stored (docs/results-format.md, "Trial records").

    `view(goal, cap)` is how a search at `goal` whose trial was stopped after step `cap` reads
    it: the one place that turns a stored curve into an outcome."""

    run_id: str
    identity: dict            # what determined the training (its sha256 is run_id)
    status: str               # complete | incomplete | infeasible | capped
    goal: float               # the run stopped at the first evaluation at or below this error
    exit_goal: float | None   # errors were counted up to this goal (None: every evaluation in full)
    cap: int | None           # the last step the search let it run to (None: its whole budget)
    steps_to_result: int | None  # the evaluation step the goal was met (complete only)
    steps: int                # training steps run
    eval_steps: tuple         # steps of the evaluations made, in order
    val_errors: tuple         # validation error at each (a lower bound where not exact)
    val_exact: tuple          # whether each error was counted over the whole split
    examples_evaluated: int = 0
    examples_trained: int = 0
    wall_time: float = 0.0
    message: str = ""
    trained_on: dict | None = None  # {"backend", "version", "device"[, "replicas"]}; None: older records

    @property
    def values(self):
        """The trial's metaparameters."""
        return self.identity["values"]

    @property
    def k(self):
        """Steps to the goal, or None when the trial did not meet it."""
        return self.steps_to_result if self.status == "complete" else None

    @property
    def exact(self):
        """Every evaluation counted over the whole split (no early-exit lower bounds)."""
        return all(self.val_exact)

    @classmethod
    def from_json(cls, stored):
        n = len(stored["val_errors"])
        goal = stored.get("goal", stored.get("identity", {}).get("goal_error"))  # older records
        identity = stored["identity"] if "identity" in stored else {"values": stored["values"]}
        return cls(run_id=stored.get("run_id", ""), identity=identity, status=stored["status"],
                   goal=goal, exit_goal=stored.get("exit_goal"), cap=stored.get("cap"),
                   steps_to_result=stored["steps_to_result"], steps=stored["steps"],
                   eval_steps=tuple(stored["eval_steps"]), val_errors=tuple(stored["val_errors"]),
                   val_exact=tuple(stored.get("val_exact", [True] * n)),
                   examples_evaluated=stored.get("examples_evaluated", -1),  # -1: not recorded
                   examples_trained=stored.get("examples_trained", 0),
                   wall_time=stored.get("wall_time", 0.0), message=stored.get("message", ""),
                   trained_on=stored.get("trained_on"))

    def to_json(self):
        return {**dataclasses.asdict(self), "values": self.values,
                "eval_steps": list(self.eval_steps), "val_errors": list(self.val_errors),
                "val_exact": list(self.val_exact)}

    def _upto(self, n, **changes):
        """The record cut to its first n evaluations, with `changes`."""
        return dataclasses.replace(self, eval_steps=self.eval_steps[:n],
                                   val_errors=self.val_errors[:n], val_exact=self.val_exact[:n],
                                   **changes)

    def capped(self, cap):
        """The record as it would read had the trial been stopped after step `cap` (None: no
        cap); None when it cannot answer (it was itself capped below `cap`). Training is
        deterministic and evaluation steps are fixed, so a longer run answers any shorter cap."""
        if self.cap is not None and self.status != "complete" and (cap is None or cap > self.cap):
            return None  # (a complete record met the goal under its cap: it answers any cap)
        if cap is None:
            return self
        ended = self.steps_to_result if self.status == "complete" else self.steps
        if self.status != "capped" and ended <= cap:
            return self  # it stopped on its own before the cap
        n = sum(1 for s in self.eval_steps if s <= cap)
        return self._upto(n, status="capped", steps_to_result=None, cap=cap,
                          steps=self.eval_steps[n - 1] if n else 0)

    def view(self, goal, cap=None):
        """The record as a search for `goal`, capped at `cap`, would have seen it (None: it
        cannot tell).

        A run's identity does not include its goal: the curve answers any goal it resolves.
        Walking the evaluations in order, an exact error <= `goal` is the first time the goal is
        met; an early-exited point (a lower bound) above `goal` is a known miss, one at or below
        it is ambiguous (counting stopped at the run's own, tighter goal). A run that stopped at
        its own goal without meeting `goal` cannot tell what came next; incomplete, infeasible
        and capped runs keep their outcome. Then `capped` applies the cap. Where that cannot
        tell, the curve cut at the cap may: it answers any goal its evaluations resolve.
        """
        rec = self._at_goal(goal)
        rec = rec.capped(cap) if rec is not None else None
        if rec is None and cap is not None:
            cut = self.capped(cap)
            rec = cut._at_goal(goal) if cut is not None else None
        return rec

    def _at_goal(self, goal):
        """The uncapped record read at `goal` (None: the curve cannot tell)."""
        if self.goal is not None and goal == self.goal:
            return self
        hit = None
        for i, (err, ok) in enumerate(zip(self.val_errors, self.val_exact)):
            if err != err:  # NaN: the run diverged here
                break
            if err <= goal:
                if not ok:
                    return None
                hit = i
                break
        if hit is not None:
            step = self.eval_steps[hit]
            return self._upto(hit + 1, status="complete", steps_to_result=step, steps=step,
                              cap=None, goal=goal)
        if self.status == "complete":
            return None  # it met its own, looser goal and stopped: what came next is unknown
        return dataclasses.replace(self, goal=goal)


def provenance(spec):
    """Global attributes: spec hash, package versions, git commit, time."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=pathlib.Path(__file__).parent, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "figure": spec.id, "title": spec.title, "spec_path": str(spec.path),
        "spec_sha256": spec.sha256, "repro_version": __version__,
        "git_commit": commit or "unknown", "package_versions": json.dumps(versions),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "Conventions": "CF-1.8",
        "description": "Steps-to-result study (Lee et al., ICLR 2021); layout: docs/results-format.md in repro",
    }


@dataclasses.dataclass(frozen=True)
class _Axes:
    """The coordinates a plan's dataset spans: every panel, sparsity, batch size and trial of
    any panel, and the longest list of evaluation steps."""

    panels: list
    sparsities: list
    batches: list
    trials: int
    n_eval: int

    @classmethod
    def of(cls, plan):
        return cls(panels=[p.panel.id for p in plan.panels],
                   sparsities=sorted({s for p in plan.panels for s in p.grid.sparsities}),
                   batches=sorted({b for p in plan.panels for b in p.grid.batch_sizes}),
                   trials=max(p.grid.trials for p in plan.panels),
                   n_eval=max(len(p.eval_steps) for p in plan.panels))

    @property
    def shape(self):
        """(panel, sparsity, batch_size, trial)."""
        return len(self.panels), len(self.sparsities), len(self.batches), self.trials

    def index(self, key):
        """The array index of record key (panel, sparsity, batch, trial)."""
        panel, sparsity, batch_size, trial = key
        return (self.panels.index(panel), self.sparsities.index(sparsity),
                self.batches.index(batch_size), trial)


def _searches(plan, records, axes):
    """(status, steps, K*, best trial) of every study point's search from `records`
    ({(panel, sparsity, batch, trial): record}); K* is NaN and best -1 where no trial is
    complete or not every trial has a record (the search is partial)."""
    status = np.zeros(axes.shape, np.int8)
    steps = np.full(axes.shape, -1, np.int64)
    k_star = np.full(axes.shape[:3], np.nan)
    best = np.full(axes.shape[:3], -1, np.int64)
    for key, r in records.items():
        idx = axes.index(key)
        status[idx] = STATUS[r.status]
        steps[idx] = r.steps
        k, t = r.steps_to_result, idx[3]
        point = idx[:3]
        if r.status == "complete" and (np.isnan(k_star[point]) or k < k_star[point]
                                          or (k == k_star[point] and t < best[point])):
            k_star[point], best[point] = k, t  # ties go to the lowest trial id
    # K* is a minimum over all of a point's trials: a point with a trial not run (or not
    # answerable at this goal from the stored curves) has no K* yet, only an upper bound.
    for pi, p in enumerate(plan.panels):
        searched = (status[pi, :, :, :p.grid.trials] > 0).all(axis=-1)
        k_star[pi][~searched], best[pi][~searched] = np.nan, -1
    return status, steps, k_star, best


def _replicates(plan, by_seed, axes):
    """(status, steps, K*, best trial) of every replicate search, each with a seed axis after
    the panel: (panel, seed, sparsity, batch_size[, trial])."""
    per_seed = [_searches(plan=plan, records=records, axes=axes) for records in by_seed.values()]
    return tuple(np.stack([searched[n] for searched in per_seed], axis=1) for n in range(4))


def _trial_arrays(records, axes):
    """Per trial: wall time, record id, validation examples read, metaparameters ({name:
    array}), validation curve and whether each of its errors is exact."""
    wall = np.full(axes.shape, np.nan)
    run_ids = np.full(axes.shape, "", dtype=object)
    evaluated = np.full(axes.shape, -1, np.int64)
    hps = {n: np.full(axes.shape, np.nan) for n in HP_NAMES}
    curve = np.full(axes.shape + (axes.n_eval,), np.nan, np.float32)
    exact = np.full(axes.shape + (axes.n_eval,), -1, np.int8)
    for key, r in records.items():
        idx = axes.index(key)
        wall[idx] = r.wall_time
        run_ids[idx] = r.run_id
        evaluated[idx] = r.examples_evaluated
        for n in HP_NAMES:
            if n in r.values:
                hps[n][idx] = r.values[n]
        curve[idx][:len(r.val_errors)] = r.val_errors
        exact[idx][:len(r.val_errors)] = r.val_exact
    return wall, run_ids, evaluated, hps, curve, exact


def _eval_steps(plan, axes):
    """(panel, batch_size, eval): the training step of each evaluation a trial at that batch
    size can make (within its own step budget, `max_examples` included), -1 as padding; the
    last is the budget a reader takes a missed trial to have run to."""
    eval_step = np.full((len(axes.panels), len(axes.batches), axes.n_eval), -1, np.int64)
    for pi, p in enumerate(plan.panels):
        for bi, b in enumerate(axes.batches):
            if b in p.grid.batch_sizes:
                steps = [s for s in p.eval_steps if s <= p.grid.max_steps_for(b)]
                eval_step[pi, bi, :len(steps)] = steps
    return eval_step


def _search_space(plan, axes):
    """(min, max, scale), each (panel, hp): each panel's searched ranges, so a reader (and the
    best-inside-range claim) sees them."""
    smin, smax = (np.full((len(axes.panels), len(HP_NAMES)), np.nan) for _ in range(2))
    sscale = np.full((len(axes.panels), len(HP_NAMES)), "", dtype=object)
    for pi, p in enumerate(plan.panels):
        for dim in p.grid.search:
            j = HP_NAMES.index(dim.name)
            smin[pi, j], smax[pi, j], sscale[pi, j] = dim.min, dim.max, dim.scale
    return smin, smax, sscale


TRIAL_DIMS = ("panel", "sparsity", "batch_size", "trial")
SEED_DIMS = ("panel", "seed") + TRIAL_DIMS[1:]  # the replicate axis after the panel
STATUS_FLAGS = {"flag_values": np.array(list(STATUS.values()), np.int8), "flag_meanings": " ".join(STATUS)}


def _search_variables(searches, replicates):
    """The dataset's variables of the searches: K*, best trial, status and steps, for
    replicate 0 and by seed."""
    status, steps, k_star, best = searches
    status_s, steps_s, k_star_s, best_s = replicates
    return {
        "steps_to_result": (TRIAL_DIMS[:3], k_star, {
            "long_name": "steps-to-result K*: fewest steps to reach the goal error over trials "
                         "(NaN: no trial reached it, or not every trial has run)",
            "units": "steps"}),
        "best_trial": (TRIAL_DIMS[:3], best, {"long_name": "trial achieving K* (-1: none)"}),
        "status": (TRIAL_DIMS, status, {"long_name": "trial outcome", **STATUS_FLAGS}),
        "steps": (TRIAL_DIMS, steps, {"long_name": "training steps run (-1: not run)"}),
        "steps_to_result_by_seed": (SEED_DIMS[:4], k_star_s, {
            "long_name": "steps_to_result of each replicate search (seed: its figure seed)",
            "units": "steps"}),
        "best_trial_by_seed": (SEED_DIMS[:4], best_s, {"long_name": "best_trial of each replicate search"}),
        "status_by_seed": (SEED_DIMS, status_s, {
            "long_name": "status of each replicate search's trials", **STATUS_FLAGS}),
        "steps_by_seed": (SEED_DIMS, steps_s, {
            "long_name": "steps of each replicate search's trials (-1: not run)"}),
    }


def _trial_variables(trial_arrays, eval_step):
    """The dataset's variables of each trial: wall time, validation examples read, record id,
    metaparameters, evaluation steps and validation curves."""
    wall, run_ids, evaluated, hps, curve, exact = trial_arrays
    return {
        "wall_time": (TRIAL_DIMS, wall, {"long_name": "trial wall time", "units": "s"}),
        "examples_evaluated": (TRIAL_DIMS, evaluated, {
            "long_name": "validation examples classified by the trial's evaluations (-1: not recorded)"}),
        "run_id": (TRIAL_DIMS, run_ids, {"long_name": "id of the trial record results/runs/<id[:2]>/<id>.json ('': not run)"}),
        **{n: (TRIAL_DIMS, v, {"long_name": f"sampled {n.replace('_', ' ')} (NaN: not searched)"})
           for n, v in hps.items() if not np.all(np.isnan(v)) or n in ("learning_rate", "momentum")},
        "eval_step": (("panel", "batch_size", "eval"), eval_step, {
            "long_name": "training step of each evaluation (-1: padding)"}),
        "val_error": (TRIAL_DIMS + ("eval",), curve, {
            "long_name": "validation error: exact, or a lower bound where val_error_exact is 0 "
                         "(NaN: not evaluated)"}),
        "val_error_exact": (TRIAL_DIMS + ("eval",), exact, {
            "long_name": "1: val_error counted over the whole split; 0: counting stopped once "
                         "the goal was missed, val_error is a lower bound above the goal; -1: padding",
            "flag_values": np.array([-1, 0, 1], np.int8),
            "flag_meanings": "padding lower_bound exact"}),
    }


def _panel_variables(plan, search_space):
    """The dataset's variables of each panel: its goal, searched ranges and workload."""
    smin, smax, sscale = search_space
    return {
        "goal_error": (("panel",), np.array([p.panel.goal_error for p in plan.panels])),
        "grid_trials": (("panel",), np.array([p.grid.trials for p in plan.panels], np.int64), {
            "long_name": "trials of each panel's search: the trial axis is the longest panel's, "
                         "and a panel's trial indices at or beyond its own count are not part of it"}),
        "search_min": (("panel", "hp"), smin, {"long_name": "lower end of the searched range (NaN: not searched)"}),
        "search_max": (("panel", "hp"), smax, {"long_name": "upper end of the searched range (NaN: not searched)"}),
        "search_scale": (("panel", "hp"), sscale, {"long_name": "log | linear | reverse_log ('': not searched)"}),
        **{k: (("panel",), np.array([getattr(p.panel, k) for p in plan.panels], dtype=object))
           for k in ("dataset", "model", "optimizer", "schedule")},
    }


def collect(spec, plan, records, *, by_seed=None):
    """Build the results dataset from `records`: {(panel, sparsity, batch, trial): TrialRecord}.

    `by_seed`: {figure seed: records} of every replicate search (repro.plan.replicate_seeds,
    replicate 0 -- `records` -- first), read into the *_by_seed variables; default: `records`
    alone, under the spec's seed. Every other variable is `records`' (replicate 0)."""
    by_seed = {spec.seed: records} if by_seed is None else by_seed
    axes = _Axes.of(plan=plan)
    ds = xr.Dataset(
        {**_search_variables(searches=_searches(plan=plan, records=records, axes=axes),
                             replicates=_replicates(plan=plan, by_seed=by_seed, axes=axes)),
         **_trial_variables(trial_arrays=_trial_arrays(records=records, axes=axes),
                            eval_step=_eval_steps(plan=plan, axes=axes)),
         **_panel_variables(plan=plan, search_space=_search_space(plan=plan, axes=axes))},
        coords={"panel": np.array(axes.panels, dtype=object), "sparsity": axes.sparsities,
                "batch_size": np.array(axes.batches, np.int64), "trial": np.arange(axes.trials),
                "seed": np.array(list(by_seed), np.int64),
                "eval": np.arange(axes.n_eval), "hp": np.array(HP_NAMES, dtype=object)},
        attrs={**provenance(spec), "grid": plan.grid_name},
    )
    ds.attrs["trials_sha256"] = trials_checksum(ds)
    return ds


TRIAL_VARIABLES = ("steps_to_result", "best_trial", "status", "steps", "run_id", *HP_NAMES, "grid_trials",
                   "eval_step", "val_error", "val_error_exact",
                   "seed", "steps_to_result_by_seed", "best_trial_by_seed", "status_by_seed",
                   "steps_by_seed")  # older files lack the replicate ones: skipped


def trials_checksum(ds):
    """sha256 over the trial data (docs/results-format.md says how to recompute it)."""
    h = hashlib.sha256()
    for name in TRIAL_VARIABLES:
        if name in ds:
            v = ds[name].values
            data = "\x1f".join(map(str, v.ravel())).encode() if v.dtype.kind in "OUS" else \
                np.ascontiguousarray(v).tobytes()
            h.update(name.encode() + b"\0" + str(v.shape).encode() + b"\0" + data)
    return h.hexdigest()


def write_dataset(ds, path):
    """Write `ds` as netCDF-4 atomically."""
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4",
                     encoding={"val_error": {"zlib": True, "complevel": 4}} if "val_error" in ds else None)


def open_results(path, spec=None, grid="reduced"):
    """Open a results file; a missing, unreadable, altered or out-of-date one is a UsageError.

    With `spec`, the file must have been built from that spec file as it is now (its sha256).
    Every error says how to rebuild the file from the stored trial records, which trains nothing.
    """
    path = pathlib.Path(path)
    rebuild = (f"rebuild it from the stored trials (trains nothing): python -m repro collect "
               f"{spec.path if spec else 'SPEC'}{'' if grid == 'reduced' else f' --grid {grid}'}")
    if not path.exists():
        raise UsageError(path, None, "no results file", "run `python -m repro run SPEC` first")
    try:
        ds = xr.load_dataset(path)
    except Exception as e:  # netCDF4/HDF5 raise many types for a truncated or foreign file
        raise UsageError(path, None, f"cannot read results ({type(e).__name__}: {e})",
                         rebuild) from None
    if "trials_sha256" in ds.attrs and ds.attrs["trials_sha256"] != trials_checksum(ds):
        raise UsageError(path, "trials_sha256", "the trial data do not match the file's checksum "
                         "(the file was altered or damaged)", rebuild)
    if spec is not None and ds.attrs.get("spec_sha256") != spec.sha256:
        raise UsageError(path, "spec_sha256", f"was built from another version of {spec.path} "
                         f"(sha256 {str(ds.attrs.get('spec_sha256'))[:12]}..., the spec is now "
                         f"{spec.sha256[:12]}...)", rebuild + "; or `repro run` to train what is new")
    return ds
