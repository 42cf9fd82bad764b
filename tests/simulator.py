"""A true-claim simulator: SYNTHETIC searches of Figure 1's reduced panels where every claim holds.

Nothing here trains. Each draw makes, for every panel (a)-(c) of specs/figure-1.toml at its
reduced grid, the trial outcomes a race would store, from a model whose truth is known:

- the best K* a search could find is Prop. 4.1's K*(B) = c1/B + c2 at each sparsity, with the
  sparse network slower (larger c1 and c2) and its B_crit no smaller: every K*(B) claim of the
  figure is true;
- a trial's K at its metaparameters is that K* times exp(a (log eta - log eta_opt(B))^2) times
  log-normal seed noise, where eta = lr / (1 - momentum) is the effective learning rate (lr for
  SGD) and the optimum eta_opt(B) grows as B^alpha up to B_crit, then stays: the search's bias
  differs by B, as on real workloads; a trial far above the optimum diverges;
- the trials are the spec's real Sobol points (plan.StudyPoint.trial_values), evaluated on the
  spec's real schedule, within its real step budget (a point where no trial reaches the goal is
  censored), and capped as the race caps them with the grid's `finishers`.

`figure_evidence(rng)` returns {panel: repro.evidence.Evidence} and the truth, ready for the
claims (repro.claims.check_evidence) and for coverage checks against the true curves.
"""
import dataclasses
import math
import pathlib

import numpy as np

from repro import evidence
from repro import plan as plan_mod
from repro import spec as spec_mod
from repro.race import cap_for

SPEC = pathlib.Path(__file__).resolve().parent.parent / "specs" / "figure-1.toml"
PANELS = ("a", "b", "c")


@dataclasses.dataclass(frozen=True)
class PanelTruth:
    """What a draw makes true of one panel (per sparsity, dense first)."""

    c1: tuple            # Prop. 4.1 c1 per sparsity
    c2: tuple            # Prop. 4.1 c2 per sparsity
    eta_opt_min: tuple   # log optimal effective learning rate at the smallest B, per sparsity
    alpha: float         # the optimum grows as B^alpha up to B_crit
    curvature: float     # a in a (log eta - log eta_opt)^2
    noise: float         # sigma of a trial's log-normal seed noise

    def kstar(self, j, b):
        return self.c1[j] / np.asarray(b, dtype=float) + self.c2[j]

    def b_crit(self, j):
        return self.c1[j] / self.c2[j]


@dataclasses.dataclass(frozen=True)
class PanelShape:
    """What the spec fixes for a panel: its grid, schedule, budget and Sobol trials."""

    batch_sizes: np.ndarray
    sparsities: tuple
    eval_steps: np.ndarray
    budget: dict             # B -> max steps
    log_eta: np.ndarray      # (trials,) log effective learning rate of each Sobol trial
    values: list             # each trial's metaparameters
    finishers: int


def panel_shapes(spec_path=SPEC, grid="reduced"):
    """{panel: PanelShape} from the real spec."""
    spec = spec_mod.load_spec(spec_path)
    plan = plan_mod.compile_plan(spec, grid)
    first = {}
    for point in plan_mod.study_points(plan):
        first.setdefault(point.panel.id, point)
    shapes = {}
    for pp in plan.panels:
        if pp.panel.id not in PANELS:
            continue
        values = first[pp.panel.id].trial_values()
        lr = np.array([v["learning_rate"] for v in values])
        mom = np.array([v.get("momentum", 0.0) for v in values])
        shapes[pp.panel.id] = PanelShape(
            batch_sizes=np.array(pp.grid.batch_sizes, dtype=float), sparsities=tuple(pp.grid.sparsities),
            eval_steps=np.array(pp.eval_steps, dtype=float),
            budget={int(b): int(pp.grid.max_steps_for(b)) for b in pp.grid.batch_sizes},
            log_eta=np.log(lr / (1.0 - mom)), values=values, finishers=pp.grid.finishers)
    return shapes


# How coarse a search is: the ranges a draw takes its curvature, seed noise and optimum from,
# fitted to Figure 1's reduced run (tests/data/figure1_searches.csv: 24 real searches, 6 trials
# each, raced to 2 finishers; tests/test_calibration.py::test_the_simulator_searches_like_the_real_ones
# compares the two). Real searches are coarser than a narrow bowl with little noise: a quarter of
# their points have fewer than 2 trials reaching the goal, and the second finisher is a median
# 1.25x the first.
CURVATURE = (0.2, 1.0)   # a in a (log eta - log eta_opt)^2
NOISE = (0.1, 0.3)       # sigma of a trial's log-normal seed noise
BELOW_BOX = 0.5          # the optimum at the smallest B may lie this share of the box below it


def draw_truth(rng, shape):
    """A panel where every claim holds: dense B_crit in [32, 512], sparse B_crit 1-2.5x dense,
    sparse c2 1.3-2x dense (so K*(sparse)/K*(dense) lies between 1.3 and 5 at every B); the
    optimum at the smallest B from BELOW_BOX of the box below it to 60 % of the way up,
    moving up with B."""
    b_crit = math.exp(rng.uniform(math.log(32), math.log(512)))
    c2 = math.exp(rng.uniform(math.log(60), math.log(300)))
    crit_ratio, c2_ratio = rng.uniform(1.0, 2.5), rng.uniform(1.3, 2.0)
    c2s = (c2, c2 * c2_ratio)
    c1s = (b_crit * c2, b_crit * crit_ratio * c2 * c2_ratio)
    lo, hi = shape.log_eta.min(), shape.log_eta.max()
    eta0 = tuple(rng.uniform(lo - BELOW_BOX * (hi - lo), lo + 0.6 * (hi - lo)) for _ in shape.sparsities)
    return PanelTruth(c1=c1s, c2=c2s, eta_opt_min=eta0, alpha=rng.uniform(0.3, 1.0),
                      curvature=rng.uniform(*CURVATURE), noise=rng.uniform(*NOISE))


def _first_eval_at_or_after(steps, k):
    idx = np.searchsorted(steps, k, side="left")
    return np.where(idx < steps.size, steps[np.clip(idx, None, steps.size - 1)], np.inf)


def _last_eval_at_or_before(steps, k):
    idx = np.searchsorted(steps, k, side="right") - 1
    return np.where(idx >= 0, steps[np.clip(idx, 0, None)], 0.0)


def race_outcomes(k_true, steps, budget, finishers, diverged):
    """One point's stored outcomes: (values, capped) as repro.evidence reads them: a complete
    trial at its evaluation step, a capped one at the step it was stopped at, inf otherwise."""
    reach = _first_eval_at_or_after(steps, k_true)
    reach = np.where(diverged | (reach > budget), np.inf, reach)
    finished = sorted((float(k), i) for i, k in enumerate(reach) if np.isfinite(k))
    top = finished[:finishers]
    values, capped = np.full(reach.size, np.inf), np.zeros(reach.size, bool)
    for i, k in enumerate(reach):
        if diverged[i]:
            continue
        cap = cap_for(top, i, True, budget, finishers)
        if (k, i) in top or cap is None:
            values[i] = k if np.isfinite(k) else np.inf
        elif k <= cap:  # cannot happen: a trial finishing by the cap is in the top k
            values[i] = k
        else:
            values[i], capped[i] = _last_eval_at_or_before(steps, cap), True
    return values, capped


def panel_evidence(rng, shape, truth, seeds=1):
    """The Evidence one race of this panel would store (seed noise drawn per trial)."""
    nS, nB, nT = len(shape.sparsities), shape.batch_sizes.size, shape.log_eta.size
    trials = np.full((seeds, nS, nB, nT), np.nan)
    capped = np.zeros((seeds, nS, nB, nT), bool)
    b_min = shape.batch_sizes.min()
    for r in range(seeds):
        for j in range(nS):
            for i, b in enumerate(shape.batch_sizes):
                grow = min(b, truth.b_crit(j)) / b_min
                log_opt = truth.eta_opt_min[j] + truth.alpha * math.log(max(grow, 1.0))
                miss = shape.log_eta - log_opt
                k = truth.kstar(j, b) * np.exp(truth.curvature * miss ** 2
                                               + truth.noise * rng.standard_normal(nT))
                diverged = miss > math.log(8.0)
                trials[r, j, i], capped[r, j, i] = race_outcomes(
                    k, shape.eval_steps, shape.budget[int(b)], shape.finishers, diverged)
    lr = np.array([v["learning_rate"] for v in shape.values])
    hp = {"learning_rate": np.broadcast_to(lr, (1, nS, nB, nT)).copy()}
    if "momentum" in shape.values[0]:
        mom = np.array([v["momentum"] for v in shape.values])
        hp["momentum"] = np.broadcast_to(mom, (1, nS, nB, nT)).copy()
    return evidence.Evidence(
        batch_sizes=shape.batch_sizes, sparsities=shape.sparsities, trials=trials, capped=capped,
        eval_steps={int(b): shape.eval_steps for b in shape.batch_sizes},
        budget={int(b): float(shape.budget[int(b)]) for b in shape.batch_sizes}, hp=hp)


def figure_evidence(rng, shapes, seeds=1):
    """({panel: Evidence}, {panel: PanelTruth}) for one draw of the whole figure."""
    truths = {pid: draw_truth(rng, shape) for pid, shape in shapes.items()}
    return {pid: panel_evidence(rng, shapes[pid], truths[pid], seeds) for pid in shapes}, truths


def check_draws(seed, n, claim_names, golden_path, n_boot=100, spec_path=SPEC):
    """[(results, evidence, truths)] of `n` figure draws from `seed`, each checked with
    repro.claims.check_evidence under `n_boot` replicates per panel (runs in a worker process)."""
    from repro import claims
    old, evidence.N_BOOT = evidence.N_BOOT, n_boot
    try:
        golden = claims.load_golden(golden_path)
        shapes = panel_shapes(spec_path)
        rng = np.random.default_rng(seed)
        out = []
        for _ in range(n):
            evs, truths = figure_evidence(rng, shapes)
            out.append((claims.check_evidence(evs, claim_names, golden), evs, truths))
        return out
    finally:
        evidence.N_BOOT = old
