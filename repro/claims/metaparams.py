"""Claims that read more of a search than its K*: the learning rate of every trial (Fig. 3 and
5) and a second panel of the same study (Fig. 2). A K* table cannot decide them."""
import math

import numpy as np

from .. import evidence

from .base import INCONCLUSIVE, NUMBER, Claim, NotRun, Reads, Verdict, decide, worst
from .context import PanelContext, dense_and_sparsest
from .text import fmt_iv, fmt_s


def check_momentum_beats_sgd(ctx, tol):
    """Fig. 2: K*(SGD)/K* at the largest common B and B_crit/B_crit(SGD) above their minima,
    each with an interval from both panels' replicates, at every sparsity both measured."""
    ref = str(tol["reference_panel"])
    if ctx.ds is None or ref not in [str(p) for p in ctx.ds.panel.values]:
        raise NotRun(f"reference panel {ref!r} is not in the results")
    other = PanelContext(evidence.from_dataset(ctx.ds, ref))
    parts, texts, details, rows = [], [], [], []
    for s in ctx.sparsities:
        if s not in other.sparsities:
            continue
        j, jr = ctx.ev.s_index(s), other.ev.s_index(s)
        common = [i for i, b in enumerate(ctx.b) if np.isfinite(ctx.est[j, i]) and np.isfinite(other.est[jr, i])]
        if not common:
            continue
        i = common[-1]
        k_ratio = other.est[jr, i] / ctx.est[j, i]
        k_iv = evidence.interval(other.reps[:, jr, i] / ctx.reps[:, j, i])
        p, r = ctx.fit(s)
        pr, rr = other.fit(s)
        with np.errstate(divide="ignore", invalid="ignore"):
            c_ratio = p["b_crit"] / pr["b_crit"]
            c_iv = evidence.interval(r[:, 2] / rr[:, 2])
        st = [decide(k_iv, (tol["min_kstar_ratio"], math.inf), above=True),
              decide(c_iv, (tol["min_b_crit_ratio"], math.inf), above=True) if math.isfinite(c_ratio) else INCONCLUSIVE]
        parts.append(worst(st))
        texts.append(f"s={fmt_s(s)}: K*({ref})/K* {fmt_iv(k_ratio, k_iv)} at B={int(ctx.b[i])}, "
                     f"B_crit x{fmt_iv(c_ratio, c_iv)}")
        rows.append({"sparsity": s, "batch_size": int(ctx.b[i]), "kstar_ratio": k_ratio,
                     "kstar_interval": k_iv, "b_crit_ratio": c_ratio, "b_crit_interval": c_iv})
        if INCONCLUSIVE in st:
            details.append(f"s={fmt_s(s)}: an interval straddles its minimum; more replicate seeds would decide")
    if not rows:
        raise NotRun(f"no sparsity with K* measured on both this panel and panel {ref}")
    return Verdict(worst(parts), "; ".join(texts),
                   f"K*({ref})/K* > {tol['min_kstar_ratio']:g} at the largest B and "
                   f"B_crit/B_crit({ref}) > {tol['min_b_crit_ratio']:g}", "; ".join(details), {"rows": rows})


def best_lrs(ctx, rng, n_boot):
    """Per sparsity and B: the best trial's learning rate on the data and on resampled trials
    (seed 0's search: a replicate redraws its trials with replacement)."""
    lr = ctx.ev.hp["learning_rate"][0]
    vals = np.where(ctx.ev.capped[0], np.inf, ctx.ev.trials[0])
    n_t = vals.shape[-1]
    point = np.full(vals.shape[:2], np.nan)
    reps = np.full((n_boot,) + vals.shape[:2], np.nan)
    for j in range(vals.shape[0]):
        for i in range(vals.shape[1]):
            v = vals[j, i]
            if np.isnan(v).any() or not np.isfinite(v).any():
                continue
            point[j, i] = lr[j, i, int(np.argmin(v))]
            pick = rng.integers(0, n_t, (n_boot, n_t))
            drawn = v[pick]
            best = np.take_along_axis(pick, np.argmin(drawn, axis=1)[:, None], axis=1)[:, 0]
            reps[:, j, i] = np.where(np.isfinite(drawn.min(axis=1)), lr[j, i, best], np.nan)
    return point, reps


def check_best_lr_nondecreasing(ctx, tol):
    """The best trial's learning rate does not fall as B grows (Fig. 3): for every sparsity the
    largest fall between consecutive measured B, lr(B)/lr(next B), is at most max_drop, with an
    interval from resampling each search's trials."""
    if "learning_rate" not in ctx.ev.hp:
        raise NotRun("needs per-trial learning rates in the results")
    point, reps = best_lrs(ctx, np.random.default_rng(0), evidence.N_BOOT)
    limit = tol["max_drop"]
    parts, texts, details, values = [], [], [], {}
    for j, s in enumerate(ctx.sparsities):
        idx = [i for i in range(len(ctx.b)) if np.isfinite(point[j, i])]
        if len(idx) < 2:
            parts.append(INCONCLUSIVE)
            details.append(f"s={fmt_s(s)}: {len(idx)} batch sizes with a best trial; needs 2")
            continue
        largest_fall = lambda lr: max(lr[a] / lr[b] for a, b in zip(idx, idx[1:]))  # noqa: E731
        value = largest_fall(point[j])
        iv = evidence.interval([largest_fall(r) for r in reps[:, j]])
        status = decide(iv, (0.0, limit))
        parts.append(status)
        texts.append(f"s={fmt_s(s)}: " + ", ".join(f"{point[j, i]:.3g}" for i in idx) +
                     f" (largest fall x{fmt_iv(value, iv)})")
        values[fmt_s(s)] = {"best_lr": {str(int(ctx.b[i])): point[j, i] for i in idx},
                            "worst_drop": value, "interval": iv}
        if status == INCONCLUSIVE:
            details.append(f"s={fmt_s(s)}: the best trial changes under resampling; more trials per point would decide")
    return Verdict(worst(parts), "best lr " + "; ".join(texts),
                   f"lr(B)/lr(next B) <= {limit:g}", "; ".join(details),
                   {"best_lr": values, "statistic": "largest fall of the best lr"})


def _decades(lrs):
    """How many decades of learning rate `lrs` spans (nan for none)."""
    return math.log10(lrs.max() / lrs.min()) if lrs.size else math.nan


def _width_ratio_reps(lr_dense, ok_dense, lr_sparse, ok_sparse, rng):
    """The sparse/dense width ratio on resampled trials (one draw of trial indices for both)."""
    n = lr_dense.shape[-1]
    reps = []
    for _ in range(evidence.N_BOOT):
        pick = rng.integers(0, n, n)
        wd = _decades(lr_dense[pick][ok_dense[pick]])
        ws = _decades(lr_sparse[pick][ok_sparse[pick]])
        ws = 0.0 if math.isnan(ws) else ws  # no sparse trial drawn reached the goal: width 0
        if math.isnan(wd) or (wd == 0 and ws == 0):
            reps.append(math.nan)
        else:
            reps.append(ws / wd if wd > 0 else math.inf)
    return reps


def check_feasible_lr_range_shrinks(ctx, tol):
    """Fig. 5: the goal-reaching learning rates span fewer decades at s_max than dense, at every
    batch size where every trial ran: width(s_max) <= max_ratio x width(0), with an interval from
    resampling trials. No sparse trial reaching the goal is never a PASS."""
    s0, s_max = dense_and_sparsest(ctx.sparsities)
    if "learning_rate" not in ctx.ev.hp:
        raise NotRun("needs per-trial learning rates")
    lr = ctx.ev.hp["learning_rate"][0]
    ok_mask = np.isfinite(ctx.ev.trials[0]) & ~ctx.ev.capped[0]
    j0, j1 = ctx.ev.s_index(s0), ctx.ev.s_index(s_max)
    rng = np.random.default_rng(0)
    parts, texts, rows = [], [], []
    for i, b in enumerate(ctx.b):
        if np.isnan(ctx.ev.trials[0, [j0, j1], i]).any():
            continue  # every trial must have run: a landscape shows them all
        d, sp = lr[j0, i][ok_mask[j0, i]], lr[j1, i][ok_mask[j1, i]]
        if d.size < 2:
            continue
        if sp.size == 0:
            parts.append(INCONCLUSIVE)
            texts.append(f"B={int(b)}: dense {_decades(d):.2f} decades, sparse: no trial reached the goal")
            rows.append({"batch_size": int(b), "dense_decades": _decades(d), "sparse_decades": None})
            continue
        reps = _width_ratio_reps(lr[j0, i], ok_mask[j0, i], lr[j1, i], ok_mask[j1, i], rng)
        value = _decades(sp) / _decades(d)
        iv = evidence.interval(reps)
        parts.append(decide(iv, (-math.inf, tol["max_ratio"])))
        texts.append(f"B={int(b)}: width ratio {fmt_iv(value, iv)}")
        rows.append({"batch_size": int(b), "dense_decades": _decades(d), "sparse_decades": _decades(sp),
                     "ratio": value, "interval": iv})
    if not rows:
        raise NotRun("needs a batch size where every trial ran at s=0 and s_max and 2 dense trials completed")
    detail = "" if worst(parts) != INCONCLUSIVE else \
        "a sparse search with no goal-reaching trial, or an interval across the limit: more trials per point would decide"
    return Verdict(worst(parts), "goal-reaching lr " + "; ".join(texts),
                   f"width(s={fmt_s(s_max)})/width(0) < {tol['max_ratio']:g}, in decades of learning rate",
                   detail, {"rows": rows})


MOMENTUM_BEATS_SGD = Claim(name="momentum_beats_sgd", reads=Reads.REFERENCE_PANEL, check=check_momentum_beats_sgd,
                           tolerance_schema={"reference_panel": (str, True), "min_kstar_ratio": (NUMBER, True),
                                             "min_b_crit_ratio": (NUMBER, True)})
BEST_LR_NONDECREASING = Claim(name="best_lr_nondecreasing", reads=Reads.TRIALS, check=check_best_lr_nondecreasing,
                              tolerance_schema={"max_drop": (NUMBER, True)})
FEASIBLE_LR_RANGE_SHRINKS = Claim(name="feasible_lr_range_shrinks", reads=Reads.TRIALS,
                                  check=check_feasible_lr_range_shrinks,
                                  tolerance_schema={"max_ratio": (NUMBER, True)})
