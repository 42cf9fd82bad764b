"""How repro writes for a reader: numbers, intervals, strict JSON and the command that runs a
study. Each has one home here, so a page, a terminal table and a verdict say the same thing
the same way.

* Numbers: `number` (significant digits, thousands separated: report cells) and `fixed`
  (decimals: verdict texts). A value that is not there (None, NaN) reads MISSING in both; an
  infinite one reads "inf" or "-inf".
* JSON: `jsonable` / `to_json`, strict (no NaN or Infinity): NaN -> null, inf -> "inf".
* Commands: `run_command`, the `python -m repro run ...` a reader is told to type.

Importing it imports no more than numpy: the claims, the report and the command line all use it.
"""
import json
import math

import numpy as np

MISSING = "n/a"  # how every table and verdict shows a value that is not there (None or NaN)


def _not_finite(x) -> str | None:
    """The text of None, NaN or an infinite number; None for a finite number."""
    if x is None or math.isnan(x):
        return MISSING
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return None


def number(x, digits=3) -> str:
    """A number for a cell: `digits` significant digits, whole numbers from 1,000 up with
    thousands separated; MISSING for None or NaN; a value that is no number as its text."""
    if x is None:
        return MISSING
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    special = _not_finite(x)
    if special is not None:
        return special
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def fixed(x, digits=2) -> str:
    """A number with `digits` decimals (0.84); MISSING for None or NaN."""
    special = _not_finite(None if x is None else float(x))
    return special if special is not None else f"{x:.{digits}f}"


def interval(bounds) -> str:
    """'[lo, hi]' with `number`'s digits; MISSING unless both ends are numbers."""
    if bounds is None or len(bounds) != 2 or any(
            end is None or (isinstance(end, float) and math.isnan(end)) for end in bounds):
        return MISSING
    return f"[{number(bounds[0])}, {number(bounds[1])}]"


def jsonable(value):
    """`value` made strict-JSON safe: NaN -> null, inf -> "inf", numpy scalars -> Python,
    tuples -> lists, dict keys -> text."""
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def to_json(value, indent=2) -> str:
    """`value` as strict JSON (`jsonable`), indented by `indent`."""
    return json.dumps(jsonable(value), indent=indent, allow_nan=False)


def run_command(spec_path, *, grid="reduced", panel=None, results_dir="results", goal=None) -> str:
    """The `python -m repro run` that trains (or reads) what a reader is missing: the spec, then
    only the options that differ from their defaults (grid, panel, results folder, goal)."""
    return (f"python -m repro run {spec_path}"
            + ("" if grid == "reduced" else f" --grid {grid}")
            + ("" if panel is None else f" --panel {panel}")
            + ("" if str(results_dir) == "results" else f" --results {results_dir}")
            + ("" if goal is None else f" --goal {goal}"))
