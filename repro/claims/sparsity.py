"""Claims that compare sparsities on one panel's K*(B) (Fig. 1, 12 and App. C): the sparse
network needs more steps, by a ratio in the paper's band, with a larger fitted c1 and a
critical batch size no smaller, and c1 rising with sparsity. Each reads only K* per (B, s),
so a K* table alone can decide it."""
import math

import numpy as np

from .base import FAIL, INCONCLUSIVE, NUMBER, PASS, Claim, NotRun, Reads, Verdict, decide, verdict_of, worst
from .context import c1_ratio_verdict, dense_and_sparsest, fit_ratio, ratio_stats, to_decide
from .text import fmt, fmt_iv, fmt_s


def _slower_details(ctx, rows, per_b, floor, band, mean, mean_iv):
    """The detail text of sparse_slower: where sparse is not slower, what would decide the
    undecided batch sizes, and where the mean lies against the paper's approximate band."""
    details = []
    faster = [b for b, v in per_b.items() if v == FAIL]
    if faster:
        details.append(f"sparse not slower beyond uncertainty at B={faster}")
    open_b = [b for b, v in per_b.items() if v == INCONCLUSIVE]
    if open_b:
        details.append(f"ratio interval straddles {floor:g} at B={open_b}; to decide: "
                       + to_decide(ctx, rows[open_b[0]][0], rows[open_b[0]][1], floor))
    if band and all(map(math.isfinite, mean_iv)) and verdict_of(mean_iv, tuple(band)) != PASS:
        details.append(f"the mean ratio {fmt_iv(mean, mean_iv)} is not inside the paper's approximate "
                       f"{band[0]:g}-{band[1]:g} (Fig. 12; shown, not a condition of this claim: "
                       "sparse_ratio_band checks the band)")
    return details


def check_sparse_slower(ctx, tol):
    """K*(s_max)/K*(0): above min_ratio beyond uncertainty at every B (a B where dense missed the
    goal and sparse reached it counts against). The geometric mean over B is shown with its
    interval beside the paper's approximate band (Fig. 12 reads "~1.5 to ~4.5"), which is a
    reference here, not a limit: the claim is that sparse needs more steps."""
    s0, s_max = dense_and_sparsest(ctx.sparsities)
    rows = ratio_stats(ctx, s0, s_max)
    if not rows:
        raise NotRun(f"no batch size has a measured K* at both s=0 and s={fmt_s(s_max)}")
    floor = tol["min_ratio"]
    per_b = {b: decide(iv, (floor, math.inf), above=True, log=True) for b, (_, iv, _) in rows.items()}
    both = [b for b, (_, _, note) in rows.items() if not note]
    j0, j1 = ctx.ev.s_index(s0), ctx.ev.s_index(s_max)
    idx = np.isin(ctx.b, both)
    mean_fn = lambda t: float(np.exp(np.mean(np.log(t[j1, idx] / t[j0, idx])))) if idx.any() else math.nan  # noqa: E731
    mean, mean_iv = ctx.stat(mean_fn, ratio=True)
    parts = list(per_b.values())
    band = tol.get("paper_band")
    status = worst(parts)
    measured = (f"mean ratio {fmt_iv(mean, mean_iv)} over B {both}; per B: " +
                ", ".join(f"{b}: {fmt_iv(r, iv)}" + (f" ({note})" if note else "") for b, (r, iv, note) in rows.items()))
    details = _slower_details(ctx, rows, per_b, floor, band if idx.any() else None, mean, mean_iv)
    tolerance = f"ratio > {floor:g} at every B"
    return Verdict(status, measured, tolerance, "; ".join(details),
                   {"s_max": s_max, "ratios": {str(b): {"ratio": r, "interval": iv} for b, (r, iv, _) in rows.items()},
                    "mean_ratio": mean, "interval": mean_iv, "statistic": "K*(s_max)/K*(0)"},
                   paper=f"{band[0]:g}-{band[1]:g}x (Fig. 12)" if band else "")


def check_sparse_ratio_band(ctx, tol):
    """K*(s_max)/K*(0) inside the paper's band at every B where both are measured."""
    lo, hi = tol["band"]
    s0, s_max = dense_and_sparsest(ctx.sparsities)
    rows = {b: r for b, r in ratio_stats(ctx, s0, s_max).items() if not r[2]}
    if not rows:
        raise NotRun(f"no batch size has a measured K* at both s=0 and s={fmt_s(s_max)}")
    per_b = {b: decide(iv, (lo, hi), log=True) for b, (_, iv, _) in rows.items()}
    details = [f"outside the band beyond uncertainty at B={[b for b, v in per_b.items() if v == FAIL]}"] \
        if FAIL in per_b.values() else []
    if INCONCLUSIVE in per_b.values():
        details.append(f"interval straddles the band's edge at B={[b for b, v in per_b.items() if v == INCONCLUSIVE]}")
    return Verdict(worst(list(per_b.values())),
                   "ratio " + ", ".join(f"{fmt_iv(r, iv)} (B={b})" for b, (r, iv, _) in rows.items()),
                   f"K*(s={fmt_s(s_max)})/K*(0) in [{lo:g}, {hi:g}] at every B", "; ".join(details),
                   {"s_max": s_max, "ratios": {str(b): {"ratio": r, "interval": iv} for b, (r, iv, _) in rows.items()}},
                   paper=f"{lo:g}-{hi:g}x (Fig. 12)")


def check_sparse_c1_larger(ctx, tol):
    """c1 of the Prop. 4.1 fit at s_max over c1 dense: interval above min_ratio."""
    s0, s_max = dense_and_sparsest(ctx.sparsities)
    status, text, detail, value, iv = c1_ratio_verdict(ctx, tol["min_ratio"], s_num=s_max, s_den=s0)
    paper = f"~{tol['paper_value']:g} (App. C)" if "paper_value" in tol else ""
    return Verdict(status, f"c1 ratio {text}", f"c1(s={fmt_s(s_max)})/c1(0) > {tol['min_ratio']:g}",
                   detail, {"s_max": s_max, "ratio": value, "interval": iv, "statistic": "c1 ratio",
                            "fit_dense": ctx.fit(s0)[0], "fit_sparse": ctx.fit(s_max)[0]}, paper=paper)


def check_sparse_critical_batch_no_smaller(ctx, tol):
    """B_crit = c1/c2 of the Prop. 4.1 fit at s_max over dense's: not below min_ratio beyond
    uncertainty (FAIL when the interval lies below it)."""
    s0, s_max = dense_and_sparsest(ctx.sparsities)
    floor = tol["min_ratio"]
    value, iv, why = fit_ratio(ctx, s_max, s0, column=2)
    crit = {fmt_s(s): ctx.fit(s)[0]["b_crit"] for s in (s0, s_max)}
    if why:
        return Verdict(INCONCLUSIVE, "B_crit " + ", ".join(f"{fmt(c, 0)} (s={s})" for s, c in crit.items()),
                       f"B_crit(s={fmt_s(s_max)})/B_crit(0) >= {floor:g}", why, {"b_crit": crit})
    status = decide(iv, (floor, math.inf), log=True)
    detail = "" if status != INCONCLUSIVE else (
        f"interval straddles {floor:g}; to decide: " + to_decide(ctx, value, iv, floor))
    return Verdict(status, f"B_crit ratio {fmt_iv(value, iv)}; B_crit " +
                   ", ".join(f"{fmt(c, 0)} (s={s})" for s, c in crit.items()),
                   f"B_crit(s={fmt_s(s_max)})/B_crit(0) >= {floor:g}", detail,
                   {"b_crit": crit, "ratio": value, "interval": iv, "statistic": "B_crit ratio"},
                   paper="no smaller (Fig. 1 col. 4; Momentum ~2^9 dense vs ~2^11 at 90 %)")


def check_c1_increasing_with_sparsity(ctx, tol):
    """c1 rises from each sparsity to the next: every consecutive ratio's interval above min_ratio."""
    ss = sorted(ctx.sparsities)
    if len(ss) < 2:
        raise NotRun("needs at least two sparsities")
    parts, texts, details, values = [], [], [], {}
    for a, b in zip(ss, ss[1:]):
        status, text, detail, value, iv = c1_ratio_verdict(ctx, tol["min_ratio"], s_num=b, s_den=a)
        parts.append(status)
        texts.append(f"{fmt_s(b)}/{fmt_s(a)}: {text}")
        values[f"{fmt_s(b)}/{fmt_s(a)}"] = {"ratio": value, "interval": iv}
        if detail:
            details.append(f"{fmt_s(b)}/{fmt_s(a)}: {detail}")
    return Verdict(worst(parts), "c1 ratio " + "; ".join(texts),
                   f"c1(next sparsity)/c1 > {tol['min_ratio']:g} at each step", "; ".join(details),
                   {"ratios": values, "statistic": "c1 ratio"})


SPARSE_SLOWER = Claim(name="sparse_slower", reads=Reads.KSTAR, check=check_sparse_slower,
                      tolerance_schema={"min_ratio": (NUMBER, True), "paper_band": (list, False)})
SPARSE_C1_LARGER = Claim(name="sparse_c1_larger", reads=Reads.KSTAR, check=check_sparse_c1_larger,
                         tolerance_schema={"min_ratio": (NUMBER, True), "paper_value": (NUMBER, False)})
SPARSE_RATIO_BAND = Claim(name="sparse_ratio_band", reads=Reads.KSTAR, check=check_sparse_ratio_band,
                          tolerance_schema={"band": (list, True)})
SPARSE_CRITICAL_BATCH_NO_SMALLER = Claim(name="sparse_critical_batch_no_smaller", reads=Reads.KSTAR,
                                         check=check_sparse_critical_batch_no_smaller,
                                         tolerance_schema={"min_ratio": (NUMBER, True)})
C1_INCREASING_WITH_SPARSITY = Claim(name="c1_increasing_with_sparsity", reads=Reads.KSTAR,
                                    check=check_c1_increasing_with_sparsity,
                                    tolerance_schema={"min_ratio": (NUMBER, True)})
