"""K* tables: a CSV of steps-to-result per (batch size, sparsity), optionally per seed and
trial, as ``verify --table`` reads it (README, "verify --table")."""
import csv
import math

from ..errors import UsageError

TABLE_COLUMNS = ("batch_size", "sparsity", "steps_to_result")
_OPTIONAL = ("seed", "trial")


def _cell(path, n, col, text):
    """One cell as a number: steps_to_result a float (empty or nan: the goal was not reached),
    batch_size, seed and trial integers, sparsity a float."""
    try:
        if col == "steps_to_result":
            return math.nan if text in ("", "nan", "NaN") else float(text)
        if col in ("batch_size", "seed", "trial"):
            return int(text)
        return float(text)
    except ValueError:
        raise UsageError(path, f"line {n}, {col}", f"not a number: {text!r}",
                         "write a number (steps_to_result may be empty: goal not reached)") from None


def _row(path, n, header, raw):
    """One CSV record as a checked row of numbers."""
    raw = {k.strip(): (v or "").strip() for k, v in raw.items() if k}
    row = {col: _cell(path, n, col, raw.get(col, "")) for col in header if col in (*TABLE_COLUMNS, *_OPTIONAL)}
    if row["batch_size"] <= 0 or not 0.0 <= row["sparsity"] < 1.0 or \
            (math.isfinite(row["steps_to_result"]) and row["steps_to_result"] <= 0):
        raise UsageError(path, f"line {n}", "batch_size must be > 0, sparsity in [0, 1), "
                         "steps_to_result > 0", "fix the row")
    return row


def _read_rows(path):
    """The table's rows in file order; a missing column or bad cell is a UsageError."""
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in TABLE_COLUMNS if c not in header]
        if missing:
            raise UsageError(path, missing[0], "missing column",
                             f"the header must name {', '.join(TABLE_COLUMNS)} (optional: seed, trial)")
        return [_row(path, n, header, raw) for n, raw in enumerate(reader, start=2)]


def read_table(path) -> list:
    """Rows of a K* table CSV: columns batch_size, sparsity, steps_to_result (empty or nan: the
    goal was not reached), optional seed and trial. Raises UsageError naming the file, row and column."""
    try:
        rows = _read_rows(path)
    except FileNotFoundError:
        raise UsageError(path, "", "table not found", "give the path of a CSV file") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise UsageError(path, "", f"not a CSV table ({e})", "write it as comma-separated text") from None
    if not rows:
        raise UsageError(path, "", "the table has no rows", "add one row per study point (or trial)")
    keys = [(r["batch_size"], r["sparsity"], r.get("seed", 0), r.get("trial", 0)) for r in rows]
    if len(set(keys)) != len(keys):
        raise UsageError(path, "", "a (batch_size, sparsity, seed, trial) appears twice",
                         "one row per study point, seed and trial")
    return rows
