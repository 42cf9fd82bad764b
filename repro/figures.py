"""Matplotlib renderers for the results datasets (docs/results-format.md), one per kind of figure.

``render_data_parallelism`` draws the layout of the paper's Figure 1: one row per panel, four
columns — K*(B) of the dense network, K*(B) at the highest sparsity, every sparsity together,
and every sparsity normalised by its own K* at the smallest measured batch size.
``render_optimizer_comparison`` (Fig. 2), ``render_landscape`` (Figs. 3, 5, 13-18) and
``render_sparse_ratio`` (Fig. 12), ``render_lipschitz`` (Fig. 4) and ``render_training_loss``
(Fig. 6) draw the other kinds a spec's ``figure.kind`` names.
"""

from __future__ import annotations

import pathlib
import textwrap

import matplotlib

matplotlib.use("Agg")  # no screen here; must precede the pyplot import
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .atomic import atomic_path  # noqa: E402

__all__ = ["render", "render_data_parallelism", "render_optimizer_comparison", "render_landscape",
           "render_sparse_ratio", "render_lipschitz", "render_training_loss", "panel_label",
           "sparsity_label", "KINDS"]

# Display names for the workload strings a spec uses (matched case-insensitively, with "_" and
# spaces treated as "-"). Unknown names are shown as given.
_DATASET_NAMES = {
    "mnist": "MNIST",
    "fashion-mnist": "Fashion-MNIST",
    "fashionmnist": "Fashion-MNIST",
    "fmnist": "Fashion-MNIST",
    "cifar-10": "CIFAR-10",
    "cifar10": "CIFAR-10",
}
_MODEL_NAMES = {
    "simple-cnn": "Simple-CNN",
    "simplecnn": "Simple-CNN",
    "resnet-8": "ResNet-8",
    "resnet8": "ResNet-8",
}
_OPTIMIZER_NAMES = {"sgd": "SGD", "momentum": "Momentum", "nesterov": "Nesterov"}
_CONSTANT_SCHEDULES = {"", "constant", "none", "fixed"}
_SCHEDULE_NAMES = {
    "linear": "+ linear decay",
    "linear-decay": "+ linear decay",
    "linear_decay": "+ linear decay",
    "polynomial": "+ linear decay",
}

_DPI = 150
_COL_W, _ROW_H = 4.0, 3.2
_REF_STYLE = dict(color="0.55", linestyle="--", linewidth=1.0, zorder=1)
_FIT_STYLE = dict(linestyle=":", linewidth=1.0, zorder=2)


# ----------------------------------------------------------------------------------- labels
def _text(value) -> str:
    """A panel string variable's value as plain str (netCDF may hand back bytes / 0-d arrays)."""
    if hasattr(value, "values"):
        value = value.values
    if isinstance(value, np.ndarray):
        value = value.item() if value.size == 1 else ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value).strip()


def _key(name: str) -> str:
    return name.lower().replace("_", "-").replace(" ", "-")


def _display(name: str, table: dict) -> str:
    return table.get(_key(name), name)


def panel_label(ds, panel) -> str:
    """Row label such as "(a) MNIST, Simple-CNN, SGD" or "(d) CIFAR-10, ResNet-8, Nesterov + linear decay"."""
    sel = ds.sel(panel=panel)
    parts = []
    for var, table in (("dataset", _DATASET_NAMES), ("model", _MODEL_NAMES), ("optimizer", _OPTIMIZER_NAMES)):
        if var in ds.variables:
            name = _text(sel[var])
            if name:
                parts.append(_display(name, table))
    label = f"({_text(panel)})"
    if parts:
        label += " " + ", ".join(parts)
    if "schedule" in ds.variables:
        sched = _text(sel["schedule"])
        if _key(sched) not in _CONSTANT_SCHEDULES:
            label += " " + _SCHEDULE_NAMES.get(_key(sched), f"+ {sched}")
    return label


def sparsity_label(s: float) -> str:
    """0.9 -> "90%", 0.995 -> "99.5%"."""
    pct = round(float(s) * 100.0, 6)
    return f"{pct:g}%"


# ----------------------------------------------------------------------------------- data
def _curve(ds, panel, sparsity):
    """(B, K*) of one panel and sparsity, NaN points dropped, sorted by B."""
    k = ds["steps_to_result"].sel(panel=panel, sparsity=sparsity).values.astype(float)
    b = ds["batch_size"].values.astype(float)
    keep = np.isfinite(k) & (k > 0) & (b > 0)
    order = np.argsort(b[keep])
    return b[keep][order], k[keep][order]


def _fit_for(fits, panel, sparsity):
    """The fit dict for (panel, sparsity) from {panel: {sparsity: {"c1", "c2", ...}}}, or None."""
    if not fits:
        return None
    by_s = fits.get(_text(panel), fits.get(panel))
    if not by_s:
        return None
    for key, fit in by_s.items():
        try:
            if np.isclose(float(key), float(sparsity)):
                break
        except (TypeError, ValueError):
            continue
    else:
        return None
    try:
        c1, c2 = float(fit["c1"]), float(fit["c2"])
    except (KeyError, TypeError, ValueError):
        return None
    if not (np.isfinite(c1) and np.isfinite(c2)):
        return None
    return c1, c2


# ----------------------------------------------------------------------------------- drawing
def _ref_line(ax, b0, k0, b_max, floor=None):
    """Dashed grey linear-scaling reference K = k0 * b0 / B from b0 to b_max (clipped at floor)."""
    if not (np.isfinite(b0) and np.isfinite(k0)) or b_max <= b0:
        return
    b = np.geomspace(b0, b_max, 64)
    k = k0 * b0 / b
    if floor is not None:
        keep = k >= floor
        b, k = b[keep], k[keep]
    if b.size >= 2:
        ax.plot(b, k, label="linear scaling", **_REF_STYLE)


def _fit_line(ax, c1, c2, b_lo, b_hi, color):
    b = np.geomspace(b_lo, b_hi, 128)
    k = c1 / b + c2
    keep = k > 0
    if keep.sum() >= 2:
        ax.plot(b[keep], k[keep], color=color, alpha=0.8, **_FIT_STYLE)


def _not_run(ax):
    ax.tick_params(which="both", labelleft=False, left=False)
    ax.text(0.5, 0.5, "not run", transform=ax.transAxes, ha="center", va="center",
            fontsize=12, color="0.45", style="italic")


def _setup_axes(ax, title, ylabel, b_all):
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("Batch size", fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.tick_params(labelsize=8)
    ax.grid(True, which="major", color="0.9", linewidth=0.6)
    if b_all.size:
        ax.set_xlim(b_all.min() / 1.5, b_all.max() * 1.5)


def _sparsity_colors(sparsities):
    cmap = plt.get_cmap("viridis")
    n = len(sparsities)
    return {s: cmap(0.85 * i / max(n - 1, 1)) for i, s in enumerate(sparsities)}


def _draw_row(axes, ds, panel, sparsities, colors, fits, style_legend=True):
    """Draw one panel's four columns; returns True if the panel has any measured K*."""
    b_all = np.sort(ds["batch_size"].values.astype(float))
    b_all = b_all[b_all > 0]
    curves = {s: _curve(ds, panel, s) for s in sparsities}
    measured = [s for s in sparsities if curves[s][0].size]
    dense = min(sparsities, key=lambda s: abs(s)) if sparsities else None
    # Column 2 shows the highest sparsity this panel measured (else the highest in the data).
    high = max(measured) if measured else (max(sparsities) if sparsities else None)
    b_hi = b_all.max() if b_all.size else 1.0

    titles = [
        f"Sparsity: {sparsity_label(dense) if dense is not None else '0%'}",
        f"Sparsity: {sparsity_label(high) if high is not None else '90%'}",
        "All sparsity",
        "All sparsity (normalized)",
    ]
    ylabels = ["Steps", "Steps", "Steps", "Steps / steps at smallest B"]
    for ax, t, yl in zip(axes, titles, ylabels):
        _setup_axes(ax, t, yl, b_all)

    # Columns 1 and 2: one sparsity each.
    for ax, s in ((axes[0], dense), (axes[1], high)):
        if s is None or not curves[s][0].size:
            _not_run(ax)
            continue
        b, k = curves[s]
        ax.plot(b, k, marker="o", markersize=4, linewidth=1.4, color=colors[s], zorder=3,
                label="steps-to-result")
        _ref_line(ax, b[0], k[0], b_hi, floor=k.min() / 4)
        fit = _fit_for(fits, panel, s)
        if fit:
            _fit_line(ax, *fit, b[0], b[-1], colors[s])

    # Column 3: all sparsities; reference anchored at the dense curve (else the first measured).
    # Column 4: each curve / its K* at its smallest measured B; reference anchored at 1.0.
    if not measured:
        _not_run(axes[2])
        _not_run(axes[3])
        return False
    anchor = dense if dense in measured else measured[0]
    k_min = min(curves[s][1].min() for s in measured)
    n_min = min((curves[s][1] / curves[s][1][0]).min() for s in measured)
    for s in measured:
        b, k = curves[s]
        style = dict(marker="o", markersize=3.5, linewidth=1.3, color=colors[s], zorder=3,
                     label=f"Sparsity: {sparsity_label(s)}")
        axes[2].plot(b, k, **style)
        axes[3].plot(b, k / k[0], **style)
        fit = _fit_for(fits, panel, s)
        if fit:
            _fit_line(axes[2], *fit, b[0], b[-1], colors[s])
    ba, ka = curves[anchor]
    _ref_line(axes[2], ba[0], ka[0], b_hi, floor=k_min / 4)
    b0 = min(curves[s][0][0] for s in measured)
    _ref_line(axes[3], b0, 1.0, b_hi, floor=n_min / 4)

    # Legends: column 1 explains the line styles, column 3 the colours.
    handles, labels = axes[0].get_legend_handles_labels()
    if fits and any(_fit_for(fits, panel, s) for s in (dense, high) if s is not None):
        from matplotlib.lines import Line2D
        handles.append(Line2D([], [], color="0.3", **_FIT_STYLE))
        labels.append("fit c1/B + c2")
    if handles and style_legend:
        axes[0].legend(handles, labels, fontsize=7, loc="lower left", frameon=False)
    sparsity_handles = [h for h, lab in zip(*axes[2].get_legend_handles_labels())
                        if lab.startswith("Sparsity")]
    if sparsity_handles:
        axes[2].legend(handles=sparsity_handles, fontsize=7, loc="lower left", frameon=False)
    return True


def _figure_data_parallelism(ds, title=None, fits=None):
    panels = list(ds["panel"].values)
    sparsities = sorted(float(s) for s in ds["sparsity"].values)
    colors = _sparsity_colors(sparsities)
    n_rows = max(len(panels), 1)
    fig = plt.figure(figsize=(4 * _COL_W, n_rows * _ROW_H + 0.5), layout="constrained")
    _suptitle(fig, ds, title)
    subfigs = fig.subfigures(n_rows, 1, squeeze=False)[:, 0]
    if not panels:
        ax = subfigs[0].add_subplot()
        ax.set_axis_off()
        _not_run(ax)
        return fig
    legend_drawn = False  # the line-style legend (column 1) appears once, in the first drawn row
    for sub, panel in zip(subfigs, panels):
        sub.suptitle(panel_label(ds, panel), fontsize=11, x=0.01, ha="left")
        axes = sub.subplots(1, 4)
        legend_drawn |= _draw_row(axes, ds, panel, sparsities, colors, fits,
                                  style_legend=not legend_drawn)
    return fig


# ----------------------------------------------------------------------------------- output
def _save_atomic(fig, path: pathlib.Path, fmt: str) -> pathlib.Path:
    """Save ``fig`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=_DPI)
    return path


def _write(fig, out_stem) -> list[pathlib.Path]:
    stem = pathlib.Path(out_stem)
    if stem.suffix.lower() in (".png", ".pdf"):
        stem = stem.with_suffix("")
    try:
        return [_save_atomic(fig, stem.with_name(stem.name + ext), fmt)
                for ext, fmt in ((".png", "png"), (".pdf", "pdf"))]
    finally:
        plt.close(fig)


def render_data_parallelism(ds, out_stem, title=None, fits=None) -> list[pathlib.Path]:
    """Render a Figure-1-style data-parallelism figure of results dataset ``ds``.

    Writes ``<out_stem>.png`` (150 dpi) and ``<out_stem>.pdf`` atomically, creating parent
    folders, and returns their paths. ``fits`` is optional {panel: {sparsity: {"c1", "c2"}}};
    each fit is drawn as c1/B + c2 (dotted) in columns 1-3.
    """
    return _write(_figure_data_parallelism(ds, title=title, fits=fits), out_stem)


# ----------------------------------------------------------------------------------- other kinds
def _suptitle(fig, ds, title):
    """The figure's title, wrapped to the figure's width (a narrow landscape grid would cut it)."""
    text = title if title is not None else ds.attrs.get("title")
    if text:
        per_line = max(20, int(fig.get_figwidth() * 72 / (13 * 0.62)))  # ~0.62 em per bold char
        fig.suptitle(textwrap.fill(str(text), per_line), fontsize=13, fontweight="bold")


def render_optimizer_comparison(ds, out_stem, title=None, fits=None) -> list[pathlib.Path]:
    """Paper Fig. 2: one plot per sparsity, K*(B) of every panel (optimiser) on shared log2
    axes, no normalisation, so the optimisers' steps and critical batch sizes compare directly."""
    panels, sparsities = list(ds["panel"].values), sorted(float(s) for s in ds["sparsity"].values)
    b_all = np.sort(ds["batch_size"].values.astype(float))
    fig, axes = plt.subplots(1, max(len(sparsities), 1), squeeze=False, layout="constrained",
                             figsize=(_COL_W * max(len(sparsities), 1), _ROW_H + 0.6), sharey=True)
    _suptitle(fig, ds, title)
    colors = {p: plt.get_cmap("tab10")(i % 10) for i, p in enumerate(panels)}
    for ax, sp in zip(axes[0], sparsities):
        _setup_axes(ax, f"Sparsity: {sparsity_label(sp)}", "Steps", b_all)
        drawn = False
        for p in panels:
            b, k = _curve(ds, p, sp)
            if b.size:
                ax.plot(b, k, "o-", color=colors[p], markersize=4, label=panel_label(ds, p))
                drawn = True
        if drawn:
            ax.legend(fontsize=7)
        else:
            _not_run(ax)
    return _write(fig, out_stem)


_MARKS = {  # status code (store.STATUS) -> how a trial is drawn
    1: dict(marker="o", color="tab:blue", label="complete"),
    2: dict(marker="^", color="0.6", label="incomplete"),
    4: dict(marker="^", color="0.6", label="incomplete"),  # capped: stopped without the goal
    3: dict(marker="x", color="tab:red", label="infeasible"),
}


def _landscape_axes(ds, panel):
    """The y axes of a panel's landscape: each searched metaparameter besides the learning
    rate, or the steps a trial ran when the learning rate is the only one (paper Fig. 5)."""
    dims = [d for d in ("momentum", "decay_steps", "end_factor")
            if d in ds and np.isfinite(ds[d].sel(panel=panel).values).any()]
    return dims or ["steps"]


def render_landscape(ds, out_stem, title=None, fits=None) -> list[pathlib.Path]:
    """Paper Figs. 3, 5, 13-18: every trial of every search at its metaparameters, marked
    complete, incomplete or infeasible, the best trial starred; one plot per (panel, sparsity,
    y axis) row and batch-size column."""
    rows = []
    for p in ds["panel"].values:
        for sp in ds["sparsity"].values:
            if (ds["status"].sel(panel=p, sparsity=sp) > 0).any():
                rows += [(p, float(sp), y) for y in _landscape_axes(ds, p)]
    bs = [int(b) for b in ds["batch_size"].values if (ds["status"].sel(batch_size=b) > 0).any()]
    # One batch size (paper Fig. 5): the rows side by side instead, as the paper lays them out.
    across = len(bs) == 1 and len(rows) > 1
    n_r, n_c = (1, len(rows)) if across else (max(len(rows), 1), max(len(bs), 1))
    fig, axes = plt.subplots(n_r, n_c, squeeze=False, layout="constrained",
                             figsize=(max(3.0 * n_c, 6.5), 2.6 * n_r + 0.6))
    _suptitle(fig, ds, title)
    for r, (p, sp, ydim) in enumerate(rows):
        for c, b in enumerate(bs):
            ax, pt = (axes[0, r] if across else axes[r, c]), ds.sel(panel=p, sparsity=sp, batch_size=b)
            ax.set_title(f"({_text(p)}) S: {sparsity_label(sp)}, B: {b}", fontsize=9)
            ax.set_xscale("log")
            ax.tick_params(labelsize=7)
            st = pt["status"].values
            if not (st > 0).any():
                _not_run(ax)
                continue
            x = pt["learning_rate"].values
            y = 1.0 - pt["momentum"].values if ydim == "momentum" else (
                pt["steps"].values.astype(float) if ydim == "steps" else pt[ydim].values)
            for code, style in _MARKS.items():
                m = st == code
                if m.any():
                    ax.scatter(x[m], y[m], s=14, linewidths=1, **style)
            best = int(pt["best_trial"])
            if best >= 0:
                ax.scatter([x[best]], [y[best]], marker="*", s=160, color="gold",
                           edgecolors="k", linewidths=0.6, zorder=5, label="best")
            if ydim in ("momentum", "end_factor", "steps"):
                ax.set_yscale("log")
            # Every plot of a row on the same axes (the panel's sampled range), as in the paper.
            allx = ds["learning_rate"].sel(panel=p).values
            ally = {"momentum": 1.0 - ds["momentum"].sel(panel=p).values if "momentum" in ds else allx,
                    "steps": ds["steps"].sel(panel=p).values.astype(float)}.get(
                        ydim, ds[ydim].sel(panel=p).values if ydim in ds else allx)
            for setter, v, log in ((ax.set_xlim, allx, True), (ax.set_ylim, ally, ax.get_yscale() == "log")):
                v = v[np.isfinite(v) & ((v > 0) if log else True)]
                if v.size:
                    lo, hi = v.min(), v.max()
                    setter(*((lo / 2, hi * 2) if log else (lo - 0.05 * (hi - lo + 1), hi + 0.05 * (hi - lo + 1))))
            ax.set_xlabel("Learning rate", fontsize=8)
            ax.set_ylabel({"momentum": "1 - momentum", "steps": "Steps"}.get(ydim, ydim.replace("_", " ")),
                          fontsize=8)
    handles = {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    if handles:
        fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncol=len(handles),
                   fontsize=8)
    return _write(fig, out_stem)


def render_sparse_ratio(ds, out_stem, title=None, fits=None) -> list[pathlib.Path]:
    """Paper Fig. 12: K* of the sparsest network over the dense one's, against B, one line per
    panel (workload), with the paper's 1.5-4.5 band shaded and 1 (no slowdown) dashed."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2), layout="constrained")
    _suptitle(fig, ds, title)
    b_all = np.sort(ds["batch_size"].values.astype(float))
    _setup_axes(ax, "Steps-to-result ratio, sparse / dense", "K*(sparse) / K*(dense)", b_all)
    ax.set_yscale("linear")
    ax.axhspan(1.5, 4.5, color="0.92", zorder=0, label="paper: 1.5-4.5")
    ax.axhline(1.0, **_REF_STYLE)
    drawn = False
    sparsities = sorted(float(s) for s in ds["sparsity"].values)
    for i, p in enumerate(ds["panel"].values):
        dense, sparse = _curve(ds, p, sparsities[0]), _curve(ds, p, sparsities[-1])
        common = np.intersect1d(dense[0], sparse[0])
        if len(sparsities) < 2 or not common.size:
            continue
        ratio = [sparse[1][sparse[0] == b][0] / dense[1][dense[0] == b][0] for b in common]
        ax.plot(common, ratio, "o-", markersize=4, color=plt.get_cmap("tab10")(i % 10),
                label=f"{panel_label(ds, p)} ({sparsity_label(sparsities[-1])})")
        drawn = True
    if not drawn:
        _not_run(ax)
    ax.legend(fontsize=7)
    return _write(fig, out_stem)


def _render_smoothness(ds, out_stem, var, ylabel, log, title=None):
    """One subplot per panel: `var` over the measured steps, one line per sparsity (darker =
    sparser), the mean over the run in the legend."""
    panels = list(ds["panel"].values)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8), layout="constrained",
                             squeeze=False)
    _suptitle(fig, ds, title)
    sparsities = [float(s) for s in ds["sparsity"].values]
    cmap = plt.get_cmap("viridis")
    for ax, p in zip(axes.flat, panels):
        ax.set_title(panel_label(ds, p), fontsize=9)
        drawn = False
        for i, s in enumerate(sparsities):
            y = ds[var].sel(panel=p, sparsity=s).values
            ok = np.isfinite(y)
            if not ok.any():
                continue
            ax.plot(ds["step"].values[ok], y[ok], "o-", markersize=3,
                    color=cmap(0.85 * i / max(1, len(sparsities) - 1)),
                    label=f"{sparsity_label(s)} (mean {np.nanmean(y):.3g})")
            drawn = True
        if not drawn:
            _not_run(ax)
            continue
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("Training step", fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    return _write(fig, out_stem)


def render_lipschitz(ds, out_stem, title=None, fits=None) -> list[pathlib.Path]:
    """Paper Fig. 4: the local Lipschitz constant L(w_k) over training, per sparsity."""
    return _render_smoothness(ds, out_stem, "lipschitz", "Local Lipschitz constant of grad f", True, title)


def render_training_loss(ds, out_stem, title=None, fits=None) -> list[pathlib.Path]:
    """Paper Fig. 6: training loss f(w_k) over the measurement split, same runs as Fig. 4."""
    return _render_smoothness(ds, out_stem, "train_loss", "Training loss", True, title)


KINDS = {"data_parallelism": render_data_parallelism,
         "optimizer_comparison": render_optimizer_comparison,
         "landscape": render_landscape,
         "sparse_ratio": render_sparse_ratio,
         "lipschitz": render_lipschitz,
         "training_loss": render_training_loss}


def render(ds, out_stem, kind="data_parallelism", **kw) -> list[pathlib.Path]:
    """Render figure ``kind`` of ``ds`` to ``<out_stem>.png`` / ``.pdf``; unknown kind -> ValueError."""
    try:
        fn = KINDS[kind]
    except (KeyError, TypeError):
        raise ValueError(f"unknown figure kind {kind!r}; known kinds: {', '.join(sorted(KINDS))}") from None
    return fn(ds, out_stem, **kw)
