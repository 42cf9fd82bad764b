"""Claims about the shape of one sparsity's K*(B) curve (Fig. 1 and Prop. 4.1): linear scaling
at small batch sizes, a plateau at large ones, and diminishing returns in between. Each reads
only K* per (B, s), so a K* table alone can decide it."""
import math

import numpy as np

from .. import analysis, evidence

from .base import FAIL, INCONCLUSIVE, NUMBER, PASS, Claim, Reads, Verdict, decide, worst
from .context import finite_b, of_sparsity, ran, slope_over, to_decide
from .text import fmt_iv, fmt_s


def check_linear_scaling(ctx, tol):
    """Per sparsity: over the grid's batch sizes with B <= B_crit/2 (the fitted Prop. 4.1 B_crit,
    where its local slope -1/(1 + B/B_crit) is at most -2/3), the log-log slope of K* lies in
    [slope_min, slope_max], with its interval."""
    band = (tol["slope_min"], tol["slope_max"])
    parts, texts, details, values = [], [], [], {}
    for s in ctx.sparsities:
        row = ctx.row(s)
        point, reps = ctx.fit(s)
        if math.isnan(point["c1"]):
            parts.append(INCONCLUSIVE)
            details.append(f"s={fmt_s(s)}: the Prop. 4.1 fit needs {analysis.MIN_FIT_POINTS} "
                           f"batch sizes with a K*, has {point['n_points']}")
            ctx.request_batch_sizes(s, analysis.MIN_FIT_POINTS, f"the Prop. 4.1 fit (s={fmt_s(s)})")
            continue
        b_crit = point["b_crit"]
        window = ctx.b[ctx.b <= b_crit / 2]
        censored = set(ctx.censored(s).tolist())
        if censored and len(censored) < window.size:
            # a censored point below the fitted regime's edge is a bound inside it (K* > budget)
            window = ctx.b[(ctx.b <= b_crit / 2) | (np.isin(ctx.b, list(censored)) & (ctx.b < window.max()))]
        unreached = [int(b) for b in window if not np.isfinite(row[ctx.b == b][0])
                     and ran(ctx, ctx.ev.s_index(s), int(np.nonzero(ctx.b == b)[0][0]))]
        measured_b = [b for b in window if np.isfinite(row[ctx.b == b][0]) or b in censored]
        if len(measured_b) < 2:
            parts.append(INCONCLUSIVE)
            why = (f"s={fmt_s(s)}: the linear regime is B <= B_crit/2 = {b_crit / 2:.3g} "
                   f"(fitted B_crit {b_crit:.3g}); the grid has {len(measured_b)} measured B there")
            if unreached:
                why += f" (no K* at B={unreached}: a larger step budget there would decide)"
                ctx.request("budget", f"no K* at B={unreached} (s={fmt_s(s)})", batch_sizes=unreached, sparsity=s)
            else:
                why += f": batch sizes below {b_crit / 2:.3g} would decide"
                smaller = [b for b in (ctx.b.min() / 4, ctx.b.min() / 2) if b >= 1]
                ctx.request("batch_sizes", f"the linear regime B <= {b_crit / 2:.3g} (s={fmt_s(s)})",
                            batch_sizes=smaller[:1], sparsity=s)
            details.append(why)
            continue
        slope = slope_over(np.asarray(measured_b), ctx.b)
        value, iv = ctx.stat(of_sparsity(slope, ctx.ev.s_index(s)))
        verdict = decide(iv, band)
        parts.append(verdict)
        texts.append(f"{fmt_iv(value, iv)} (s={fmt_s(s)}, B {int(measured_b[0])}-{int(measured_b[-1])})")
        values[fmt_s(s)] = {"slope": value, "interval": iv, "batch_sizes": [int(x) for x in measured_b],
                            "b_crit": b_crit}
        if verdict == INCONCLUSIVE:
            edge = band[0] if iv[0] < band[0] else band[1]
            details.append(f"s={fmt_s(s)}: interval straddles {edge:g}; to decide: "
                           + to_decide(ctx, value, iv, edge))
        bounded = [b for b in unreached if b in censored]
        if bounded:
            details.append(f"s={fmt_s(s)}: K* at B={bounded} is above the step budget and enters "
                           "as that bound")
        elif unreached:
            details.append(f"s={fmt_s(s)}: no K* at B={unreached} inside the linear regime")
    return Verdict(worst(parts), "slope " + ("; ".join(texts) or "-"),
                   f"log-log slope in [{band[0]:g}, {band[1]:g}] over B <= B_crit/2",
                   "; ".join(details), {"slopes": values, "statistic": "log-log slope"})


def _before_plateau(s, top, point, need):
    """Why a still-falling curve that the grid leaves before 4 B_crit is undecided."""
    fitted = not math.isnan(point["c1"])
    where = (f"the Prop. 4.1 fit needs {analysis.MIN_FIT_POINTS} batch sizes with a K*" if not fitted
             else "B_crit is beyond the grid (the fit has no plateau term)" if math.isinf(need)
             else f"batch sizes >= 4 B_crit = {need:.3g} (fitted B_crit {point['b_crit']:.3g})")
    return f"s={fmt_s(s)}: the grid stops at B={int(top[1])}, before the plateau; to decide: {where}"


def check_plateau(ctx, tol):
    """Per sparsity: the local slope at the largest B (over the two largest measured B) is at
    least slope_min (by Prop. 4.1, B >= 4 B_crit for -0.2) and K* does not rise beyond its
    uncertainty (FAIL when the slope's interval lies above 0). A slope below slope_min FAILs
    only where both B lie at or above 4 B_crit (B_crit at the top of its interval); a curve
    still falling before that is INCONCLUSIVE, with the B that would decide."""
    lo_ok = tol["slope_min"]
    parts, texts, details, values = [], [], [], {}
    for s in ctx.sparsities:
        b, v = finite_b(ctx.row(s), ctx.b)
        if b.size < 2:
            parts.append(INCONCLUSIVE)
            details.append(f"s={fmt_s(s)}: {b.size} batch size(s) with a K*; needs 2 at the large-B end")
            continue
        top = b[-2:]
        slope = slope_over(top, ctx.b)
        value, iv = ctx.stat(of_sparsity(slope, ctx.ev.s_index(s)))
        values[fmt_s(s)] = {"slope": value, "interval": iv, "batch_sizes": [int(x) for x in top]}
        texts.append(f"{fmt_iv(value, iv)} (s={fmt_s(s)}, B {int(top[0])}-{int(top[1])})")
        point, cols = ctx.fit(s)
        fitted = not math.isnan(point["c1"])
        need = 4 * point["b_crit"] if fitted and math.isfinite(point["b_crit"]) else math.inf
        # Prop. 4.1 puts every local slope above -0.2 only for B >= 4 B_crit, so the slope over
        # the two largest B is held to it only when the smaller of them is there, B_crit taken
        # at the top of its interval (a secant reaching back below 4 B_crit is steeper)
        crit_hi = evidence.interval(cols[:, 2])[1] if fitted else math.inf
        reached = bool(top[0] >= 4 * crit_hi)
        # not rising (slope <= 0) and, where the fit places the largest B in the plateau, flat
        # (slope >= slope_min); before the plateau a falling curve decides nothing
        rising = decide(iv, (-math.inf, 0.0)) == FAIL
        flat = decide(iv, (lo_ok, math.inf)) if reached or iv[0] >= lo_ok else None
        if rising:
            parts.append(FAIL)
            details.append(f"s={fmt_s(s)}: K* rises from B={int(top[0])} to {int(top[1])} beyond its uncertainty")
        elif flat == PASS:
            parts.append(PASS)
        elif flat == FAIL:
            parts.append(FAIL)
            details.append(f"s={fmt_s(s)}: still falling from B={int(top[0])} to {int(top[1])}, which "
                           f"the fit places in the plateau (B >= 4 B_crit, B_crit <= {crit_hi:.3g})")
        else:
            parts.append(INCONCLUSIVE)
            if not reached:
                details.append(_before_plateau(s, top, point, need))
                if math.isfinite(crit_hi) or math.isfinite(need):
                    edge = 4 * (crit_hi if math.isfinite(crit_hi) else need / 4)
                    b_next = int(2 ** math.ceil(math.log2(edge)))
                    wanted = [b for b in (b_next, 2 * b_next) if b not in ctx.b]
                    ctx.request("batch_sizes", f"two batch sizes in the plateau B >= 4 B_crit "
                                f"(<= {edge:.3g}, s={fmt_s(s)})", batch_sizes=wanted, sparsity=s)
                else:
                    ctx.request("batch_sizes", f"the plateau (s={fmt_s(s)})",
                                batch_sizes=[int(ctx.b.max()) * 4], sparsity=s)
            else:
                details.append(f"s={fmt_s(s)}: interval straddles {lo_ok:g}; to decide: "
                               + to_decide(ctx, value, iv, lo_ok))
    return Verdict(worst(parts), "slope " + ("; ".join(texts) or "-"),
                   f"local slope at the largest B >= {lo_ok:g}, and not rising beyond uncertainty",
                   "; ".join(details), {"slopes": values, "statistic": "log-log slope at the largest B"})


def check_diminishing_returns(ctx, tol):
    """Per sparsity: the local slope rises from the small-B end to the large-B end (the slope
    over the 2 largest measured B minus the slope over the 2 smallest, > min_flattening beyond
    uncertainty; Prop. 4.1's slope rises monotonically), and K* never rises between consecutive
    measured B beyond its uncertainty."""
    need = tol["min_flattening"]
    parts, texts, details, values = [], [], [], {}
    for s in ctx.sparsities:
        j = ctx.ev.s_index(s)
        b, v = finite_b(ctx.row(s), ctx.b)
        if b.size < 3:
            parts.append(INCONCLUSIVE)
            details.append(f"s={fmt_s(s)}: {b.size} batch sizes with a K*; needs 3")
            ctx.request_batch_sizes(s, 3, f"the bend of K*(B) (s={fmt_s(s)})")
            continue
        small, large = b[:2], b[-2:]
        slope_large, slope_small = slope_over(large, ctx.b), slope_over(small, ctx.b)

        def bend(t):
            return slope_large(t[j]) - slope_small(t[j])
        bend.over_rows = lambda stack: (slope_large.over_rows(stack[:, j])
                                        - slope_small.over_rows(stack[:, j]))
        value, iv = ctx.stat(bend)
        rises, maybe = [], []
        for a, c in zip(b, b[1:]):
            ia, ic = int(np.nonzero(ctx.b == a)[0][0]), int(np.nonzero(ctx.b == c)[0][0])
            r_value, r_iv = ctx.stat(lambda t: t[j, ic] / t[j, ia])
            r_verdict = decide(r_iv, (0.0, 1.0))
            if r_verdict == FAIL:  # K*(c) / K*(a) above 1 beyond uncertainty
                rises.append(f"{int(a)}->{int(c)}")
            elif r_verdict == INCONCLUSIVE and r_value > 1:  # measured rising, within uncertainty
                maybe.append(f"{int(a)}->{int(c)}")
        verdict = FAIL if rises else decide(iv, (need, math.inf), above=True)
        bend_passed = verdict == PASS
        if bend_passed and maybe:  # a bend is no diminishing return if K* may be rising
            verdict = INCONCLUSIVE
            details.append(f"s={fmt_s(s)}: K* rises at B {', '.join(maybe)}, within its uncertainty; "
                           "to decide: more trials there")
            ctx.request("trials", f"K* rising within its uncertainty at B {', '.join(maybe)}")
        parts.append(verdict)
        texts.append(f"{fmt_iv(value, iv)} (s={fmt_s(s)})")
        values[fmt_s(s)] = {"flattening": value, "interval": iv, "rises": rises}
        if rises:
            details.append(f"s={fmt_s(s)}: K* rises beyond its uncertainty at B {', '.join(rises)}")
        elif verdict == INCONCLUSIVE and not bend_passed:
            details.append(f"s={fmt_s(s)}: interval straddles {need:g}; to decide: "
                           + to_decide(ctx, value, iv, need))
    return Verdict(worst(parts), "flattening " + ("; ".join(texts) or "-"),
                   f"large-B slope - small-B slope > {need:g}, K* never rising",
                   "; ".join(details), {"bends": values, "statistic": "slope change"})


LINEAR_SCALING = Claim(name="linear_scaling", reads=Reads.KSTAR, check=check_linear_scaling,
                       tolerance_schema={"slope_min": (NUMBER, True), "slope_max": (NUMBER, True)})
PLATEAU = Claim(name="plateau", reads=Reads.KSTAR, check=check_plateau,
                tolerance_schema={"slope_min": (NUMBER, True)})
DIMINISHING_RETURNS = Claim(name="diminishing_returns", reads=Reads.KSTAR, check=check_diminishing_returns,
                            tolerance_schema={"min_flattening": (NUMBER, True)})
