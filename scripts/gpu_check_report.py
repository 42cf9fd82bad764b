"""Step 4 of scripts/gpu-check: K* of Figure 1(b)'s reduced grid on the GPU beside the CPU's,
examples/s and peak device memory.

    python scripts/gpu_check_report.py [--spec SPEC] [--grid GRID] GPU_RESULTS CPU_RESULTS WALL_SECONDS PEAK_MIB

Each folder's results file is the one `repro run SPEC --grid GRID` writes there
(repro.spec.results_path: results/figure-1.nc for the reduced grid).
"""
import argparse
import pathlib
import sys

import numpy as np
import xarray as xr

from repro import analysis
from repro import spec as spec_mod

ROOT = pathlib.Path(__file__).resolve().parents[1]
SPEC = ROOT / "specs" / "figure-1.toml"


def results_file(folder, spec=SPEC, grid="reduced"):
    """The file `repro run SPEC --grid GRID --results FOLDER` writes."""
    return spec_mod.results_path(folder, spec_mod.load_spec(spec), grid)


def load(folder, spec=SPEC, grid="reduced"):
    path = results_file(folder, spec, grid)
    return xr.load_dataset(path) if path.exists() else None


def kstar_table(gpu, cpu, panel="b"):
    """Lines: K* per (sparsity, B) as 'GPU | CPU' ('-' where the goal was not reached or no CPU run)."""
    k_gpu = analysis.steps_to_result(gpu, panel)
    k_cpu = analysis.steps_to_result(cpu, panel) if cpu is not None and panel in list(cpu.panel.values) else None

    def cell(k, s, b):
        if k is None or b not in k.batch_size.values or s not in k.sparsity.values:
            return "-"
        v = float(k.sel(sparsity=s, batch_size=b))
        return "-" if not np.isfinite(v) else f"{v:.0f}"

    lines = [f"K* of Figure 1({panel}), reduced grid (GPU | CPU):",
             f"{'s':>5s} " + " ".join(f"{'B=' + str(int(b)):>15s}" for b in k_gpu.batch_size.values)]
    for s in k_gpu.sparsity.values:
        lines.append(f"{s:5g} " + " ".join(f"{cell(k_gpu, s, b) + ' | ' + cell(k_cpu, s, b):>15s}"
                                           for b in k_gpu.batch_size.values))
    if k_cpu is None:
        lines.append(f"(no CPU table: no panel ({panel}) in the CPU results; make figure-1 DEVICE=cpu, "
                     "or scripts/gpu-check --cpu-results DIR)")
    return lines


def throughput_line(gpu, wall, peak, panel="b"):
    sub = gpu.sel(panel=panel)
    steps, trial_s = sub["steps"].values.astype(float), sub["wall_time"].values.astype(float)
    ran = np.isfinite(trial_s) & (steps > 0)
    examples = float((steps * sub.batch_size.values[None, :, None])[ran].sum())
    busy = float(trial_s[ran].sum())
    return (f"trained {examples:,.0f} examples in {busy:.0f} s of trial time: "
            f"{examples / max(busy, 1e-9):,.0f} examples/s per worker, "
            f"{examples / max(float(wall), 1e-9):,.0f} examples/s over the {float(wall):.0f} s run; "
            f"peak device memory {peak} MiB (nvidia-smi, sampled every second)")


def main(argv):
    p = argparse.ArgumentParser(prog="gpu_check_report.py", description=__doc__.splitlines()[0])
    p.add_argument("--spec", default=str(SPEC), help="the spec both runs used (default: specs/figure-1.toml)")
    p.add_argument("--grid", default="reduced", help="the grid both runs used (default: reduced)")
    p.add_argument("gpu_dir", help="results folder of the GPU run")
    p.add_argument("cpu_dir", help="results folder of a CPU run of the same spec and grid")
    p.add_argument("wall", help="wall seconds of the GPU run")
    p.add_argument("peak", help="peak device memory in MiB ('?' if unknown)")
    args = p.parse_args(argv)
    gpu = load(args.gpu_dir, args.spec, args.grid)
    if gpu is None:
        print(f"gpu-check: no {results_file(args.gpu_dir, args.spec, args.grid)}: the run did not finish",
              file=sys.stderr)
        return 1
    print("\n".join(kstar_table(gpu, load(args.cpu_dir, args.spec, args.grid))))
    print(throughput_line(gpu, args.wall, args.peak))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
