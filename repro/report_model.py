"""The reproduction report as data, built once from the stored results: the HTML page
(repro.report_html) and the Markdown file (repro.report_markdown) only lay it out, and
`repro fits` prints its fit rows.

    ReportPage                 the build: title, grid, command, code, machine, packages
      sections: [FigureSection]  one per spec, in order
        claim_rows: [ClaimRow]   one per (panel, claim): verdict, measured, tolerance, paper,
                                 source, notes and the command that runs a NOT-RUN claim
        kstar: [KStarTable]      per panel of a search: K* per (sparsity, B) with the best trial
        fits: FitTable           Prop. 4.1 fits per (panel, sparsity), with 95 % intervals
        provenance: Provenance   what the results file says of its trials and its run
        notes                    unchecked, partial, image_note, results_note (plain text)

Everything a reader sees is text or a number here; the renderers add markup only.
"""
from __future__ import annotations

import math
import os
import pathlib
import re
from dataclasses import dataclass, field

import numpy as np

from . import claims, fmt, store, verify
from .analysis import MIN_FIT_POINTS

CURRENT, STALE, MISSING = "current", "not current", "missing"
HP_SHORT = {"learning_rate": "lr", "momentum": "m", "decay_steps": "decay", "end_factor": "end"}
PAPER_KEYS = ("paper_value", "paper_band", "paper_values", "paper_ratios")
# trial outcomes (store.STATUS codes) as a K* cell counts them
OUTCOMES = ((1, "reached"), (4, "capped"), (2, "missed"), (3, "infeasible"))
# The direct critical batch size: the first B whose K* exceeds the linear-scaling prediction
# from the smallest B by this factor. Under Prop. 4.1 (K* = c1/B + c2) K* is exactly twice the
# linear-scaling term c1/B at B = B_crit = c1/c2, so this factor reads B_crit off the curve.
DIRECT_FACTOR = 2.0


# --------------------------------------------------------------------------- the model

@dataclass(frozen=True)
class ClaimRow:
    """One claim as the page shows it."""

    figure: str
    panel: str
    claim: str
    status: str          # PASS | FAIL | INCONCLUSIVE | NOT-RUN
    measured: str
    statistic: str       # the claim's machine-readable statistic and interval ("" none)
    tolerance: str
    paper: str           # the paper's number: the claim's own text, else the golden file's
    source: str          # where the paper gives it
    detail: str          # notes, with any command to run
    run_command: str     # NOT-RUN without a command in its detail: the one that runs it ("")

    @property
    def anchor(self) -> str:
        """The row's id on the page."""
        return f"{self.figure}-{self.panel}-{self.claim}"


@dataclass(frozen=True)
class KStarCell:
    """One (sparsity, batch size) of a K* table."""

    k: float | None  # K*, None where there is none
    text: str        # main text: K* with thousands separated, or "-"
    sub: str         # the best trial and its metaparameters, or why there is no K*


@dataclass(frozen=True)
class KStarTable:
    """K* of one panel over (sparsity, batch size), or a note saying why there is none."""

    panel: str
    title: str
    goal: float
    trials: int
    batch_sizes: list
    sparsities: list
    cells: dict = field(default_factory=dict)  # (sparsity, batch size) -> KStarCell
    note: str = ""  # no stored trial: not run, and the command that runs it

    def row(self, sparsity) -> list:
        """The cells of one sparsity, in batch size order."""
        return [self.cells[(sparsity, batch_size)] for batch_size in self.batch_sizes]


@dataclass(frozen=True)
class FitRow:
    """The Prop. 4.1 fit K* = c1/B + c2 of one (panel, sparsity), with 95 % intervals."""

    figure: str
    panel: str
    sparsity: float
    c1: float
    c2: float
    b_crit: float  # c1 / c2
    rms_log_residual: float
    n_points: int  # batch sizes with a measured K*
    ci: dict       # {"c1", "c2", "b_crit": (lo, hi)}
    n_boot: int    # bootstrap replicates behind the intervals
    uncertainty: str  # what the replicates resample (repro.evidence)
    b_crit_direct: float  # the first B leaving linear scaling by DIRECT_FACTOR (NaN none)
    direct_factor: float = DIRECT_FACTOR

    @property
    def fitted(self) -> bool:
        """Whether enough batch sizes have K* for a fit (analysis.MIN_FIT_POINTS)."""
        return self.n_points >= MIN_FIT_POINTS


@dataclass(frozen=True)
class FitTable:
    """The fits of one figure's panels, fitted or not."""

    rows: tuple = ()  # FitRow, per panel and sparsity

    @property
    def fitted(self) -> list:
        return [row for row in self.rows if row.fitted]

    @property
    def unfitted_text(self) -> str:
        """'No fit (...): panel (a) s=0.9 has 2.' for rows with too few points ("" none)."""
        unfitted = [row for row in self.rows if not row.fitted]
        if not unfitted:
            return ""
        return (f"No fit (it needs K* at {MIN_FIT_POINTS} batch sizes or more): " +
                "; ".join(f"panel ({row.panel}) s={row.sparsity:g} has {row.n_points}" for row in unfitted) + ".")


@dataclass(frozen=True)
class Provenance:
    """What a results file records of its trials (or runs), its run and its origin."""

    unit: str          # "trials" | "runs"
    panels: dict       # panel id -> (stored, asked for)
    trained: object    # by the last `repro run` (int), or "not recorded"
    reused: object
    run_wall: str      # the last run's wall time, as text
    trial_time: str    # each trial's wall time summed, as text
    created: str
    git_commit: str
    grid: str
    results_sha256: str
    results_spec_sha256: str  # the spec the file was built from

    @property
    def stored(self) -> int:
        return sum(stored for stored, _ in self.panels.values())

    @property
    def total(self) -> int:
        return sum(asked for _, asked in self.panels.values())

    @property
    def trained_text(self) -> str:
        """'trained / reused' of the last run, or 'not recorded'."""
        if self.trained == self.reused == "not recorded":
            return "not recorded"
        return f"{self.trained} / {self.reused}"


@dataclass
class FigureSection:
    """Everything the page shows for one spec."""

    spec: object  # repro.spec.Spec
    results_file: pathlib.Path
    state: str  # CURRENT | STALE | MISSING
    results_link: str = ""  # the results file, relative to the report folder
    problem: str = ""  # STALE: what is wrong with the file (one line, as the CLI prints it)
    why: str = ""  # STALE: the problem alone, without file and fix
    stale_file: str = ""  # STALE: the file that is not current (this figure's, or one a claim reads)
    rebuild: str = ""  # STALE / MISSING: the command that makes the file current
    claims: list = field(default_factory=list)  # ClaimResult, in spec order (claims.json)
    claim_rows: list = field(default_factory=list)  # ClaimRow, the same claims as shown
    spec_file: str = ""  # the spec, as a reader types its path
    golden_file: str = ""  # the tolerances, likewise ("" : the spec declares no claims, has none)
    unchecked: list = field(default_factory=list)  # what the spec (or a panel) does not check
    image: str = ""  # path of the PNG inside the report folder ("" none)
    image_note: str = ""  # where the image came from, or how to draw it
    results_note: str = ""  # what its kind of study shows in place of K* tables
    kstar: list = field(default_factory=list)  # KStarTable per panel
    fits: FitTable = field(default_factory=FitTable)
    provenance: Provenance | None = None
    partial: str = ""  # current results with trials still to run: which, and the command

    def counts(self) -> dict:
        return {v: sum(r.status == v for r in self.claim_rows) for v in claims.VERDICTS}

    @property
    def state_text(self) -> str:
        """The summary's results column: current (with how many are stored), NOT CURRENT, missing."""
        if self.state == CURRENT and self.provenance:
            p = self.provenance
            return f"current: {p.stored} of {p.total} {p.unit}"
        return {CURRENT: "current", STALE: "NOT CURRENT", MISSING: "missing"}[self.state]


@dataclass(frozen=True)
class ReportPage:
    """The whole report: its sections and how it was built."""

    title: str
    grid: str
    built: str
    command: str
    sections: list
    problems: list  # one line per results file that is not current
    code: dict      # commit and dirty flag of the checkout
    machine: dict
    packages: dict
    seconds: float

    def counts(self) -> dict:
        return {v: sum(s.counts()[v] for s in self.sections) for v in claims.VERDICTS}

    @property
    def claim_count(self) -> int:
        return sum(len(s.claim_rows) for s in self.sections)

    @property
    def snippet(self) -> str:
        """Plain xarray that opens a results file of the page (no repro code)."""
        current = [s for s in self.sections if s.state == CURRENT and s.kstar]
        path = current[0].results_file if current else \
            next((s.results_file for s in self.sections), pathlib.Path("results/figure-1.nc"))
        panel = current[0].kstar[0].panel if current else "b"
        return ("import xarray as xr\n"
                f'ds = xr.open_dataset("{path}")\n'
                f'k = ds["steps_to_result"].sel(panel="{panel}")   # K*: sparsity x batch size\n'
                "print(k.to_pandas())\n"
                f'print(ds["best_trial"].sel(panel="{panel}").to_pandas())     # the trial that reached the goal first\n'
                f'print(ds["learning_rate"].sel(panel="{panel}", sparsity=0).to_pandas())   # each trial\'s learning rate\n'
                "print(ds.attrs[\"spec_sha256\"], ds.attrs[\"git_commit\"])")


# --------------------------------------------------------------------------- claim rows

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
        value = tol[key]
        if key == "paper_band":
            parts.append(f"{fmt.number(value[0])} to {fmt.number(value[1])}")
        elif key == "paper_ratios":
            parts.append(", ".join(f"{name} x{fmt.number(ratio)}" for name, ratio in value.items()))
        elif isinstance(value, list):
            parts.append(", ".join(fmt.number(item) for item in value))
        else:
            parts.append(fmt.number(value))
    return "; ".join(parts)


def _value_text(value) -> str:
    """A machine-readable value from ClaimResult.values as short text."""
    if isinstance(value, (list, tuple)):
        if len(value) == 2 and all(isinstance(x, (int, float)) or x is None for x in value):
            return fmt.interval(value)
        return ", ".join(_value_text(x) for x in value)
    if isinstance(value, dict):
        return "; ".join(f"{key} {_value_text(x)}" for key, x in value.items())
    if isinstance(value, (int, float, np.generic)) and not isinstance(value, bool):
        return fmt.number(value)
    return str(value)


def statistic_text(result) -> str:
    """`values["statistic"]` / `values["interval"]` when the claim gives them, as text."""
    values = result.values or {}
    parts = []
    if "statistic" in values:
        parts.append(f"statistic {_value_text(values['statistic'])}")
    if "interval" in values:
        parts.append(f"interval {_value_text(values['interval'])}")
    return ", ".join(parts)


_COMMAND = re.compile(r"python -m repro \S+")


def run_command(result, spec, grid, results_dir) -> str:
    """For a NOT-RUN claim: the command that would run its panel, unless its detail has one."""
    if result.status != claims.NOT_RUN or _COMMAND.search(result.detail or ""):
        return ""
    return fmt.run_command(spec.path, grid=grid, panel=result.panel, results_dir=results_dir)


def claim_rows(results, *, golden, spec, grid, results_dir) -> list:
    """The rows of a spec's claims (`results`), with the golden file's paper numbers and sources."""
    rows = []
    for result in results:
        tol = claims.tolerance_for(golden, result.panel, result.claim) or {}
        rows.append(ClaimRow(
            figure=result.figure, panel=result.panel, claim=result.claim, status=result.status,
            measured=result.measured, statistic=statistic_text(result), tolerance=result.tolerance,
            paper=paper_text(result, tol), source=result.source or tol.get("source", ""),
            detail=result.detail, run_command=run_command(result, spec, grid, results_dir)))
    return rows


def unchecked_lines(spec) -> list:
    """What the page says a spec does not check: the whole spec, or its panels without claims."""
    if not verify.declares_claims(spec):
        return ["Nothing to check: no panel of this study declares claims (it needs no golden "
                "file); what it measures is in the K* tables and fits below."]
    return verify.nothing_to_check(spec)


# --------------------------------------------------------------------------- K* tables

def _sel(data, panel, batch_size, sparsity):
    """One (panel, batch size, sparsity) cell of `data` (sparsity matched to 1e-9); None if absent."""
    try:
        return data.sel(panel=panel, batch_size=batch_size).sel(sparsity=sparsity, method="nearest",
                                                                 tolerance=1e-9)
    except (KeyError, ValueError):
        return None


def kstar_tables(ds, spec, grid) -> list:
    """Per panel: K* over (sparsity, batch size), each cell with the best trial's metaparameters."""
    tables = []
    panels_in = [str(p) for p in ds["panel"].values]
    for panel in spec.panels:
        g = panel.grids.get(grid)
        batches = list(g.batch_sizes) if g else [int(b) for b in ds["batch_size"].values]
        sparsities = list(g.sparsities) if g else [float(s) for s in ds["sparsity"].values]
        trials = g.trials if g else ds.sizes.get("trial", 0)
        shape = dict(panel=panel.id, title=panel.title, goal=panel.goal_error, trials=trials,
                     batch_sizes=batches, sparsities=sparsities)
        if panel.id not in panels_in or not bool((ds["status"].sel(panel=panel.id) > 0).any()):
            command = fmt.run_command(spec.path, grid=grid, panel=panel.id)
            tables.append(KStarTable(**shape, note=f"Panel ({panel.id}) has no stored trial: not run; "
                                                   f"run: {command}"))
            continue
        names = [n for n in store.HP_NAMES if n in ds]
        cells = {(s, b): kstar_cell(ds, panel.id, sparsity=s, batch_size=b, hp_names=names, trials=trials)
                 for s in sparsities for b in batches}
        tables.append(KStarTable(**shape, cells=cells))
    return tables


def kstar_cell(ds, panel_id, *, sparsity, batch_size, hp_names, trials) -> KStarCell:
    """K* of one study point, with the best trial's metaparameters or why there is no K*."""
    point = dict(panel=panel_id, batch_size=batch_size, sparsity=sparsity)
    k = _sel(ds["steps_to_result"], **point)
    if k is None:
        return KStarCell(None, "-", "not in the results")
    k = float(k)
    status = _sel(ds["status"], **point).values[:trials]
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
        return KStarCell(None, "-", why)
    best = int(_sel(ds["best_trial"], **point))
    parts = []
    for name in hp_names:
        value = float(_sel(ds[name], **point).values[best])
        if not math.isnan(value):
            text = str(int(round(value))) if name == "decay_steps" else \
                fmt.number(value, 4 if name == "momentum" else 3)
            parts.append(f"{HP_SHORT[name]} {text}")
    return KStarCell(k, f"{k:,.0f}",
                     f"trial {best}" + (": " + ", ".join(parts) if parts else "") + f"; {outcomes}")


# --------------------------------------------------------------------------- fits

def fit_rows(ds, spec, n_boot=None) -> FitTable:
    """Prop. 4.1 fits (K* = c1/B + c2) per panel with a measured K* and per sparsity, with the
    95 % intervals the claims use (repro.evidence: quantisation, trials, seeds; `n_boot`
    replicates, None: evidence.N_BOOT) and the direct B_crit (DIRECT_FACTOR)."""
    from . import analysis, evidence
    n_boot = evidence.N_BOOT if n_boot is None else n_boot
    rows = []
    panels_in = [str(p) for p in ds["panel"].values]
    for panel in spec.panels:
        if panel.id not in panels_in or not bool(ds["steps_to_result"].sel(panel=panel.id).notnull().any()):
            continue
        k = analysis.steps_to_result(ds, panel.id)
        for sparsity, fit in evidence.fit_intervals(ds, panel.id, n_boot=n_boot).items():
            curve = k.sel(sparsity=sparsity)
            direct = analysis.critical_batch_direct(curve["batch_size"].values, curve.values, DIRECT_FACTOR)
            rows.append(FitRow(figure=spec.id, panel=panel.id, sparsity=sparsity, c1=fit["c1"], c2=fit["c2"],
                               b_crit=fit["b_crit"], rms_log_residual=fit["rms_log_residual"],
                               n_points=fit["n_points"], ci=fit["ci"], n_boot=fit["n_boot"],
                               uncertainty=fit["uncertainty"], b_crit_direct=direct))
    return FitTable(tuple(rows))


def format_fits(rows) -> str:
    """The fit rows as `repro fits` prints them: a fixed-width table and what it shows."""
    lines = [f"{'figure':10s} {'panel':5s} {'s':>4s} {'c1':>10s} {'95% interval':>22s} {'c2':>8s} "
             f"{'B_crit=c1/c2':>12s} {'direct':>7s} {'rms log res':>11s}"]
    lines += [f"{row.figure:10s} {row.panel:5s} {row.sparsity:4g} {fmt.number(row.c1, 4):>10s} "
              f"{fmt.interval(row.ci['c1']):>22s} {fmt.number(row.c2, 4):>8s} "
              f"{fmt.number(row.b_crit, 4):>12s} {fmt.number(row.b_crit_direct):>7s} "
              f"{fmt.fixed(row.rms_log_residual, 3):>11s}" for row in rows]
    lines.append(f"(fits of K* = c1/B + c2 in log space; intervals: {rows[0].n_boot if rows else 0} "
                 "replicates over evaluation steps, trials and seeds, see repro.evidence; direct: first "
                 f"B whose K* exceeds the linear-scaling prediction from the smallest B by {DIRECT_FACTOR:g}x, "
                 "which Prop. 4.1 puts at B_crit)")
    return "\n".join(lines)


# --------------------------------------------------------------------------- provenance

def _seconds(seconds) -> str:
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "not recorded"
    seconds = float(seconds)
    return f"{seconds:,.0f} s ({seconds / 60:.1f} min)" if seconds >= 60 else f"{seconds:.1f} s"


def provenance(ds, spec, *, grid, kind, results_sha256) -> Provenance | None:
    """Trials (or runs) stored per panel, trained / reused and time, from a results dataset of
    `spec`'s kind of study (repro.study.study_kind); None for a foreign or damaged file."""
    attrs = ds.attrs
    try:
        trial_time = float(np.nansum(ds["wall_time"].values)) if "wall_time" in ds else math.nan
        trained, reused = attrs.get("trials_trained"), attrs.get("trials_reused")
        return Provenance(
            unit=kind.stored_unit, panels=kind.stored_counts(ds, spec, grid),
            trained="not recorded" if trained is None else int(trained),
            reused="not recorded" if reused is None else int(reused),
            run_wall=_seconds(attrs.get("run_wall_seconds")), trial_time=_seconds(trial_time),
            created=str(attrs.get("created", "unknown")).replace("T", " ").replace("+00:00", " UTC"),
            git_commit=attrs.get("git_commit", "unknown"), grid=attrs.get("grid", grid),
            results_sha256=results_sha256, results_spec_sha256=attrs.get("spec_sha256", ""))
    except (KeyError, ValueError, TypeError):  # nothing to count
        return None


def partial_text(section) -> str:
    """For current results with trials still to run: which panels, and the command that runs them."""
    p = section.provenance
    if section.state != CURRENT or not p or p.stored >= p.total:
        return ""
    none = [pid for pid, (n, t) in p.panels.items() if n == 0]
    some = [f"({pid}) {n} of {t}" for pid, (n, t) in p.panels.items() if 0 < n < t]
    parts = []
    if some:
        parts.append("panel " + ", ".join(some))
    if none:
        parts.append("panel " + ", ".join(f"({pid})" for pid in none) + " not run")
    why = (" K* exists only at points whose every trial has run, so the claims read part of the grid."
           if some and p.unit == "trials" else "")
    command = fmt.run_command(section.spec.path, grid=p.grid, results_dir=section.results_file.parent)
    return (f"Not complete: {p.stored} of {p.total} {p.unit} stored ({'; '.join(parts)}).{why} "
            f"To run the rest (stored {p.unit} are reused): {command}")


def link(target, out) -> str:
    """Relative path from the report folder `out` to `target` (as a URL path)."""
    return os.path.relpath(pathlib.Path(target).resolve(), pathlib.Path(out).resolve()).replace(os.sep, "/")


def shown_path(path) -> str:
    """A path as a reader types it: relative to the current folder when below it."""
    path = pathlib.Path(path)
    try:
        return str(path.resolve().relative_to(pathlib.Path.cwd().resolve())) if path.is_absolute() else str(path)
    except ValueError:
        return str(path)
