"""Error control across a figure: a FAIL must survive Holm's step-down over every decision.

Each interval decision a check makes (``base.decide``) is recorded with a p-value for "the
claim's part holds", read off its 95 % interval: the interval's half-width on the side of the
threshold is taken as 1.96 standard errors, so an interval that just touches the threshold
has p = 0.05 and one whose near end is further away has a smaller p (a normal approximation
of the resampled statistic, widened for the search as the interval is). A figure's decisions
are then tested together with Holm's step-down procedure at family-wise level ALPHA: sorted by
p, the i-th smallest of M is rejected while p <= ALPHA / (M - i + 1). A FAIL whose decisions
are not rejected becomes INCONCLUSIVE, with the p-value and what it would need. So the chance
that a figure whose claims all hold shows any FAIL is at most ALPHA (tests/test_calibration.py
measures it on simulated true-claim figures).
"""
import contextlib
import dataclasses
import math

ALPHA = 0.05   # family-wise false-FAIL rate per figure
Z95 = 1.959963984540054


@dataclasses.dataclass(frozen=True)
class Decision:
    """One interval decision of a check: its status and the p-value of "this part holds"."""

    status: str
    p_value: float


def log_scale(v):
    """A ratio's value on the log scale: log v, -inf at or below 0 (unbounded below), NaN kept."""
    return math.log(v) if v > 0 else (math.nan if math.isnan(v) else -math.inf)


def p_value(interval, band, above=False, log=False) -> float:
    """Two-sided p-value that the statistic lies in `band` (the claim's part holds), from a 95 %
    interval read as estimate +- 1.96 standard errors on the side towards the band; 1 where the
    interval reaches into the band or is unbounded towards it. `log`: a ratio whose interval
    was taken on the log scale, read there (an end at 0 is unbounded)."""
    lo, hi = interval
    a, b = band
    if log:
        lo, hi, a, b = log_scale(lo), log_scale(hi), log_scale(a), log_scale(b)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return 1.0
    mid = (lo + hi) / 2
    half = (hi - lo) / 2
    if hi < a or (above and hi <= a):
        gap = a - mid
    elif lo > b:
        gap = mid - b
    else:
        return 1.0
    if half <= 0:
        return 0.0
    z = Z95 * gap / half
    return math.erfc(z / math.sqrt(2))


def holm_rejected(p_values, alpha=ALPHA) -> list:
    """Holm's step-down: which of `p_values` are rejected at family-wise level `alpha`."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    rejected = [False] * m
    for rank, i in enumerate(order):
        if p_values[i] <= alpha / (m - rank):
            rejected[i] = True
        else:
            break
    return rejected


_RECORDERS = []  # the decisions of the claim being checked (innermost `recording` last)


@contextlib.contextmanager
def recording():
    """Collect every decision made inside the block (a list of Decision)."""
    out = []
    _RECORDERS.append(out)
    try:
        yield out
    finally:
        _RECORDERS.pop()


def record(status, p):
    """Note one decision, if a claim is being recorded."""
    if _RECORDERS:
        _RECORDERS[-1].append(Decision(status, p))


def control_figure(results, alpha=ALPHA):
    """Holm over every decision of one figure's claim results (their values["decisions"]): a
    FAIL none of whose FAIL decisions is rejected becomes INCONCLUSIVE, saying why. Returns
    the results, changed in place; each gets values["error_control"]."""
    entries = [(n, d) for n, r in enumerate(results) for d in r.values.get("decisions", ())]
    p_values = [d["p_value"] if d["status"] == "FAIL" else 1.0 for _, d in entries]
    rejected = holm_rejected(p_values, alpha)
    standing = {n for (n, d), rej in zip(entries, rejected) if rej}
    for n, r in enumerate(results):
        fails = [d["p_value"] for d in r.values.get("decisions", ()) if d["status"] == "FAIL"]
        r.values["error_control"] = {"method": "Holm", "alpha": alpha, "decisions": len(entries)}
        if r.status == "FAIL" and fails and n not in standing:
            r.status = "INCONCLUSIVE"
            r.detail = (f"FAIL on its own (p = {min(fails):.2g}), but not beyond the figure's error "
                        f"control (Holm over its {len(entries)} decisions, family-wise {alpha:g}: "
                        f"needs p <= {alpha / len(entries):.2g} or a smaller share of the figure's "
                        "evidence against it); more data at its points would decide"
                        + (f"; {r.detail}" if r.detail else ""))
    return results
