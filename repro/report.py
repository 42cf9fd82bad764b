"""One reproduction report a reader can open: every figure, verdict, interval and paper number.

``python -m repro report [specs/] [--results DIR] [--out report/]`` reads the stored results
only (it never trains) and writes, into one self-contained folder:

* ``index.html`` -- a static page (no JavaScript, no network) that opens from disk;
* ``report.md`` -- the same content as Markdown;
* ``claims.json`` -- the verdicts exactly as ``python -m repro verify --json`` prints them;
* ``figures/<figure>.png`` -- each figure, copied from ``figures/`` (or drawn from the stored
  results when it is missing or older than its results file).

For each figure: the figure, one row per claim (verdict, measured value with its interval,
tolerance, the paper's number and where the paper gives it, and for NOT-RUN the command that
would run it), the K* table of each panel (batch size x sparsity, with the best trial's
metaparameters) and the Prop. 4.1 fits (c1, c2, B_crit with bootstrap intervals). Then the
provenance: commit, packages, machine, checksums of specs and results files, trials and time.

Exit status (:attr:`Report.exit_code`): 2 when some results file is not current (built from
another version of its spec, altered, or unreadable: the page says so and how to rebuild it,
as ``verify`` exits 2 for such a file), else 1 when some claim FAILs, else 0. A missing results
file is not an error: its claims are NOT-RUN with the command that runs them, as in ``verify``.
A bad spec or golden file is a usage error: nothing is written.

The folder is built beside its destination and swapped in whole, so a report is never left
half-written; an existing folder is only replaced if an earlier report wrote it.
"""
from __future__ import annotations

import datetime
import hashlib
import html
import math
import os
import pathlib
import platform
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata

import numpy as np

from . import __version__, claims, spec as spec_mod, store, verify
from .errors import UsageError

MARKER = ".repro-report"  # written into every report folder: only such a folder is replaced
MIN_FIT_POINTS = 3  # repro.analysis.MIN_FIT_POINTS, without importing scipy up front
N_BOOT = 100  # bootstrap replicates per fit: enough for a 95 % interval, fast on 2 cores
HP_SHORT = {"learning_rate": "lr", "momentum": "m", "decay_steps": "decay", "end_factor": "end"}
PAPER_KEYS = ("paper_value", "paper_band", "paper_values", "paper_ratios")

CURRENT, STALE, MISSING = "current", "not current", "missing"
# trial outcomes (store.STATUS codes) as a K* cell counts them
OUTCOMES = ((1, "reached"), (4, "capped"), (2, "missed"), (3, "infeasible"))


@dataclass
class FigureSection:
    """Everything the page shows for one spec."""

    spec: spec_mod.Spec
    results_file: pathlib.Path
    state: str  # CURRENT | STALE | MISSING
    problem: str = ""  # STALE: what is wrong with the file (one line, as the CLI prints it)
    why: str = ""  # STALE: the problem alone, without file and fix
    stale_file: str = ""  # STALE: the file that is not current (this figure's, or one a claim reads)
    rebuild: str = ""  # STALE / MISSING: the command that makes the file current
    claims: list = field(default_factory=list)  # ClaimResult, in spec order
    golden: dict = field(default_factory=dict)
    golden_file: pathlib.Path | None = None  # None: the spec declares no claims and has none
    image: str = ""  # path of the PNG inside the report folder ("" none)
    image_note: str = ""  # where the image came from, or how to draw it
    kstar: list = field(default_factory=list)  # one dict per panel
    fits: list = field(default_factory=list)  # one dict per (panel, sparsity)
    provenance: dict = field(default_factory=dict)


@dataclass
class Report:
    """What `build_report` wrote and how it ended."""

    out: pathlib.Path
    sections: list
    results: list  # every ClaimResult, in spec order
    exit_code: int
    seconds: float
    problems: list  # one line per results file that is not current

    @property
    def index(self) -> pathlib.Path:
        return self.out / "index.html"

    def counts(self) -> dict:
        return {v: sum(r.status == v for r in self.results) for v in claims.VERDICTS}


# --------------------------------------------------------------------------- formatting

def _num(x, digits=3) -> str:
    """A number for a cell: 3 significant digits, thousands separated, NaN -> 'n/a'."""
    if x is None:
        return "n/a"
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def _interval(ci) -> str:
    """'[lo, hi]' or 'n/a'."""
    if ci is None or len(ci) != 2 or any(v is None or (isinstance(v, float) and math.isnan(v)) for v in ci):
        return "n/a"
    return f"[{_num(ci[0])}, {_num(ci[1])}]"


def _seconds(s) -> str:
    if s is None or (isinstance(s, float) and math.isnan(s)):
        return "not recorded"
    s = float(s)
    return f"{s:,.0f} s ({s / 60:.1f} min)" if s >= 60 else f"{s:.1f} s"


def _generic(v) -> str:
    """A machine-readable value from ClaimResult.values as short text."""
    if isinstance(v, (list, tuple)):
        if len(v) == 2 and all(isinstance(x, (int, float)) or x is None for x in v):
            return _interval(v)
        return ", ".join(_generic(x) for x in v)
    if isinstance(v, dict):
        return "; ".join(f"{k} {_generic(x)}" for k, x in v.items())
    if isinstance(v, (int, float, np.generic)) and not isinstance(v, bool):
        return _num(v)
    return str(v)


def paper_text(result, tol) -> str:
    """The paper's number: the claim's own `paper` text, else the golden file's paper_* keys."""
    if result.paper:
        return result.paper
    if not tol:
        return ""
    parts = []
    for key in PAPER_KEYS:
        if key not in tol:
            continue
        v = tol[key]
        if key == "paper_band":
            parts.append(f"{_num(v[0])} to {_num(v[1])}")
        elif key == "paper_ratios":
            parts.append(", ".join(f"{k} x{_num(x)}" for k, x in v.items()))
        elif isinstance(v, list):
            parts.append(", ".join(_num(x) for x in v))
        else:
            parts.append(_num(v))
    return "; ".join(parts)


def statistic_text(result) -> str:
    """`values["statistic"]` / `values["interval"]` when the claim gives them, as text."""
    v = result.values or {}
    parts = []
    if "statistic" in v:
        parts.append(f"statistic {_generic(v['statistic'])}")
    if "interval" in v:
        parts.append(f"interval {_generic(v['interval'])}")
    return ", ".join(parts)


_COMMAND = re.compile(r"python -m repro \S+")


def run_command(result, spec, grid, results_dir) -> str:
    """For a NOT-RUN claim: the command that would run it, unless its detail already has one."""
    if result.status != claims.NOT_RUN or _COMMAND.search(result.detail or ""):
        return ""
    extra = "" if str(results_dir) == "results" else f" --results {results_dir}"
    if "cannot show this claim" in (result.detail or ""):
        others = [g for g in _grid_names(spec) if g != grid]
        if others:
            return f"python -m repro run {spec.path} --grid {others[-1]} --panel {result.panel}{extra}"
    g = "" if grid == "reduced" else f" --grid {grid}"
    return f"python -m repro run {spec.path}{g} --panel {result.panel}{extra}"


def _grid_names(spec):
    names = []
    for p in spec.panels:
        names += [g for g in p.grids if g not in names]
    return names


# --------------------------------------------------------------------------- data

def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _sel(da, panel, batch_size, sparsity):
    """One (panel, batch size, sparsity) cell of `da` (sparsity matched to 1e-9); None if absent."""
    try:
        return da.sel(panel=panel, batch_size=batch_size).sel(sparsity=sparsity, method="nearest",
                                                               tolerance=1e-9)
    except (KeyError, ValueError):
        return None


def kstar_tables(ds, spec, grid):
    """Per panel: K* over (sparsity, batch size), each cell with the best trial's metaparameters."""
    tables = []
    panels_in = [str(p) for p in ds["panel"].values]
    for panel in spec.panels:
        g = panel.grids.get(grid)
        batches = list(g.batch_sizes) if g else [int(b) for b in ds["batch_size"].values]
        sparsities = list(g.sparsities) if g else [float(s) for s in ds["sparsity"].values]
        trials = g.trials if g else ds.sizes.get("trial", 0)
        table = {"panel": panel.id, "title": panel.title, "goal": panel.goal_error, "trials": trials,
                 "batch_sizes": batches, "sparsities": sparsities, "cells": {}, "note": ""}
        if panel.id not in panels_in or not bool((ds["status"].sel(panel=panel.id) > 0).any()):
            table["note"] = (f"Panel ({panel.id}) has no stored trial: not run; run: python -m repro "
                             f"run {spec.path}" + ("" if grid == "reduced" else f" --grid {grid}")
                             + f" --panel {panel.id}")
            tables.append(table)
            continue
        hps = [n for n in store.HP_NAMES if n in ds]
        for s in sparsities:
            for b in batches:
                table["cells"][(s, b)] = _kstar_cell(ds, panel.id, s, b, hps, trials)
        tables.append(table)
    return tables


def _kstar_cell(ds, pid, s, b, hps, trials):
    """{"k": K* or None, "text": main text, "sub": best trial's metaparameters or why no K*}."""
    k = _sel(ds["steps_to_result"], panel=pid, batch_size=b, sparsity=s)
    if k is None:
        return {"k": None, "text": "-", "sub": "not in the results"}
    k = float(k)
    status = _sel(ds["status"], panel=pid, batch_size=b, sparsity=s).values[:trials]
    ran = int((status > 0).sum())
    outcomes = ", ".join(f"{int((status == code).sum())} {word}" for code, word in OUTCOMES
                         if (status == code).any())
    if math.isnan(k):
        if ran == 0:
            why = "not run"
        elif ran < trials:
            why = f"{ran} of {trials} trials run: {outcomes}"
        else:
            why = f"none of {trials} trials reached the goal: {outcomes}"
        return {"k": None, "text": "-", "sub": why}
    best = int(_sel(ds["best_trial"], panel=pid, batch_size=b, sparsity=s))
    parts = []
    for n in hps:
        v = float(_sel(ds[n], panel=pid, batch_size=b, sparsity=s).values[best])
        if not math.isnan(v):
            text = str(int(round(v))) if n == "decay_steps" else _num(v, 4 if n == "momentum" else 3)
            parts.append(f"{HP_SHORT[n]} {text}")
    return {"k": k, "text": f"{k:,.0f}",
            "sub": f"trial {best}" + (": " + ", ".join(parts) if parts else "") + f"; {outcomes}"}


def fit_rows(ds, spec, n_boot):
    """Prop. 4.1 fits (K* = c1/B + c2) per panel and sparsity, with the 95 % intervals the
    claims use (repro.evidence: quantisation, trials, seeds)."""
    from . import evidence
    rows = []
    panels_in = [str(p) for p in ds["panel"].values]
    for panel in spec.panels:
        if panel.id not in panels_in or not bool(ds["steps_to_result"].sel(panel=panel.id).notnull().any()):
            continue
        for s, f in evidence.fit_intervals(ds, panel.id, n_boot=n_boot).items():
            rows.append({"panel": panel.id, "sparsity": s, **f})
    return rows


def machine() -> dict:
    """Cores, memory, devices of this machine (no TensorFlow import)."""
    mem = "unknown"
    try:
        for line in pathlib.Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 2 ** 20:.1f} GiB"
                break
    except (OSError, ValueError, IndexError):
        pass
    cpu = platform.processor() or ""
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    devices = "CPU only"
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
            gpus = [ln.strip() for ln in out.stdout.splitlines() if ln.strip()]
            if out.returncode == 0 and gpus:
                devices = "; ".join(gpus)
        except (OSError, subprocess.SubprocessError):
            pass
    return {"cores": os.cpu_count() or "unknown", "memory": mem, "cpu": cpu or "unknown",
            "devices": devices, "platform": platform.platform(), "python": platform.python_version()}


def code_state() -> dict:
    """Commit and dirty flag of the repro checkout this report was built with."""
    root = pathlib.Path(__file__).resolve().parent.parent

    def git(*args):
        try:
            r = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
            return r.stdout.strip() if r.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):
            return None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return {"commit": "unknown", "dirty": "unknown"}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": "unknown" if status is None else ("yes" if status else "no")}


def package_versions() -> dict:
    names = ("tensorflow", "tensorflow-cpu", "keras", "keras-tuner", "numpy", "scipy", "xarray",
             "netCDF4", "matplotlib")
    out = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = "not installed"
    if out.get("tensorflow-cpu", "not installed") != "not installed" or out["tensorflow"] != "not installed":
        out = {k: v for k, v in out.items() if not (k.startswith("tensorflow") and v == "not installed")}
    return out


def _trial_provenance(ds, spec, grid) -> dict:
    """Trials stored, trained/reused and time, from the results file."""
    a = ds.attrs
    smooth = a.get("kind") == "smoothness"
    panels = {}  # panel id -> (stored, total) trials (or runs)
    panels_in = [str(x) for x in ds["panel"].values]
    for p in spec.panels:
        g = p.grids.get(grid)
        if g is None:
            continue
        if smooth:
            n = int((ds["status"].sel(panel=p.id) != "not_run").sum()) if p.id in panels_in else 0
            panels[p.id] = (n, len(g.sparsities))
        else:
            n = int((ds["status"].sel(panel=p.id) > 0).sum()) if p.id in panels_in else 0
            panels[p.id] = (n, len(g.batch_sizes) * len(g.sparsities) * g.trials)
    stored, total = sum(n for n, _ in panels.values()), sum(t for _, t in panels.values())
    trial_time = float(np.nansum(ds["wall_time"].values)) if "wall_time" in ds else math.nan
    trained, reused = a.get("trials_trained"), a.get("trials_reused")
    return {
        "unit": "runs" if smooth else "trials", "panels": panels,
        "stored": stored, "total": total,
        "trained": "not recorded" if trained is None else int(trained),
        "reused": "not recorded" if reused is None else int(reused),
        "run_wall": _seconds(a.get("run_wall_seconds")),
        "trial_time": _seconds(trial_time),
        "created": str(a.get("created", "unknown")).replace("T", " ").replace("+00:00", " UTC"),
        "git_commit": a.get("git_commit", "unknown"),
        "repro_version": a.get("repro_version", "unknown"), "grid": a.get("grid", grid),
        "capping": {1: "on", 0: "off"}.get(a.get("capping"), "not recorded"),
        "trials_sha256": a.get("trials_sha256", ""),
        "panels_not_run": a.get("panels_not_run", ""),
    }


# --------------------------------------------------------------------------- one figure

def _figure_image(section, ds, figures_dir, work, grid):
    """Copy figures/<stem>.png into the report, or draw it from current results; set the note."""
    spec = section.spec
    stem = section.results_file.stem
    png = pathlib.Path(figures_dir) / f"{stem}.png"
    target = work / "figures" / f"{stem}.png"
    plot = f"python -m repro plot {spec.path}" + ("" if grid == "reduced" else f" --grid {grid}") + \
        ("" if str(section.results_file.parent) == "results" else f" --results {section.results_file.parent}") + \
        ("" if str(figures_dir) == "figures" else f" --figures {figures_dir}")
    older = png.exists() and section.results_file.exists() and \
        png.stat().st_mtime < section.results_file.stat().st_mtime
    if png.exists() and (not older or ds is None):
        shutil.copyfile(png, target)
        section.image = f"figures/{stem}.png"
        section.image_note = f"{png}" + (
            "; drawn from results that are not current: redraw after rebuilding them" if section.state == STALE
            else ("; older than its results file: `" + plot + "` redraws it") if older else "")
        return
    if ds is None:
        section.image_note = f"no figure: {png} does not exist; " + (
            "after rebuilding the results" if section.state == STALE else "after the results exist") + \
            f", draw it with: {plot}"
        return
    from . import analysis, figures
    fits = {} if spec.kind in spec_mod.SMOOTHNESS_KINDS else \
        {p: analysis.fits(ds, p) for p in map(str, ds.panel.values)}
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        paths = figures.render(ds, pathlib.Path(tmp) / stem, kind=spec.kind, fits=fits)
        shutil.copyfile(next(p for p in paths if p.suffix == ".png"), target)
    section.image = f"figures/{stem}.png"
    section.image_note = (f"drawn for this report from {section.results_file} "
                          f"({png} {'is older than the results' if older else 'does not exist'}; "
                          f"`{plot}` writes it)")


def figure_section(spec, *, grid, results_dir, figures_dir, golden, n_boot, work) -> FigureSection:
    """Verdicts, figure, K* tables, fits and provenance of one spec, from its stored results."""
    golden_table = verify.load_checked_golden(spec, golden)  # a bad golden file: UsageError
    path = spec_mod.results_path(results_dir, spec, grid)
    section = FigureSection(spec, path, CURRENT, golden=golden_table,
                            golden_file=None if verify.needs_no_golden(spec, golden)
                            else verify.golden_path(spec, golden))
    ds = None
    if not path.exists():
        section.state = MISSING
        section.rebuild = f"python -m repro run {spec.path}" + ("" if grid == "reduced" else f" --grid {grid}") + \
            ("" if str(results_dir) == "results" else f" --results {results_dir}")
        section.claims = verify.verify_spec(spec, grid=grid, results_dir=results_dir, golden=golden)
    else:
        try:
            ds = store.open_results(path, spec, grid)
            section.claims = verify.verify_spec(spec, grid=grid, results_dir=results_dir, golden=golden)
        except UsageError as e:
            section.state, section.problem, section.why, section.rebuild = STALE, str(e), e.problem, e.fix
            section.stale_file = e.file
            why = f"{e.file} is not current (see above); {e.fix}"
            section.claims = [claims.not_run(spec.id, p.id, c, why) for p in spec.panels for c in p.claims]
            try:  # show what the stale file holds, clearly marked
                import xarray as xr
                ds = xr.load_dataset(path)
            except Exception:  # noqa: BLE001 (unreadable: nothing to show)
                ds = None
    if ds is not None:
        try:
            section.provenance = _trial_provenance(ds, spec, grid)
        except (KeyError, ValueError, TypeError):  # a foreign or damaged file: nothing to count
            section.provenance = {}
        if section.provenance:
            section.provenance["results_sha256"] = _sha256(path)
            section.provenance["results_spec_sha256"] = ds.attrs.get("spec_sha256", "")
    _figure_image(section, ds if section.state == CURRENT else None, figures_dir, work, grid)
    if ds is not None and section.state == CURRENT and spec.kind not in spec_mod.SMOOTHNESS_KINDS:
        section.kstar = kstar_tables(ds, spec, grid)
        section.fits = fit_rows(ds, spec, n_boot)
    return section


# --------------------------------------------------------------------------- the page

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1240px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { border-bottom: 2px solid #ccc; padding-top: .6em; }
h3 { margin-bottom: .3em; }
table { border-collapse: collapse; margin: .5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 3px 6px; vertical-align: top; text-align: left; }
th { background: #f2f2f2; } td.num, th.num { text-align: right; white-space: nowrap; }
.verdict { font-weight: bold; white-space: nowrap; padding: 1px 5px; border-radius: 3px; }
.PASS { background: #d4f4d4; color: #145214; } .FAIL { background: #f9d0d0; color: #8a1111; }
.INCONCLUSIVE { background: #fff0c0; color: #6b5200; } .NOT-RUN { background: #e6e6e6; color: #444; }
.banner { padding: .6em 1em; border-radius: 4px; margin: .8em 0; }
.bad { background: #fbe3e3; border: 1px solid #d99; } .ok { background: #e6f5e6; border: 1px solid #9c9; }
.warn { background: #fff6db; border: 1px solid #e0c97a; }
.note { color: #555; font-size: .92em; } .sub { color: #666; font-size: .85em; display: block; }
code, pre { font: 12.5px/1.4 ui-monospace, monospace; background: #f6f6f6; }
pre { padding: .6em; overflow-x: auto; } td code { white-space: normal; word-break: break-word; }
img.figure { max-width: 100%; border: 1px solid #ddd; }
td.claimtext { max-width: 18em; } td.detail { max-width: 24em; font-size: .92em; }
td.notes { min-width: 22em; max-width: 30em; }
"""


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _commands(text) -> str:
    """Escaped text with each `python -m repro ...` command (up to ; or a bracket) in <code>."""
    out, last = [], 0
    for m in re.finditer(r"python -m repro [^;()]*[^;()\s]", text or ""):
        out += [_e(text[last:m.start()]), f"<code>{_e(m.group())}</code>"]
        last = m.end()
    return "".join(out + [_e((text or "")[last:])])


def _link(target, out) -> str:
    """Relative path from the report folder to `target` (as a URL path)."""
    return os.path.relpath(pathlib.Path(target).resolve(), pathlib.Path(out).resolve()).replace(os.sep, "/")


def _partial_text(section) -> str:
    """For current results with trials still to run: which panels, and what that means."""
    p = section.provenance
    if section.state != CURRENT or not p or p["stored"] >= p["total"]:
        return ""
    unit = p["unit"]
    none = [pid for pid, (n, t) in p["panels"].items() if n == 0]
    some = [f"({pid}) {n} of {t}" for pid, (n, t) in p["panels"].items() if 0 < n < t]
    parts = []
    if some:
        parts.append("panel " + ", ".join(some))
    if none:
        parts.append("panel " + ", ".join(f"({pid})" for pid in none) + " not run")
    why = (" K* exists only at points whose every trial has run, so the claims read part of the grid."
           if some and unit == "trials" else "")
    g = "" if section.results_file.stem == section.spec.id else f" --grid {p['grid']}"
    res = "" if str(section.results_file.parent) == "results" else f" --results {section.results_file.parent}"
    return (f"Not complete: {p['stored']} of {p['total']} {unit} stored ({'; '.join(parts)}).{why} "
            f"To run the rest (stored {unit} are reused): python -m repro run {section.spec.path}{g}{res}")


def _trained(p) -> str:
    """'trained / reused' of the last run, or 'not recorded'."""
    if p["trained"] == p["reused"] == "not recorded":
        return "not recorded"
    return f"{p['trained']} / {p['reused']}"


def _show(path) -> str:
    """A path as a reader types it: relative to the current folder when below it."""
    path = pathlib.Path(path)
    try:
        return str(path.resolve().relative_to(pathlib.Path.cwd().resolve())) if path.is_absolute() else str(path)
    except ValueError:
        return str(path)


def _state_text(section) -> str:
    """The summary's results column: current (with how many trials are stored), NOT CURRENT, missing."""
    p = section.provenance
    if section.state == CURRENT and p:
        return f"current: {p['stored']} of {p['total']} {p['unit']}"
    return {CURRENT: "current", STALE: "NOT CURRENT", MISSING: "missing"}[section.state]


def render_html(report_data) -> str:
    """The page, from the dict `build_report` assembles."""
    d = report_data
    sections, results = d["sections"], d["results"]
    h = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
         f"<title>Reproduction report: {_e(d['title'])}</title>", f"<style>{CSS}</style></head><body>",
         f"<h1>Reproduction report</h1><p>{_e(d['title'])}. Grid <b>{_e(d['grid'])}</b>; built "
         f"{_e(d['built'])} from stored results only (nothing was trained). "
         f"Verdicts as <code>python -m repro verify --json</code> gives them: "
         f"<a href=\"claims.json\">claims.json</a>. Markdown: <a href=\"report.md\">report.md</a>.</p>"]
    counts = {v: sum(r.status == v for r in results) for v in claims.VERDICTS}
    if d["problems"]:
        h.append('<div class="banner bad"><b>Some results files are not current</b> (exit status 2); '
                 "their claims are NOT-RUN until they are rebuilt:<ul>" +
                 "".join(f"<li><code>{_e(p)}</code></li>" for p in d["problems"]) + "</ul></div>")
    h.append(f'<div class="banner {"bad" if counts[claims.FAIL] or d["problems"] else "ok"}">' +
             ", ".join(f'<span class="verdict {v}">{counts[v]} {v}</span>' for v in claims.VERDICTS) +
             f" over {len(results)} claims of {len(sections)} figures. "
             "NOT-RUN never counts as a pass or a failure; INCONCLUSIVE means the interval does not "
             "decide the claim.</div>")
    # summary table
    h.append("<h2 id=\"summary\">Summary</h2><table><tr><th>figure</th><th>title</th><th>results</th>" +
             "".join(f"<th>{v}</th>" for v in claims.VERDICTS) + "</tr>")
    for s in sections:
        c = {v: sum(r.status == v for r in s.claims) for v in claims.VERDICTS}
        h.append(f'<tr class="summary" data-figure="{_e(s.spec.id)}">'
                 f'<td><a href="#{_e(s.spec.id)}">{_e(s.spec.id)}</a></td>'
                 f"<td>{_e(s.spec.title)}</td><td>{_e(_state_text(s))}</td>" +
                 "".join(f'<td class="num">{c[v] if c[v] else ""}</td>' for v in claims.VERDICTS) + "</tr>")
    h.append('<tr><th colspan="3">all</th>' + "".join(f'<th class="num">{counts[v]}</th>' for v in claims.VERDICTS)
             + "</tr></table>")
    for s in sections:
        h += _html_section(s, d)
    h += _html_provenance(d)
    h.append(f"<p class=\"note\">Written by repro {_e(__version__)} (<code>python -m repro report</code>) "
             f"in {d['seconds']:.1f} s.</p></body></html>")
    return "\n".join(h)


def _html_section(s, d):
    spec, out = s.spec, d["out"]
    h = [f'<h2 id="{_e(spec.id)}">{_e(spec.id)}: {_e(spec.title)}</h2>']
    link = _link(s.results_file, out)
    if s.state == STALE:
        h.append(f'<div class="banner bad"><b>Results not current:</b> <code>{_e(s.stale_file)}</code> '
                 f"{_e(s.why)}.<br>To fix it: {_commands(s.rebuild)}</div>")
    elif s.state == MISSING:
        h.append(f'<div class="banner warn"><b>No results file</b> {_e(s.results_file)}. Run: '
                 f"<code>{_e(s.rebuild)}</code></div>")
    else:
        h.append(f'<p class="note">Results: <a href="{_e(link)}">{_e(s.results_file)}</a> '
                 f"(spec <code>{_e(_show(spec.path))}</code>, " + (
                     f"tolerances <code>{_e(_show(s.golden_file))}</code>)</p>" if s.golden_file
                     else "no claims, no tolerances)</p>"))
    partial = _partial_text(s)
    if partial:
        h.append(f'<div class="banner warn">{_commands(partial)}</div>')
    if s.image:
        h.append(f'<p><img class="figure" src="{_e(s.image)}" alt="{_e(spec.id)}: {_e(spec.title)}"><br>'
                 f'<span class="note">Figure: {_e(s.image_note)}</span></p>')
    else:
        h.append(f'<p class="note">{_e(s.image_note)}</p>')
    h.append("<h3>Claims</h3>")
    h += [f'<p class="note unchecked">{_e(line)}</p>' for line in _unchecked(spec)]
    if verify.declares_claims(spec):
        h.append("<table><tr><th>panel</th><th>claim</th><th>verdict</th><th>measured</th>"
                 "<th>tolerance</th><th>the paper (where)</th><th>notes / how to run</th></tr>")
    for r in s.claims:
        tol = claims.tolerance_for(s.golden, r.panel, r.claim) or {}
        source = r.source or tol.get("source", "")
        stat = statistic_text(r)
        cmd = run_command(r, spec, d["grid"], d["results_dir"])
        h.append(f'<tr class="claim" id="{_e(f"{r.figure}-{r.panel}-{r.claim}")}" data-figure="{_e(r.figure)}" '
                 f'data-panel="{_e(r.panel)}" data-claim="{_e(r.claim)}" data-status="{_e(r.status)}">'
                 f"<td>{_e(r.panel)}</td><td>{_e(r.claim)}</td>"
                 f'<td><span class="verdict {_e(r.status)}">{_e(r.status)}</span></td>'
                 f'<td class="claimtext"><span class="measured">{_e(r.measured)}</span>'
                 + (f'<span class="sub statistic">{_e(stat)}</span>' if stat else "") + "</td>"
                 f'<td class="claimtext tolerance">{_e(r.tolerance)}</td>'
                 f'<td class="detail"><b class="paper">{_e(paper_text(r, tol))}</b>'
                 f'<span class="sub source">{_e(source)}</span></td>'
                 f'<td class="detail notes">{_commands(r.detail)}'
                 + (f'<br>run: <code class="command">{_e(cmd)}</code>' if cmd else "") + "</td></tr>")
    if verify.declares_claims(spec):
        h.append("</table>")
    if spec.kind in spec_mod.SMOOTHNESS_KINDS:
        h.append('<p class="note">Smoothness runs (one training run per panel and sparsity at fixed '
                 "metaparameters): no K* table; the claims above read the measured L, Delta, beta "
                 "and loss.</p>")
    for t in s.kstar:
        h += _html_kstar(t)
    fitted = [f for f in s.fits if f["n_points"] >= MIN_FIT_POINTS]
    unfitted = [f for f in s.fits if f["n_points"] < MIN_FIT_POINTS]
    if s.fits:
        h.append("<h3>Prop. 4.1 fits: K* = c1/B + c2</h3>")
    if fitted:
        h.append("<table><tr><th>panel</th><th>sparsity</th>"
                 "<th>c1</th><th>95% interval</th><th>c2</th><th>95% interval</th>"
                 "<th>B_crit = c1/c2</th><th>95% interval</th><th>points</th><th>rms log residual</th></tr>")
        for f in fitted:
            ci = f["ci"]
            h.append(f'<tr class="fit"><td>{_e(f["panel"])}</td><td class="num">{f["sparsity"]:g}</td>'
                     f'<td class="num">{_num(f["c1"])}</td><td class="num">{_interval(ci["c1"])}</td>'
                     f'<td class="num">{_num(f["c2"])}</td><td class="num">{_interval(ci["c2"])}</td>'
                     f'<td class="num">{_num(f["b_crit"])}</td><td class="num">{_interval(ci["b_crit"])}</td>'
                     f'<td class="num">{f["n_points"]}</td><td class="num">{_num(f["rms_log_residual"])}</td></tr>')
        h.append(f'</table><p class="note">Least squares on log K* (repro.analysis.fit_prop41); '
                 f"intervals: {fitted[0]['n_boot']} bootstrap replicates resampling each point's trials "
                 "(K* is a minimum over trials, so c1's interval sits at or above the fit).</p>")
    if unfitted:
        h.append(f'<p class="note">No fit (it needs K* at {MIN_FIT_POINTS} batch sizes or more): ' +
                 _e("; ".join(f"panel ({f['panel']}) s={f['sparsity']:g} has {f['n_points']}" for f in unfitted))
                 + ".</p>")
    return h


def _unchecked(spec) -> list:
    """What the page says a spec does not check: the whole spec, or its panels without claims."""
    if not verify.declares_claims(spec):
        return ["Nothing to check: no panel of this study declares claims (it needs no golden "
                "file); what it measures is in the K* tables and fits below."]
    return verify.nothing_to_check(spec)


def _html_kstar(t):
    h = [f'<h3>K* of panel ({_e(t["panel"])}) {_e(t["title"])}</h3>',
         f'<p class="note">Goal error {_e(t["goal"])}; {t["trials"]} trials per point. Each cell: '
         "fewest steps to the goal, then the trial that reached it first and its metaparameters.</p>"]
    if t["note"]:
        h.append(f'<p class="note">{_commands(t["note"])}</p>')
        return h
    h.append('<table class="kstar"><tr><th>sparsity \\ B</th>' +
             "".join(f'<th class="num">{b}</th>' for b in t["batch_sizes"]) + "</tr>")
    for s in t["sparsities"]:
        h.append(f'<tr><th>{s:g}</th>' + "".join(
            f'<td class="num">{_e(c["text"])}<span class="sub">{_e(c["sub"])}</span></td>'
            for c in (t["cells"][(s, b)] for b in t["batch_sizes"])) + "</tr>")
    h.append("</table>")
    return h


def _html_provenance(d):
    h = ['<h2 id="provenance">Provenance</h2>', "<table>"]
    code = d["code"]
    rows = [("repro commit", f"{code['commit']} (uncommitted changes: {code['dirty']})"),
            ("repro version", __version__),
            ("command", d["command"]),
            ("machine", f"{d['machine']['cores']} cores ({d['machine']['cpu']}), "
                        f"{d['machine']['memory']} memory; devices: {d['machine']['devices']}"),
            ("platform", f"{d['machine']['platform']}, Python {d['machine']['python']}"),
            ("packages", ", ".join(f"{k} {v}" for k, v in d["packages"].items()))]
    h += [f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows]
    h.append("</table>")
    if d["problems"] or any(s.state == MISSING for s in d["sections"]):
        h.append("<h3>Results files missing or not current</h3><ul>")
        for s in d["sections"]:
            if s.state == STALE:
                h.append(f"<li><code>{_e(s.results_file)}</code>: not current ({_e(s.problem)}). "
                         f"Rebuild: <code>{_e(s.rebuild)}</code></li>")
            elif s.state == MISSING:
                h.append(f"<li><code>{_e(s.results_file)}</code>: missing. Run: <code>{_e(s.rebuild)}</code></li>")
        h.append("</ul>")
    h.append("<h3>Per figure</h3><table><tr><th>figure</th><th>spec sha256</th><th>results file</th>"
             "<th>results sha256</th><th>trials stored</th><th>trained / reused by the last run</th>"
             "<th>run wall time</th><th>trial time (sum)</th><th>written</th><th>at commit</th></tr>")
    for s in d["sections"]:
        p = s.provenance
        link = _link(s.results_file, d["out"])
        res = f'<a href="{_e(link)}">{_e(s.results_file)}</a>' if s.results_file.exists() else \
            f"{_e(s.results_file)} (missing)"
        if not p:
            h.append(f"<tr><td>{_e(s.spec.id)}</td><td><code>{_e(s.spec.sha256[:12])}</code></td><td>{res}</td>"
                     '<td colspan="7" class="note">' +
                     _e("no readable results" if s.state != MISSING else "not run") + "</td></tr>")
            continue
        spec_note = "" if p["results_spec_sha256"] == s.spec.sha256 else \
            f" (file built from {str(p['results_spec_sha256'])[:12]})"
        h.append(f"<tr><td>{_e(s.spec.id)}</td><td><code>{_e(s.spec.sha256[:12])}</code>{_e(spec_note)}</td>"
                 f"<td>{res}</td><td><code>{_e(p['results_sha256'][:12])}</code></td>"
                 f'<td class="num">{p["stored"]} of {p["total"]} {p["unit"]}</td>'
                 f"<td>{_e(_trained(p))}</td><td>{_e(p['run_wall'])}</td>"
                 f"<td>{_e(p['trial_time'])}</td><td>{_e(p['created'])}</td>"
                 f"<td><code>{_e(str(p['git_commit'])[:12])}</code></td></tr>")
    h.append("</table><p class=\"note\">Checksums are sha256 (first 12 hex digits shown; full values in "
             "report.md). Trial time sums each trial's wall time over all workers; trained / reused "
             "and run wall time are recorded by <code>python -m repro run</code> (a file rebuilt by "
             "<code>collect</code> has none).</p>")
    h.append("<h3>Open it yourself</h3><p>The results are plain netCDF (layout: "
             "<code>docs/results-format.md</code>); no repro code is needed:</p><pre>" +
             _e(_snippet(d)) + "</pre>")
    return h


def _snippet(d) -> str:
    current = [s for s in d["sections"] if s.state == CURRENT and s.kstar]
    path = current[0].results_file if current else \
        next((s.results_file for s in d["sections"]), pathlib.Path("results/figure-1.nc"))
    panel = current[0].kstar[0]["panel"] if current else "b"
    return ("import xarray as xr\n"
            f'ds = xr.open_dataset("{path}")\n'
            f'k = ds["steps_to_result"].sel(panel="{panel}")   # K*: sparsity x batch size\n'
            "print(k.to_pandas())\n"
            f'print(ds["best_trial"].sel(panel="{panel}").to_pandas())     # the trial that reached the goal first\n'
            f'print(ds["learning_rate"].sel(panel="{panel}", sparsity=0).to_pandas())   # each trial\'s learning rate\n'
            "print(ds.attrs[\"spec_sha256\"], ds.attrs[\"git_commit\"])")


# --------------------------------------------------------------------------- Markdown

def _md(x) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def render_markdown(d) -> str:
    sections, results = d["sections"], d["results"]
    counts = {v: sum(r.status == v for r in results) for v in claims.VERDICTS}
    m = ["# Reproduction report", "",
         f"{d['title']}. Grid **{d['grid']}**; built {d['built']} from stored results only (nothing "
         "was trained). Verdicts as `python -m repro verify --json` gives them: `claims.json`.", ""]
    if d["problems"]:
        m += ["**Some results files are not current** (exit status 2); their claims are NOT-RUN "
              "until they are rebuilt:", ""] + [f"- `{p}`" for p in d["problems"]] + [""]
    m += [", ".join(f"**{counts[v]} {v}**" for v in claims.VERDICTS) +
          f" over {len(results)} claims of {len(sections)} figures.", "", "## Summary", "",
          "| figure | title | results | " + " | ".join(claims.VERDICTS) + " |",
          "|---|---|---|" + "---|" * len(claims.VERDICTS)]
    for s in sections:
        c = {v: sum(r.status == v for r in s.claims) for v in claims.VERDICTS}
        m.append(f"| [{s.spec.id}](#{s.spec.id}) | {_md(s.spec.title)} | {_state_text(s)} | " +
                 " | ".join(str(c[v]) for v in claims.VERDICTS) + " |")
    m.append("| **all** | | | " + " | ".join(f"**{counts[v]}**" for v in claims.VERDICTS) + " |")
    for s in sections:
        spec = s.spec
        m += ["", f"## {spec.id}", "", f"{spec.title}", ""]
        if s.state == STALE:
            m += [f"**Results not current:** {s.problem}. Rebuild: `{s.rebuild}`", ""]
        elif s.state == MISSING:
            m += [f"**No results file** `{s.results_file}`. Run: `{s.rebuild}`", ""]
        else:
            m += [f"Results: [{s.results_file}]({_link(s.results_file, d['out'])}); spec `{_show(spec.path)}`; "
                  + (f"tolerances `{_show(s.golden_file)}`." if s.golden_file else "no claims, no tolerances."), ""]
        if _partial_text(s):
            m += [f"**{_partial_text(s)}**", ""]
        m += ([f"![{spec.id}]({s.image})", "", f"Figure: {s.image_note}", ""] if s.image else [s.image_note, ""])
        m += [line for u in _unchecked(spec) for line in (_md(u), "")]
        if verify.declares_claims(spec):
            m += ["| panel | claim | verdict | measured | tolerance | paper | source | notes / how to run |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in s.claims:
            tol = claims.tolerance_for(s.golden, r.panel, r.claim) or {}
            stat = statistic_text(r)
            cmd = run_command(r, spec, d["grid"], d["results_dir"])
            m.append(f"| {r.panel} | {r.claim} | **{r.status}** | {_md(r.measured)}"
                     + (f" ({_md(stat)})" if stat else "") + f" | {_md(r.tolerance)} | "
                     f"{_md(paper_text(r, tol))} | {_md(r.source or tol.get('source', ''))} | {_md(r.detail)}"
                     + (f" run: `{_md(cmd)}`" if cmd else "") + " |")
        for t in s.kstar:
            m += ["", f"### K* of panel ({t['panel']}) {t['title']}", "",
                  f"Goal error {t['goal']}; {t['trials']} trials per point.", ""]
            if t["note"]:
                m.append(t["note"])
                continue
            m += ["| sparsity \\ B | " + " | ".join(map(str, t["batch_sizes"])) + " |",
                  "|---|" + "---|" * len(t["batch_sizes"])]
            for sp in t["sparsities"]:
                m.append(f"| {sp:g} | " + " | ".join(
                    f"{c['text']} ({_md(c['sub'])})" for c in (t["cells"][(sp, b)] for b in t["batch_sizes"])) + " |")
        fitted = [f for f in s.fits if f["n_points"] >= MIN_FIT_POINTS]
        if s.fits:
            m += ["", "### Prop. 4.1 fits: K* = c1/B + c2", ""]
        if fitted:
            m += ["| panel | sparsity | c1 | 95% interval | c2 | 95% interval | B_crit | 95% interval | points |",
                  "|---|---|---|---|---|---|---|---|---|"]
            for f in fitted:
                ci = f["ci"]
                m.append(f"| {f['panel']} | {f['sparsity']:g} | {_num(f['c1'])} | {_interval(ci['c1'])} | "
                         f"{_num(f['c2'])} | {_interval(ci['c2'])} | {_num(f['b_crit'])} | "
                         f"{_interval(ci['b_crit'])} | {f['n_points']} |")
            m += ["", f"Intervals: {fitted[0]['n_boot']} bootstrap replicates over each point's trials."]
        unfitted = [f for f in s.fits if f["n_points"] < MIN_FIT_POINTS]
        if unfitted:
            m += ["", f"No fit (it needs K* at {MIN_FIT_POINTS} batch sizes or more): " +
                  "; ".join(f"panel ({f['panel']}) s={f['sparsity']:g} has {f['n_points']}" for f in unfitted) + "."]
    code, mach = d["code"], d["machine"]
    m += ["", "## Provenance", "",
          f"- repro commit: {code['commit']} (uncommitted changes: {code['dirty']}); version {__version__}",
          f"- command: `{d['command']}`",
          f"- machine: {mach['cores']} cores ({mach['cpu']}), {mach['memory']} memory; devices: {mach['devices']}",
          f"- platform: {mach['platform']}, Python {mach['python']}",
          "- packages: " + ", ".join(f"{k} {v}" for k, v in d["packages"].items()), ""]
    for s in sections:
        if s.state == STALE:
            m.append(f"- `{s.results_file}`: not current ({s.problem}). Rebuild: `{s.rebuild}`")
        elif s.state == MISSING:
            m.append(f"- `{s.results_file}`: missing. Run: `{s.rebuild}`")
    m += ["", "| figure | spec sha256 | results sha256 | trials stored | trained / reused | run wall time "
          "| trial time | written | at commit |", "|---|---|---|---|---|---|---|---|---|"]
    for s in sections:
        p = s.provenance
        if not p:
            m.append(f"| {s.spec.id} | {s.spec.sha256} | {'missing' if s.state == MISSING else 'unreadable'} "
                     "| | | | | | |")
            continue
        m.append(f"| {s.spec.id} | {s.spec.sha256} | {p['results_sha256']} | {p['stored']} of {p['total']} "
                 f"{p['unit']} | {_trained(p)} | {p['run_wall']} | {p['trial_time']} | "
                 f"{p['created']} | {p['git_commit']} |")
    m += ["", "### Open it yourself", "", "```python", _snippet(d), "```", "",
          f"Written in {d['seconds']:.1f} s by `python -m repro report`.", ""]
    return "\n".join(m)


# --------------------------------------------------------------------------- building

def _check_out(out: pathlib.Path):
    """Refuse to replace a folder an earlier report did not write."""
    if out.exists() and not out.is_dir():
        raise UsageError(out, None, "exists and is not a folder", "pass --out with a folder name")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).exists():
        raise UsageError(out, None, "exists and was not written by `repro report` (it would be "
                         "replaced whole)", "remove it, or pass --out with another folder")


def _publish(work: pathlib.Path, out: pathlib.Path):
    """Swap the finished folder in: the old report (if any) is replaced only once the new one is whole."""
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        try:
            os.replace(work, out)
        except BaseException:
            os.replace(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(work, out)


def build_report(spec_path="specs", *, results_dir="results", out="report", figures_dir="figures",
                 grid="reduced", golden=None, n_boot=N_BOOT, command=None) -> Report:
    """Write the report folder `out` from the stored results of every spec in `spec_path`.

    Never trains. Raises UsageError (writing nothing) for a bad spec or golden file or an `out`
    that is not a report folder; a results file that is not current is shown on the page and
    makes :attr:`Report.exit_code` 2.
    """
    t0 = time.perf_counter()
    specs = spec_mod.load_specs(spec_path)
    out = pathlib.Path(out)
    _check_out(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        work = pathlib.Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    except OSError as e:
        raise UsageError(out, None, f"cannot write the report there ({e.strerror})",
                         "pass --out with a folder you can write to") from None
    try:
        (work / "figures").mkdir()
        sections = [figure_section(sp, grid=grid, results_dir=results_dir, figures_dir=figures_dir,
                                   golden=golden, n_boot=n_boot, work=work) for sp in specs]
        results = [r for s in sections for r in s.claims]
        problems = [s.problem for s in sections if s.state == STALE]
        code = 2 if problems else claims.exit_code(results)
        data = {
            "out": out, "sections": sections, "results": results, "problems": problems,
            "grid": grid, "results_dir": results_dir,
            "title": "Lee et al. (ICLR 2021), Understanding the Effects of Data Parallelism and "
                     "Sparsity on Neural Network Training",
            "built": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": command or f"python -m repro report {spec_path} --results {results_dir} --out {out}",
            "code": code_state(), "machine": machine(), "packages": package_versions(),
        }
        (work / "claims.json").write_text(claims.to_json(results) + "\n")
        (work / MARKER).write_text("written by python -m repro report; replaced whole on the next run\n")
        data["seconds"] = time.perf_counter() - t0
        (work / "index.html").write_text(render_html(data), encoding="utf-8")
        (work / "report.md").write_text(render_markdown(data), encoding="utf-8")
        for f in work.rglob("*"):
            os.chmod(f, 0o755 if f.is_dir() else 0o644)
        os.chmod(work, 0o755)
        _publish(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return Report(out, sections, results, code, time.perf_counter() - t0, problems)


def summary_line(report: Report) -> str:
    c = report.counts()
    return (f"wrote {report.index} and {report.out / 'report.md'} in {report.seconds:.1f} s: "
            + ", ".join(f"{c[v]} {v}" for v in claims.VERDICTS)
            + f" over {len(report.sections)} figures; open file://{report.index.resolve()}")

