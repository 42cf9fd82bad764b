"""Specs -> verdicts: read each spec's stored results and check its claims against golden.

This is what ``python -m repro verify`` and ``python -m repro report`` share: both call
:func:`verify_specs` and get one :class:`repro.claims.ClaimResult` per (figure, panel, claim).
It never trains: with ``goal`` it re-reads the stored runs at another goal.
"""
import pathlib
import sys

from .errors import UsageError


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
    """Every claim of every panel of one spec, from its stored results (NOT-RUN where none).

    The spec's kind of study (repro.study.study_kind) says what is read: its results file, or
    a search's stored runs re-read at `goal` (the trials that leaves unanswered go to stderr),
    and how the claims read it."""
    from . import claims, study as study_mod
    golden_table = load_checked_golden(spec, golden)
    if not declares_claims(spec):
        return []  # nothing to check (`nothing_to_check` says so)
    panels = {p.id: list(p.claims) for p in spec.panels}
    kind = study_mod.study_kind(spec)
    stored = kind.stored_results(spec, grid_name=grid, results_dir=results_dir, goal=goal)
    if stored.unanswered:
        print(stored.unanswered, file=sys.stderr)
    if stored.dataset is None:
        return [claims.not_run(spec.id, pid, c, stored.missing) for pid, cs in panels.items() for c in cs]
    return claims.verify_dataset(stored.dataset, spec.id, panels, golden_table, results_dir,
                                 reading=kind.claim_reading())


def verify_specs(specs, *, grid="reduced", results_dir="results", golden=None, goal=None) -> list:
    """verify_spec over a list of specs (``spec.load_specs`` of a file or folder), in order."""
    results = []
    for sp in specs:
        results += verify_spec(sp, grid=grid, results_dir=results_dir, golden=golden, goal=goal)
    return results
