"""Specs -> verdicts: read each spec's stored results and check its claims against golden.

This is what ``python -m repro verify`` and ``python -m repro report`` share: both call
:func:`verify_specs` and get one :class:`repro.claims.ClaimResult` per (figure, panel, claim).
It never trains: with ``goal`` it re-reads the stored runs at another goal.
"""
import pathlib
import sys

from .errors import UsageError
from .spec import results_path


def golden_path(spec, override=None) -> pathlib.Path:
    """golden/<figure>.toml beside the specs folder (or the path given)."""
    if override:
        return pathlib.Path(override)
    candidate = spec.path.resolve().parent.parent / "golden" / f"{spec.id}.toml"
    return candidate if candidate.exists() else pathlib.Path("golden") / f"{spec.id}.toml"


def declares_claims(spec) -> bool:
    """Whether some panel of `spec` declares a claim to check."""
    return any(p.claims for p in spec.panels)


def needs_no_golden(spec, override=None) -> bool:
    """True for a spec none of whose panels declares a claim, with no golden file and none named
    (`override`): it has nothing to check, so no tolerances to read. A golden file that is there
    is read and validated all the same."""
    return override is None and not declares_claims(spec) and not golden_path(spec).exists()


def nothing_to_check(spec, grid="reduced") -> list:
    """The lines `verify` prints for what `spec` does not check: the spec when no panel declares
    a claim, else each panel that declares none ([] when every panel declares some)."""
    if not declares_claims(spec):
        g = "" if grid == "reduced" else f" --grid {grid}"
        return [f"{spec.id}: nothing to check (no panel of {spec.path} declares claims); its K* "
                f"tables and fits: python -m repro report {spec.path}{g}"]
    return [f"{spec.id} panel ({p.id}): nothing to check (it declares no claims)"
            for p in spec.panels if not p.claims]


def load_checked_golden(spec, override=None) -> dict:
    """The spec's golden file, refusing a claim a panel declares but the file has no tolerance
    for; {} for a spec that declares no claims and has no golden file (`needs_no_golden`)."""
    from . import claims
    if needs_no_golden(spec, override):
        return {}
    gpath = golden_path(spec, override)
    golden = claims.load_golden(gpath)
    for p in spec.panels:  # a declared claim with no tolerance is a configuration error
        for c in p.claims:
            if claims.tolerance_for(golden, p.id, c) is None:
                raise UsageError(gpath, c, f"no tolerance for claim {c!r}, which panel {p.id} of "
                                 f"{spec.path} declares", f"add a [{c}] table with its tolerance "
                                 "and source (golden/README.md), or drop the claim from the panel")
    return golden


def verify_spec(spec, *, grid="reduced", results_dir="results", golden=None, goal=None) -> list:
    """Every claim of every panel of one spec, from its stored results (NOT-RUN where none)."""
    from . import claims, spec as spec_mod, store
    golden_table = load_checked_golden(spec, golden)
    if not declares_claims(spec):
        return []  # nothing to check (`nothing_to_check` says so)
    panels = {p.id: list(p.claims) for p in spec.panels}
    if goal is not None and spec.kind not in spec_mod.SMOOTHNESS_KINDS:
        from . import plan as plan_mod, records
        plan = plan_mod.compile_plan(spec, grid, goal=goal)
        ds = records.collect_plan(plan, results_dir, capping=spec.capping)
        ds.attrs["goal"] = goal
        unknown = sum(len(p.points) * p.grid.trials for p in plan.panels) - int((ds["status"] > 0).sum())
        if unknown:
            print(f"{spec.id}: {unknown} trials not stored or not answerable at goal {goal:g} "
                  f"by the stored curves; run: python -m repro run {spec.path} --goal {goal:g}",
                  file=sys.stderr)
        return claims.verify_dataset(ds, spec.id, panels, golden_table, results_dir)
    path = results_path(results_dir, spec, grid)
    if not path.exists():
        how = f"python -m repro run {spec.path}" + ("" if grid == "reduced" else f" --grid {grid}") \
            + ("" if str(results_dir) == "results" else f" --results {results_dir}")
        return [claims.not_run(spec.id, pid, c, f"no results file {path}; run: {how}")
                for pid, cs in panels.items() for c in cs]
    ds = store.open_results(path, spec, grid)
    return claims.verify_dataset(ds, spec.id, panels, golden_table, results_dir)


def verify_specs(specs, *, grid="reduced", results_dir="results", golden=None, goal=None) -> list:
    """verify_spec over a list of specs (``spec.load_specs`` of a file or folder), in order."""
    results = []
    for sp in specs:
        results += verify_spec(sp, grid=grid, results_dir=results_dir, golden=golden, goal=goal)
    return results
