"""Claims on smoothness runs (Fig. 4 and 6, App. C): one training run per (panel, sparsity) at
fixed metaparameters, measured along the way (local Lipschitz constant L, training loss,
simple noise scale). Their intervals come from resampling the measured steps of each run.
Two of them also read a search's fitted Prop. 4.1 constants from another results file,
named by the golden key ``reference = "figure-N:panel"``."""
import math
import pathlib

import numpy as np

from .. import evidence, fmt, store

from .base import INCONCLUSIVE, NUMBER, Claim, NotRun, Reads, Verdict, decide, worst
from .context import PanelContext, c1_ratio_verdict, dense_and_sparsest
from .text import fmt_iv, fmt_s


def smooth_sparsities(ds, panel):
    """The sparsities of a panel whose smoothness run completed."""
    return [float(s) for s in ds.sparsity.values
            if str(ds["status"].sel(panel=panel, sparsity=s).values) == "complete"]


def _samples(ds, panel, s, name):
    """The finite per-step measurements `name` of one run."""
    v = ds[name].sel(panel=panel, sparsity=s).values.astype(float)
    return v[np.isfinite(v)]


def _mean_ratio_interval(a, b, rng, n_boot=evidence.N_BOOT):
    """mean(a)/mean(b) with a percentile interval from resampling each sample set."""
    if a.size < 2 or b.size < 2:
        return float(a.mean() / b.mean()), (-math.inf, math.inf)
    ra = a[rng.integers(0, a.size, (n_boot, a.size))].mean(axis=1)
    rb = b[rng.integers(0, b.size, (n_boot, b.size))].mean(axis=1)
    return float(a.mean() / b.mean()), evidence.interval(ra / rb)


def _reference(tol, results_dir):
    """(dataset, panel) of `reference = "figure-N:panel"`, read from the results folder."""
    ref = tol.get("reference", "")
    if ":" not in ref:
        raise NotRun(f"golden reference {ref!r} is not 'figure-N:panel'")
    fig, panel = ref.split(":", 1)
    path = pathlib.Path(results_dir or "results") / f"{fig}.nc"
    if not path.exists():
        raise NotRun(f"needs {path} (run: {fmt.run_command(f'specs/{fig}.toml')})")
    ds = store.open_results(path)
    if panel not in [str(p) for p in ds.panel.values]:
        raise NotRun(f"{path} has no panel {panel}")
    return ds, panel


def check_lipschitz_increasing(ctx, tol):
    """Fig. 4: the mean local Lipschitz constant over training grows with sparsity: L(s_max)/L(0)
    above min_ratio (and, with monotone, every step), with an interval from resampling the
    measured steps of each run (consecutive steps are correlated: the interval is a lower bound
    of the spread; replicate runs would measure it in full)."""
    ds, panel = ctx.ds, ctx.panel
    sparsities = smooth_sparsities(ds, panel)
    s0, s_max = dense_and_sparsest(sparsities)
    ss = sorted(sparsities)
    rng = np.random.default_rng(0)
    pairs = list(zip(ss, ss[1:])) if tol.get("monotone") else [(s0, s_max)]
    parts, texts, values = [], [], {}
    for a, b in pairs:
        value, iv = _mean_ratio_interval(_samples(ds, panel, b, "lipschitz"), _samples(ds, panel, a, "lipschitz"), rng)
        parts.append(decide(iv, (tol["min_ratio"], math.inf), above=True))
        texts.append(f"L({fmt_s(b)})/L({fmt_s(a)}) {fmt_iv(value, iv)}")
        values[f"{fmt_s(b)}/{fmt_s(a)}"] = {"ratio": value, "interval": iv}
    mean_l = {fmt_s(s): float(_samples(ds, panel, s, "lipschitz").mean()) for s in ss}
    paper = tol.get("paper_values")
    return Verdict(worst(parts), "mean L " + ", ".join(f"{v:.3g} (s={s})" for s, v in mean_l.items()) +
                   "; " + "; ".join(texts),
                   f"L(s_max)/L(0) > {tol['min_ratio']:g}" + (" at every step in sparsity" if tol.get("monotone") else ""),
                   "" if worst(parts) != INCONCLUSIVE else "interval across the limit: longer runs (more measured steps) or replicate runs would decide",
                   {"mean_lipschitz": mean_l, "ratios": values, "statistic": "mean L ratio"},
                   paper=("s = 0/0.5/0.7/0.9: " + " / ".join(map(str, paper)) + " (Fig. 4)") if paper else "")


def _fitted_c1_ratio(tol, results_dir, s_max, s0):
    """The fitted c1 ratio of the `reference` study and its text, or nan and why it is absent."""
    try:
        ref_ds, ref_panel = _reference(tol, results_dir)
        ref_ctx = PanelContext(evidence.from_dataset(ref_ds, ref_panel))
        _, fitted_text, _, fitted, _ = c1_ratio_verdict(ref_ctx, 1.0, s_num=s_max, s_den=s0)
        return fitted, f"fitted c1 ratio of {tol['reference']}: {fitted_text}"
    except (NotRun, KeyError, ValueError) as why:
        return math.nan, f"fitted c1 ratio not available: {why}"


def check_c1_decomposition(ctx, tol):
    """App. C: c1 = Delta L beta / (mu^2 eps^2): the ratios (s_max over dense) of Delta, beta and
    mean L predict the c1 ratio, which must exceed min_predicted_ratio beyond the interval of L's
    ratio (Delta and beta are one number per run: no interval), with L's ratio the largest factor.
    The fitted c1 ratio of the `reference` study is shown beside it."""
    ds, panel = ctx.ds, ctx.panel
    s0, s_max = dense_and_sparsest(smooth_sparsities(ds, panel))
    r = {name: float(ds[name].sel(panel=panel, sparsity=s_max) / ds[name].sel(panel=panel, sparsity=s0))
         for name in ("delta", "beta")}
    l_ratio, l_iv = _mean_ratio_interval(_samples(ds, panel, s_max, "lipschitz"),
                                         _samples(ds, panel, s0, "lipschitz"), np.random.default_rng(0))
    r["lipschitz"] = l_ratio
    k = r["delta"] * r["beta"]
    predicted, p_iv = k * l_ratio, (k * l_iv[0], k * l_iv[1])
    fitted, note = _fitted_c1_ratio(tol, ctx.results_dir, s_max, s0)
    parts = [decide(p_iv, (tol["min_predicted_ratio"], math.inf), above=True),
             decide(l_iv, (max(r["delta"], r["beta"]), math.inf), above=True)]
    paper = tol.get("paper_ratios")
    return Verdict(worst(parts), f"Delta x{r['delta']:.2f}, beta x{r['beta']:.2f}, L x{fmt_iv(l_ratio, l_iv)} -> "
                   f"predicted c1 x{fmt_iv(predicted, p_iv)}; {note}",
                   f"predicted c1(s_max)/c1(0) > {tol['min_predicted_ratio']:g} and L's ratio the largest factor",
                   "" if worst(parts) != INCONCLUSIVE else "an interval across its limit: longer runs or replicate runs would decide",
                   {"ratios": r, "predicted_c1_ratio": predicted, "interval": p_iv, "fitted_c1_ratio": fitted},
                   paper=("App. C: " + ", ".join(f"{a} x{b}" for a, b in paper.items())) if paper else "")


def check_noise_scale_vs_critical_batch(ctx, tol):
    """McCandlish et al. (2018): the simple noise scale B_simple (mean over the measured steps)
    predicts the critical batch size: B_crit (fitted, `reference` study) / B_simple within a
    factor max_factor either way, beyond the intervals of both, at each sparsity both have."""
    ds, panel = ctx.ds, ctx.panel
    ref_ds, ref_panel = _reference(tol, ctx.results_dir)
    ref_ctx = PanelContext(evidence.from_dataset(ref_ds, ref_panel))
    rng = np.random.default_rng(0)
    f = tol["max_factor"]
    parts, rows = [], []
    for s in smooth_sparsities(ds, panel):
        if s not in ref_ctx.sparsities:
            continue
        point, reps = ref_ctx.fit(s)
        if not math.isfinite(point["b_crit"]):
            continue
        noise = _samples(ds, panel, s, "noise_scale")
        b_simple = float(noise.mean())
        ns = noise[rng.integers(0, noise.size, (len(reps), noise.size))].mean(axis=1)
        iv = evidence.interval(reps[:, 2] / ns)
        value = point["b_crit"] / b_simple
        parts.append(decide(iv, (1 / f, f)))
        rows.append({"sparsity": s, "b_simple": b_simple, "b_crit": point["b_crit"], "ratio": value, "interval": iv})
    if not rows:
        raise NotRun(f"no sparsity with a finite fitted B_crit measured here and in {tol['reference']}")
    return Verdict(worst(parts), "; ".join(f"s={fmt_s(r['sparsity'])}: B_simple {r['b_simple']:.3g} vs B_crit "
                                           f"{r['b_crit']:.3g} (x{fmt_iv(r['ratio'], r['interval'])})" for r in rows),
                   f"B_crit({tol['reference']}) / B_simple within [1/{f:g}, {f:g}]",
                   "" if worst(parts) != INCONCLUSIVE else "an interval across the factor: replicate seeds of the reference study would decide",
                   {"rows": rows})


def check_sparse_loss_higher(ctx, tol):
    """Fig. 6: the sparsest network ends its run at a higher training loss than the dense one:
    the mean training loss over the last quarter of the measured steps, s_max over dense, above
    min_ratio with an interval from resampling those steps."""
    ds, panel = ctx.ds, ctx.panel
    s0, s_max = dense_and_sparsest(smooth_sparsities(ds, panel))

    def tail(s):
        v = _samples(ds, panel, s, "train_loss")
        return v[-max(2, v.size // 4):]
    value, iv = _mean_ratio_interval(tail(s_max), tail(s0), np.random.default_rng(0))
    status = decide(iv, (tol["min_ratio"], math.inf), above=True)
    loss = {fmt_s(s): float(ds["final_loss"].sel(panel=panel, sparsity=s)) for s in (s0, s_max)}
    return Verdict(status, "final training loss " + ", ".join(f"{v:.4f} (s={s})" for s, v in loss.items()) +
                   f"; last-quarter mean ratio {fmt_iv(value, iv)}",
                   f"f(s={fmt_s(s_max)})/f(0) > {tol['min_ratio']:g} over the last quarter of the run",
                   "" if status != INCONCLUSIVE else "interval across the limit: longer runs or replicate runs would decide",
                   {"final_loss": loss, "ratio": value, "interval": iv})


LIPSCHITZ_INCREASING = Claim(name="lipschitz_increasing", reads=Reads.SMOOTHNESS, check=check_lipschitz_increasing,
                             tolerance_schema={"min_ratio": (NUMBER, True), "monotone": (bool, False),
                                               "paper_values": (list, False)})
C1_DECOMPOSITION = Claim(name="c1_decomposition", reads=Reads.SMOOTHNESS, check=check_c1_decomposition,
                         tolerance_schema={"min_predicted_ratio": (NUMBER, True), "reference": (str, False),
                                           "paper_ratios": (dict, False)})
NOISE_SCALE_VS_CRITICAL_BATCH = Claim(name="noise_scale_vs_critical_batch", reads=Reads.SMOOTHNESS,
                                      check=check_noise_scale_vs_critical_batch,
                                      tolerance_schema={"max_factor": (NUMBER, True), "reference": (str, True)})
SPARSE_LOSS_HIGHER = Claim(name="sparse_loss_higher", reads=Reads.SMOOTHNESS, check=check_sparse_loss_higher,
                           tolerance_schema={"min_ratio": (NUMBER, True)})
