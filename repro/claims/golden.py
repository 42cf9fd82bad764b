"""Golden files: the tolerances the claims are checked against.

A golden file (``golden/<figure>.toml``, described in ``golden/README.md``) has one table per
claim holding its tolerance numbers plus ``source`` (where in the paper or in Prop. 4.1 the
number comes from) and ``why``. ``[panel.<id>.<claim>]`` tables override keys for one panel.
Which keys a claim's table takes is the claim's ``tolerance_schema`` (``registry.GOLDEN_SCHEMA``).
"""
import difflib
import pathlib
import tomllib

from ..errors import UsageError

from .base import NUMBER
from .registry import GOLDEN_SCHEMA


def _type_name(types):
    """Human name of an accepted type (or tuple of types)."""
    if types is NUMBER:
        return "a number"
    return {int: "an integer", bool: "true or false", list: "a list", str: "a string",
            dict: "a table"}[types]


def _is_type(value, types):
    """isinstance, but a TOML boolean is never a number or integer."""
    if isinstance(value, bool) and types is not bool:
        return False
    return isinstance(value, types)


def _check_provenance(path, key, entry, need_provenance):
    """`source` and `why`: required non-empty strings on a claim's table, strings where given."""
    if need_provenance:
        for meta in ("source", "why"):
            if not isinstance(entry.get(meta), str) or not entry[meta].strip():
                raise UsageError(path, f"{key}.{meta}", "missing or not a non-empty string",
                                 f"add {meta} = \"...\" saying " +
                                 ("where in the paper the number comes from" if meta == "source"
                                  else "why the tolerance is that wide"))
    for meta in ("source", "why"):
        if meta in entry and not isinstance(entry[meta], str):
            raise UsageError(path, f"{key}.{meta}", "must be a string", f"write {meta} = \"...\"")


def _check_entry(path, key, entry, claim, need_provenance):
    """Validate one claim table (or a per-panel override of it)."""
    if not isinstance(entry, dict):
        raise UsageError(path, key, "must be a table", f"write it as [{key}] with its tolerance keys")
    _check_provenance(path, key, entry, need_provenance)
    known = {"source", "why", *GOLDEN_SCHEMA.get(claim, {})}
    for name in entry:
        if claim in GOLDEN_SCHEMA and name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            raise UsageError(path, f"{key}.{name}", "unknown tolerance key",
                             (f"did you mean {close[0]!r}? " if close else "") +
                             f"known: {', '.join(sorted(known))}")
    for name, (types, required) in GOLDEN_SCHEMA.get(claim, {}).items():
        if name not in entry:
            if required and need_provenance:
                raise UsageError(path, f"{key}.{name}", "missing tolerance key",
                                 f"add {name} = <{_type_name(types)}> to [{key}]")
            continue
        if not _is_type(entry[name], types):
            raise UsageError(path, f"{key}.{name}", f"must be {_type_name(types)}, got {entry[name]!r}",
                             f"write {name} as {_type_name(types)}")
    _check_values(path, key, entry, claim)


def _check_values(path, key, entry, claim):
    """Range checks that types alone do not catch."""
    if claim == "linear_scaling" and "slope_min" in entry and "slope_max" in entry:
        if entry["slope_min"] > entry["slope_max"]:
            raise UsageError(path, f"{key}.slope_min", "is larger than slope_max", "swap them")
    for name in ("paper_band", "band"):
        band = entry.get(name)
        if band is not None and (len(band) != 2 or not all(_is_type(v, NUMBER) for v in band)
                                 or band[0] > band[1]):
            raise UsageError(path, f"{key}.{name}", "must be a list of two increasing numbers",
                             f"write {name} = [low, high]")


_including = []  # golden files being read through `include`, to stop cycles


def _read_toml(path):
    """The TOML file as a dict; a missing or malformed file is a UsageError."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise UsageError(path, "", "golden file not found", "create it; see golden/README.md") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(path, "", f"not valid TOML: {exc}", "fix the syntax") from None


def _with_include(path, golden):
    """`golden` with the claim tables of the file its ``include`` names underneath its own."""
    inc = golden.pop("include")
    if not isinstance(inc, str):
        raise UsageError(path, "include", "must be a file name", 'e.g. include = "figure-1.toml"')
    target = pathlib.Path(path).parent / inc
    if _including.count(str(target.resolve())) or len(_including) > 8:
        raise UsageError(path, "include", f"includes itself ({inc})", "break the cycle")
    _including.append(str(target.resolve()))
    try:
        base = load_golden(target)
    finally:
        _including.pop()
    base.pop("panel", None)  # per-panel overrides belong to that figure's panels only
    base.pop("figure", None)
    return {**base, **golden}


def load_golden(path) -> dict:
    """Read and validate a golden TOML file; returns its tables as a plain dict.

    Top-level tables are claims (``[linear_scaling]`` ...); ``[panel.<id>.<claim>]`` tables
    override keys for one panel; ``include = "other.toml"`` takes another file's claim tables
    first (this file's own tables win; the other file's panel overrides are not taken). Raises
    UsageError naming the file and key on any problem.
    """
    golden = _read_toml(path)
    if "include" in golden:  # tolerances shared with another figure: its tables, then ours
        golden = _with_include(path, golden)
    for key, entry in golden.items():
        if key == "panel":
            _check_overrides(path, entry, golden)
        elif isinstance(entry, dict):
            _check_entry(path, key, entry, key, need_provenance=True)
        elif key not in ("figure", "description"):
            raise UsageError(path, key, "unexpected top-level key", "claims are tables: [claim_name]")
    return golden


def _check_overrides(path, panels, golden):
    """Validate [panel.<id>.<claim>] override tables."""
    if not isinstance(panels, dict):
        raise UsageError(path, "panel", "must be a table of panels", "write [panel.<id>.<claim>]")
    for pid, claims in panels.items():
        if not isinstance(claims, dict):
            raise UsageError(path, f"panel.{pid}", "must be a table of claims", f"write [panel.{pid}.<claim>]")
        for claim, entry in claims.items():
            if claim not in golden:
                raise UsageError(path, f"panel.{pid}.{claim}", "overrides a claim with no top-level table",
                                 f"add [{claim}] first")
            _check_entry(path, f"panel.{pid}.{claim}", entry, claim, need_provenance=False)


def tolerance_for(golden, panel_id, claim):
    """The claim's golden table with any per-panel override applied; None if absent."""
    base = golden.get(claim)
    if not isinstance(base, dict):
        return None
    override = golden.get("panel", {}).get(str(panel_id), {}).get(claim, {})
    return {**base, **override}
