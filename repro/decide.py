"""`repro decide`: spend compute where a claim is still undecided.

Each INCONCLUSIVE verdict says what would decide it as structured requests
(repro.claims.context.Request): more trials per point (a finer search), more replicate
searches, batch sizes toward the regime a claim is about, a larger step budget where K* is
only a bound, or a race with two finishers where the stored search shows nothing of its own
resolution. `decide` turns each request into a change of the panel's grid, prices it with the
cost model (repro.cost: racing's steps from the fits of the stored runs; repro.throughput:
seconds per step here), applies the cheapest first within the budget, runs the new grid (only
what is not stored trains), verifies again, and stops when every claim is decided, nothing
affordable is left, or the budget is spent. It learns from what it ran: where a larger step
budget brought no more trials to the goal, the search (its trials and box), not the budget, limits
the point, so it stops asking for budget there and the trials the same verdicts request come next.

What it added is written into the spec as one named grid per panel (default `decided`: the
grid it started from plus every change, with its `why`), so `repro run SPEC --grid decided`
reproduces it without `decide`.
"""
import dataclasses
import functools
import math
import pathlib
import re
import time

import numpy as np

from . import atomic, claims, cost, evidence, plan as plan_mod, spec as spec_mod, store, study as study_mod, verify
from .data import require, validation_size
from .errors import DataMissing, UsageError

MAX_ROUNDS = 6          # verify -> add -> run rounds before giving up on the rest
MAX_TRIALS_FACTOR = 8   # a panel's trials may grow to at most this many times the start


@dataclasses.dataclass(frozen=True)
class Change:
    """One priced change of one panel's grid."""

    panel: str
    kind: str             # the request kind it answers
    grid: dict            # the panel's new grid keys (spec format)
    hours: float          # predicted wall time of what it adds, on this machine's workers
    why: str              # the claims and requests it answers
    batch_sizes: tuple = ()  # the batch sizes the request names (none: the whole panel)

    def describe(self):
        return f"panel {self.panel}: {self.kind} ({self.why}; ~{_format_hours(self.hours)})"


@dataclasses.dataclass
class Outcome:
    """What a decide run did."""

    grid: str                                   # the grid it wrote and ran
    rounds: list = dataclasses.field(default_factory=list)  # per round: (changes, results)
    hours_predicted: float = 0.0
    seconds_spent: float = 0.0
    results: list = dataclasses.field(default_factory=list)  # the last verification


def _format_hours(hours):
    return f"{hours * 60:.0f} min" if hours < 1 else f"{hours:.1f} h"


def grid_keys(grid) -> dict:
    """A spec.Grid as the keys of its [panel.grid.NAME] table."""
    out = {"batch_sizes": list(grid.batch_sizes), "sparsities": list(grid.sparsities),
           "trials": grid.trials, "max_steps": grid.max_steps, "eval_every": grid.eval_every}
    if grid.max_examples:
        out["max_examples"] = grid.max_examples
    if grid.eval_per_octave:
        out["eval_per_octave"] = grid.eval_per_octave
    if grid.seeds > 1:
        out["seeds"] = grid.seeds
    out["finishers"] = grid.finishers
    out["search"] = {d.name: {"min": d.min, "max": d.max, "scale": d.scale} for d in grid.search}
    out["why"] = grid.why
    return out


def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {v!r} as TOML")


def grid_table(name, keys) -> str:
    """The [panel.grid.NAME] table text for `keys`."""
    lines = [f"[panel.grid.{name}]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in keys.items()]
    return "\n".join(lines) + "\n"


def with_grid(text, name, tables) -> str:
    """Spec text with a [panel.grid.NAME] table after each panel's last table (replacing any
    table of that name); `tables` in panel order, one per [[panel]]."""
    own = re.compile(rf"^\[panel\.grid\.{re.escape(name)}\]\s*$")
    out, sections = [], re.split(r"(?m)^(?=\[\[panel\]\]\s*$)", text)
    head, panels = sections[0], sections[1:]
    if len(panels) != len(tables):
        raise ValueError(f"{len(panels)} [[panel]] sections, {len(tables)} grid tables")
    out.append(head)
    for section, table in zip(panels, tables):
        lines, keep, skipping = section.splitlines(keepends=True), [], False
        for line in lines:
            if own.match(line):
                skipping = True
                continue
            if skipping and line.lstrip().startswith("["):
                skipping = False
            if not skipping:
                keep.append(line)
        body = "".join(keep).rstrip("\n") + "\n\n"
        out.append(body + table + "\n")
    return "".join(out).rstrip("\n") + "\n"


def apply(keys, kind, request, start) -> dict | None:
    """`keys` (a panel's grid) changed to answer one request; None if it cannot grow further.
    `start`: the keys decide began from (for its limits)."""
    new = {**keys, "search": dict(keys["search"])}
    if kind == "trials":
        if new["trials"] * 2 > start["trials"] * MAX_TRIALS_FACTOR or new["trials"] * 2 > spec_mod.MAX_TRIALS:
            return None
        new["trials"] *= 2
    elif kind == "seeds":
        if new.get("seeds", 1) >= spec_mod.MAX_SEEDS:
            return None
        new["seeds"] = new.get("seeds", 1) + 1
    elif kind == "batch_sizes":
        add = [b for b in request.get("batch_sizes", ()) if b not in new["batch_sizes"] and b >= 1]
        if not add:
            return None
        new["batch_sizes"] = sorted(new["batch_sizes"] + add)
    elif kind == "budget":  # double what limits the budget at the requested batch sizes
        asked = request.get("batch_sizes") or new["batch_sizes"]
        by_examples = [b for b in asked if new.get("max_examples") and new["max_examples"] // b < new["max_steps"]]
        if len(by_examples) < len(asked):
            if new["max_steps"] * 2 > spec_mod.MAX_STEPS:
                return None
            new["max_steps"] *= 2
        if by_examples:
            new["max_examples"] *= 2
    elif kind == "finishers":
        if new.get("finishers", 1) >= 2:
            return None  # already racing two finishers: running the grid retrains what is short
        new["finishers"] = 2
    else:
        return None
    return new


def _panel_plan(sp, keys, panel_id, grid, scratch):
    """The PanelPlan of `panel_id` with grid keys `grid` (the others as in `keys`), compiled
    from the spec's text with those grids written to `scratch`."""
    tables = [grid_table("candidate", grid if p.id == panel_id else keys[p.id]) for p in sp.panels]
    scratch.write_text(with_grid(sp.path.read_text(), "candidate", tables))
    return plan_mod.compile_plan(spec_mod.load_spec(scratch), "candidate", [panel_id]).panels[0]


def price(sp, keys, panel_id, new, kind, ds, workers, tables, scratch) -> float:
    """Predicted hours of what `new` adds to panel `panel_id` beyond its grid in `keys`:
    racing's cost (repro.cost, from the fits of the stored runs) of the new grid minus the
    current one's, per batch size; a second finisher retrains its points whole, a larger budget
    the points whose budget it changes. inf where nothing is measured to predict from."""
    from . import throughput
    if ds is None or panel_id not in list(ds.panel.values):
        return math.inf
    m = cost.measurements(ds, panel_id)
    if m is None:
        return math.inf
    pp_new = _panel_plan(sp, keys, panel_id, new, scratch)
    pp_old = _panel_plan(sp, keys, panel_id, keys[panel_id], scratch)
    n_val = validation_size(pp_new.panel.dataset)
    by_new = cost.estimate_by_batch(pp_new, n_val, m)
    by_old = cost.estimate_by_batch(pp_old, n_val, m)
    added = {}
    for b, kinds in by_new.items():
        old = by_old.get(b, {}).get("repro")
        new_budget = pp_new.grid.max_steps_for(b) != pp_old.grid.max_steps_for(b)
        retrain = kind == "finishers" or (kind == "budget" and new_budget) or old is None
        added[b] = {"repro": kinds["repro"] if retrain else
                    {k: max(0.0, v - old[k]) for k, v in kinds["repro"].items()}}
    table = tables.get((pp_new.panel.model, throughput.shape_key(pp_new.panel.dataset)))
    if table is None:
        return math.inf
    return throughput.wall_hours(added, table, workers)["repro"]


def check(sp, *, grid, name, panels=None):
    """UsageError (one line: file, key, fix) unless decide can start from `grid` and write
    grid `name` for `panels`; checked before anything is written."""
    if name in ("full", grid):
        raise UsageError(sp.path, "--name", f"'{name}' would overwrite the grid decide starts from",
                         "choose another name, e.g. --name decided")
    missing = [p.id for p in sp.panels if grid not in p.grids]
    if missing:
        raise UsageError(sp.path, f"panel[{missing[0]}].grid.{grid}", f"no grid named '{grid}'",
                         "decide starts from a grid every panel has")
    unknown = sorted(set(panels or ()) - {p.id for p in sp.panels})
    if unknown:
        raise UsageError(sp.path, "--panel", f"unknown panel(s) {', '.join(unknown)}",
                         f"known: {', '.join(p.id for p in sp.panels)}")
    _panels_with_data(sp, panels, log=lambda line: None)  # DataMissing when none has its data


def goal_reached(ev) -> dict:
    """{(sparsity, batch size): (trials that reached the goal, trials that ran the budget and
    missed it)} of one panel's Evidence, summed over its replicate searches (capped and unrun
    trials count in neither)."""
    reached = (np.isfinite(ev.trials) & ~ev.capped).sum(axis=(0, 3))
    missed = np.isposinf(ev.trials).sum(axis=(0, 3))
    return {(s, int(b)): (int(reached[j, i]), int(missed[j, i])) for j, s in enumerate(ev.sparsities)
            for i, b in enumerate(ev.batch_sizes)}


def budget_did_not_help(before, after, batch_sizes) -> list:
    """The batch sizes of `batch_sizes` where a larger step budget brought no more trials to the
    goal (`before`, `after`: goal_reached of the panel under the old and the new budget) at any
    point where trials had missed it. A batch size with no such point in `before` (unknown, or
    nothing missed) is not listed."""
    out = []
    for b in batch_sizes:
        short = [key for key, (_, missed) in before.items() if key[1] == int(b) and missed]
        if short and all(after.get(key, (0, 0))[0] <= before[key][0] for key in short):
            out.append(int(b))
    return sorted(out)


@dataclasses.dataclass
class BudgetLedger:
    """What decide learned from the budgets it raised: a budget change records the goal counts
    before it runs; `review` compares them with the counts after and marks the batch sizes where
    no more trials reached the goal, which `narrow` then takes out of later budget requests."""

    pending: dict = dataclasses.field(default_factory=dict)  # panel -> (batch sizes, counts before)
    spent: dict = dataclasses.field(default_factory=dict)    # panel -> batch sizes it did not help

    def record(self, change, ev, panel_batch_sizes):
        if change.kind == "budget" and ev is not None:
            self.pending[change.panel] = (tuple(change.batch_sizes or panel_batch_sizes), goal_reached(ev))

    def review(self, evidence_of) -> list:
        """Lines saying where a raised budget did not help; `evidence_of(panel)`: the panel's
        Evidence after the run (None: not stored)."""
        lines = []
        for panel, (batch_sizes, before) in sorted(self.pending.items()):
            ev = evidence_of(panel)
            if ev is None:
                continue
            after = goal_reached(ev)
            for b in budget_did_not_help(before, after, batch_sizes):
                self.spent.setdefault(panel, set()).add(b)
                counts = ", ".join(f"s = {s:g}: {before[(s, bb)][0]} -> {after.get((s, bb), (0, 0))[0]}"
                                   for s, bb in sorted(before) if bb == b and before[(s, bb)][1])
                lines.append(f"decide: a larger step budget at B = {b} brought no more trials of panel "
                             f"({panel}) to the goal (trials reaching it where some had missed: {counts}); the "
                             f"search, not the budget, limits it there, so decide stops asking for budget "
                             f"at B = {b} and adds trials instead")
        self.pending = {}
        return lines

    def narrow(self, panel, request, panel_batch_sizes):
        """`request` without the batch sizes a raised budget did not help (a budget request
        naming none names the whole panel); None when none is left. Other kinds pass unchanged."""
        if request["kind"] != "budget" or panel not in self.spent:
            return request
        asked = request.get("batch_sizes") or panel_batch_sizes
        left = [int(b) for b in asked if int(b) not in self.spent[panel]]
        return dict(request, batch_sizes=left) if left else None


def _candidates(keys, start, inconclusive, panels, price_of, ledger=None):
    """{(panel, kind, batch sizes): Change}: every change the `inconclusive` verdicts request
    that `apply` can make to a panel's grid `keys` (`panels`: only these, if given), priced by
    `price_of(panel_id, new keys, kind)`; a change several claims request is priced once and
    names them all. A budget request loses the batch sizes the `ledger` (BudgetLedger) found a
    raised budget did not help, and is left out when none remains."""
    candidates = {}
    ledger = ledger or BudgetLedger()
    for result in inconclusive:
        for request in result.values.get("needs", []):
            panel_id, kind = request["panel"], request["kind"]
            if panel_id not in keys or (panels and panel_id not in panels):
                continue
            request = ledger.narrow(panel_id, request, keys[panel_id]["batch_sizes"])
            if request is None:
                continue
            new = apply(keys[panel_id], kind, request, start[panel_id])
            if new is None:
                continue
            key = (panel_id, kind, tuple(request.get("batch_sizes", ())))
            if key in candidates:
                candidates[key] = dataclasses.replace(candidates[key],
                                                      why=candidates[key].why + f"; {result.claim}")
                continue
            candidates[key] = Change(panel=panel_id, kind=kind, grid=new,
                                     hours=price_of(panel_id, new, kind),
                                     why=f"{result.claim}: {request['why']}",
                                     batch_sizes=tuple(request.get("batch_sizes", ())))
    return candidates


def _choose(candidates, hours_left):
    """(changes, their predicted hours): the cheapest first (among equals, the one answering
    more claims), at most one per panel, within `hours_left`."""
    chosen, used = [], 0.0
    for change in sorted(candidates.values(), key=lambda c: (c.hours, -c.why.count(";"))):
        if any(c.panel == change.panel for c in chosen) or not math.isfinite(change.hours):
            continue  # one change per panel per round: the next round re-prices the rest
        if used + change.hours <= hours_left:
            chosen.append(change)
            used += change.hours
    return chosen, used


def _run_round(sp, *, grid, name, keys, changed, results_dir, workers):
    """Write grid `name` (`keys`) into the spec, rebuild the starting grid's results file (the
    spec's text changed; nothing trains) so that plot, verify and report accept it as current,
    and run grid `name` on the panels in `changed`; returns (the reloaded spec, seconds)."""
    sp = write_grid(sp, name, keys)
    study_mod.write_results(sp, grid_name=grid, results_dir=results_dir)
    t0 = time.perf_counter()
    study = study_mod.load_study(sp, grid_name=name, panels=changed)  # only what it added to
    ran = study.run(results_dir=results_dir, workers=workers)
    ran.attrs["run_wall_seconds"] = round(time.perf_counter() - t0, 1)
    study_mod.write_results(sp, grid_name=name, results_dir=results_dir, run=ran)
    return sp, time.perf_counter() - t0


def _panel_evidence(ds, panel_id):
    """The Evidence of `panel_id` in results dataset `ds`; None where it is not stored."""
    if ds is None or panel_id not in list(ds.panel.values):
        return None
    return evidence.from_dataset(ds, panel_id)


def _panels_with_data(sp, panels, log):
    """The ids of `panels` (default: all) whose dataset is here: decide adds nothing where it
    could not train (it says so); none at all is an error (DataMissing: how to get it)."""
    with_data, missing = [], None
    for p in sp.panels:
        if panels and p.id not in panels:
            continue
        try:
            require(p.dataset)
            with_data.append(p.id)
        except DataMissing as e:
            missing = e
            log(f"decide: adds nothing to panel ({p.id}): {e}")
    if not with_data and missing is not None:
        raise missing
    return with_data


def decide(sp, *, grid="reduced", name="decided", results_dir="results", budget_hours=1.0,
           workers=1, log=print, run_probe=True, panels=None, max_rounds=MAX_ROUNDS) -> Outcome:
    """Run `decide` on one spec (see the module docstring); returns what it did. `panels`: add
    only to these panel ids (default: all); at most `max_rounds` rounds of adding."""
    from . import throughput
    check(sp, grid=grid, name=name, panels=panels)
    panels = _panels_with_data(sp, panels, log)
    start = {p.id: grid_keys(p.grids[grid]) for p in sp.panels}
    keys = {pid: dict(k, why=f"repro decide from the '{grid}' grid") for pid, k in start.items()}
    outcome = Outcome(grid=name)
    scratch = pathlib.Path(results_dir) / "cache" / "decide-candidate.toml"
    scratch.parent.mkdir(parents=True, exist_ok=True)
    current, t_start = grid, time.perf_counter()
    ledger = BudgetLedger()
    # the starting grid's results file, rebuilt from the stored trials (nothing trains): it is
    # current with the spec, and holds every panel stored
    study_mod.write_results(sp, grid_name=grid, results_dir=results_dir)
    for round_number in range(max_rounds + 1):
        results = verify.verify_spec(sp, grid=current, results_dir=results_dir)
        outcome.results = results
        inconclusive = [r for r in results if r.status == claims.INCONCLUSIVE]
        decided = sum(r.status in (claims.PASS, claims.FAIL) for r in results)
        spent_h = (time.perf_counter() - t_start) / 3600
        log(f"[decide round {round_number} | {decided}/{len(results)} claims decided | "
            f"{_format_hours(spent_h)} of {_format_hours(budget_hours)} spent]")
        if not inconclusive or round_number == max_rounds:
            break
        path = spec_mod.results_path(results_dir, sp, current)
        ds = store.open_results(path, sp, current) if path.exists() else None
        evidence_of = functools.partial(_panel_evidence, ds)
        for line in ledger.review(evidence_of):
            log(line)
        tables, _ = throughput.tables(plan_mod.compile_plan(sp, current), results_dir, run_probe=run_probe)
        price_of = functools.partial(price, sp, keys, ds=ds, workers=workers, tables=tables, scratch=scratch)
        candidates = _candidates(keys=keys, start=start, inconclusive=inconclusive, panels=panels,
                                 price_of=price_of, ledger=ledger)
        left = budget_hours - spent_h
        chosen, used = _choose(candidates=candidates, hours_left=left)
        if not chosen:
            cheapest = min(candidates.values(), key=lambda c: c.hours, default=None)
            log("decide: nothing affordable is left" + (
                f"; the cheapest addition is {cheapest.describe()}, over the {_format_hours(left)} left"
                if cheapest else "; no verdict asks for anything decide can add"))
            break
        for change in chosen:
            keys[change.panel] = dict(change.grid, why=keys[change.panel]["why"]
                                      + f"; {change.kind} for {change.why}")
            log(f"decide: adds {change.describe()}")
            ledger.record(change, evidence_of(change.panel), keys[change.panel]["batch_sizes"])
        changed = sorted({c.panel for c in chosen} |
                         {c.panel for changes, _ in outcome.rounds for c in changes})
        sp, seconds = _run_round(sp, grid=grid, name=name, keys=keys, changed=changed,
                                 results_dir=results_dir, workers=workers)
        current = name
        outcome.hours_predicted += used
        outcome.rounds.append((chosen, seconds))
    outcome.seconds_spent = time.perf_counter() - t_start
    scratch.unlink(missing_ok=True)
    return outcome


def write_grid(sp, name, keys):
    """Write grid `name` (`keys` per panel id) into the spec file atomically, after checking
    that the new text loads; returns the reloaded spec."""
    text = with_grid(sp.path.read_text(), name, [grid_table(name, keys[p.id]) for p in sp.panels])
    tmp = sp.path.with_name(f".{sp.path.name}.decide")
    tmp.write_text(text)
    try:
        spec_mod.load_spec(tmp)
    finally:
        tmp.unlink(missing_ok=True)
    atomic.atomic_write(sp.path, text.encode())
    return spec_mod.load_spec(sp.path)
