"""Trial records (one JSON file per finished trial) and the collected xarray/netCDF dataset.

Records are the source of truth: each is written atomically before the next trial starts, so
a killed run loses at most the trial in flight. `results/<figure>.nc` is rebuilt from them.
Layout of the netCDF file: docs/results-format.md.
"""
import datetime
import hashlib
import json
import os
import pathlib
import subprocess
import tempfile
from importlib import metadata

import numpy as np
import xarray as xr

from . import __version__
from .errors import UsageError

STATUS = {"not_run": 0, "complete": 1, "incomplete": 2, "infeasible": 3, "capped": 4}
HP_NAMES = ("learning_rate", "momentum", "decay_steps", "end_factor")
PACKAGES = ("tensorflow-cpu", "tensorflow", "keras", "keras-tuner", "numpy", "scipy", "xarray",
            "netCDF4", "matplotlib")


def atomic_write(path, data: bytes):
    """Write `data` to `path` via a temporary file in the same folder, fsync and rename."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def run_id(identity):
    """Stable id of a run from everything that determines its outcome."""
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


class RunStore:
    """Finished trials as results/runs/<id[:2]>/<id>.json, shared by every figure."""

    def __init__(self, root):
        self.root = pathlib.Path(root) / "runs"

    def path(self, rid):
        return self.root / rid[:2] / f"{rid}.json"

    def get(self, rid):
        """The record for run `rid`, or None if it has not finished."""
        p = self.path(rid)
        if not p.exists():
            return None
        try:
            return json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UsageError(p, None, f"corrupt trial record ({e})",
                             "delete the file; the trial will be re-run") from None

    def put(self, rid, record):
        atomic_write(self.path(rid), json.dumps(record, indent=1).encode())


def capped_view(record, cap):
    """A record as it would read had the trial been stopped after step `cap` (None: no cap).

    Returns None when the record cannot answer (it was itself capped below `cap`). Training is
    deterministic and evaluation steps are fixed, so a longer run answers any shorter cap.
    """
    rcap = record.get("cap")
    if rcap is not None and (cap is None or cap > rcap):
        return None
    if cap is None:
        return record
    ended = record["steps_to_result"] if record["status"] == "complete" else record["steps"]
    if record["status"] != "capped" and ended <= cap:
        return record  # it stopped on its own before the cap
    keep = [i for i, s in enumerate(record["eval_steps"]) if s <= cap]
    return dict(record, status="capped", steps_to_result=None, cap=cap,
                steps=record["eval_steps"][keep[-1]] if keep else 0,
                eval_steps=[record["eval_steps"][i] for i in keep],
                val_errors=[record["val_errors"][i] for i in keep])


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


def collect(spec, plan, records):
    """Build the results dataset from `records`: {(panel, sparsity, batch, trial): record}."""
    panels = [p.panel.id for p in plan.panels]
    sparsities = sorted({s for p in plan.panels for s in p.grid.sparsities})
    batches = sorted({b for p in plan.panels for b in p.grid.batch_sizes})
    trials = max(p.grid.trials for p in plan.panels)
    n_eval = max(len(p.eval_steps) for p in plan.panels)
    shape4 = (len(panels), len(sparsities), len(batches), trials)
    status = np.zeros(shape4, np.int8)
    steps = np.full(shape4, -1, np.int64)
    wall = np.full(shape4, np.nan)
    hps = {n: np.full(shape4, np.nan) for n in HP_NAMES}
    curve = np.full(shape4 + (n_eval,), np.nan, np.float32)
    eval_step = np.full((len(panels), len(batches), n_eval), -1, np.int64)
    k_star = np.full(shape4[:3], np.nan)
    best = np.full(shape4[:3], -1, np.int64)
    for pi, p in enumerate(plan.panels):
        for bi, b in enumerate(batches):
            if b in p.grid.batch_sizes:
                eval_step[pi, bi, :len(p.eval_steps)] = p.eval_steps
    for (panel, s, b, t), r in records.items():
        idx = (panels.index(panel), sparsities.index(s), batches.index(b), t)
        status[idx] = STATUS[r["status"]]
        steps[idx] = r["steps"]
        wall[idx] = r["wall_time"]
        for n in HP_NAMES:
            if n in r["values"]:
                hps[n][idx] = r["values"][n]
        curve[idx][:len(r["val_errors"])] = r["val_errors"]
        k = r["steps_to_result"]
        j = idx[:3]
        if r["status"] == "complete" and (np.isnan(k_star[j]) or k < k_star[j]
                                          or (k == k_star[j] and t < best[j])):
            k_star[j], best[j] = k, t  # ties go to the lowest trial id
    dims4 = ("panel", "sparsity", "batch_size", "trial")
    ds = xr.Dataset(
        {
            "steps_to_result": (dims4[:3], k_star, {
                "long_name": "steps-to-result K*: fewest steps to reach the goal error over trials",
                "units": "steps"}),
            "best_trial": (dims4[:3], best, {"long_name": "trial achieving K* (-1: none)"}),
            "status": (dims4, status, {
                "long_name": "trial outcome",
                "flag_values": np.array(list(STATUS.values()), np.int8),
                "flag_meanings": " ".join(STATUS)}),
            "steps": (dims4, steps, {"long_name": "training steps run (-1: not run)"}),
            "wall_time": (dims4, wall, {"long_name": "trial wall time", "units": "s"}),
            **{n: (dims4, v, {"long_name": f"sampled {n.replace('_', ' ')} (NaN: not searched)"})
               for n, v in hps.items() if not np.all(np.isnan(v)) or n in ("learning_rate", "momentum")},
            "eval_step": (("panel", "batch_size", "eval"), eval_step, {
                "long_name": "training step of each evaluation (-1: padding)"}),
            "val_error": (dims4 + ("eval",), curve, {
                "long_name": "error on the whole validation split (NaN: not evaluated)"}),
            "goal_error": (("panel",), np.array([p.panel.goal_error for p in plan.panels])),
            **{k: (("panel",), np.array([getattr(p.panel, k) for p in plan.panels], dtype=object))
               for k in ("dataset", "model", "optimizer", "schedule")},
        },
        coords={"panel": np.array(panels, dtype=object), "sparsity": sparsities,
                "batch_size": np.array(batches, np.int64), "trial": np.arange(trials),
                "eval": np.arange(n_eval)},
        attrs={**provenance(spec), "grid": plan.grid_name},
    )
    return ds


def write_dataset(ds, path):
    """Write `ds` as netCDF-4 atomically (temporary file in the same folder, then rename)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        enc = {"val_error": {"zlib": True, "complevel": 4}}
        ds.to_netcdf(tmp, engine="netcdf4", encoding=enc)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def open_results(path):
    """Open a results file, with a clear error when it is missing or unreadable."""
    path = pathlib.Path(path)
    if not path.exists():
        raise UsageError(path, None, "no results file", "run `python -m repro run SPEC` first")
    try:
        return xr.load_dataset(path)
    except Exception as e:  # netCDF4/HDF5 raise many types for a truncated or foreign file
        raise UsageError(path, None, f"cannot read results ({type(e).__name__}: {e})",
                         "delete it and rerun `python -m repro run SPEC`; trials are kept in results/runs") from None
