"""Typed values read from a parsed TOML table: each reader checks one value and, when it is
wrong, raises one UsageError that names the file, the key, what is wrong and how to fix it
(repro.spec reads specs with these; repro.golden-style readers may too)."""
import difflib
import math

from .errors import UsageError


class Ctx:
    """The file being read, so readers can raise errors that name it; `evaluations` is the
    limit on all its grids' evaluation schedules together."""

    def __init__(self, path, evaluations):
        self.path = path
        self.evaluations_limit = evaluations
        self.evaluations_left = evaluations  # the spec's grids' schedules, together

    def spend_evaluations(self, n, key):
        """Count one grid's schedule (n entries) against the spec-wide limit."""
        if n > self.evaluations_left:
            self.fail(key, f"the evaluation schedules of this spec's grids add up to more than "
                      f"{self.evaluations_limit:,} evaluations", "raise eval_every (or "
                      "lipschitz_every), or split the panels over several specs")
        self.evaluations_left -= n

    def fail(self, key, problem, fix=""):
        raise UsageError(self.path, key, problem, fix)


def choose(word, known):
    """Fix text: 'did you mean X?' if close, and the list of known names."""
    close = difflib.get_close_matches(str(word), list(known), n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return hint + "known: " + (", ".join(known) if known else "(none)")


def check_keys(ctx, table, known, key):
    for k in table:
        if k not in known:
            ctx.fail(f"{key}.{k}" if key else k, "unknown key", choose(k, known))


def require(ctx, table, name, key):
    if name not in table:
        ctx.fail(f"{key}.{name}" if key else name, "missing required key", f"add '{name} = ...'")
    return table[name]


def table(ctx, v, key):
    if not isinstance(v, dict):
        ctx.fail(key, f"must be a table, got {type_name(v)}", f"write [{key}] or {key} = {{ ... }}")
    return v


def type_name(v):
    return {bool: "a boolean", int: "an integer", float: "a float", str: "a string",
            list: "an array", dict: "a table"}.get(type(v), type(v).__name__)


def show_int(v):
    """An integer for a message: as written up to 64 bits, else only its size (a TOML
    integer may have thousands of digits, more than Python will turn into text)."""
    return str(v) if v.bit_length() <= 64 else f"an integer of {v.bit_length()} bits"


def int_value(ctx, v, key, lo=None, hi=None, limit=""):
    """A TOML integer in [lo, hi]; `limit` says where hi comes from (for the message)."""
    if type(v) is not int:
        ctx.fail(key, f"must be an integer, got {type_name(v)} {short(v)}", "write a whole number like 16")
    if lo is not None and v < lo:
        ctx.fail(key, f"must be >= {lo}, got {show_int(v)}", f"use a value >= {lo}")
    if hi is not None and v > hi:
        ctx.fail(key, f"must be <= {hi:,}{' (' + limit + ')' if limit else ''}, got {show_int(v)}",
                 f"use a value <= {hi:,}; specs/README.md, \"Limits\", says why")
    return v


def short(v):
    """repr(v) for a message, cut to 40 characters (a value may be a huge list or number)."""
    if isinstance(v, int) and not isinstance(v, bool):
        return show_int(v)
    text = repr(v) if not isinstance(v, (list, dict)) else f"of {len(v)} items"
    return text if len(text) <= 40 else text[:37] + "..."


def float_value(ctx, v, key):
    if type(v) not in (int, float):
        ctx.fail(key, f"must be a number, got {type_name(v)} {short(v)}", "write a number like 0.5")
    try:
        f = float(v)
    except OverflowError:  # an integer beyond the float range
        ctx.fail(key, f"must be a finite number, got {show_int(v)}", "write a number below 1e308")
    if not math.isfinite(f):
        ctx.fail(key, f"must be finite, got {v}", "write a finite number")
    return f


def str_value(ctx, v, key, choices=None):
    if not isinstance(v, str):
        ctx.fail(key, f"must be a string, got {type_name(v)} {short(v)}", 'write it in quotes, like "x"')
    if choices is not None and v not in choices:
        ctx.fail(key, f"unknown value '{v}'", choose(v, choices))
    return v


def list_value(ctx, v, key, item, nonempty=True):
    if not isinstance(v, list):
        ctx.fail(key, f"must be an array, got {type_name(v)}", "write [x, y, ...]")
    if nonempty and not v:
        ctx.fail(key, "must not be empty", "list at least one value")
    out = [item(x, f"{key}[{i}]") for i, x in enumerate(v)]
    seen = set()  # not `x in out[:i]`: quadratic in the list's length
    for i, x in enumerate(out):
        if x in seen:
            ctx.fail(f"{key}[{i}]", f"duplicate value {short(v[i])}", "list each value once")
        seen.add(x)
    return tuple(sorted(out))
