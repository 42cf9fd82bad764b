"""The bench's driver: each side in its own process tree (`python -m repro.bench _side ...`),
timed, its peak memory sampled; then the comparison (repro.bench.compare) printed and written
as JSON."""
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import threading
import time

from ..errors import UsageError
from ..options import COMMAND_LINE
from . import compare
from .sides import study

SIDES = ("naive1", "naive", "repro", "floor")
SAMPLE_S = 0.2  # how often a side's process tree is measured for its peak memory


def parse_sides(text):
    """The sides named in `text` ('naive1,naive,repro,floor'), in the bench's order.

    UsageError for an empty list, an unknown name, or the floor without repro (the floor
    replays the steps repro trained)."""
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    unknown = sorted(set(names) - set(SIDES))
    if not names or unknown:
        raise UsageError(COMMAND_LINE, "--sides",
                         f"unknown side(s) {unknown}" if unknown else "names no side",
                         f"a comma-separated subset of {','.join(SIDES)}")
    if "floor" in names and "repro" not in names:
        raise UsageError(COMMAND_LINE, "--sides", "the floor times the steps repro trained",
                         "add repro, or drop floor")
    return tuple(n for n in SIDES if n in names)


def check_json_path(path):
    """UsageError unless the bench can write its JSON to `path` (checked before any training)."""
    from ..store import check_writable
    if pathlib.Path(path).is_dir():
        raise UsageError(COMMAND_LINE, "--json", f"{path} is a folder", "pass a file name")
    check_writable(pathlib.Path(path).parent)


# ------------------------------------------------------------------------ processes
def _tree_rss(pid):
    """Resident bytes of `pid` and all its descendants (Linux /proc)."""
    children, total = {}, 0
    for proc in pathlib.Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                stat = (proc / "stat").read_text()
                parent = int(stat[stat.rindex(")") + 2:].split()[1])
                children.setdefault(parent, []).append(int(proc.name))
            except (OSError, ValueError):
                pass
    stack = [pid]
    while stack:
        pid = stack.pop()
        try:
            for line in open(f"/proc/{pid}/status"):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
        stack += children.get(pid, [])
    return total


def _side(args):
    """Run `python -m repro.bench _side ...` as a process tree; (seconds, peak bytes, output)."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    try:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "repro.bench", "_side", *args, out])
        peak = [0]

        def sample():
            while proc.poll() is None:
                peak[0] = max(peak[0], _tree_rss(proc.pid))
                time.sleep(SAMPLE_S)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        rc = proc.wait()
        seconds = time.perf_counter() - t0
        sampler.join()
        if rc != 0:
            raise RuntimeError(f"bench side {args[0]} failed with exit status {rc}")
        return seconds, peak[0], json.loads(pathlib.Path(out).read_text())
    finally:
        os.unlink(out)


def _split(steps_by_batch, n):
    """Deal {B: steps} into n shares of about equal examples."""
    shares = [dict() for _ in range(n)]
    for b, steps in sorted(steps_by_batch.items(), key=lambda kv: -int(kv[0]) * kv[1]):
        per = -(-steps // n)
        for i in range(n):
            take = min(per, steps - per * i) if steps > per * i else 0
            if take:
                shares[i][b] = take
    return [share for share in shares if share]


def _floor(selection, steps_by_batch, workers):
    """The floor side: repro's trained steps dealt over `workers` processes, run at once; its
    time is the slowest share's, timed inside each process (start-up excluded)."""
    shares = _split(steps_by_batch, workers)
    seconds = []
    threads = [threading.Thread(target=lambda share=share: seconds.append(
        _side(["floor", selection, json.dumps(share)])[2]["seconds"])) for share in shares]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if len(seconds) != len(threads):
        raise RuntimeError("a floor process failed")
    return {"seconds": max(seconds, default=0.0), "processes": len(shares)}


def run_sides(selection, sides, workers, log):
    """Run each named side in its own process tree; {side: its output with seconds and peak_bytes}.
    `selection`: the study as JSON text (what sides.run_side reads)."""
    what = {"naive1": "(i) naive keras-tuner + model.fit harness, one trial at a time, one thread, "
                      "deterministic kernels",
            "naive": "(ii) the same naive harness with TensorFlow's default threads and kernels",
            "repro": f"(iii) repro with {workers} workers",
            "floor": "(iv) bare training loop over the steps repro trained"}
    out = {}
    for name in sides:
        log(f"bench: {what[name]} ...")
        if name == "floor":
            out[name] = _floor(selection, out["repro"]["steps_by_batch"], workers)
            continue
        seconds, peak, result = _side([name, selection] + ([str(workers)] if name == "repro" else []))
        out[name] = {**result, "seconds": seconds, "peak_bytes": peak}
    return out


# ------------------------------------------------------------------------ the bench
def bench(spec_path, grid="reduced", panel="b", batch_sizes=None, sparsities=None, trials=None,
          workers=None, sides=SIDES, json_path=None, log=print):
    """Run the chosen sides on the same study; print the comparison and the targets,
    write it all to `json_path` (if given) and return it.

    The returned "same" is whether naive1 and repro agree on K* and best trial at every point
    (None when either did not run)."""
    from ..atomic import atomic_write
    workers = workers or os.cpu_count() or 1
    sides = parse_sides(",".join(sides))
    spec, panel_plan = study(spec_path, grid, panel, batch_sizes, sparsities, trials)
    searched = panel_plan.grid
    selection = {"spec": str(spec_path), "grid": grid, "panel": panel,
                 "batch_sizes": list(searched.batch_sizes),
                 "sparsities": list(searched.sparsities), "trials": searched.trials}
    log(f"bench: {spec.id} ({panel}) {grid} grid, B {list(searched.batch_sizes)} x s "
        f"{list(searched.sparsities)}, {searched.trials} trials per point; sides {','.join(sides)}")
    ran = run_sides(json.dumps(selection), sides, workers, log)
    judged = compare.judge(sides=ran, panel_plan=panel_plan)
    for line in compare.report_lines(sides=ran, judged=judged, workers=workers):
        log(line)
    result = {"selection": selection, "workers": workers, "sides": ran, **judged}
    if json_path:
        atomic_write(json_path, json.dumps(result, indent=1).encode())
    return result
