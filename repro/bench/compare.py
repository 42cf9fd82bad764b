"""The bench's comparison of its sides: K* and best trial per study point, racing's bound on
the trial-steps repro trained, the speed and memory targets judged on what was measured, and
the lines the bench prints. Pure functions of the sides' outputs (repro.bench.sides), no
training.
"""
GIB = 2 ** 30
# The speed and memory targets: (name, what it measures, comparison, target).
TARGETS = (
    ("speed-up over naive1", "wall time, single-thread naive / repro", ">=", 8.0),
    ("speed-up over naive", "wall time, default-thread naive / repro", ">=", 4.0),
    ("overhead over floor", "wall time, repro / bare-loop floor over the same steps", "<=", 1.2),
    ("repro peak memory", "peak resident memory of repro's process tree, GiB", "<=", 4.0),
)


def point_key(sparsity, batch_size):
    """The JSON key of a study point, e.g. '0.9/256' (sparsity 0.9, batch size 256)."""
    return f"{sparsity:g}/{batch_size}"


def best_of(steps_by_trial):
    """{"k": K*, "best": trial} from {trial: steps-to-result or None (goal not reached)}.

    K* is the fewest steps over the trials that reached the goal; the best trial is the lowest
    trial index among those with K* (repro's tie rule). Both are None when no trial reached it."""
    reached = {int(t): int(k) for t, k in steps_by_trial.items() if k is not None}
    if not reached:
        return {"k": None, "best": None}
    k_star = min(reached.values())
    return {"k": k_star, "best": min(t for t, k in reached.items() if k == k_star)}


def compare_points(reference, other):
    """{point: True/False} whether `other` has the same K* and best trial as `reference`."""
    def k_and_best(point):
        return point["k"], point["best"]
    return {key: k_and_best(other["points"][key]) == k_and_best(ref)
            for key, ref in reference["points"].items()}


def racing_bound(repro, trials, eval_steps, finishers=1, budgets=None):
    """Racing's bound on the trial-steps of a study, summed over the points with a K*: the
    sequential capped search to `finishers` (k) finishers in its best run order. The k first
    finishers run to their own K; every other trial to the k-th's K (a lower index than the
    k-th's) or to the evaluation before it (a higher one); where fewer than k finish, the others
    run to the point's budget (`budgets`: point key -> steps). Diverging trials run less."""
    def before(k):
        return max((s for s in eval_steps if s < k), default=0)
    bound, with_k = 0, 0
    for key, p in repro["points"].items():
        done = sorted(tuple(x) for x in p.get("finished") or ()) or \
            ([(p["k"], p["best"])] if p["k"] is not None else [])
        if not done:
            continue
        with_k += 1
        top = done[:finishers]
        bound += sum(k for k, _ in top)
        if len(done) >= finishers:
            k_k, kth = top[-1]
            bound += sum(k_k if t < kth else before(k_k)
                         for t in range(trials) if t not in {i for _, i in top})
        else:
            bound += (trials - len(top)) * (budgets or {}).get(key, 0)
    return {"trials": trials, "finishers": finishers, "points_with_k": with_k,
            "points": len(repro["points"]), "bound": bound}


def ratios(sides):
    """Wall-time ratios and peak memory that the targets judge; None where a side did not run."""
    def ratio(a, b):
        return sides[a]["seconds"] / sides[b]["seconds"] if a in sides and b in sides else None
    return {"speed-up over naive1": ratio("naive1", "repro"),
            "speed-up over naive": ratio("naive", "repro"),
            "overhead over floor": ratio("repro", "floor"),
            "repro peak memory": sides["repro"]["peak_bytes"] / GIB if "repro" in sides else None}


def judge_targets(measured):
    """Each target of TARGETS with its measured value and whether it is met (None: not measured)."""
    out = []
    for name, what, op, target in TARGETS:
        value = measured[name]
        met = None if value is None else (value >= target if op == ">=" else value <= target)
        out.append({"name": name, "what": what, "target": f"{op} {target:g}", "measured": value,
                    "met": met})
    return out


def judge(sides, panel_plan):
    """What the bench concludes from the sides' outputs ({side: output}, as driver.run_sides
    returns them) on the study `panel_plan`: {"agree": {naive side: {point: same K* and best
    trial as repro}}, "same": naive1 agrees everywhere (None: not compared), "measured":
    ratios, "racing": racing_bound (None without repro), "targets": judge_targets}."""
    grid = panel_plan.grid
    agree = {name: compare_points(sides["repro"], sides[name])
             for name in ("naive1", "naive") if name in sides and "repro" in sides}
    measured = ratios(sides)
    budgets = {point_key(s, b): grid.max_steps_for(b) for s, b in panel_plan.points}
    racing = racing_bound(sides["repro"], grid.trials, panel_plan.eval_steps, grid.finishers,
                          budgets) if "repro" in sides else None
    return {"agree": agree, "same": all(agree["naive1"].values()) if "naive1" in agree else None,
            "measured": measured, "racing": racing, "targets": judge_targets(measured)}


# ------------------------------------------------------------------------ the lines printed
def _show(point):
    return f"K*={point['k']} best={point['best']}"


def point_lines(sides):
    """One line per study point: repro's K* and best trial against each naive side's."""
    ref = sides.get("repro") or sides.get("naive1") or sides["naive"]
    lines = ["steps-to-result K* and best trial per study point:"]
    for key in ref["points"]:
        s, b = key.split("/")
        row = f"  s={s:>4} B={b:>5}"
        if "repro" in sides:
            row += f"  repro {_show(sides['repro']['points'][key])}"
        for name, differ in (("naive1", "DIFFERENT"), ("naive", "differs")):
            if name in sides:
                p = sides[name]["points"][key]
                same = "repro" in sides and (p["k"], p["best"]) == (sides["repro"]["points"][key]["k"],
                                                              sides["repro"]["points"][key]["best"])
                row += f" | {name} {_show(p)}" + ("" if "repro" not in sides else
                                                    " same" if same else f" {differ}")
        lines.append(row)
    return lines


SIDE_NAMES = {"naive1": "naive1 (one thread)", "naive": "naive (default threads)", "repro": "repro"}


def _seconds(sides, name):
    return f"{SIDE_NAMES[name]} {sides[name]['seconds']:.1f} s"


def _count(sides, name, field):
    return f"{name} {sides[name][field]:,}" if name in sides and field in sides[name] else f"{name} -"


def summary_lines(sides, measured, racing, workers):
    """Wall time, work counts, memory and the floor, one line each (skipped sides say so)."""
    naives = [n for n in ("naive1", "naive") if n in sides]
    shown = [n for n in ("naive1", "naive", "repro") if n in sides]
    wall = ", ".join(_seconds(sides, n) for n in shown)
    speed = [f"{n}/repro {measured['speed-up over ' + n]:.1f}x" for n in naives if "repro" in sides]
    lines = [f"wall time: {wall}" + (f"; ratios {', '.join(speed)}" if speed else ""),
             "trained steps: " + ", ".join(_count(sides, n, "steps_trained") for n in shown),
             "evaluated validation examples: "
             + ", ".join(_count(sides, n, "examples_evaluated") for n in shown),
             "peak resident memory: " + ", ".join(
                 f"{n} {sides[n]['peak_bytes'] / GIB:.2f} GiB" for n in shown)]
    if racing:
        rep = sides["repro"]
        lines.append(
            f"trial-steps: repro trained {rep['steps_trained']:,}; racing's bound (of n = "
            f"{racing['trials']} trials raced to {racing['finishers']} finisher(s): those run to "
            f"their own K, the rest to the last finisher's or the evaluation before it) summed "
            f"over the {racing['points_with_k']} of "
            f"{racing['points']} points with a K*: {racing['bound']:,}"
            f" ({'within' if rep['steps_trained'] <= racing['bound'] else 'over'} it); "
            f"the results read {rep['steps_in_results']:,}")
    if "floor" in sides:
        lines.append(f"bare training loop over repro's steps ({workers} processes): "
                     f"{sides['floor']['seconds']:.1f} s; repro's overhead over that floor: "
                     f"{measured['overhead over floor']:.2f}x")
    return lines


def target_lines(targets):
    """The targets, each with its measured value and met / missed / not measured."""
    lines = ["targets (reported, not asserted):"]
    for t in targets:
        unit = " GiB" if t["name"].endswith("memory") else "x"
        value = "not measured (a side was skipped)" if t["met"] is None else (
            f"measured {t['measured']:.2f}{unit}  {'met' if t['met'] else 'missed'}")
        lines.append(f"  {t['name']:<22} {t['target'] + unit:<9} {value}")
    return lines


def verdict_line(agree):
    """Whether the single-thread naive side and repro agree on K* and best trial everywhere."""
    if agree is None:
        return "identical K* and best trial (naive1 vs repro): not checked (a side was skipped)"
    return f"identical K* and best trial (naive1 vs repro): {'yes' if all(agree.values()) else 'NO'}"


def report_lines(sides, judged, workers):
    """Everything the bench prints after the sides ran: per point, the summary, how often the
    default-thread naive side matches, the targets and the verdict (`judged`: judge's)."""
    agree = judged["agree"]
    out = [*point_lines(sides), *summary_lines(sides, judged["measured"], judged["racing"], workers)]
    if "naive" in agree:
        out.append(f"default-thread naive matches repro's K* and best trial at "
                   f"{sum(agree['naive'].values())} of {len(agree['naive'])} points")
    return [*out, *target_lines(judged["targets"]), verdict_line(agree.get("naive1"))]
