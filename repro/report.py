"""One reproduction report a reader can open: every figure, verdict, interval and paper number.

``python -m repro report [specs/] [--results DIR] [--out report/]`` reads the stored results
only (it never trains) and writes, into one self-contained folder:

* ``index.html`` -- a static page (no JavaScript, no network) that opens from disk;
* ``report.md`` -- the same content as Markdown;
* ``claims.json`` -- the verdicts exactly as ``python -m repro verify --json`` prints them;
* ``figures/<figure>.png`` -- each figure, copied from ``figures/`` (or drawn from the stored
  results when it is missing or older than its results file).

The content is built once, as a :class:`repro.report_model.ReportPage` (claim rows, K* tables,
fit rows, notes, provenance), and laid out by repro.report_html and repro.report_markdown.
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
import os
import pathlib
import platform
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata

from . import claims, fmt, report_model as model, spec as spec_mod, store, study as study_mod, verify
from .errors import UsageError
from .report_html import render_html
from .report_markdown import render_markdown
from .report_model import CURRENT, MISSING, STALE, FigureSection, ReportPage

MARKER = ".repro-report"  # written into every report folder: only such a folder is replaced
TITLE = ("Lee et al. (ICLR 2021), Understanding the Effects of Data Parallelism and Sparsity on "
         "Neural Network Training")


@dataclass
class Report:
    """What `build_report` wrote and how it ended."""

    out: pathlib.Path
    sections: list  # report_model.FigureSection, one per spec
    results: list  # every ClaimResult, in spec order
    exit_code: int
    seconds: float
    problems: list  # one line per results file that is not current

    @property
    def index(self) -> pathlib.Path:
        return self.out / "index.html"

    def counts(self) -> dict:
        return {v: sum(r.status == v for r in self.results) for v in claims.VERDICTS}


# --------------------------------------------------------------------------- where it was built

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


def sha256(path) -> str:
    """The sha256 of a file, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------- one figure

def _figure_image(section, ds, figures_dir, work, grid, kind):
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
    from . import figures
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        paths = figures.render(ds, pathlib.Path(tmp) / stem, kind=spec.kind, fits=kind.fits(ds))
        shutil.copyfile(next(p for p in paths if p.suffix == ".png"), target)
    section.image = f"figures/{stem}.png"
    section.image_note = (f"drawn for this report from {section.results_file} "
                          f"({png} {'is older than the results' if older else 'does not exist'}; "
                          f"`{plot}` writes it)")


def _read_results(section, *, grid, results_dir, golden):
    """Set the section's state and verdicts from its results file; the dataset to show (a file
    that is not current is shown too, marked so), or None."""
    spec, path = section.spec, section.results_file
    if not path.exists():
        section.state = MISSING
        section.rebuild = fmt.run_command(spec.path, grid=grid, results_dir=results_dir)
        section.claims = verify.verify_spec(spec, grid=grid, results_dir=results_dir, golden=golden)
        return None
    try:
        ds = store.open_results(path, spec, grid)
        section.claims = verify.verify_spec(spec, grid=grid, results_dir=results_dir, golden=golden)
        return ds
    except UsageError as e:
        section.state, section.problem, section.why, section.rebuild = STALE, str(e), e.problem, e.fix
        section.stale_file = e.file
        why = f"{e.file} is not current (see above); {e.fix}"
        section.claims = [claims.not_run(spec.id, p.id, c, why) for p in spec.panels for c in p.claims]
    try:  # show what the stale file holds, clearly marked
        import xarray as xr
        return xr.load_dataset(path)
    except Exception:  # noqa: BLE001 (unreadable: nothing to show)
        return None


def figure_section(spec, *, grid, results_dir, figures_dir, golden, n_boot, out, work) -> FigureSection:
    """Verdicts, figure, K* tables, fits and provenance of one spec, from its stored results;
    what differs between kinds of study is the kind's to say (repro.study.study_kind)."""
    golden_table = verify.load_checked_golden(spec, golden)  # a bad golden file: UsageError
    kind = study_mod.study_kind(spec)
    path = spec_mod.results_path(results_dir, spec, grid)
    section = FigureSection(
        spec, path, CURRENT, results_link=model.link(path, out), spec_file=model.shown_path(spec.path),
        golden_file="" if verify.needs_no_golden(spec, golden) else model.shown_path(verify.golden_path(spec, golden)),
        unchecked=model.unchecked_lines(spec), results_note=kind.results_note)
    ds = _read_results(section, grid=grid, results_dir=results_dir, golden=golden)
    section.claim_rows = model.claim_rows(section.claims, golden=golden_table, spec=spec, grid=grid,
                                          results_dir=results_dir)
    if ds is not None:
        section.provenance = model.provenance(ds, spec, grid=grid, kind=kind, results_sha256=sha256(path))
    _figure_image(section, ds if section.state == CURRENT else None, figures_dir, work, grid, kind)
    section.partial = model.partial_text(section)
    if ds is not None and section.state == CURRENT and kind.has_k_star_fits:
        section.kstar = model.kstar_tables(ds, spec, grid)
        section.fits = model.fit_rows(ds, spec, n_boot=n_boot)
    return section


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
                 grid="reduced", golden=None, n_boot=None, command=None) -> Report:
    """Write the report folder `out` from the stored results of every spec in `spec_path`
    (fits with `n_boot` bootstrap replicates; None: repro.evidence.N_BOOT).

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
                                   golden=golden, n_boot=n_boot, out=out, work=work) for sp in specs]
        results = [r for s in sections for r in s.claims]
        problems = [s.problem for s in sections if s.state == STALE]
        (work / "claims.json").write_text(claims.to_json(results) + "\n")
        (work / MARKER).write_text("written by python -m repro report; replaced whole on the next run\n")
        page = ReportPage(
            title=TITLE, grid=grid, sections=sections, problems=problems,
            built=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            command=command or f"python -m repro report {spec_path} --results {results_dir} --out {out}",
            code=code_state(), machine=machine(), packages=package_versions(),
            seconds=time.perf_counter() - t0)
        (work / "index.html").write_text(render_html(page), encoding="utf-8")
        (work / "report.md").write_text(render_markdown(page), encoding="utf-8")
        for f in work.rglob("*"):
            os.chmod(f, 0o755 if f.is_dir() else 0o644)
        os.chmod(work, 0o755)
        _publish(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    exit_code = 2 if problems else claims.exit_code(results)
    return Report(out, sections, results, exit_code, time.perf_counter() - t0, problems)


def summary_line(report: Report) -> str:
    c = report.counts()
    return (f"wrote {report.index} and {report.out / 'report.md'} in {report.seconds:.1f} s: "
            + ", ".join(f"{c[v]} {v}" for v in claims.VERDICTS)
            + f" over {len(report.sections)} figures; open file://{report.index.resolve()}")
