"""Command line: python -m repro plan|run|collect|plot|verify|report|fits|bench|chief|worker|data ...

Usage errors (bad spec, unknown dataset, unreadable results) print one line and exit 2.
"""
import argparse
import json
import os
import pathlib
import signal
import sys
import tempfile
import time

from .errors import UsageError
from .spec import results_path
from .verify import golden_path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of logs


def check_writable(folder):
    """Create `folder` if needed and prove it takes files, before any training starts."""
    folder = pathlib.Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise UsageError(folder, None, f"results folder is not writable ({e.strerror})",
                         "pass --results DIR with a folder you can write to") from None


# Limits on command-line values (specs/README.md, "Limits"), checked before anything is read,
# trained or written.
MAX_WORKERS = 256     # processes, each with its own TensorFlow (~0.5 GiB): 256 fill a large host
MAX_THREADS = 256     # TensorFlow threads per worker
MAX_N_BOOT = 100_000  # bootstrap replicates (each refits every sparsity; default 500)
NAME_MAX, PATH_MAX = 255, 4096  # the longest file name and path Linux accepts
COMMAND_LINE = "command line"   # the "file" a UsageError about an option names


def _option(key, problem, fix):
    raise UsageError(COMMAND_LINE, key, problem, fix)


def _in_range(args, attr, lo, hi, fix):
    v = getattr(args, attr, None)
    key = "--" + attr.replace("_", "-")
    if v is not None and not (lo <= v and (hi is None or v <= hi)):
        shown = str(v) if abs(v) < 10 ** 30 else f"an integer of {v.bit_length()} bits"
        _option(key, f"must be >= {lo}, got {shown}" if hi is None else
                f"must lie in {lo:,}..{hi:,}, got {shown}", fix)


def _folder(args, attr, must_be_dir=True):
    """A folder (or file) option: a path Linux can create, not an existing thing of the wrong kind."""
    v = getattr(args, attr, None)
    if v is None:
        return
    key = "--" + attr.replace("_", "-")
    what = "folder" if must_be_dir else "file"
    if not v:
        _option(key, "is empty", f"name a {what}")
    encoded = os.fsencode(v)
    longest = max(len(part) for part in encoded.split(b"/"))
    if len(encoded) > PATH_MAX or longest > NAME_MAX:
        _option(key, f"path too long ({len(encoded):,} bytes, longest name {longest:,}; Linux "
                f"accepts {PATH_MAX:,} and {NAME_MAX})", f"use a shorter {what} path")
    path = pathlib.Path(v)
    if must_be_dir and path.exists() and not path.is_dir():
        _option(key, f"{v} is a file, not writable as a folder",
                f"pass {key} DIR with a folder you can write to")
    if not must_be_dir and path.is_dir():
        _option(key, f"{v} is a folder", "pass a file name")


def check_args(args):
    """Command-line values within their limits; UsageError (one line, exit 2) otherwise."""
    import math
    from . import spec as spec_mod
    _in_range(args, "workers", 1, MAX_WORKERS, f"use 1 to {MAX_WORKERS} worker processes")
    _in_range(args, "threads", 1, MAX_THREADS, f"use 1 to {MAX_THREADS} threads")
    _in_range(args, "port", 1, 65535, "use a TCP port in 1..65535, e.g. 8000")
    _in_range(args, "n_boot", 1, MAX_N_BOOT, "e.g. --n-boot 500")
    _in_range(args, "status", 0, 255, "pass an exit status, e.g. --status $?")
    _in_range(args, "seconds", 0, None, "pass the wall time in seconds, e.g. 3600")
    _in_range(args, "max_device_batch", 1, None, "e.g. --max-device-batch 8192")
    _in_range(args, "race_group", 1, None, "e.g. --race-group 8")
    every = getattr(args, "checkpoint_every", None)
    if every is not None and not (math.isfinite(every) and every >= 0):
        _option("--checkpoint-every", f"must be a number of seconds >= 0, got {every}",
                "e.g. --checkpoint-every 300 (0: after every evaluation round)")
    _in_range(args, "devices", 1, 1_000_000, "e.g. --devices 8")
    if args.command == "bench":
        _in_range(args, "trials", 1, spec_mod.MAX_TRIALS, "e.g. --trials 2")
    budget = getattr(args, "budget", None)
    if budget is not None and not (math.isfinite(budget) and 0.0 < budget <= 24 * 365):
        _option("--budget", f"must be hours in (0, 8760], got {budget}", "e.g. --budget 2")
    goal = getattr(args, "goal", None)
    if goal is not None and not (math.isfinite(goal) and 0.0 < goal < 1.0):
        _option("--goal", f"must lie in the open interval (0, 1), got {goal}",
                "e.g. --goal 0.14 for 14 % validation error")
    tuner_id = getattr(args, "tuner_id", None)
    if tuner_id is not None and not spec_mod.is_name(tuner_id):
        _option("--tuner-id", f"'{tuner_id[:40]}{'...' if len(tuner_id) > 40 else ''}' is not a "
                f"file name of at most {spec_mod.MAX_NAME} characters (it names the worker's folder)",
                "use letters, digits, '_', '-', '.', starting with a letter or digit")
    for attr in ("results", "figures"):
        _folder(args, attr)
    _folder(args, "junit", must_be_dir=False)
    for attr, conv in (("batch_sizes", int), ("sparsities", float)):
        text = getattr(args, attr, None) if args.command == "bench" else None
        if text:
            try:
                setattr(args, attr, [conv(x) for x in text.split(",")])
            except ValueError:
                _option("--" + attr.replace("_", "-"), f"'{text[:40]}' is not a comma-separated "
                        f"list of {'integers' if conv is int else 'numbers'}", "e.g. 16,256")


def cmd_plan(args):
    from . import plan as plan_mod, spec as spec_mod, study as study_mod
    estimate = study_mod.EstimateRequest(results_dir=args.results, devices=args.devices,
                                         run_probe=not args.no_probe) if args.estimate else None
    studies, out = [], []
    for sp in spec_mod.load_specs(args.spec):
        studies.append(study_mod.load_study(sp, grid_name=args.grid, panels=args.panel))
        out.append(studies[-1].describe(max_device_batch=args.max_device_batch, estimate=estimate))
    sharing = None
    if len(studies) > 1:  # runs asked for by several figures are counted once
        sharing = plan_mod.shared_runs(studies)
        for d in out:
            d["runs"] = sharing["figures"][d["figure"]]
    if args.json:
        print(json.dumps(out[0] if len(out) == 1 else
                         {"figures": out, "unique_runs": sharing["unique_runs"],
                          "trials_asked": sharing["trials_asked"]}, indent=2))
        return 0
    for study, d in zip(studies, out):
        print(study.format_description(d))
    if sharing:
        print(f"all figures: {sharing['trials_asked']} trials asked for, {sharing['unique_runs']} "
              "distinct runs (each shared run is trained once)")
    return 0


def _workers(args):
    """--workers, else one per GPU (or per core without GPUs): see repro.devices.default_workers."""
    if args.workers is None:
        from . import devices
        args.workers = devices.default_workers()
    return args.workers


def cmd_run(args):
    from . import spec as spec_mod, study as study_mod
    for sp in spec_mod.load_specs(args.spec):
        study = study_mod.load_study(sp, grid_name=args.grid, panels=args.panel, goal=args.goal)
        study_mod.results_study(sp, grid_name=args.grid, goal=args.goal)  # the file it writes: every panel
        out = study.results_path(args.results)
        check_writable(out.parent)
        t0 = time.perf_counter()
        ran = study.run(results_dir=args.results, workers=_workers(args), capping=not args.no_capping,
                        early_exit=not args.exact_curves, race_group=args.race_group,
                        max_device_batch=args.max_device_batch,
                        checkpoint_every=args.checkpoint_every)
        ran.attrs["run_wall_seconds"] = round(time.perf_counter() - t0, 1)  # shown by `repro report`
        # the file holds every panel stored, not only those this run was asked for
        written = study_mod.write_results(sp, grid_name=args.grid, results_dir=args.results,
                                          goal=args.goal, capping=not args.no_capping, run=ran)
        print(f"wrote {written.path}{written.panels_text()}")
        print(study.summary(ran))
    return 0


def cmd_decide(args):
    from . import claims, decide as decide_mod, spec as spec_mod
    status = 0
    for sp in spec_mod.load_specs(args.spec):
        decide_mod.check(sp, grid=args.grid, name=args.name, panels=args.panel)
        check_writable(pathlib.Path(args.results))
        out = decide_mod.decide(sp, grid=args.grid, name=args.name, results_dir=args.results,
                                budget_hours=args.budget, workers=_workers(args),
                                run_probe=not args.no_probe, panels=args.panel)
        for changes, seconds in out.rounds:
            print(f"{sp.id}: added " + "; ".join(c.describe() for c in changes)
                  + f" (ran {seconds / 60:.1f} min)")
        print(claims.format_table(out.results))
        print(f"{sp.id}: predicted {out.hours_predicted:.2f} h for what it added, spent "
              f"{out.seconds_spent / 3600:.2f} h in all; reproduce: python -m repro run {sp.path} "
              f"--grid {out.grid}" if out.rounds else f"{sp.id}: nothing added")
        status = max(status, claims.exit_code(out.results))
    return status


def cmd_collect(args):
    from . import spec as spec_mod, study as study_mod
    for sp in spec_mod.load_specs(args.spec):
        study_mod.load_study(sp, grid_name=args.grid, panels=args.panel)  # unknown panels: exit 2
        study = study_mod.results_study(sp, grid_name=args.grid, goal=args.goal)  # the file: all panels
        check_writable(study.results_path(args.results).parent)
        written = study_mod.write_results(sp, grid_name=args.grid, results_dir=args.results,
                                          goal=args.goal, capping=not args.no_capping)
        print(f"wrote {written.path} {study.describe_collected(written.dataset)}"
              f"{written.panels_text()}")
    return 0


def cmd_plot(args):
    from . import figures, spec as spec_mod, store, study as study_mod
    for sp in spec_mod.load_specs(args.spec):
        study = study_mod.load_study(sp, grid_name=args.grid, goal=args.goal)
        path = study.results_path(args.results)
        ds = store.open_results(path, sp, args.grid)
        stem = pathlib.Path(args.figures) / path.stem
        for path in figures.render(ds, stem, kind=study.figure_kind, fits=study.fits(ds)):
            print(f"wrote {path}")
    return 0


def cmd_verify(args):
    from . import claims, spec as spec_mod, verify
    unchecked = []
    if args.table:
        golden = claims.load_golden(args.golden or "golden/figure-1.toml")
        names = args.claims.split(",") if args.claims else list(claims.TABLE_CLAIMS)
        results = claims.verify_table(claims.read_table(args.table), [n.strip() for n in names], golden,
                                      panel=args.panel or "table", figure=pathlib.Path(args.table).stem)
    else:
        if args.spec is None:
            raise UsageError("verify", "spec", "missing", "give a spec file or folder, or --table FILE.csv")
        specs = spec_mod.load_specs(args.spec)
        results = verify.verify_specs(specs, grid=args.grid, results_dir=args.results,
                                      golden=args.golden, goal=args.goal)
        if args.claims:
            wanted = {n.strip() for n in args.claims.split(",")}
            results = [r for r in results if r.claim in wanted]
        unchecked = [line for sp in specs for line in verify.nothing_to_check(sp, args.grid)]
    if args.json:
        print(claims.to_json(results))
    elif results or not unchecked:  # no empty table when there is nothing to check
        print(claims.format_table(results))
    for line in unchecked:  # studies (or panels) without claims; beside --json, on stderr
        print(line, file=sys.stderr if args.json else sys.stdout)
    if args.junit:
        from .atomic import atomic_write
        atomic_write(args.junit, claims.to_junit(results))
    # --strict: every claim must be decided (PASS or FAIL); INCONCLUSIVE and NOT-RUN exit 1 too
    undecided = args.strict and any(r.status not in (claims.PASS, claims.FAIL) for r in results)
    return 1 if undecided else claims.exit_code(results)


def cmd_summary(args):
    from . import spec as spec_mod, summary
    for sp in spec_mod.load_specs(args.spec):
        print(summary.figure_summary(sp, grid=args.grid, results_dir=args.results,
                                     figures_dir=args.figures, golden=args.golden,
                                     seconds=args.seconds, status=args.status, step=args.step))
    return 0


def cmd_report(args):
    from . import report
    rep = report.build_report(args.spec, results_dir=args.results, out=args.out,
                              figures_dir=args.figures, grid=args.grid, golden=args.golden,
                              n_boot=args.n_boot,
                              command=f"python -m repro report {args.spec} --results {args.results} "
                                      f"--out {args.out}" + ("" if args.grid == "reduced" else f" --grid {args.grid}"))
    for problem in rep.problems:  # as verify: a results file that is not current is exit 2
        print(f"repro: error: {problem}", file=sys.stderr)
    print(report.summary_line(rep))
    return rep.exit_code


def cmd_fits(args):
    from . import analysis, claims, evidence, spec as spec_mod, store, study as study_mod, verify
    rows = []
    for sp in spec_mod.load_specs(args.spec):
        study = study_mod.load_study(sp, grid_name=args.grid)
        if not study.has_k_star_fits:
            continue  # smoothness runs: see `repro verify` for their c1 decomposition
        ds = store.open_results(study.results_path(args.results), sp, args.grid)
        golden = {} if verify.needs_no_golden(sp, args.golden) else \
            claims.load_golden(golden_path(sp, args.golden))  # only for the direct B_crit's factor
        factor = golden.get("sparse_critical_batch_no_smaller", {}).get("factor", 2.0)
        for panel in map(str, ds.panel.values):
            k = analysis.steps_to_result(ds, panel)
            for s, f in evidence.fit_intervals(ds, panel, n_boot=args.n_boot).items():
                row = k.sel(sparsity=s)
                rows.append({"figure": sp.id, "panel": panel, "sparsity": s, **f,
                             "b_crit_direct": analysis.critical_batch_direct(
                                 row["batch_size"].values, row.values, factor),
                             "direct_factor": factor})
    if args.json:
        print(json.dumps(rows, indent=1, default=lambda x: None if x != x else x))
        return 0
    print(f"{'figure':10s} {'panel':5s} {'s':>4s} {'c1':>10s} {'95% interval':>22s} {'c2':>8s} "
          f"{'B_crit=c1/c2':>12s} {'direct':>7s} {'rms log res':>11s}")
    for r in rows:
        ci = r["ci"]["c1"]
        print(f"{r['figure']:10s} {r['panel']:5s} {r['sparsity']:4g} {r['c1']:10.4g} "
              f"[{ci[0]:9.4g}, {ci[1]:9.4g}] {r['c2']:8.4g} {r['b_crit']:12.4g} "
              f"{r['b_crit_direct']:7g} {r['rms_log_residual']:11.3f}")
    print(f"(fits of K* = c1/B + c2 in log space; intervals: {rows[0]['n_boot'] if rows else 0} "
          "replicates over evaluation steps, trials and seeds, see repro.evidence; direct: first B whose "
          "K* exceeds the linear-scaling prediction from the smallest B by the golden factor)")
    return 0


def cmd_chief(args):
    from . import cluster, plan as plan_mod, spec as spec_mod, study as study_mod
    sp = spec_mod.load_spec(args.spec)
    plan = plan_mod.compile_plan(sp, args.grid, args.panel)
    study_mod.results_study(sp, grid_name=args.grid)  # the file it writes: every panel
    out = results_path(args.results, sp, args.grid)
    check_writable(out.parent)
    panels = "".join(f" --panel {p}" for p in args.panel or ())
    print(f"repro chief: serving {len(plan_mod.study_points(plan))} study points of {sp.id} "
          f"({args.grid} grid) on {args.ip}:{args.port}; start workers with: python -m repro worker "
          f"{sp.path} --grid {args.grid}{panels} --results {args.results} --ip {args.ip} "
          f"--port {args.port}", flush=True)
    served = cluster.serve(plan, results_dir=args.results, capping=sp.capping and not args.no_capping,
                           ip=args.ip, port=args.port, log=_print_now)
    written = study_mod.write_results(sp, grid_name=args.grid, results_dir=args.results,
                                      capping=not args.no_capping, run=served)  # every panel stored
    print(f"wrote {written.path}{written.panels_text()}")
    return 0


def cmd_worker(args):
    import socket
    from . import cluster, plan as plan_mod, run as run_mod, spec as spec_mod
    plan = plan_mod.compile_plan(spec_mod.load_spec(args.spec), args.grid, args.panel)
    check_writable(args.results)
    tuner_id = args.tuner_id or f"worker-{socket.gethostname()}-{os.getpid()}"
    options = run_mod.RunOptions(results_dir=args.results, early_exit=not args.exact_curves,
                                 checkpoint_every=args.checkpoint_every)
    cluster.work(plan, options, tuner_id, ip=args.ip, port=args.port, threads=args.threads,
                 log=_print_now)
    print(f"{tuner_id}: no study points left", flush=True)
    return 0


def _print_now(line):
    """Print a chief's or worker's line at once (their logs are read while they run)."""
    print(line, flush=True)


def cmd_bench(args):
    """Exit 1 when the single-thread naive side and repro disagree on a K* or best trial."""
    from . import bench
    sides = bench.parse_sides(args.sides)
    if args.json_file:
        if pathlib.Path(args.json_file).is_dir():
            raise UsageError(COMMAND_LINE, "--json", f"{args.json_file} is a folder", "pass a file name")
        check_writable(pathlib.Path(args.json_file).parent)  # before hours of training
    # check_args has turned --batch-sizes and --sparsities into lists
    result = bench.bench(args.spec, grid=args.grid, panel=args.panel,
                         batch_sizes=args.batch_sizes or None, sparsities=args.sparsities or None,
                         trials=args.trials, workers=args.workers, sides=sides,
                         json_path=args.json_file)
    return 1 if result["same"] is False else 0


def cmd_data(args):
    from . import data
    if args.action == "status":
        for row in data.status():
            state = (f"present  {row['train']} train / {row['val']} val  from {row['source']}"
                     if row["present"] else f"MISSING  {row['how']}")
            print(f"{row['name']:14s} {state}")
        return 0
    if args.action == "ready":  # can this spec run here? (panels whose data is missing are NOT-RUN)
        from . import spec as spec_mod
        present = {row["name"]: row for row in data.status()}
        used = {p.dataset for sp in spec_mod.load_specs(args.names[0] if args.names else "specs")
                for p in sp.panels}
        missing = sorted(n for n in used if not present[n]["present"])
        for name in missing:
            print(f"{name}: MISSING  {present[name]['how']}"
                  + ("" if len(missing) == len(used) else "  (its panels will be NOT-RUN)"))
        return 1 if len(missing) == len(used) else 0
    names = args.names or ["mnist", "fashion_mnist"]
    failed = 0
    for name in names:
        try:
            path = data.fetch(name, pathlib.Path(args.source) if args.source else None)
            print(f"{name}: {path}")
        except UsageError as e:
            print(f"repro: {e}", file=sys.stderr)
            failed += 1
    return 2 if failed else 0


def add_max_device_batch(sp):
    sp.add_argument("--max-device-batch", type=int, default=8192,
                    help="examples one device trains at once; larger batches run each trial on a "
                         "MirroredStrategy over several devices (default 8192)")


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad option is one line (as every usage error) and exit status 2."""

    def error(self, message):
        self.exit(2, f"repro: error: {COMMAND_LINE}: {' '.join(message.split())} "
                     f"(see {self.prog} --help)\n")


def checkpoint_arg(sp):
    from .checkpoint import CHECKPOINT_EVERY
    sp.add_argument("--checkpoint-every", type=float, default=CHECKPOINT_EVERY, metavar="SECONDS",
                    help="save a racing point's live trials to <results>/checkpoints every SECONDS "
                         f"of racing (default {CHECKPOINT_EVERY:g}; 0: every evaluation round), so "
                         "a killed run resumes its races from there; one file per point being "
                         "raced, at most its live trials x one saved trial state")


def parser():
    from . import __version__
    p = _Parser(prog="python -m repro", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"repro {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp, results=True):
        sp.add_argument("spec", help="a spec file or a folder of specs")
        sp.add_argument("--grid", default="reduced", help="grid name in the spec (default: reduced)")
        if results:
            sp.add_argument("--results", default="results", help="results folder (default: results)")

    sp = sub.add_parser("plan", help="show study points, trials and cost bounds without training")
    common(sp)
    add_max_device_batch(sp)
    sp.add_argument("--estimate", action="store_true",
                    help="predict steps and evaluations with and without repro's speed-ups "
                         "(measured from this spec's stored results where there are any)")
    sp.add_argument("--devices", type=int, default=8,
                    help="with --estimate: also give the wall time on this many devices like this "
                         "machine's (GPUs, or one-thread workers on a CPU; default 8)")
    sp.add_argument("--no-probe", action="store_true",
                    help="with --estimate: use only cached throughput (results/cache/throughput-*.json), "
                         "never time this device")
    sp.add_argument("--panel", action="append", help="only this panel (repeatable)")
    sp.add_argument("--json", action="store_true", help="print the plan as JSON instead of text")
    sp.set_defaults(fn=cmd_plan)

    def goal_arg(sp, what):
        sp.add_argument("--goal", type=float, help=f"{what} at this goal error instead of each "
                        "panel's goal_error (the same runs: stored curves answer what they can)")

    sp = sub.add_parser("run", help="train every study point and write results/<figure>.nc")
    common(sp)
    goal_arg(sp, "train and read every panel")
    sp.add_argument("--panel", action="append", help="only this panel (repeatable)")
    sp.add_argument("--no-capping", action="store_true",
                    help="run every trial to its own outcome (no best-so-far cap)")
    add_max_device_batch(sp)
    sp.add_argument("--exact-curves", action="store_true",
                    help="count every evaluation over the whole split (default: stop counting once "
                         "the goal is missed, which changes no outcome)")
    sp.add_argument("--workers", type=int,
                    help="parallel processes over study points (default: one per GPU, each pinned "
                         "to its own; without GPUs one per core)")
    sp.add_argument("--race-group", type=int, metavar="N",
                    help="at most N trials of a study point race at once (default: as many as "
                         "fit in 1 GiB of saved trial states); later groups are capped by earlier "
                         "ones (same K* and best trial)")
    checkpoint_arg(sp)
    sp.set_defaults(fn=cmd_run)

    sp = sub.add_parser("decide", help="run what would decide the INCONCLUSIVE claims, cheapest first, "
                        "within a budget; writes what it added into the spec as a named grid")
    common(sp)
    sp.add_argument("--budget", type=float, default=1.0, metavar="HOURS",
                    help="wall-clock hours decide may spend training (default: 1)")
    sp.add_argument("--name", default="decided",
                    help="the grid it writes into the spec and runs (default: decided)")
    sp.add_argument("--workers", type=int,
                    help="parallel processes over study points (default: one per GPU, else per core)")
    sp.add_argument("--no-probe", action="store_true",
                    help="price additions from cached throughput only (results/cache/throughput-*.json)")
    sp.add_argument("--panel", action="append",
                    help="only add to this panel (repeatable; default: every panel)")
    sp.set_defaults(fn=cmd_decide)

    sp = sub.add_parser("collect", help="rebuild results/<figure>.nc from the stored trials (no training)")
    common(sp)
    sp.add_argument("--panel", action="append",
                    help="a panel that must exist (repeatable); the file holds every panel stored")
    sp.add_argument("--no-capping", action="store_true", help="as given to `run`")
    goal_arg(sp, "read every panel")
    sp.set_defaults(fn=cmd_collect)

    sp = sub.add_parser("plot", help="draw figures/<figure>.png and .pdf from the results")
    common(sp)
    sp.add_argument("--figures", default="figures", help="folder for the PNG and PDF (default: figures)")
    goal_arg(sp, "plot the results read (by run or collect)")
    sp.set_defaults(fn=cmd_plot)

    sp = sub.add_parser("verify", help="check the paper's claims against golden tolerances")
    sp.add_argument("spec", nargs="?", help="a spec file or a folder of specs (not with --table)")
    sp.add_argument("--grid", default="reduced", help="grid name in the spec (default: reduced)")
    sp.add_argument("--results", default="results", help="results folder (default: results)")
    sp.add_argument("--table", metavar="FILE.csv",
                    help="check a K* table instead of stored results: columns batch_size, sparsity, "
                         "steps_to_result (empty: goal not reached), optional seed and trial")
    sp.add_argument("--claims", metavar="NAME,NAME", help="only these claims")
    sp.add_argument("--panel", help="with --table: use this panel's tolerances from --golden")
    sp.add_argument("--strict", action="store_true",
                    help="exit 1 unless every claim is decided: on FAIL, INCONCLUSIVE or NOT-RUN")
    sp.add_argument("--golden", help="golden file (default: golden/<figure>.toml; with --table: "
                                     "golden/figure-1.toml)")
    sp.add_argument("--json", action="store_true", help="print the verdicts as JSON instead of a table")
    sp.add_argument("--junit", metavar="FILE", help="also write JUnit XML, one test case per claim")
    goal_arg(sp, "re-read the stored runs (no training) and check the claims")
    sp.set_defaults(fn=cmd_verify)

    sp = sub.add_parser("summary", help="what `make figure-N` ends with: verdict counts, where the "
                        "figure, results and report are, the wall time and what the exit status means")
    common(sp)
    sp.add_argument("--figures", default="figures", help="where `repro plot` wrote (default: figures)")
    sp.add_argument("--golden", help="golden file (default: golden/<figure>.toml)")
    sp.add_argument("--seconds", type=float, help="the target's wall time in seconds")
    sp.add_argument("--status", type=int, default=0, help="the exit status the target ends with (default 0)")
    sp.add_argument("--step", choices=["run", "plot", "verify"], default="verify",
                    help="the command that set --status (default: verify)")
    sp.set_defaults(fn=cmd_summary)

    sp = sub.add_parser("report", help="one static page (report/index.html and report.md) with every "
                        "figure, verdict, interval, paper number and provenance, from stored results")
    sp.add_argument("spec", nargs="?", default="specs", help="a spec file or a folder of specs (default: specs)")
    sp.add_argument("--grid", default="reduced", help="grid name in the spec (default: reduced)")
    sp.add_argument("--results", default="results", help="results folder (default: results)")
    sp.add_argument("--figures", default="figures", help="where `repro plot` wrote the PNGs (default: figures)")
    sp.add_argument("--out", default="report", help="report folder, replaced whole (default: report)")
    sp.add_argument("--golden", help="golden file (default: golden/<figure>.toml)")
    sp.add_argument("--n-boot", type=int, default=100, help="bootstrap replicates per fit (default 100)")
    sp.set_defaults(fn=cmd_report)

    sp = sub.add_parser("fits", help="Prop. 4.1 fits (c1, c2, B_crit) with bootstrap intervals")
    common(sp)
    sp.add_argument("--golden", help="golden file (default: golden/<figure>.toml)")
    sp.add_argument("--n-boot", type=int, default=500, help="bootstrap replicates per fit (default 500)")
    sp.add_argument("--json", action="store_true", help="print the fits as JSON instead of a table")
    sp.set_defaults(fn=cmd_fits)

    for name, doc in (("chief", "serve a plan's study points to workers (keras-tuner distributed "
                                "mode) and collect the results"),
                      ("worker", "race whole study points served by a chief, into the shared "
                                 "results folder")):
        sp = sub.add_parser(name, help=doc)
        common(sp)
        sp.add_argument("--panel", action="append", help="only this panel (repeatable)")
        sp.add_argument("--ip", default="127.0.0.1", help="the chief's address (default 127.0.0.1)")
        sp.add_argument("--port", type=int, default=8000, help="the chief's TCP port (default 8000)")
        if name == "chief":
            sp.add_argument("--no-capping", action="store_true",
                            help="workers run every trial to its own outcome (no best-so-far cap)")
        if name == "worker":
            sp.add_argument("--tuner-id", help="this worker's name (default worker-<host>-<pid>)")
            sp.add_argument("--threads", type=int, default=1,
                            help="TensorFlow threads (default 1: the thread count changes a trial's "
                                 "last bits, and `repro run` computes every trial on one thread)")
            sp.add_argument("--exact-curves", action="store_true", help="as given to `run`")
            checkpoint_arg(sp)
        sp.set_defaults(fn=cmd_chief if name == "chief" else cmd_worker)

    sp = sub.add_parser("bench", help="naive Keras harnesses (one thread; default threads) vs repro vs the "
                                      "bare loop on the same study, with speed and memory targets")
    sp.add_argument("spec", nargs="?", default="specs/figure-1.toml",
                    help="the spec to benchmark (default: specs/figure-1.toml)")
    sp.add_argument("--grid", default="reduced", help="grid name in the spec (default: reduced)")
    sp.add_argument("--panel", default="b", help="panel to benchmark (default: b)")
    sp.add_argument("--batch-sizes", help="comma-separated subset of the grid's batch sizes")
    sp.add_argument("--sparsities", help="comma-separated subset of the grid's sparsities")
    sp.add_argument("--trials", type=int, help="fewer trials per study point")
    sp.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="repro's worker processes, and the floor's (default: one per core)")
    sp.add_argument("--sides", default="naive1,naive,repro,floor",
                    help="comma-separated sides to run (default: all four): naive1 = keras-tuner + "
                         "model.fit on one thread with deterministic kernels (the same bits as "
                         "repro; K* and best trial must match), naive = the same harness with "
                         "TensorFlow's default threads and kernels, repro = run_plan, floor = the "
                         "bare training loop over repro's steps (needs repro); e.g. --sides "
                         "naive1,repro,floor skips the default-thread naive side")
    sp.add_argument("--json", dest="json_file", metavar="FILE",
                    help="also write every number of the comparison to FILE (JSON)")
    sp.set_defaults(fn=cmd_bench)

    sp = sub.add_parser("data", help="fetch or list datasets")
    sp.add_argument("action", choices=["fetch", "status", "ready"],
                    help="fetch datasets, list them, or (ready SPEC) list the missing datasets the "
                         "spec uses and exit 1 when none of them is present (some missing: exit 0, "
                         "their panels are NOT-RUN)")
    sp.add_argument("names", nargs="*", help="datasets (default: mnist fashion_mnist); for ready: a spec")
    sp.add_argument("--from", dest="source", help="a folder with IDX or .npz files")
    sp.set_defaults(fn=cmd_data)
    return p


TRAINING_COMMANDS = ("run", "chief", "worker", "decide")


def main(argv=None):
    args = parser().parse_args(argv)
    if os.environ.get("REPRO_LOGICAL_CPUS"):
        from . import devices
        devices.logical_devices()  # before anything initialises TensorFlow's devices
    from . import interrupt
    # SIGINT/SIGTERM: stop every worker, say how to resume, exit 130/143
    handlers = interrupt.install() if args.command in TRAINING_COMMANDS else {}
    try:
        check_args(args)
        return args.fn(args)
    except UsageError as e:
        print(f"repro: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        import shlex
        what = e.signum if isinstance(e, interrupt.Interrupted) else signal.SIGINT
        command = shlex.join(["python", "-m", "repro", *(sys.argv[1:] if argv is None else argv)])
        print(f"repro: interrupted by {signal.Signals(what).name}; every finished trial and the "
              f"last checkpoint of each race in flight are kept; resume with: {command}",
              file=sys.stderr, flush=True)
        return 128 + what
    finally:
        interrupt.restore(handlers)


if __name__ == "__main__":
    sys.exit(main())
