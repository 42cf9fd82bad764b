"""Command line: python -m repro plan|run|collect|plot|verify|report|fits|bench|chief|worker|data ...

Usage errors (bad spec, unknown dataset, unreadable results) print one line and exit 2.
"""
import argparse
import dataclasses
import json
import os
import pathlib
import signal
import sys
import time

from .errors import UsageError
from .options import COMMAND_LINE, N_BOOT_HELP, check_args
from .spec import results_path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of logs


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
        for description in out:
            description["runs"] = sharing["figures"][description["figure"]]
    if args.json:
        print(json.dumps(out[0] if len(out) == 1 else
                         {"figures": out, "unique_runs": sharing["unique_runs"],
                          "trials_asked": sharing["trials_asked"]}, indent=2))
        return 0
    for study, description in zip(studies, out):
        print(study.format_description(description))
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
    from . import spec as spec_mod, store, study as study_mod
    for sp in spec_mod.load_specs(args.spec):
        study = study_mod.load_study(sp, grid_name=args.grid, panels=args.panel, goal=args.goal)
        study_mod.results_study(sp, grid_name=args.grid, goal=args.goal)  # the file it writes: every panel
        out = study.results_path(args.results)
        store.check_writable(out.parent)
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
    from . import claims, decide as decide_mod, fmt, spec as spec_mod, store
    status = 0
    for sp in spec_mod.load_specs(args.spec):
        decide_mod.check(sp, grid=args.grid, name=args.name, panels=args.panel)
        store.check_writable(pathlib.Path(args.results))
        out = decide_mod.decide(sp, grid=args.grid, name=args.name, results_dir=args.results,
                                budget_hours=args.budget, workers=_workers(args),
                                run_probe=not args.no_probe, panels=args.panel)
        for changes, seconds in out.rounds:
            print(f"{sp.id}: added " + "; ".join(c.describe() for c in changes)
                  + f" (ran {seconds / 60:.1f} min)")
        print(claims.format_table(out.results))
        print(f"{sp.id}: predicted {out.hours_predicted:.2f} h for what it added, spent "
              f"{out.seconds_spent / 3600:.2f} h in all; reproduce: {fmt.run_command(sp.path, grid=out.grid)}"
              if out.rounds else f"{sp.id}: nothing added")
        status = max(status, claims.exit_code(out.results))
    return status


def cmd_collect(args):
    from . import spec as spec_mod, store, study as study_mod
    for sp in spec_mod.load_specs(args.spec):
        study_mod.load_study(sp, grid_name=args.grid, panels=args.panel)  # unknown panels: exit 2
        study = study_mod.results_study(sp, grid_name=args.grid, goal=args.goal)  # the file: all panels
        store.check_writable(study.results_path(args.results).parent)
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
    from . import fmt, report_model, spec as spec_mod, store, study as study_mod
    rows = []
    for sp in spec_mod.load_specs(args.spec):
        study = study_mod.load_study(sp, grid_name=args.grid)
        if not study.has_k_star_fits:
            continue  # smoothness runs: see `repro verify` for their c1 decomposition
        ds = store.open_results(study.results_path(args.results), sp, args.grid)
        rows += report_model.fit_rows(ds, sp, n_boot=args.n_boot).rows  # the report's fit rows
    print(fmt.to_json([dataclasses.asdict(row) for row in rows], indent=1) if args.json
          else report_model.format_fits(rows))
    return 0


def cmd_chief(args):
    from . import cluster, plan as plan_mod, spec as spec_mod, store, study as study_mod
    sp = spec_mod.load_spec(args.spec)
    plan = plan_mod.compile_plan(sp, args.grid, args.panel)
    study_mod.results_study(sp, grid_name=args.grid)  # the file it writes: every panel
    out = results_path(args.results, sp, args.grid)
    store.check_writable(out.parent)
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
    from . import cluster, plan as plan_mod, run as run_mod, spec as spec_mod, store
    plan = plan_mod.compile_plan(spec_mod.load_spec(args.spec), args.grid, args.panel)
    store.check_writable(args.results)
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
        bench.check_json_path(path=args.json_file)  # before hours of training
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


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad option is one line (as every usage error) and exit status 2."""

    def error(self, message):
        self.exit(2, f"repro: error: {COMMAND_LINE}: {' '.join(message.split())} "
                     f"(see {self.prog} --help)\n")


# ------------------------------------------------------------------------ options of several commands
def _spec_args(command, results=True, spec_help="a spec file or a folder of specs", **spec_kwargs):
    """The spec (`spec_kwargs`: nargs, default), --grid and, with `results`, --results."""
    command.add_argument("spec", help=spec_help, **spec_kwargs)
    command.add_argument("--grid", default="reduced", help="grid name in the spec (default: reduced)")
    if results:
        command.add_argument("--results", default="results", help="results folder (default: results)")


def _goal_arg(command, what):
    command.add_argument("--goal", type=float, help=f"{what} at this goal error instead of each "
                         "panel's goal_error (the same runs: stored curves answer what they can)")


def _max_device_batch_arg(command):
    command.add_argument("--max-device-batch", type=int, default=8192,
                         help="examples one device trains at once; larger batches run each trial on "
                              "several devices, data parallel: a MirroredStrategy on TensorFlow, a jax mesh on JAX (default 8192)")


def _checkpoint_arg(command):
    from .checkpoint import CHECKPOINT_EVERY
    command.add_argument("--checkpoint-every", type=float, default=CHECKPOINT_EVERY, metavar="SECONDS",
                         help="save a racing point's live trials to <results>/checkpoints every SECONDS "
                              f"of racing (default {CHECKPOINT_EVERY:g}; 0: every evaluation round), so "
                              "a killed run resumes its races from there; one file per point being "
                              "raced, at most its live trials x one saved trial state")


# ------------------------------------------------------------------------ the commands, by group
def _add_plan(commands):
    """plan: what a spec asks for, without training."""
    plan = commands.add_parser("plan", help="show study points, trials and cost bounds without training")
    _spec_args(plan)
    _max_device_batch_arg(plan)
    plan.add_argument("--estimate", action="store_true",
                      help="predict steps and evaluations with and without repro's speed-ups "
                           "(measured from this spec's stored results where there are any)")
    plan.add_argument("--devices", type=int, default=8,
                      help="with --estimate: also give the wall time on this many devices like this "
                           "machine's (GPUs, or one-thread workers on a CPU; default 8)")
    plan.add_argument("--no-probe", action="store_true",
                      help="with --estimate: use only cached throughput (results/cache/throughput-*.json), "
                           "never time this device")
    plan.add_argument("--panel", action="append", help="only this panel (repeatable)")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON instead of text")
    plan.set_defaults(fn=cmd_plan)


def _add_training(commands):
    """run and decide: the commands that train on this machine."""
    run = commands.add_parser("run", help="train every study point and write results/<figure>.nc")
    _spec_args(run)
    _goal_arg(run, "train and read every panel")
    run.add_argument("--panel", action="append", help="only this panel (repeatable)")
    run.add_argument("--no-capping", action="store_true",
                     help="run every trial to its own outcome (no best-so-far cap)")
    _max_device_batch_arg(run)
    run.add_argument("--exact-curves", action="store_true",
                     help="count every evaluation over the whole split (default: stop counting once "
                          "the goal is missed, which changes no outcome)")
    run.add_argument("--workers", type=int,
                     help="parallel processes over study points (default: one per GPU, each pinned "
                          "to its own; without GPUs one per core)")
    run.add_argument("--race-group", type=int, metavar="N",
                     help="at most N trials of a study point race at once (default: as many as "
                          "fit in 1 GiB of saved trial states); later groups are capped by earlier "
                          "ones (same K* and best trial)")
    _checkpoint_arg(run)
    run.set_defaults(fn=cmd_run)

    decide = commands.add_parser("decide", help="run what would decide the INCONCLUSIVE claims, "
                                 "cheapest first, within a budget; writes what it added into the "
                                 "spec as a named grid")
    _spec_args(decide)
    decide.add_argument("--budget", type=float, default=1.0, metavar="HOURS",
                        help="wall-clock hours decide may spend training (default: 1)")
    decide.add_argument("--name", default="decided",
                        help="the grid it writes into the spec and runs (default: decided)")
    decide.add_argument("--workers", type=int,
                        help="parallel processes over study points (default: one per GPU, else per core)")
    decide.add_argument("--no-probe", action="store_true",
                        help="price additions from cached throughput only (results/cache/throughput-*.json)")
    decide.add_argument("--panel", action="append",
                        help="only add to this panel (repeatable; default: every panel)")
    decide.set_defaults(fn=cmd_decide)


def _add_results(commands):
    """collect and plot: the results file from the stored trials, and its figure."""
    collect = commands.add_parser("collect", help="rebuild results/<figure>.nc from the stored "
                                  "trials (no training)")
    _spec_args(collect)
    collect.add_argument("--panel", action="append",
                         help="a panel that must exist (repeatable); the file holds every panel stored")
    collect.add_argument("--no-capping", action="store_true", help="as given to `run`")
    _goal_arg(collect, "read every panel")
    collect.set_defaults(fn=cmd_collect)

    plot = commands.add_parser("plot", help="draw figures/<figure>.png and .pdf from the results")
    _spec_args(plot)
    plot.add_argument("--figures", default="figures", help="folder for the PNG and PDF (default: figures)")
    _goal_arg(plot, "plot the results read (by run or collect)")
    plot.set_defaults(fn=cmd_plot)


def _add_checks(commands):
    """verify and summary: the claims' verdicts, and what `make figure-N` ends with."""
    verify = commands.add_parser("verify", help="check the paper's claims against golden tolerances")
    _spec_args(verify, spec_help="a spec file or a folder of specs (not with --table)", nargs="?")
    verify.add_argument("--table", metavar="FILE.csv",
                        help="check a K* table instead of stored results: columns batch_size, sparsity, "
                             "steps_to_result (empty: goal not reached), optional seed and trial")
    verify.add_argument("--claims", metavar="NAME,NAME", help="only these claims")
    verify.add_argument("--panel", help="with --table: use this panel's tolerances from --golden")
    verify.add_argument("--strict", action="store_true",
                        help="exit 1 unless every claim is decided: on FAIL, INCONCLUSIVE or NOT-RUN")
    verify.add_argument("--golden", help="golden file (default: golden/<figure>.toml; with --table: "
                                         "golden/figure-1.toml)")
    verify.add_argument("--json", action="store_true", help="print the verdicts as JSON instead of a table")
    verify.add_argument("--junit", metavar="FILE", help="also write JUnit XML, one test case per claim")
    _goal_arg(verify, "re-read the stored runs (no training) and check the claims")
    verify.set_defaults(fn=cmd_verify)

    summary = commands.add_parser("summary", help="what `make figure-N` ends with: verdict counts, "
                                  "where the figure, results and report are, the wall time and what "
                                  "the exit status means")
    _spec_args(summary)
    summary.add_argument("--figures", default="figures", help="where `repro plot` wrote (default: figures)")
    summary.add_argument("--golden", help="golden file (default: golden/<figure>.toml)")
    summary.add_argument("--seconds", type=float, help="the target's wall time in seconds")
    summary.add_argument("--status", type=int, default=0,
                         help="the exit status the target ends with (default 0)")
    summary.add_argument("--step", choices=["run", "plot", "verify"], default="verify",
                         help="the command that set --status (default: verify)")
    summary.set_defaults(fn=cmd_summary)


def _add_reports(commands):
    """report and fits: every figure and verdict on one page, and the Prop. 4.1 fits."""
    report = commands.add_parser("report", help="one static page (report/index.html and report.md) "
                                 "with every figure, verdict, interval, paper number and provenance, "
                                 "from stored results")
    _spec_args(report, spec_help="a spec file or a folder of specs (default: specs)", nargs="?",
               default="specs")
    report.add_argument("--figures", default="figures",
                        help="where `repro plot` wrote the PNGs (default: figures)")
    report.add_argument("--out", default="report", help="report folder, replaced whole (default: report)")
    report.add_argument("--golden", help="golden file (default: golden/<figure>.toml)")
    report.add_argument("--n-boot", type=int, help=N_BOOT_HELP)
    report.set_defaults(fn=cmd_report)

    fits = commands.add_parser("fits", help="Prop. 4.1 fits (c1, c2, B_crit) with bootstrap intervals")
    _spec_args(fits)
    fits.add_argument("--n-boot", type=int, help=N_BOOT_HELP)
    fits.add_argument("--json", action="store_true", help="print the fits as JSON instead of a table")
    fits.set_defaults(fn=cmd_fits)


def _add_cluster(commands):
    """chief and worker: keras-tuner's distributed mode over several machines."""
    for name, doc in (("chief", "serve a plan's study points to workers (keras-tuner distributed "
                                "mode) and collect the results"),
                      ("worker", "race whole study points served by a chief, into the shared "
                                 "results folder")):
        command = commands.add_parser(name, help=doc)
        _spec_args(command)
        command.add_argument("--panel", action="append", help="only this panel (repeatable)")
        command.add_argument("--ip", default="127.0.0.1", help="the chief's address (default 127.0.0.1)")
        command.add_argument("--port", type=int, default=8000, help="the chief's TCP port (default 8000)")
        if name == "chief":
            command.add_argument("--no-capping", action="store_true",
                                 help="workers run every trial to its own outcome (no best-so-far cap)")
        if name == "worker":
            command.add_argument("--tuner-id", help="this worker's name (default worker-<host>-<pid>)")
            command.add_argument("--threads", type=int, default=1,
                                 help="TensorFlow threads (default 1: the thread count changes a "
                                      "trial's last bits, and `repro run` computes every trial on one "
                                      "thread)")
            command.add_argument("--exact-curves", action="store_true", help="as given to `run`")
            _checkpoint_arg(command)
        command.set_defaults(fn=cmd_chief if name == "chief" else cmd_worker)


def _add_bench(commands):
    """bench: naive Keras harnesses against repro on the same study."""
    bench = commands.add_parser("bench", help="naive Keras harnesses (one thread; default threads) vs "
                                "repro vs the bare loop on the same study, with speed and memory targets")
    bench.add_argument("spec", nargs="?", default="specs/figure-1.toml",
                       help="the spec to benchmark (default: specs/figure-1.toml)")
    bench.add_argument("--grid", default="reduced", help="grid name in the spec (default: reduced)")
    bench.add_argument("--panel", default="b", help="panel to benchmark (default: b)")
    bench.add_argument("--batch-sizes", help="comma-separated subset of the grid's batch sizes")
    bench.add_argument("--sparsities", help="comma-separated subset of the grid's sparsities")
    bench.add_argument("--trials", type=int, help="fewer trials per study point")
    bench.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                       help="repro's worker processes, and the floor's (default: one per core)")
    bench.add_argument("--sides", default="naive1,naive,repro,floor",
                       help="comma-separated sides to run (default: all four): naive1 = keras-tuner + "
                            "model.fit on one thread with deterministic kernels (the same bits as "
                            "repro; K* and best trial must match), naive = the same harness with "
                            "TensorFlow's default threads and kernels, repro = run_plan, floor = the "
                            "bare training loop over repro's steps (needs repro); e.g. --sides "
                            "naive1,repro,floor skips the default-thread naive side")
    bench.add_argument("--json", dest="json_file", metavar="FILE",
                       help="also write every number of the comparison to FILE (JSON)")
    bench.set_defaults(fn=cmd_bench)


def _add_data(commands):
    """data: fetch the datasets, or say which are here."""
    data = commands.add_parser("data", help="fetch or list datasets")
    data.add_argument("action", choices=["fetch", "status", "ready"],
                      help="fetch datasets, list them, or (ready SPEC) list the missing datasets the "
                           "spec uses and exit 1 when none of them is present (some missing: exit 0, "
                           "their panels are NOT-RUN)")
    data.add_argument("names", nargs="*", help="datasets (default: mnist fashion_mnist); for ready: a spec")
    data.add_argument("--from", dest="source", help="a folder with IDX or .npz files")
    data.set_defaults(fn=cmd_data)


def parser():
    """The command line: one subcommand per command, added by group in the order --help lists them."""
    from . import __version__
    top = _Parser(prog="python -m repro", description=__doc__.splitlines()[0])
    top.add_argument("--version", action="version", version=f"repro {__version__}")
    commands = top.add_subparsers(dest="command", required=True)
    for add_group in (_add_plan, _add_training, _add_results, _add_checks, _add_reports,
                      _add_cluster, _add_bench, _add_data):
        add_group(commands=commands)
    return top


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
