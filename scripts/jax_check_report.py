"""Step 5 of scripts/jax-device-check: K* of Figure 1(b)'s reduced grid trained by the JAX engine
beside the CPU table (TensorFlow, docs/examples/figure-1b-kstar.csv), examples/s, peak device
memory, and what trained the trials (their records' `trained_on`).

    python scripts/jax_check_report.py --results DIR --wall SECONDS --peak MIB [--cpu-table CSV]
"""
import argparse
import csv
import json
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import gpu_check_report  # noqa: E402  (the TensorFlow device check's report: same file, same lines)

from repro import analysis  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
CPU_TABLE = ROOT / "docs" / "examples" / "figure-1b-kstar.csv"


def cpu_kstar(path=CPU_TABLE):
    """{(sparsity, B): K*} of the CPU table (a K* table as `repro verify --table` reads it)."""
    with open(path, newline="") as f:
        return {(float(r["sparsity"]), int(r["batch_size"])): float(r["steps_to_result"])
                for r in csv.DictReader(f)}


def kstar_lines(ds, cpu, panel="b"):
    """Lines: K* per (sparsity, B) as 'JAX | CPU' ('-': goal not reached, or not in the table)."""
    k = analysis.steps_to_result(ds, panel)

    def cell(v):
        return "-" if v is None or not np.isfinite(v) else f"{v:.0f}"

    lines = [f"K* of Figure 1({panel}), reduced grid (JAX on this GPU | TensorFlow on the CPU):",
             f"{'s':>5s} " + " ".join(f"{'B=' + str(int(b)):>15s}" for b in k.batch_size.values)]
    for s in k.sparsity.values:
        row = [f"{cell(float(k.sel(sparsity=s, batch_size=b)))} | {cell(cpu.get((float(s), int(b))))}"
               for b in k.batch_size.values]
        lines.append(f"{s:5g} " + " ".join(f"{c:>15s}" for c in row))
    return lines


def trained_on(results):
    """The `trained_on` of the records in `results`, each distinct one once."""
    seen = {json.dumps(json.loads(p.read_text()).get("trained_on"), sort_keys=True)
            for p in sorted(pathlib.Path(results, "runs").rglob("*.json"))}
    return sorted(seen)


def main(argv):
    p = argparse.ArgumentParser(prog="jax_check_report.py", description=__doc__.splitlines()[0])
    p.add_argument("--results", required=True, help="results folder of the JAX run")
    p.add_argument("--wall", required=True, help="wall seconds of the run")
    p.add_argument("--peak", default="?", help="peak device memory in MiB ('?' if unknown)")
    p.add_argument("--cpu-table", default=str(CPU_TABLE), help="the CPU's K* table (CSV)")
    args = p.parse_args(argv)
    ds = gpu_check_report.load(args.results)
    if ds is None:
        print(f"jax-device-check: no {gpu_check_report.results_file(args.results)}: nothing finished",
              file=sys.stderr)
        return 1
    print("\n".join(kstar_lines(ds, cpu_kstar(args.cpu_table))))
    print(gpu_check_report.throughput_line(ds, args.wall, args.peak))
    print("trained on: " + "; ".join(trained_on(args.results)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
