"""What `make figure-N` ends with: the verdicts counted, where the figure, results and report
are, the wall time, and what the exit status means (`python -m repro summary`).

The verdicts are verify's (repro.verify.verify_specs, recomputed from the stored results: they
never train); a step that stopped the target before verify is named instead.
"""
import pathlib

from .errors import UsageError

STEPS = ("run", "plot", "verify")

# What `make figure-N`'s exit status means, by the step that set it (repro's own statuses:
# 0 fine, 1 a claim FAILed (verify only), 2 a usage error, 130 interrupted; anything else, or 1
# from run or plot, is a crash whose traceback is above).
MEANINGS = {
    0: "exit status 0: run, plot and verify finished and no claim FAILed "
       "(PASS, INCONCLUSIVE and NOT-RUN claims all exit 0; `repro verify --strict` also fails "
       "on INCONCLUSIVE)",
    1: "exit status 1: a claim FAILed: the data contradict the paper beyond the tolerance in "
       "golden/<figure>.toml (see the FAIL rows above and their intervals)",
    2: "exit status 2: a usage error stopped `repro {step}` (a spec, option, dataset or results "
       "file named in the error line above); nothing was lost: fix it and rerun the same command",
    130: "exit status 130: interrupted during `repro {step}`; finished trials are kept, rerun the "
         "same command to resume",
}


def meaning(status, step):
    """One line: what exit status `status` set by step `step` (run | plot | verify) means."""
    if status == 1 and step != "verify":
        return (f"exit status 1: `repro {step}` crashed (the traceback above says where); "
                "finished trials are kept, rerun the same command to resume")
    if status in MEANINGS:
        return MEANINGS[status].format(step=step)
    how = f"killed by signal {status - 128}" if status > 128 else "it crashed"
    return (f"exit status {status}: `repro {step}` stopped ({how}; see above); finished trials "
            "are kept, rerun the same command to resume")


def _hms(seconds):
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def figure_summary(spec, *, grid="reduced", results_dir="results", figures_dir="figures",
                   golden=None, seconds=None, status=0, step="verify"):
    """The lines `make figure-N` ends with for one spec (see the module docstring)."""
    from . import claims, verify
    from .spec import results_path
    if step not in STEPS:
        raise UsageError("command line", "--step", f"unknown step {step!r}", "use run, plot or verify")
    path = results_path(results_dir, spec, grid)
    took = "" if seconds is None else f" in {_hms(seconds)}"
    lines = [f"== {spec.id} ({grid} grid): finished{took}, exit status {status} =="]
    if status != 0 and step != "verify":
        lines.append(f"verdicts: none yet: `repro {step}` stopped the target before `repro verify`")
    else:
        try:
            results = verify.verify_spec(spec, grid=grid, results_dir=results_dir, golden=golden)
            counts = {s: sum(r.status == s for r in results) for s in claims.VERDICTS}
            lines.append(f"verdicts: {counts[claims.PASS]} PASS, {counts[claims.FAIL]} FAIL, "
                         f"{counts[claims.INCONCLUSIVE]} INCONCLUSIVE, {counts[claims.NOT_RUN]} NOT-RUN "
                         f"of {len(results)} claims (the table above; `python -m repro verify "
                         f"{spec.path}{'' if grid == 'reduced' else ' --grid ' + grid}` prints it again)")
        except UsageError as e:
            lines.append(f"verdicts: none: {e}")
    stem = pathlib.Path(figures_dir) / path.stem
    # as `repro plot` names them: the results file's name, '.png' and '.pdf' appended
    figures = [str(p) for p in (pathlib.Path(f"{stem}.png"), pathlib.Path(f"{stem}.pdf")) if p.exists()]
    lines.append("figure:   " + (", ".join(figures) if figures else f"not drawn yet ({stem}.png)"))
    lines.append(f"results:  {path}" + ("" if path.exists() else " (not written yet)")
                 + f"; trial records in {pathlib.Path(results_dir) / 'runs'} (rerunning reuses them)")
    lines.append("report:   `make report` writes report/index.html: every figure, verdict, interval "
                 "and paper number on one page")
    lines.append(meaning(status, step))
    if status:
        lines.append(f"(`make` reports it as 'Error {status}' and itself exits 2, as make does "
                     "whenever a recipe fails)")
    return "\n".join(lines)
